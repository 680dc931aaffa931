// lib/src/hooks/hooks_api.hpp — the C interface between libcoop (which
// implements it, lib/src/hooks/hooks_api.cpp) and libcoop_hooks.so (which
// finds it at run time, lib/hooks/hooks.cpp). The hooks library holds no
// copy of coop: it asks the process for `coop_hooks_api_v1`, which the
// program exports when it links coop (see lib/CMakeLists.txt). Not installed.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

struct coop_hooks_api {
  /// Non-zero when the caller runs in a coop fiber on a runtime thread:
  /// there a blocking call may park the fiber instead of the thread.
  int (*in_fiber)(void);
  /// Parks the calling fiber until `fd` is readable (`for_write` 0) or
  /// writable. `deadline_ns`: CLOCK_MONOTONIC nanoseconds, or -1 for none.
  /// Returns 0 when ready, EAGAIN when the deadline passed, ETIMEDOUT when a
  /// `coop::timeout` expired, ECANCELED when the fiber was cancelled, EBADF
  /// when the descriptor was closed or forgotten meanwhile, another errno
  /// value on another error.
  int (*wait_fd)(int fd, int for_write, long long deadline_ns);
  /// Parks the calling fiber until `deadline_ns` (CLOCK_MONOTONIC). Returns
  /// 0 when it passed, ETIMEDOUT or ECANCELED when interrupted first.
  int (*sleep_until)(long long deadline_ns);
  /// `coop::forget_fd`: before a descriptor that fibers waited on is closed.
  void (*forget_fd)(int fd);
  /// Runs `fn(arg)` on coop's offload pool and parks the calling fiber until
  /// it has run: 0, or ETIMEDOUT/ECANCELED when the fiber was interrupted
  /// first (`fn` may then still run, or never). `release(arg)` is called
  /// once, on any thread, when the pool is done with `arg` (after `fn` ran,
  /// or instead of it).
  int (*offload)(void (*fn)(void*), void* arg, void (*release)(void*));
};

/// Exported by every program that links coop.
const struct coop_hooks_api* coop_hooks_api_v1(void);

#ifdef __cplusplus
}
#endif

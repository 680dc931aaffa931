// bench/idle_bench.cpp — what an idle runtime costs: a coop listener waiting in
// accept() with no clients, against a plain thread blocked in accept(2), over
// the same period; then a runtime whose fibers are parked on an event, a
// semaphore, a mutex, a wait_group, an async_result, a channel, a select,
// a full pool, an offloaded call, a UDP receive and a Unix accept. Reports CPU time and
// context switches (wake-ups) of each; a runtime that polls shows up as both.
//
//   idle_bench [SECONDS]      (default 3)
#include <coop/coop.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

struct usage {
  double cpu_seconds;
  long context_switches;
};

usage thread_usage() {
  rusage ru{};
  ::getrusage(RUSAGE_THREAD, &ru);
  return {static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
              static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6,
          ru.ru_nvcsw + ru.ru_nivcsw};
}

void report(const char* what, usage before, usage after, double seconds) {
  double cpu = after.cpu_seconds - before.cpu_seconds;
  std::printf("%-34s cpu %8.3f ms  (%.3f%% of one core)  wake-ups %ld\n", what, cpu * 1e3, 100.0 * cpu / seconds,
              after.context_switches - before.context_switches);
}

} // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::stod(argv[1]) : 3.0;
  auto period = std::chrono::duration<double>(seconds);

  // Baseline: a thread blocked in the kernel's accept().
  {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd, 16);
    usage before{}, after{};
    std::thread t([&] {
      before = thread_usage();
      ::accept(fd, nullptr, nullptr); // returns when shut down below
      after = thread_usage();
    });
    std::this_thread::sleep_for(period);
    ::shutdown(fd, SHUT_RDWR);
    t.join();
    ::close(fd);
    report("baseline: thread blocked in accept", before, after, seconds);
  }

  // coop: a runtime whose only fiber waits in accept(); the timeout ends it.
  coop::run([&] {
    coop::net::tcp_listener listener({boost::asio::ip::make_address("127.0.0.1"), 0});
    usage before = thread_usage();
    try {
      coop::timeout t(period);
      listener.accept();
    } catch (const coop::timeout_error&) {
    }
    usage after = thread_usage();
    report("coop: runtime idle in accept", before, after, seconds);
  });

  // coop: one fiber parked on each synchronisation primitive; the main fiber sleeps.
  coop::run([&] {
    coop::event ev;
    coop::semaphore sem(0);
    coop::mutex m;
    coop::wait_group wg;
    coop::async_result<int> result;
    m.lock();
    wg.add(1);
    std::vector<coop::task<void>> parked;
    parked.push_back(coop::spawn([&] { ev.wait(); }));
    parked.push_back(coop::spawn([&] { sem.acquire(); }));
    parked.push_back(coop::spawn([&] { std::lock_guard lock(m); }));
    parked.push_back(coop::spawn([&] { wg.wait(); }));
    parked.push_back(coop::spawn([&] { (void)result.get(); }));
    // ...and on the rest of the toolbox: a channel, a select with a timer
    // case, a full pool, an offloaded call, a UDP receive, a Unix accept.
    coop::channel<int> ch(0);
    std::optional<int> got;
    coop::pool one(1);
    std::promise<void> release_offload;
    auto offload_blocks = release_offload.get_future().share();
    coop::net::udp_socket udp({boost::asio::ip::make_address("127.0.0.1"), 0});
    coop::net::unix_listener local("@coop-idle-bench-" + std::to_string(::getpid()));
    std::array<char, 64> buf;
    std::vector<coop::task<void>> cancelled;
    parked.push_back(coop::spawn([&] { (void)ch.pop(); }));
    parked.push_back(
        coop::spawn([&] { (void)coop::select(coop::recv(ch, got), coop::after(std::chrono::hours(24))); }));
    cancelled.push_back(one.spawn([&] { ev.wait(); }));
    cancelled.push_back(coop::spawn([&] { (void)one.spawn([] {}); })); // waits for the pool's slot
    parked.push_back(coop::spawn([&] { coop::offload([&] { offload_blocks.wait(); }); }));
    cancelled.push_back(coop::spawn([&] { (void)udp.receive(boost::asio::buffer(buf)); }));
    cancelled.push_back(coop::spawn([&] { (void)local.accept(); }));
    coop::this_fiber::yield(); // all of them park
    usage before = thread_usage();
    coop::sleep_for(period);
    usage after = thread_usage();
    report("coop: 12 fibers parked on sync, channel, select, pool, offload, udp, unix", before, after, seconds);
    ev.set();
    sem.release();
    m.unlock();
    wg.done();
    result.set(0);
    ch.close();
    release_offload.set_value();
    for (auto& t : cancelled)
      t.cancel();
    coop::join_all(parked);
    coop::join_all(cancelled);
  });
  return 0;
}

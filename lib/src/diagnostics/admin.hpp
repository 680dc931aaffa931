// lib/src/diagnostics/admin.hpp — the admin endpoint (run_options::admin_socket):
// /metrics, /fibers over HTTP/1.1, served from a thread of its own
// (lib/src/diagnostics/admin.cpp).
#pragma once

#include <memory>
#include <string>

namespace coop::detail {

/// A runtime thread's hold on the endpoint at an address: the first hold
/// starts serving it, the last one to go stops it. Null when the address
/// is empty or cannot be served (which was said on stderr).
std::shared_ptr<void> hold_admin_endpoint(const std::string& address);

} // namespace coop::detail

// bench/baselines/baseline.hpp — what the baseline echo servers share with
// echo_server's command line: `--port N` (0: any free port), one line
// "listening on 127.0.0.1:PORT" once ready, exit 0 on SIGINT/SIGTERM, exit 2
// with one line on a bad argument. scripts/bench drives them all alike.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>

namespace baseline {

inline constexpr std::size_t buffer_size = 16 * 1024; ///< as echo_server's echo_buffer_size

/// The port from `--port N` (the only option); exits 2 on anything else.
inline std::uint16_t parse_port(int argc, char** argv, const char* name) {
  std::string usage = std::string("usage: ") + name + " --port N   (0: any free port; serves 127.0.0.1)";
  if (argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    std::cout << usage << "\n";
    std::exit(0);
  }
  if (argc != 3 || std::string(argv[1]) != "--port") {
    std::cerr << name << ": error: " << usage << std::endl;
    std::exit(2);
  }
  char* end = nullptr;
  long port = std::strtol(argv[2], &end, 10);
  if (*argv[2] == '\0' || *end != '\0' || port < 0 || port > 65535) {
    std::cerr << name << ": error: --port: must be between 0 and 65535" << std::endl;
    std::exit(2);
  }
  return static_cast<std::uint16_t>(port);
}

/// The line scripts wait for.
inline void announce(std::uint16_t port) {
  std::cout << "listening on 127.0.0.1:" << port << std::endl;
}

} // namespace baseline

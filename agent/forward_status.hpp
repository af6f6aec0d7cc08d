// What the live status line and SIGUSR1 report for each forward: a snapshot taken from the
// listener and its session, and its one-line rendering (pure, unit-tested).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace tunnel {

struct SessionStatus {
  uint64_t id = 0;
  std::string state;  // "connecting", "connected", "debugger attached", "retrying (2 failures)", "closing"
  double age_s = 0;
  uint64_t bytes_up = 0;    // local client -> target
  uint64_t bytes_down = 0;  // target -> local client
  std::optional<double> rtt_ms;  // the last upload's round trip
};

struct ForwardStatus {
  std::string listen;    // "127.0.0.1:8000"
  std::string endpoint;  // "app.example.com:443", for a short line
  std::optional<SessionStatus> session;
  size_t waiting = 0;          // local connections queued behind the session
  uint64_t sessions_done = 0;  // sessions ended so far
  double retry_in_s = 0;       // after a 503: the next session's first request waits this long
};

// "127.0.0.1:8000 -> app.example.com:443  session 3 debugger attached 2m05s  up 1.2 MiB  down 3.4 MiB  rtt 12 ms"
std::string format_status(const ForwardStatus& status);

// 1023 B, 1.0 KiB, 12.3 MiB, 1.1 GiB
std::string format_bytes(uint64_t bytes);

}  // namespace tunnel

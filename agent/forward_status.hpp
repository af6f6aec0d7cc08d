// What the live status line and SIGUSR1 report for each forward: a snapshot taken from the
// listener and its session, and its one-line rendering (pure, unit-tested).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace tunnel {

struct SessionStatus {
  std::string id;  // "3", or "8000#3" (see TunnelSession::id)
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
  // How the last session ended, once one has: its name, whether it failed, and why.
  std::string last_id;
  bool last_failed = false;
  std::string last_reason;
};

// The facts first, so that a line cut to a narrow terminal keeps them, the addresses last:
// "session 3 debugger attached 2m05s  up 1.2 MiB  down 3.4 MiB  rtt 12 ms  127.0.0.1:8000 -> app.example.com:443";
// idle: "idle, 3 sessions so far; session 3 failed: the server refused the secret  127.0.0.1:8000 -> ..."
std::string format_status(const ForwardStatus& status);

// 1023 B, 1.0 KiB, 12.3 MiB, 1.1 GiB
std::string format_bytes(uint64_t bytes);

}  // namespace tunnel

#include "agent/forward_status.hpp"

#include <doctest/doctest.h>

using namespace tunnel;

TEST_CASE("byte counts read at a glance") {
  CHECK(format_bytes(0) == "0 B");
  CHECK(format_bytes(1023) == "1023 B");
  CHECK(format_bytes(1024) == "1.0 KiB");
  CHECK(format_bytes(12 * 1024 * 1024 + 300 * 1024) == "12.3 MiB");
  CHECK(format_bytes(3ull << 40) == "3.0 TiB");
}

TEST_CASE("a forward's status line: live session, idle, backing off") {
  ForwardStatus f;
  f.listen = "127.0.0.1:8000";
  f.endpoint = "app.example.com:443";
  CHECK(format_status(f) == "127.0.0.1:8000 -> app.example.com:443  idle, waiting for a debugger");
  f.sessions_done = 1;
  CHECK(format_status(f) == "127.0.0.1:8000 -> app.example.com:443  idle, 1 session so far");
  f.retry_in_s = 4.2;
  CHECK(format_status(f) ==
        "127.0.0.1:8000 -> app.example.com:443  target not running at the last attempt; the next session waits 4 s");
  f.session = SessionStatus{3, "debugger attached", 125.4, 2048, 5 * 1024 * 1024, 12.4};
  f.waiting = 1;
  CHECK(format_status(f) == "127.0.0.1:8000 -> app.example.com:443  session 3 debugger attached 2m05s  up 2.0 KiB  "
                            "down 5.0 MiB  rtt 12 ms  (1 waiting)");
  f.session->rtt_ms.reset();
  f.session->age_s = 7300;
  f.waiting = 0;
  CHECK(format_status(f) == "127.0.0.1:8000 -> app.example.com:443  session 3 debugger attached 2h01m  up 2.0 KiB  "
                            "down 5.0 MiB  rtt -");
}

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

TEST_CASE("a forward's status line: live session, idle, backing off; the facts first, the addresses last") {
  ForwardStatus f;
  f.listen = "127.0.0.1:8000";
  f.endpoint = "app.example.com:443";
  CHECK(format_status(f) == "idle, waiting for a debugger  127.0.0.1:8000 -> app.example.com:443");
  f.sessions_done = 1;
  CHECK(format_status(f) == "idle, 1 session so far  127.0.0.1:8000 -> app.example.com:443");
  // After a session ends, the idle line says how.
  f.last_id = std::string(1, '1');  // not = "1": GCC 12 warns falsely there (-Wrestrict, its PR 105329)
  f.last_failed = true;
  f.last_reason = "the server refused the secret (HTTP 403)";
  CHECK(format_status(f) ==
        "idle, 1 session so far; session 1 failed: the server refused the secret (HTTP 403)  127.0.0.1:8000 -> "
        "app.example.com:443");
  f.last_failed = false;
  f.last_reason = "the local client closed the connection";
  CHECK(format_status(f).find("; session 1 ended: the local client closed") != std::string::npos);
  f.retry_in_s = 4.2;
  CHECK(format_status(f) ==
        "target not running at the last attempt; the next session waits 4 s  127.0.0.1:8000 -> app.example.com:443");
  f.session = SessionStatus{"3", "debugger attached", 125.4, 2048, 5 * 1024 * 1024, 12.4};
  f.waiting = 1;
  // At 80 columns the state, the bytes and the round trip come before any address.
  CHECK(format_status(f) == "session 3 debugger attached 2m05s  up 2.0 KiB  down 5.0 MiB  rtt 12 ms  (1 waiting)  "
                            "127.0.0.1:8000 -> app.example.com:443");
  CHECK(format_status(f).substr(0, 80).find("rtt 12 ms") != std::string::npos);
  f.session->rtt_ms.reset();
  f.session->age_s = 7300;
  f.waiting = 0;
  CHECK(format_status(f) == "session 3 debugger attached 2h01m  up 2.0 KiB  down 5.0 MiB  rtt -  "
                            "127.0.0.1:8000 -> app.example.com:443");
}

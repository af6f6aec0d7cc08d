#include "common/log.hpp"

#include <doctest/doctest.h>

using tunnel::log::json_line;
using tunnel::log::Level;

TEST_CASE("JSON log lines escape quotes, backslashes and control characters") {
  CHECK(json_line("2026-11-21T10:00:00.000Z", Level::warn, "plain") ==
        R"({"time":"2026-11-21T10:00:00.000Z","level":"warning","message":"plain"})");
  CHECK(json_line("t", Level::info, "say \"hi\" C:\\x\n\ttab\x01") ==
        R"({"time":"t","level":"info","message":"say \"hi\" C:\\x\u000a\u0009tab\u0001"})");
  CHECK(json_line("t", Level::error, "été ✓") == R"({"time":"t","level":"error","message":"été ✓"})");
}

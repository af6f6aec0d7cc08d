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

TEST_CASE("text log lines show control characters from the network escaped, never raw") {
  using tunnel::log::text_safe;
  // A reason phrase that would clear the screen and retitle the terminal.
  CHECK(text_safe("HTTP 418 \x1b[2J\x1b]0;owned\x07 Teapot") == R"(HTTP 418 \x1b[2J\x1b]0;owned\x07 Teapot)");
  CHECK(text_safe("line\r\nnext\x7f") == R"(line\x0d\x0anext\x7f)");
  CHECK(text_safe("csi \xc2\x9b" "31m") == R"(csi \x9b31m)");  // U+009B, the one-byte CSI
  CHECK(text_safe("été ✓ ¡") == "été ✓ ¡");                    // other UTF-8 passes
  CHECK(text_safe("trailing \xc2") == "trailing \xc2");
}

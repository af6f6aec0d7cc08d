#include "common/tunnel_protocol.hpp"

#include <doctest/doctest.h>

#include <cstring>

using namespace tunnel::protocol;

namespace {
std::vector<char> bytes(const char* s) { return std::vector<char>(s, s + std::strlen(s)); }
std::string text(const std::vector<char>& v) { return std::string(v.begin(), v.end()); }
}  // namespace

TEST_CASE("statuses map to what the protocol table says") {
  CHECK(classify_status(200) == Answer::payload);
  CHECK(classify_status(204) == Answer::poll_again);
  CHECK(classify_status(429) == Answer::released);
  CHECK(classify_status(410) == Answer::target_closed);
  CHECK(classify_status(503) == Answer::target_unavailable);
  CHECK(classify_status(401) == Answer::secret_refused);
  CHECK(classify_status(403) == Answer::secret_refused);
  for (long other : {0L, 100L, 201L, 301L, 302L, 400L, 404L, 500L, 502L, 504L}) {
    CAPTURE(other);
    CHECK(classify_status(other) == Answer::unexpected);
  }
}

TEST_CASE("x-seq accepts plain positive decimals only") {
  CHECK(parse_seq("1") == 1u);
  CHECK(parse_seq("42") == 42u);
  CHECK(parse_seq("9223372036854775807") == 9223372036854775807u);
  CHECK(parse_seq("000000000000000000000007") == 7u);  // as Java's Long.valueOf (found by the fuzz target)
  for (const char* bad : {"", "0", "000", "-1", "+1", " 1", "1 ", "1a", "0x10", "9223372036854775808", "99999999999999999999"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_seq(bad).has_value());
  }
}

TEST_CASE("payloads come out in x-seq order, whatever order they arrive in") {
  PayloadReorderer r(1024);
  CHECK(r.push(2, bytes("world")) == PayloadReorderer::Result::accepted);
  CHECK(r.has_gap());
  CHECK_FALSE(r.pop_ready().has_value());  // nothing after a gap is handed out
  CHECK(r.push(1, bytes("hello ")) == PayloadReorderer::Result::accepted);
  CHECK_FALSE(r.has_gap());
  CHECK(text(*r.pop_ready()) == "hello ");
  CHECK(text(*r.pop_ready()) == "world");
  CHECK_FALSE(r.pop_ready().has_value());
  CHECK(r.next_expected() == 3);
}

TEST_CASE("a repeated, restarted or far-ahead x-seq is refused") {
  PayloadReorderer r(3);  // bytes that may wait behind a gap
  REQUIRE(r.push(1, bytes("a")) == PayloadReorderer::Result::accepted);
  REQUIRE(r.pop_ready().has_value());
  REQUIRE(r.push(2, bytes("b")) == PayloadReorderer::Result::accepted);
  REQUIRE(r.pop_ready().has_value());
  CHECK(r.push(1, bytes("again")) == PayloadReorderer::Result::went_back);
  CHECK(r.push(2, bytes("b")) == PayloadReorderer::Result::duplicate);
  CHECK(r.push(4, bytes("d")) == PayloadReorderer::Result::accepted);
  CHECK(r.push(4, bytes("d")) == PayloadReorderer::Result::duplicate);
  CHECK(r.push(5, bytes("ee")) == PayloadReorderer::Result::accepted);
  CHECK(r.waiting_bytes() == 3);
  CHECK(r.push(8, bytes("h")) == PayloadReorderer::Result::too_far);
  CHECK(r.waiting() == 2);
  // The awaited payload is always taken, however much waits, and frees the room behind it.
  CHECK(r.push(3, bytes("cccccccc")) == PayloadReorderer::Result::accepted);
  CHECK(text(*r.pop_ready()) == "cccccccc");
  CHECK(text(*r.pop_ready()) == "d");
  CHECK(text(*r.pop_ready()) == "ee");
  CHECK(r.waiting_bytes() == 0);
  CHECK(describe(PayloadReorderer::Result::went_back, 1, 3).find("went back to 1 after 2") != std::string::npos);
}

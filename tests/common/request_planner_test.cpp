#include "common/request_planner.hpp"

#include <doctest/doctest.h>

using namespace tunnel;
using Next = Plan::Next;

namespace {

constexpr uint64_t ms = 1'000'000;

InFlightRequest get(uint64_t started) { return {true, 0, started, 0}; }
InFlightRequest post(size_t size, uint64_t started, uint64_t body_sent) { return {false, size, started, body_sent}; }

}  // namespace

TEST_CASE("an idle session keeps one GET waiting, and only one") {
  RequestPlanner p;
  CHECK(p.next({}, false, true, 1000 * ms).next == Next::get);
  auto plan = p.next({get(0)}, false, true, 1000 * ms);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == 0);
}

TEST_CASE("a local client that does not keep up stops the polling") {
  RequestPlanner p;
  CHECK(p.next({}, false, false, 1000 * ms).next == Next::nothing);
}

TEST_CASE("request/reply traffic: small POSTs pair up, no third request, no 429") {
  RequestPlanner p;
  const uint64_t now = 1000 * ms;
  // A command while the GET waits: POST beside it.
  CHECK(p.next({get(now - 5 * ms)}, true, true, now).next == Next::post);
  // The reply came on the GET; the POST is held alone and the next command arrives at once.
  CHECK(p.next({post(20, now - 1 * ms, now - 1 * ms)}, true, true, now).next == Next::post);
  // Two small POSTs held, nothing more to send: no GET yet, but a look again when one is alone too long.
  auto plan = p.next({post(20, now - 2 * ms, now - 2 * ms), post(20, now - 1 * ms, now - 1 * ms)}, false, true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == 48 * ms);
}

TEST_CASE("a lone small POST gets a GET beside it after a while, a big POST at once") {
  RequestPlanner p;
  const uint64_t now = 1000 * ms;
  auto plan = p.next({post(20, now - 10 * ms, now - 10 * ms)}, false, true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == 40 * ms);
  CHECK(p.next({post(20, now - 50 * ms, now - 50 * ms)}, false, true, now).next == Next::get);
  CHECK(p.next({post(64 << 10, now, 0)}, false, true, now).next == Next::get);
}

TEST_CASE("a needed GET goes before more upload") {
  RequestPlanner p;
  const uint64_t now = 1000 * ms;
  CHECK(p.next({post(256 << 10, now - 1 * ms, 0)}, true, true, now).next == Next::get);
}

TEST_CASE("a third request only when the request it releases is settled") {
  RequestPlanner p;  // nothing observed yet: settle time is the 2 ms base
  const uint64_t now = 1000 * ms;
  // Oldest is a GET: releasing it loses nothing.
  CHECK(p.next({get(now - 3 * ms), post(256 << 10, now - 1 * ms, 0)}, true, true, now).next == Next::post);
  // Oldest is a POST still uploading: wait, and look again shortly.
  auto plan = p.next({post(256 << 10, now - 3 * ms, 0), get(now - 1 * ms)}, true, true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == 2 * ms);
  // Its body went out 1 ms ago: 1 ms more.
  plan = p.next({post(256 << 10, now - 3 * ms, now - 1 * ms), get(now - 1 * ms)}, true, true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == 1 * ms);
  // Settled.
  CHECK(p.next({post(256 << 10, now - 3 * ms, now - 2 * ms), get(now - 1 * ms)}, true, true, now).next == Next::post);
  // Never a fourth.
  CHECK(p.next({get(now - 9 * ms), post(1, now - 8 * ms, now - 8 * ms), post(1, now - 7 * ms, now - 7 * ms)}, true,
               true, now)
            .next == Next::nothing);
}

TEST_CASE("the settle time grows with the round trip seen") {
  RequestPlanner p;
  CHECK(p.settle_ns() == 2 * ms);
  p.observe_exchange(30 * ms);
  p.observe_exchange(10 * ms);
  p.observe_exchange(20 * ms);
  CHECK(p.settle_ns() == 22 * ms);  // 2 ms + 2 x the fastest (10 ms)
  const uint64_t now = 1000 * ms;
  CHECK(p.next({post(256 << 10, now - 30 * ms, now - 21 * ms), get(now - 1 * ms)}, true, true, now).next ==
        Next::nothing);
  CHECK(p.next({post(256 << 10, now - 30 * ms, now - 22 * ms), get(now - 1 * ms)}, true, true, now).next == Next::post);
}

#include "common/retry_policy.hpp"

#include <doctest/doctest.h>

using namespace tunnel;
using Action = RetryPolicy::Verdict::Action;

namespace {
constexpr uint64_t ms = 1'000'000;
}

TEST_CASE("the back-off doubles from the base up to the cap, jittered within the upper half of each step") {
  RetryPolicy p({25000, 50, 2000, 4}, 12345);
  uint64_t now = 1000 * ms;
  const uint64_t steps[] = {50, 100, 200, 400, 800, 1600, 2000, 2000, 2000};
  for (const uint64_t step : steps) {
    const auto v = p.on_failure(now, true);
    CAPTURE(step);
    REQUIRE(v.action == Action::retry);
    CHECK(v.delay_ms >= step / 2);
    CHECK(v.delay_ms <= step);
    now += v.delay_ms * ms;
  }
  CHECK(p.failures_in_row() == 9);
}

TEST_CASE("the jitter spreads sessions that failed together") {
  RetryPolicy a({25000, 50, 2000, 4}, 1), b({25000, 50, 2000, 4}, 2);
  bool differ = false;
  for (int i = 0; i < 6; ++i) differ |= a.on_failure(i * ms, true).delay_ms != b.on_failure(i * ms, true).delay_ms;
  CHECK(differ);
}

TEST_CASE("a try that would end outside the retry window is not made") {
  RetryPolicy p({1000, 400, 400, 4}, 7);
  const auto first = p.on_failure(0, true);
  CHECK(first.action == Action::retry);
  CHECK(first.failing_for_ns == 0);
  // 900 ms after the first failure, any delay of 200-400 ms ends past the 1 s window.
  const auto late = p.on_failure(900 * ms, true);
  CHECK(late.action == Action::give_up_window);
  CHECK(late.failures == 2);
  CHECK(late.failing_for_ns == 900 * ms);
}

TEST_CASE("an answer ends the run of failures: the window counts from the next first failure") {
  RetryPolicy p({1000, 400, 400, 4}, 7);
  p.on_failure(0, true);
  p.on_answer(p.epoch());
  CHECK(p.failures_in_row() == 0);
  const auto v = p.on_failure(900 * ms, true);
  CHECK(v.action == Action::retry);
  CHECK(v.failures == 1);
  CHECK(v.failing_for_ns == 0);
}

TEST_CASE("before any tunnel answer, four failures in a row give up") {
  RetryPolicy p({25000, 50, 2000, 4}, 7);
  for (int i = 0; i < 3; ++i) CHECK(p.on_failure(i * ms, false).action == Action::retry);
  CHECK(p.on_failure(3 * ms, false).action == Action::give_up_unserved);
  RetryPolicy served({25000, 50, 2000, 4}, 7);
  for (int i = 0; i < 4; ++i) CHECK(served.on_failure(i * ms, true).action == Action::retry);
}

TEST_CASE("releases: owed after a failure that may leave a request held, until a request of the new epoch is answered") {
  RetryPolicy p({25000, 50, 2000, 4}, 7);
  p.note_failure(false);  // nothing can be held (a connect that failed)
  CHECK(p.releases_owed() == 0);
  CHECK_FALSE(p.release_pending());
  const uint64_t before = p.epoch();
  p.note_failure(true);
  CHECK(p.epoch() == before + 1);
  CHECK(p.release_pending());
  CHECK(p.releases_owed() == 2);
  p.release_sent();
  p.release_sent();
  p.release_sent();  // never below zero
  CHECK(p.releases_owed() == 0);
  // An answer to a request of an older epoch proves nothing about the releases.
  p.on_answer(before);
  CHECK(p.release_pending());
  // A failure meanwhile (the releases may have failed too) owes them again, held or not.
  p.note_failure(false);
  CHECK(p.releases_owed() == 2);
  p.release_sent();
  p.release_sent();
  p.on_answer(p.epoch());
  CHECK_FALSE(p.release_pending());
  p.note_failure(false);
  CHECK(p.releases_owed() == 0);
}

TEST_CASE("after refusals, the next session waits 1 s, doubling to a 16 s cap, until one is served") {
  RefusalBackoff b;
  CHECK(b.wait_ms() == 0);
  const uint64_t waits[] = {1000, 2000, 4000, 8000, 16000, 16000, 16000};
  for (const uint64_t wait : waits) CHECK(b.refused() == wait);
  b.served();
  CHECK(b.wait_ms() == 0);
  CHECK(b.refused() == 1000);
}

TEST_CASE("empty answers that come at once, run after run, slow requests down to the cap") {
  EmptyAnswerPacer p;  // quick < 250 ms, threshold 4, pause 100 ms doubling to 2 s
  uint64_t now = 1000 * ms;
  p.on_sent(now);
  CHECK(p.wait_ns(now) == 0);
  CHECK_FALSE(p.on_empty_answer(429, 1 * ms));
  CHECK_FALSE(p.on_empty_answer(204, 1 * ms));
  CHECK_FALSE(p.on_empty_answer(429, 1 * ms));
  CHECK(p.wait_ns(now) == 0);  // three: not yet
  CHECK(p.on_empty_answer(429, 1 * ms));  // the fourth starts it, and says so once
  CHECK(p.slowed());
  CHECK(p.count_429() == 3);
  CHECK(p.count_204() == 1);
  CHECK(p.wait_ns(now) == 100 * ms);
  CHECK(p.wait_ns(now + 40 * ms) == 60 * ms);
  CHECK(p.wait_ns(now + 100 * ms) == 0);
  const uint64_t steps[] = {200, 400, 800, 1600, 2000, 2000};
  for (const uint64_t step : steps) {
    CAPTURE(step);
    CHECK_FALSE(p.on_empty_answer(204, 1 * ms));  // said once only
    now += 3000 * ms;
    p.on_sent(now);
    CHECK(p.wait_ns(now) == step * ms);
  }
  // At the cap, no more than one request per 2 s: 10 s of storm costs at most a handful.
  CHECK(p.pause_ns() == 2000 * ms);
}

TEST_CASE("progress ends a storm at once; a request held like a long poll ends the run too") {
  EmptyAnswerPacer p;
  for (int i = 0; i < 6; ++i) p.on_empty_answer(429, 0);
  REQUIRE(p.slowed());
  p.on_sent(5 * ms);
  CHECK(p.on_progress());  // a payload: the slow-down ends, and that is worth a line
  CHECK_FALSE(p.slowed());
  CHECK(p.wait_ns(6 * ms) == 0);
  CHECK_FALSE(p.on_progress());  // nothing to end
  // The server's own 204 comes after its long poll: it breaks a run, however long the run was.
  for (int i = 0; i < 3; ++i) p.on_empty_answer(204, 1 * ms);
  CHECK_FALSE(p.on_empty_answer(204, 10'000 * ms));
  CHECK(p.run() == 0);
  for (int i = 0; i < 3; ++i) CHECK_FALSE(p.on_empty_answer(204, 1 * ms));
  CHECK_FALSE(p.slowed());
}

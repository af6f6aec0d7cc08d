#include "common/retry_policy.hpp"

#include <algorithm>

namespace tunnel {

uint64_t RetryPolicy::next_jitter() {
  jitter_ ^= jitter_ << 13;
  jitter_ ^= jitter_ >> 7;
  jitter_ ^= jitter_ << 17;
  return jitter_;
}

RetryPolicy::Verdict RetryPolicy::on_failure(uint64_t now, bool served) {
  if (failures_in_row_ == 0) failing_since_ns_ = now;
  ++failures_in_row_;
  Verdict v;
  v.failures = failures_in_row_;
  v.failing_for_ns = now - failing_since_ns_;
  // Half of the step plus a random part of the other half: sessions that failed together (a proxy
  // restarting) do not come back in step.
  const uint64_t step = std::min(settings_.cap_ms, settings_.base_ms << std::min(failures_in_row_ - 1, 16u));
  v.delay_ms = step / 2 + next_jitter() % (step / 2 + 1);
  if (!served && failures_in_row_ >= settings_.unserved_attempts) {
    v.action = Verdict::Action::give_up_unserved;
  } else if (v.failing_for_ns + v.delay_ms * 1'000'000 > settings_.window_ms * 1'000'000) {
    // The server ends a session that sees no request for 30 s: past the window a try is futile.
    v.action = Verdict::Action::give_up_window;
  }
  return v;
}

void RetryPolicy::note_failure(bool maybe_held) {
  ++epoch_;
  if (maybe_held) release_pending_ = true;
  if (release_pending_) releases_owed_ = 2;
}

void RetryPolicy::on_answer(uint64_t epoch) {
  failures_in_row_ = 0;
  if (epoch == epoch_) release_pending_ = false;  // the releases went through
}

}  // namespace tunnel

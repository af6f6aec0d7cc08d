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

bool EmptyAnswerPacer::on_empty_answer(long status, uint64_t held_ns) {
  if (held_ns >= settings_.quick_ns) {
    // Held like a long poll, or until a newer request came: the server's own way, no storm.
    return on_progress(), false;
  }
  ++run_;
  if (status == 429) ++count_429_;
  if (status == 204) ++count_204_;
  return run_ == settings_.threshold;
}

bool EmptyAnswerPacer::on_progress() {
  const bool was_slowed = slowed();
  run_ = count_429_ = count_204_ = 0;
  return was_slowed;
}

uint64_t EmptyAnswerPacer::pause_ns() const {
  if (!slowed()) return 0;
  const unsigned doublings = std::min(run_ - settings_.threshold, 30u);
  return std::min(settings_.cap_ns, settings_.base_ns << doublings);
}

uint64_t EmptyAnswerPacer::wait_ns(uint64_t now) const {
  const uint64_t pause = pause_ns();
  if (pause == 0 || last_sent_ns_ == 0) return 0;
  const uint64_t at = last_sent_ns_ + pause;
  return now >= at ? 0 : at - now;
}

}  // namespace tunnel

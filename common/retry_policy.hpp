// Recovery from failed exchanges: the capped, jittered back-off between tries, when to give up, and
// the releases a failure calls for. Pure: the session reports failures and answers, this says what
// to do; unit-tested in tests/common.
//
// A request whose connection died may still be held by the server, which would answer the target's
// next bytes into the dead connection. Two fresh requests make it release any such one with 429 (it
// holds at most two). Until a request sent after the last failure is answered, the releases may
// have failed too: every failure in that time calls for them again.
#pragma once

#include <algorithm>
#include <cstdint>

namespace tunnel {

struct RetrySettings {
  uint64_t window_ms = 25000;      // no try more than this long after the first failure in a row
  uint64_t base_ms = 50;           // the first back-off step, doubled at each failure ...
  uint64_t cap_ms = 2000;          // ... up to this
  unsigned unserved_attempts = 4;  // failures in a row before any tunnel answer: give up
};

class RetryPolicy {
 public:
  // `seed`: for the jitter (any value; zero is made odd).
  RetryPolicy(RetrySettings settings, uint64_t seed) : settings_(settings), jitter_(seed | 1) {}

  struct Verdict {
    enum class Action {
      retry,             // try again after delay_ms
      give_up_unserved,  // never reached a live tunnel: most likely a wrong URL, proxy or certificate
      give_up_window,    // the next try, after delay_ms, would end outside the retry window
    };
    Action action = Action::retry;
    uint64_t delay_ms = 0;
    unsigned failures = 0;        // in a row, this one included
    uint64_t failing_for_ns = 0;  // since the first of them
  };
  // A failed exchange at `now`; `served`: a live tunnel answered some request of this session.
  Verdict on_failure(uint64_t now, bool served);

  // A request may be held for a dead connection (`maybe_held`), or may still be from an earlier
  // failure: requests sent from now on belong to a new epoch, and releases are owed if so.
  void note_failure(bool maybe_held);
  // A live tunnel answered (200, 204 or 429) a request sent in `epoch`.
  void on_answer(uint64_t epoch);

  uint64_t epoch() const { return epoch_; }
  unsigned failures_in_row() const { return failures_in_row_; }
  // GETs still to send to release a request held for a dead connection.
  int releases_owed() const { return releases_owed_; }
  void release_sent() {
    if (releases_owed_ > 0) --releases_owed_;
  }
  // Till a request of the current epoch is answered, a request may be held for a dead connection.
  bool release_pending() const { return release_pending_; }

 private:
  uint64_t next_jitter();

  RetrySettings settings_;
  uint64_t jitter_;  // xorshift state
  unsigned failures_in_row_ = 0;
  uint64_t failing_since_ns_ = 0;
  uint64_t epoch_ = 0;
  int releases_owed_ = 0;
  bool release_pending_ = false;
};

// Across sessions of one endpoint: after a session that found the target not running (503) or not
// reachable (410 before any data), the next one waits before it asks again: 1 s, doubling to 16 s,
// until a session is served (a client that reconnects at once made 10 to 16 requests a second).
class RefusalBackoff {
 public:
  static constexpr uint64_t kFirstMs = 1000;
  static constexpr uint64_t kCapMs = 16000;
  // A session was refused: the wait before the next one's first request.
  uint64_t refused() {
    wait_ms_ = wait_ms_ == 0 ? kFirstMs : std::min(wait_ms_ * 2, kCapMs);
    return wait_ms_;
  }
  void served() { wait_ms_ = 0; }
  uint64_t wait_ms() const { return wait_ms_; }

 private:
  uint64_t wait_ms_ = 0;
};

// Answers that carry nothing, in a storm: a gateway or proxy in front that answers every request at
// once with 429 or 204 (rate-limiting, or a cache) got about 9,000 requests a second. The server
// itself answers 204 only after its long poll (10 s) and 429 only to make room for a newer request,
// so a run of empty answers that came back fast, with no progress between them (no payload, no
// POST body surely read), means something else answers: from the threshold on, each request waits
// a doubling pause (capped) after the one before, until progress resets it. Said once per run.
class EmptyAnswerPacer {
 public:
  struct Settings {
    uint64_t quick_ns = 250'000'000;  // an empty answer sooner than this after its request left is "at once"
    unsigned threshold = 4;           // this many in a row, and requests slow down
    uint64_t base_ns = 100'000'000;   // the first pause, doubled with each further empty answer ...
    uint64_t cap_ns = 2'000'000'000;  // ... up to this
  };
  EmptyAnswerPacer() = default;
  explicit EmptyAnswerPacer(Settings settings) : settings_(settings) {}

  // A 204 or 429 whose request was out for `held_ns`. True when this answer starts a slow-down (the
  // moment to say so).
  bool on_empty_answer(long status, uint64_t held_ns);
  // A payload arrived, or a POST's body was surely read: the run ends, requests go at full speed.
  // True when a slow-down ends with it.
  bool on_progress();
  // A request went at `now`.
  void on_sent(uint64_t now) { last_sent_ns_ = now; }
  // How long the next request must wait at `now` (0: it may go).
  uint64_t wait_ns(uint64_t now) const;

  bool slowed() const { return run_ >= settings_.threshold; }
  unsigned run() const { return run_; }
  uint64_t pause_ns() const;  // between requests while slowed
  // "429 Too Many Requests x6, 204 No Content x2": the run's answers, for the log line.
  unsigned count_429() const { return count_429_; }
  unsigned count_204() const { return count_204_; }

 private:
  Settings settings_;
  unsigned run_ = 0;
  unsigned count_429_ = 0;
  unsigned count_204_ = 0;
  uint64_t last_sent_ns_ = 0;
};

}  // namespace tunnel

// Which request a tunnel session sends next, and what an answer to a POST means for its body: the
// rules that keep the reference HttpTunnelServer from stalling, deadlocking or losing a POST body
// (docs/PROTOCOL-NOTES.md). Pure: the session describes its requests in flight, the planner answers;
// unit-tested in tests/common.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tunnel {

struct InFlightRequest {
  bool is_get = false;
  size_t body_size = 0;
  uint64_t started_ns = 0;
  uint64_t body_sent_ns = 0;  // when libcurl took the POST body's last byte; 0: not yet
  bool applied = false;       // a POST the target surely received (its reply came: JDWP, or reactive)
  // A POST whose body the peer has not acknowledged yet (libcurl may still be sending it): nothing
  // tells when it is, so body_sent_ns stays 0 until a look sees it, and the planner says to look
  // again soon.
  bool awaiting_ack = false;
};

// What the upload side has to say to the planner.
struct UploadState {
  bool waiting = false;          // local bytes, or a POST to send again, wait to go
  uint64_t last_payload_ns = 0;  // when the target's last payload arrived (0: never)
  bool target_idle = false;      // the target owes no answer to what it was sent (see the session)
  // The last POST's body left at this time (0: none), to a target that has talked in this session:
  // it will answer that body once it has it, so silence counts only from then.
  uint64_t last_post_to_talker_ns = 0;
  size_t last_post_to_talker_bytes = 0;  // that POST's body size
  size_t last_payload_bytes = 0;  // the size of the target's last payload
  // The target says nothing until it has the bytes waiting (a JVM before the debugger's handshake):
  // whatever answers them comes after they were read, so they need no request in front.
  bool mute_until_sent = false;
};

struct PlannerSettings {
  size_t big_post_bytes = 64 << 10;     // a POST this large always has a GET beside it
  uint64_t lone_post_ns = 50'000'000;   // a smaller POST gets a GET beside it after this long
  // A payload this large, within the quiet time, says a download runs: the target has more to send.
  size_t download_payload_bytes = 32 << 10;
  // Across a long round trip two GETs carry two payloads (about 100 KB each) per round trip: a
  // download with no upload waiting keeps one more out per this much round trip, up to the most.
  uint64_t round_trip_per_extra_get_ns = 5'000'000;
  size_t max_download_gets = 8;
  // + the round trip (the fastest exchange seen): a held POST's body is surely read by then. The
  // margin covers a server that reads late (a busy one, or the test server's --body-read-delay-ms 5).
  uint64_t settle_base_ns = 10'000'000;
  // A GET that left this long ago is held in front of a request sent now: both cross the same path,
  // so the GET arrives as far ahead as it left; this covers jitter, and grows a little per proxy
  // hop (a proxy relays a request head as it comes; what it holds back is bodies, which the settle
  // time covers). No round trip: with one, every reply across a 20 ms link waited a second one.
  uint64_t lead_base_ns = 10'000'000;
  // + this per MiB of the body: the peer's kernel acknowledges a body it buffered, and the server
  // reads it from there at its own pace (ours about 170 MB/s on 2 idle cores, half that when they
  // are busy), so a big body is read well after it was acknowledged (measured: a 2 MiB body, settled
  // by the flat margin, taken by target data on a loaded machine).
  // The first settle_free_bytes come with the request head and are read with it.
  uint64_t settle_ns_per_mib = 10'000'000;
  size_t settle_free_bytes = 64 << 10;
  // + the round trip: no payload for this long, with a request out to carry one, and the target is
  // taken as quiet (while it talks, payloads come about a round trip apart).
  uint64_t quiet_base_ns = 15'000'000;
  // How often to look whether a body that left was acknowledged. Its delivery time is taken as when
  // it was first seen acknowledged (later is safe: it only delays what waits for the settle), so
  // this is how much later than the truth it can be. Measured on loopback before this rule: the
  // next look came a whole settle time later (29 ms for 2 MiB), and the settle counted from there,
  // so every 2 MiB POST waited twice its settle time (upload 84.7 -> 30.5 MB/s).
  uint64_t ack_poll_ns = 1'000'000;
  // While nothing has shown the round trip, two GETs go before the first POST (request_planner.cpp).
  // The session turns it on (agent/settings.cpp); off, the rules below are seen one at a time.
  bool probe_round_trip = false;
  // A round trip this long (or longer) is a long one: see RequestPlanner::long_round_trip().
  uint64_t long_round_trip_ns = 10'000'000;
};

struct Plan {
  enum class Next { nothing, get, post };
  Next next = Next::nothing;
  uint64_t recheck_in_ns = 0;  // with nothing: ask again after this long (0: on the next event)
};

// What an answer to a POST (200, 204 or 429) says of its body on the reference server, which loses
// a body when it answers the request before reading it.
enum class PostFate {
  read,         // answered after the body was surely read (settled), or the target answered it
  lost,         // answered before libcurl finished sending the body: surely lost, resend is free
  maybe_lost,   // answered within the settle time: lost or not; a resend costs a reorder slot if not
};

class RequestPlanner {
 public:
  explicit RequestPlanner(PlannerSettings settings = {}) : settings_(settings) {}

  // `may_poll`: the local client keeps up, so a GET may fetch more. Returns the one request to
  // send now (ask again after sending it).
  Plan next(const std::vector<InFlightRequest>& in_flight, const UploadState& upload, bool may_poll,
            uint64_t now) const;

  // `answered_ns`: when the answer's status line arrived.
  PostFate fate(const InFlightRequest& post, uint64_t answered_ns) const;

  // Something between the agent and the server holds bodies back (a front end found late).
  void add_settle_margin(uint64_t ns) {
    settings_.settle_base_ns += ns;
    settings_.lead_base_ns += ns;
  }
  // Feed the duration of every answered exchange: the fastest approximates the round trip.
  void observe_exchange(uint64_t duration_ns) {
    if (duration_ns < fastest_ns_) fastest_ns_ = duration_ns;
  }
  uint64_t round_trip_ns() const { return fastest_ns_ == UINT64_MAX ? 0 : fastest_ns_; }
  // GETs a download keeps out when nothing else waits: 2 on a short round trip, more on a long one.
  size_t download_gets() const {
    const uint64_t extra = round_trip_ns() / settings_.round_trip_per_extra_get_ns;
    return std::min<size_t>(settings_.max_download_gets, 2 + static_cast<size_t>(std::min<uint64_t>(extra, 64)));
  }
  // How long after its body of `body_bytes` was sent a held POST is taken as read by the server.
  uint64_t settle_ns(size_t body_bytes = 0) const {
    const uint64_t late = body_bytes > settings_.settle_free_bytes ? body_bytes - settings_.settle_free_bytes : 0;
    return settings_.settle_base_ns + round_trip_ns() + ((late * settings_.settle_ns_per_mib) >> 20);  // no overflow below 1 TiB
  }
  // The target paused this long in the middle of its output and went on by itself: it can again.
  void observe_output_pause(uint64_t ns) { output_pause_ns_ = std::min(kMaxOutputPauseNs, std::max(output_pause_ns_, ns)); }
  uint64_t output_pause_ns() const { return output_pause_ns_; }
  // How long without a payload before the target is taken as quiet: longer than any pause the
  // target made mid-output (at most kMaxOutputPauseNs more).
  uint64_t quiet_ns() const { return settings_.quiet_base_ns + round_trip_ns() + output_pause_ns_; }
  // After a POST to a target that talks: before any exchange has shown the round trip, a long one
  // is assumed, since its answer may be a whole unknown round trip away (measured: across a 40 ms
  // link the first session's second POST, 2 MiB, left 30 ms after the first, and the echo of the
  // first took it).
  // Once a release has shown an upper bound of the round trip (observe_release_bound), that bound
  // is assumed instead, when it is shorter.
  // And the target's answer has come later than its POST's settle time (a busy machine, a slow
  // target): the longest such delay seen is added (measured: on 2 loaded cores an echo came 33 ms
  // after its POST settled, 13 ms past the quiet time, and took the next POST's body).
  uint64_t quiet_after_post_ns() const {
    const uint64_t base = quiet_ns() + answer_delay_ns_;
    return round_trip_known() ? base : base + std::min(kAssumedRoundTripNs, release_bound_ns_);
  }
  // The first payload after a POST came `ns` after that POST was settled (at most kMaxAnswerDelayNs:
  // a target that speaks on its own, long after, would otherwise slow every upload POST).
  void observe_answer_delay(uint64_t ns) { answer_delay_ns_ = std::min(kMaxAnswerDelayNs, std::max(answer_delay_ns_, ns)); }
  uint64_t answer_delay_ns() const { return answer_delay_ns_; }
  bool round_trip_known() const { return fastest_ns_ != UINT64_MAX; }
  // A 429 came `ns` after a request left that was sent while the server could already hold two
  // others: only its arrival (or a later one) could release it, so the round trip is at most `ns`.
  // An upload sees no other answers than 429 and 204, which tell nothing of the round trip.
  void observe_release_bound(uint64_t ns) { release_bound_ns_ = std::min(release_bound_ns_, ns); }
  uint64_t release_bound_ns() const { return release_bound_ns_; }
  // The round trip is long: measured, or bounded by a release (all an upload sees), at least
  // long_round_trip_ns. A POST's fixed cost (its settle time, the next one's way to the server)
  // grows with the round trip, so an upload spreads it over bigger bodies there (measured across
  // a 20 ms link, 32 MiB: 2 MiB bodies 7.6 MB/s, 8 MiB bodies 9.1 MB/s, direct TCP 12.1).
  bool long_round_trip() const {
    const uint64_t rt = round_trip_known() ? fastest_ns_ : release_bound_ns_;
    return rt != UINT64_MAX && rt >= settings_.long_round_trip_ns;
  }
  static constexpr uint64_t kMaxOutputPauseNs = 250'000'000;
  static constexpr uint64_t kMaxAnswerDelayNs = 100'000'000;
  static constexpr uint64_t kAssumedRoundTripNs = 250'000'000;
  // How long until a GET sent at `sent_ns` is surely held in front of a request sent now: both
  // cross the same path, so the GET arrives as far ahead as it left (lead_base_ns; 0 once it is;
  // not sent: all).
  uint64_t lead_wait_ns(uint64_t sent_ns, uint64_t now) const { return wait_past(sent_ns, now, settings_.lead_base_ns); }
  // How long until a request sent (body included) at `sent_ns` is settled: 0 once it is; the whole
  // settle time when it has not left yet (sent_ns 0).
  uint64_t settle_wait_ns(uint64_t sent_ns, uint64_t now, size_t body_bytes = 0) const {
    return wait_past(sent_ns, now, settle_ns(body_bytes));
  }

 private:
  Plan plan_next(const std::vector<InFlightRequest>& in_flight, const UploadState& upload, bool may_poll,
                 uint64_t now) const;
  // How long until `margin` has passed since `sent_ns`: 0 once it has; all of it when not sent (0).
  static uint64_t wait_past(uint64_t sent_ns, uint64_t now, uint64_t margin) {
    return sent_ns == 0 ? margin : now - sent_ns >= margin ? 0 : sent_ns + margin - now;
  }
  PlannerSettings settings_;
  uint64_t fastest_ns_ = UINT64_MAX;
  uint64_t output_pause_ns_ = 0;
  uint64_t answer_delay_ns_ = 0;
  uint64_t release_bound_ns_ = UINT64_MAX;
};

}  // namespace tunnel

#include "common/request_planner.hpp"

#include <algorithm>

namespace tunnel {

// The rules (the reasons, measured, are in docs/PROTOCOL-NOTES.md):
//  - keep a request held at all times, so the target's bytes have somewhere to go; a big POST, or
//    one left alone for a while, gets a GET beside it (the server writes a POST's body to the target
//    while holding it, and a target that is not read stops reading);
//  - while a download runs (a big payload came within the quiet time), two GETs (more across a long
//    round trip while nothing else is out and no upload waits: released GETs cost nothing): one may sit unread
//    on a keep-alive connection whose POST body the server still writes to a target that does not
//    read (the server reads that connection's next request only after), and the other must drain
//    the target meanwhile, or the three wait on each other until the request timeout kills the
//    unread GET, whose copy the server then holds and answers into the dead connection;
//  - while nothing has shown the round trip, two GETs go before the first POST: its release of the
//    older one bounds the round trip (a first upload's next POSTs need it);
//  - a needed GET goes before a POST, except before the first words to a target that says nothing
//    until it has them (a JVM before the handshake): its answer can only come after they were read;
//  - a new request makes the server release the oldest of two held with 429: only when that one is
//    settled (a GET, or a POST whose body the server has surely read), and the other one too (it
//    becomes the front, which takes the target's next bytes), and never a fourth request;
//  - the server holds a request first and reads its body after; an answer in between loses the
//    body. So a POST goes only when
//      (a) every earlier POST is settled: x-seq arrive in order (an early one keeps a reorder slot
//          for good), and the new one cannot release an unread one;
//      (b) a request is surely held in front of it (a settled POST, or a GET that left the settle
//          margin before: it crosses the same path, so it arrives that far ahead, whatever the round
//          trip), and not the one it releases (the oldest of two out): the target's next payload
//          goes to that one, not to the unread POST;
//      (c) the target is quiet or owes no answer: a target still talking would send a second
//          payload, and that one would take the POST. Quiet: no payload for the quiet time while a
//          request was out to take one (silence while the agent did not poll says nothing), and
//          since the last POST surely reached a target that talks (it is about to answer that one:
//          its first answer may be on its way already).
Plan RequestPlanner::next(const std::vector<InFlightRequest>& in_flight, const UploadState& upload, bool may_poll,
                          uint64_t now) const {
  Plan plan = plan_next(in_flight, upload, may_poll, now);
  // A body on its way counts as sent only once seen acknowledged: look again soon, whatever waits.
  if (plan.next == Plan::Next::nothing &&
      std::any_of(in_flight.begin(), in_flight.end(), [](const InFlightRequest& r) { return r.awaiting_ack; })) {
    plan.recheck_in_ns = plan.recheck_in_ns == 0 ? settings_.ack_poll_ns : std::min(plan.recheck_in_ns, settings_.ack_poll_ns);
  }
  return plan;
}

Plan RequestPlanner::plan_next(const std::vector<InFlightRequest>& in_flight, const UploadState& upload, bool may_poll,
                               uint64_t now) const {
  size_t gets = 0;
  bool needs_companion = false;
  bool front = false;                  // (b)
  uint64_t companion_in = UINT64_MAX;  // when the oldest small POST will have been alone too long
  uint64_t post_wait = 0;              // (a): until every POST is settled
  uint64_t front_in = UINT64_MAX;      // (b): until a GET out now counts as held
  const InFlightRequest* oldest = nullptr;
  uint64_t listening_since = UINT64_MAX;  // the oldest request out: since then a payload had somewhere to go
  for (const auto& r : in_flight) {
    // From when it left (a new connection through proxies can take long to set up); not yet: now.
    listening_since = std::min(listening_since, r.body_sent_ns == 0 ? now : r.body_sent_ns);
    if (oldest == nullptr || r.started_ns < oldest->started_ns) oldest = &r;
    if (r.is_get) {
      ++gets;
      const uint64_t wait = lead_wait_ns(r.body_sent_ns, now);
      if (wait == 0) front = true;
      front_in = std::min(front_in, wait);
      continue;
    }
    const uint64_t wait = r.applied ? 0 : settle_wait_ns(r.body_sent_ns, now, r.body_size);
    if (wait == 0) front = true;
    post_wait = std::max(post_wait, wait);
    if (r.body_size >= settings_.big_post_bytes || now - r.started_ns >= settings_.lone_post_ns) {
      needs_companion = true;
    } else {
      companion_in = std::min(companion_in, r.started_ns + settings_.lone_post_ns - now);
    }
  }
  if (upload.waiting && upload.mute_until_sent && in_flight.size() < 3 &&
      std::none_of(in_flight.begin(), in_flight.end(), [](const InFlightRequest& r) { return !r.is_get; })) {
    Plan plan;
    plan.next = Plan::Next::post;  // the target's first word can only be its answer to it: no front needed
    return plan;
  }
  const bool downloading = upload.last_payload_bytes >= settings_.download_payload_bytes &&
                           upload.last_payload_ns != 0 && now - upload.last_payload_ns < quiet_ns();
  // Deeper only with GETs alone out and no upload waiting: the server answers each with data at
  // once, and one it cannot hold (a third) it releases with 429, which costs a GET nothing. A POST
  // waits until they are back down to two.
  const bool only_gets = gets == in_flight.size();
  const size_t get_cap = downloading && only_gets && !upload.waiting ? download_gets() : 2;
  // Nothing shows the round trip yet (a first session; an upload sees only releases): two GETs go
  // before the first POST, which then releases the older one, and that 429 bounds the round trip a
  // round trip after the POST left, where the next POST would otherwise assume a long one.
  const bool probe_round_trip = settings_.probe_round_trip && upload.waiting && only_gets && gets < 2 &&
                                !round_trip_known() && release_bound_ns_ == UINT64_MAX;
  const bool want_get = may_poll && ((gets == 0 && (in_flight.empty() || needs_companion)) ||
                                     (downloading && gets < get_cap) || probe_round_trip);
  Plan plan;
  if (!want_get && !upload.waiting) {
    if (gets == 0 && may_poll && companion_in != UINT64_MAX) plan.recheck_in_ns = companion_in;
    return plan;
  }
  if (in_flight.size() >= 3 && !(want_get && get_cap > 2)) return plan;  // a release is on its way back: wait for it
  const bool oldest_settled =
      in_flight.size() < 2 || oldest->is_get || oldest->applied || settle_wait_ns(oldest->body_sent_ns, now, oldest->body_size) == 0;
  if (!oldest_settled) {
    plan.recheck_in_ns = std::max<uint64_t>(settle_wait_ns(oldest->body_sent_ns, now, oldest->body_size), 1'000'000);
    return plan;
  }
  // With two out, the new request releases the oldest and the other one becomes the server's
  // choice for the target's next bytes: not while it is a POST whose body may be unread (measured:
  // a companion GET sent just after a 256 KiB POST released the settled one in front, and a late
  // echo took the new POST's body). A body that came with its request head is read with it: a GET
  // may go (held back, a GET meant to release a request held for a dead connection came too late:
  // the target's answer went into that connection).
  const InFlightRequest* second = nullptr;
  if (in_flight.size() == 2) second = &in_flight[0] == oldest ? &in_flight[1] : &in_flight[0];
  const uint64_t second_wait = second == nullptr || second->is_get || second->applied
                                   ? 0
                                   : settle_wait_ns(second->body_sent_ns, now, second->body_size);
  const bool second_read_late = second != nullptr && second->body_size > settings_.settle_free_bytes;
  if (want_get) {
    if (second_wait > 0 && second_read_late) {
      plan.recheck_in_ns = std::max<uint64_t>(second_wait, 1'000'000);
      return plan;
    }
    plan.next = Plan::Next::get;
    return plan;
  }
  // upload.waiting: (a), (b), (c) in turn; the first unmet one says when to look again.
  uint64_t wait = post_wait;
  if (second != nullptr) {
    // The POST releases the oldest: only the other one can stand in front of it.
    front_in = second->is_get ? lead_wait_ns(second->body_sent_ns, now) : second_wait;
    front = front_in == 0;
  }
  if (wait == 0 && !front) wait = front_in;  // UINT64_MAX: no GET out, and none may go now
  if (wait == 0 && !upload.target_idle) {
    const uint64_t quiet = upload.last_post_to_talker_ns != 0 ? quiet_after_post_ns() : quiet_ns();
    uint64_t start = std::max(upload.last_payload_ns, listening_since);
    if (upload.last_post_to_talker_ns != 0) start = std::max(start, upload.last_post_to_talker_ns + settle_ns(upload.last_post_to_talker_bytes));
    const uint64_t since = now > start ? now - start : 0;
    wait = since >= quiet ? 0 : quiet - since;
  }
  if (wait == 0) {
    plan.next = Plan::Next::post;
  } else if (wait != UINT64_MAX) {
    plan.recheck_in_ns = wait;
  }
  return plan;
}

PostFate RequestPlanner::fate(const InFlightRequest& post, uint64_t answered_ns) const {
  if (post.applied) return PostFate::read;
  if (post.body_sent_ns == 0 || answered_ns < post.body_sent_ns) return PostFate::lost;
  return answered_ns - post.body_sent_ns >= settle_ns(post.body_size) ? PostFate::read : PostFate::maybe_lost;
}

}  // namespace tunnel

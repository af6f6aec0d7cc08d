#include "common/request_planner.hpp"

#include <algorithm>

namespace tunnel {

// The rules:
//  - keep a request held at all times, so the target's bytes have somewhere to go;
//  - local bytes go out at once as a POST; two small POSTs may be held together (request/reply
//    traffic such as JDWP then needs no 429 at all);
//  - the server writes a POST's body to the target while it holds that POST, and the target may
//    stop reading until its output is drained: so a big POST, or one left alone for a while, gets
//    a GET beside it, which keeps the target's output flowing;
//  - a needed GET goes before a POST: POSTs held while the server writes to a target that is not
//    reading would leave nothing to carry the target's output, and nothing would move;
//  - a third request makes the server release the oldest held one with 429: only when that one is
//    settled (a GET, or a POST whose body the server has surely read), and never a fourth.
Plan RequestPlanner::next(const std::vector<InFlightRequest>& in_flight, bool upload_waiting, bool may_poll,
                          uint64_t now) const {
  bool get_in_flight = false;
  bool needs_companion = false;
  uint64_t companion_in = UINT64_MAX;  // when the oldest small POST will have been alone too long
  const InFlightRequest* oldest = nullptr;
  for (const auto& r : in_flight) {
    if (oldest == nullptr || r.started_ns < oldest->started_ns) oldest = &r;
    if (r.is_get) {
      get_in_flight = true;
    } else if (r.body_size >= settings_.big_post_bytes || now - r.started_ns >= settings_.lone_post_ns) {
      needs_companion = true;
    } else {
      companion_in = std::min(companion_in, r.started_ns + settings_.lone_post_ns - now);
    }
  }
  const bool want_get = !get_in_flight && may_poll && (in_flight.empty() || needs_companion);
  Plan plan;
  if (!want_get && !upload_waiting) {
    if (!get_in_flight && may_poll && companion_in != UINT64_MAX) plan.recheck_in_ns = companion_in;
    return plan;
  }
  if (in_flight.size() >= 3) return plan;  // a release is on its way back: wait for it
  if (in_flight.size() == 2 && !oldest->is_get) {
    const uint64_t sent = oldest->body_sent_ns;
    if (sent == 0 || now - sent < settle_ns()) {
      plan.recheck_in_ns = sent == 0 ? settings_.settle_base_ns : sent + settle_ns() - now;
      return plan;
    }
  }
  plan.next = want_get ? Plan::Next::get : Plan::Next::post;
  return plan;
}

}  // namespace tunnel

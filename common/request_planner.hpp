// Which request a tunnel session sends next: the rules that keep the reference HttpTunnelServer
// from stalling, deadlocking or losing a POST body (docs/PROTOCOL-NOTES.md). Pure: the session
// describes its requests in flight, the planner answers; unit-tested in tests/common.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tunnel {

struct InFlightRequest {
  bool is_get = false;
  size_t body_size = 0;
  uint64_t started_ns = 0;
  uint64_t body_sent_ns = 0;  // when libcurl took the POST body's last byte; 0: not yet
};

struct PlannerSettings {
  size_t big_post_bytes = 64 << 10;  // a POST this large always has a GET beside it
  uint64_t lone_post_ns = 50'000'000;  // a smaller POST gets a GET beside it after this long
  uint64_t settle_base_ns = 2'000'000;  // + 2x the fastest exchange: a held POST's body is surely read
};

struct Plan {
  enum class Next { nothing, get, post };
  Next next = Next::nothing;
  uint64_t recheck_in_ns = 0;  // with nothing: ask again after this long (0: on the next event)
};

class RequestPlanner {
 public:
  explicit RequestPlanner(PlannerSettings settings = {}) : settings_(settings) {}

  // `upload_waiting`: local bytes wait to be sent; `may_poll`: the local client keeps up, so a GET
  // may fetch more. Returns the one request to send now (ask again after sending it).
  Plan next(const std::vector<InFlightRequest>& in_flight, bool upload_waiting, bool may_poll, uint64_t now) const;

  // Feed the duration of every answered exchange: the fastest approximates the round trip.
  void observe_exchange(uint64_t duration_ns) {
    if (duration_ns < fastest_ns_) fastest_ns_ = duration_ns;
  }
  // How long after its body was sent a held POST is taken as read by the server.
  uint64_t settle_ns() const { return settings_.settle_base_ns + 2 * (fastest_ns_ == UINT64_MAX ? 0 : fastest_ns_); }
  // How long until a request sent (body included) at `sent_ns` is settled: 0 once it is; the whole
  // settle time when it has not left yet (sent_ns 0).
  uint64_t settle_wait_ns(uint64_t sent_ns, uint64_t now) const {
    const uint64_t settle = settle_ns();
    return sent_ns == 0 ? settle : now - sent_ns >= settle ? 0 : sent_ns + settle - now;
  }

 private:
  PlannerSettings settings_;
  uint64_t fastest_ns_ = UINT64_MAX;
};

}  // namespace tunnel

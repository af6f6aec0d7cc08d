// The pure parts of the HttpTunnelServer protocol (see docs/PROTOCOL.md and docs/PROTOCOL-NOTES.md):
// what a response status means, how x-seq values are read, and the reordering of server payloads.
// No I/O here, so all of it is unit-tested.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tunnel::protocol {

inline constexpr std::string_view kSeqHeader = "x-seq";
inline constexpr std::string_view kDisconnectType = "application/x-disconnect";
inline constexpr std::string_view kPayloadType = "application/octet-stream";

enum class Answer {
  payload,             // 200: bytes from the target, numbered by x-seq
  poll_again,          // 204: the long poll timed out empty
  released,            // 429: the server let this request go because a newer one is held
  target_closed,       // 410: the target connection is closed or was refused
  target_unavailable,  // 503: nothing runs behind the endpoint (e.g. JVM started without JDWP)
  secret_refused,      // 401/403
  unexpected,          // anything else: not a tunnel answer
};

Answer classify_status(long status);

// A strict decimal x-seq: digits only (leading zeros allowed, as Java's Long.valueOf), no sign or
// spaces, 1 .. 2^63-1.
std::optional<uint64_t> parse_seq(std::string_view text);

// Puts server payloads back in x-seq order. A payload can arrive before its predecessor because two
// requests are outstanding and their answers may overtake each other.
class PayloadReorderer {
 public:
  enum class Result {
    accepted,    // stored; pop_ready() hands out what is now in order
    went_back,   // x-seq restarted at 1: the server opened a new target connection
    duplicate,   // x-seq already seen
    too_far,     // waiting behind a missing payload would take more than max_early_bytes
  };

  explicit PayloadReorderer(size_t max_early_bytes) : max_early_bytes_(max_early_bytes) {}

  Result push(uint64_t seq, std::vector<char> payload);
  // The next in-order payload, if it has arrived.
  std::optional<std::vector<char>> pop_ready();
  // True while a later payload waits for an earlier one that has not arrived.
  bool has_gap() const { return !early_.empty() && early_.begin()->first != next_; }
  uint64_t next_expected() const { return next_; }
  size_t waiting() const { return early_.size(); }
  size_t waiting_bytes() const { return early_bytes_; }

 private:
  size_t max_early_bytes_;
  size_t early_bytes_ = 0;
  uint64_t next_ = 1;
  std::map<uint64_t, std::vector<char>> early_;
};

std::string describe(PayloadReorderer::Result result, uint64_t seq, uint64_t expected);

}  // namespace tunnel::protocol

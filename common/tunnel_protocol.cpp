#include "common/tunnel_protocol.hpp"

#include <fmt/format.h>

#include <limits>

namespace tunnel::protocol {

Answer classify_status(long status) {
  switch (status) {
    case 200: return Answer::payload;
    case 204: return Answer::poll_again;
    case 429: return Answer::released;
    case 410: return Answer::target_closed;
    case 503: return Answer::target_unavailable;
    case 401:
    case 403: return Answer::secret_refused;
    default: return Answer::unexpected;
  }
}

std::optional<uint64_t> parse_seq(std::string_view text) {
  if (text.empty()) return std::nullopt;
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<uint64_t>(c - '0');
    if (value > (kMax - digit) / 10) return std::nullopt;  // past 2^63-1 (leading zeros are fine)
    value = value * 10 + digit;
  }
  if (value == 0) return std::nullopt;
  return value;
}

PayloadReorderer::Result PayloadReorderer::push(uint64_t seq, std::vector<char> payload) {
  if (seq < next_) {
    // Going back to 1 is the server's new target connection; any other old number is a repeat.
    return seq == 1 ? Result::went_back : Result::duplicate;
  }
  if (early_.count(seq) != 0) return Result::duplicate;
  const size_t size = payload.size();
  // The next expected payload itself always fits: it leaves at once through pop_ready().
  if (seq != next_ && early_bytes_ + size > max_early_bytes_) return Result::too_far;
  early_.emplace(seq, std::move(payload));
  early_bytes_ += size;
  return Result::accepted;
}

std::optional<std::vector<char>> PayloadReorderer::pop_ready() {
  auto it = early_.begin();
  if (it == early_.end() || it->first != next_) return std::nullopt;
  std::vector<char> out = std::move(it->second);
  early_bytes_ -= out.size();
  early_.erase(it);
  ++next_;
  return out;
}

std::string describe(PayloadReorderer::Result result, uint64_t seq, uint64_t expected) {
  switch (result) {
    case PayloadReorderer::Result::accepted: return fmt::format("x-seq {} accepted", seq);
    case PayloadReorderer::Result::went_back:
      return fmt::format(
          "the server's x-seq went back to 1 after {}: it opened a new target connection, so the old "
          "stream is gone",
          expected - 1);
    case PayloadReorderer::Result::duplicate:
      return fmt::format("the server repeated x-seq {} (expected {})", seq, expected);
    case PayloadReorderer::Result::too_far:
      return fmt::format("the server sent x-seq {} while {} is still missing, and too much is waiting behind it",
                         seq, expected);
  }
  return "?";
}

}  // namespace tunnel::protocol

#include "common/download_stream.hpp"

#include <utility>

namespace tunnel {

DownloadStream::Pushed DownloadStream::push(uint64_t seq, std::vector<char> body, uint64_t now) {
  last_payload_ns_ = now;
  last_payload_bytes_ = body.size();
  Pushed out;
  out.result = reorderer_.push(seq, std::move(body));
  if (out.result != protocol::PayloadReorderer::Result::accepted) return out;
  while (auto in_order = reorderer_.pop_ready()) ready_.push_back(std::move(*in_order));
  if (!reorderer_.has_gap()) {
    gap_since_ns_ = 0;
  } else if (gap_since_ns_ == 0) {
    gap_since_ns_ = now;
    out.gap_opened = true;
  }
  return out;
}

std::optional<std::vector<char>> DownloadStream::pop_ready() {
  if (ready_.empty()) return std::nullopt;
  std::vector<char> out = std::move(ready_.front());
  ready_.pop_front();
  return out;
}

}  // namespace tunnel

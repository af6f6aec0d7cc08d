// The download side of a tunnel session: server payloads put back in x-seq order, the gap a missing
// one leaves open, and the back-pressure of bytes the local client has not taken yet. Pure: the
// session feeds payloads and write completions, this says what to write and whether to poll;
// unit-tested in tests/common.
#pragma once

#include "common/tunnel_protocol.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

namespace tunnel {

class DownloadStream {
 public:
  // `window`: the most bytes held for the local client, unwritten or waiting behind a gap.
  explicit DownloadStream(size_t window) : window_(window), reorderer_(window) {}

  struct Pushed {
    protocol::PayloadReorderer::Result result = protocol::PayloadReorderer::Result::accepted;
    bool gap_opened = false;  // a later payload now waits for a missing one: the gap's clock starts
  };
  // A payload of `seq` arrived at `now`. What is in order comes out of pop_ready().
  Pushed push(uint64_t seq, std::vector<char> body, uint64_t now);
  std::optional<std::vector<char>> pop_ready();

  bool has_gap() const { return reorderer_.has_gap(); }
  uint64_t next_expected() const { return reorderer_.next_expected(); }
  uint64_t gap_since_ns() const { return gap_since_ns_; }  // 0: no gap

  // Bytes handed to the local socket, and bytes it took (or dropped on a failed write).
  void writing(size_t bytes) { backlog_ += bytes; }
  void written(size_t bytes) { backlog_ -= bytes; }
  size_t backlog() const { return backlog_; }

  // The local client keeps up, so a request may fetch more (a POST's answer may carry more too):
  // the memory a session holds stays bounded. Not while much waits behind a missing payload either:
  // its request is on its way, and more would only queue up.
  bool keeps_up() const { return backlog_ < window_ && room_behind_gap(); }
  // Still, one request stays held up to twice the window: a target that closes while the server
  // holds no request is never reported (the next request opens a new target connection).
  bool may_keep_one_held() const { return backlog_ < 2 * window_ && room_behind_gap(); }

  bool any_payload() const { return last_payload_ns_ != 0; }
  uint64_t last_payload_ns() const { return last_payload_ns_; }  // 0: none yet
  size_t last_payload_bytes() const { return last_payload_bytes_; }

 private:
  bool room_behind_gap() const { return reorderer_.waiting_bytes() < window_ / 2; }

  size_t window_;
  protocol::PayloadReorderer reorderer_;
  std::deque<std::vector<char>> ready_;  // in order, not yet taken by pop_ready()
  size_t backlog_ = 0;
  uint64_t gap_since_ns_ = 0;
  uint64_t last_payload_ns_ = 0;
  size_t last_payload_bytes_ = 0;
};

}  // namespace tunnel

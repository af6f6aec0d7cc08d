#include "common/upload_stream.hpp"

#include <algorithm>
#include <utility>

namespace tunnel {

void UploadStream::append(const char* data, size_t size, uint64_t now) {
  if (pending_.empty()) pending_since_ns_ = now;
  pending_.insert(pending_.end(), data, data + size);
}

Post& UploadStream::cut(size_t cap, bool target_idle) {
  for (auto& other : posts_) other->retained = other->suspect;
  let_go();
  auto post = std::make_unique<Post>();
  post->body = std::move(spare_);
  spare_ = {};
  post->body.clear();
  const size_t take = std::min(pending_.size(), cap);
  if (take == pending_.size()) {
    std::swap(post->body, pending_);  // no copy; pending gets the spare buffer
  } else {
    post->body.assign(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(take));
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(take));
  }
  post->seq = next_seq_++;
  post->upload_start = posted_offset_;
  posted_offset_ += post->body.size();
  post->sent_idle = target_idle;
  post->retained = true;  // kept until the next POST: sent again if the target stalls
  answer_owed_ = true;
  posts_.push_back(std::move(post));
  return *posts_.back();
}

void UploadStream::let_go() {
  auto done = [](const std::unique_ptr<Post>& p) { return !p->in_flight && !p->resend && !p->retained; };
  for (auto& p : posts_) {
    if (done(p) && p->body.capacity() > spare_.capacity()) std::swap(spare_, p->body);
  }
  posts_.erase(std::remove_if(posts_.begin(), posts_.end(), done), posts_.end());
}

Post* UploadStream::next_resend() {
  Post* next = nullptr;
  for (auto& p : posts_) {
    if (p->resend && !p->in_flight && (next == nullptr || p->seq < next->seq)) next = p.get();
  }
  return next;
}

uint64_t UploadStream::lowest_resend_seq() const {
  uint64_t lowest = 0;
  for (const auto& p : posts_) {
    if (p->resend && (lowest == 0 || p->seq < lowest)) lowest = p->seq;
  }
  return lowest;
}

bool UploadStream::busy() const {
  return std::any_of(posts_.begin(), posts_.end(), [](const auto& p) { return p->in_flight || p->resend; });
}

void UploadStream::cancel_resends() {
  for (auto& p : posts_) p->resend = false;
}

void UploadStream::target_received(uint64_t upload_offset) {
  for (auto& p : posts_) {
    if (p->upload_start < upload_offset) p->applied = true;
  }
}

void UploadStream::payload_arrived(bool tracked) {
  answer_owed_ = false;
  if (tracked) return;  // the debugger's replies say exactly what arrived
  for (auto& p : posts_) {
    if (p->sent_idle) p->applied = true;
  }
}

bool UploadStream::has_unconfirmed() const {
  return std::any_of(posts_.begin(), posts_.end(), [](const auto& p) { return p->unconfirmed(); });
}

UploadStream::Outcome UploadStream::on_answered(Post& post, PostFate fate, bool tracked, bool with_payload) {
  if (fate == PostFate::maybe_lost && tracked) {
    // The JVM answers every command: if the reply to this POST's commands comes within a few round
    // trips, it arrived, and a resend would only keep a reorder slot.
    post.suspect = true;
    post.retained = true;
    return Outcome::jdwp_suspect;
  }
  if (fate == PostFate::maybe_lost && with_payload) {
    // Target data on it soon after its body left. A POST goes only while the target is quiet, so
    // this is most likely its own answer (an echo), and a resend would cost a reorder slot for good;
    // but a target that paused mid-output can have stolen it. Kept, and sent again on a stall.
    post.suspect = true;
    post.retained = true;
    Post* oldest = nullptr;
    int suspects = 0;
    for (auto& p : posts_) {
      if (!p->suspect) continue;
      ++suspects;
      if (oldest == nullptr || p->seq < oldest->seq) oldest = p.get();
    }
    if (suspects > kMaxSuspects) {
      oldest->suspect = false;
      oldest->retained = oldest->seq == last_seq();
    }
    return Outcome::suspect;
  }
  switch (fate) {
    case PostFate::read:
      return Outcome::kept;
    case PostFate::lost:
      ++lost_resends_;
      post.resend = true;
      return Outcome::lost;
    case PostFate::maybe_lost:
      break;
  }
  ++maybe_resends_;
  post.resend = true;
  return Outcome::maybe_lost;
}

std::vector<uint64_t> UploadStream::resend_retained() {
  std::vector<uint64_t> again;
  for (auto& p : posts_) {
    if (!p->retained || p->in_flight || p->resend || p->applied) continue;
    p->resend = true;
    p->suspect = false;
    ++maybe_resends_;
    again.push_back(p->seq);
  }
  std::sort(again.begin(), again.end());
  return again;
}

std::vector<uint64_t> UploadStream::resend_unanswered_suspects() {
  std::vector<uint64_t> again;
  for (auto& p : posts_) {
    if (!p->suspect || p->in_flight || p->resend) continue;
    p->suspect = false;
    p->retained = p->seq == last_seq();
    if (p->applied) continue;  // its reply came: the JVM has it
    p->resend = true;
    ++maybe_resends_;
    again.push_back(p->seq);
  }
  std::sort(again.begin(), again.end());
  return again;
}

std::vector<uint64_t> UploadStream::resend_unconfirmed() {
  std::vector<uint64_t> again;
  for (auto& p : posts_) {
    if (!p->unconfirmed()) continue;
    p->suspect = false;
    p->resend = true;
    ++maybe_resends_;
    again.push_back(p->seq);
  }
  std::sort(again.begin(), again.end());
  return again;
}

}  // namespace tunnel

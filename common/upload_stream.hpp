// The upload side of a tunnel session: the local client's bytes cut into numbered POST bodies, and
// each body kept until nothing more can show that the server lost it. The reference server loses a
// body when it answers the POST before reading it; what an answer says of a body comes from the
// planner (PostFate), what is sent again and what is kept is decided here (docs/PROTOCOL-NOTES.md).
// Pure: the session sends and reports; unit-tested in tests/common.
#pragma once

#include "common/request_planner.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace tunnel {

// One POST body and what is known of it. Lives in the UploadStream until it is neither in flight,
// nor to be sent again, nor kept.
struct Post {
  uint64_t seq = 0;
  uint64_t upload_start = 0;  // the offset of its first byte in the local client's stream
  std::vector<char> body;
  bool in_flight = false;
  bool resend = false;     // to be sent again as it is (same x-seq, same body: applied once)
  bool retained = false;   // kept to send again if the target stalls: the last POST, or a suspect
  bool suspect = false;    // answered within the settle time: lost, or not
  bool applied = false;    // the target surely received it (a reply to it came)
  bool sent_idle = false;  // sent while the target owed no answer: the next payload answers it
  // A suspect still kept, and nothing since has shown that the target had its body.
  bool unconfirmed() const { return suspect && retained && !applied; }
};

class UploadStream {
 public:
  static constexpr int kMaxSuspects = 4;  // kept at once; the oldest beyond that is let go

  // ---- local bytes --------------------------------------------------------------------------
  // Throws std::bad_alloc when the bytes cannot be kept.
  void append(const char* data, size_t size, uint64_t now);
  size_t pending() const { return pending_.size(); }
  uint64_t pending_since_ns() const { return pending_since_ns_; }  // when its oldest byte was read
  void discard_pending() { pending_.clear(); }  // the agent stops: the target is told to drop all

  // ---- POSTs --------------------------------------------------------------------------------
  // The next POST: up to `cap` pending bytes, the next x-seq. It is kept (retained) until the next
  // one is cut, and the suspects stay kept; any other body is let go. `target_idle`: the target owes
  // no answer, so its next payload answers this POST.
  Post& cut(size_t cap, bool target_idle);
  uint64_t next_seq() const { return next_seq_; }
  uint64_t posted_offset() const { return posted_offset_; }  // bytes of the client's stream cut into POSTs
  uint64_t last_seq() const { return next_seq_ - 1; }  // 0: none sent
  // The lowest x-seq to be sent again and not in flight, or null.
  Post* next_resend();
  uint64_t lowest_resend_seq() const;  // 0: none
  bool busy() const;                   // a POST is in flight or waits to be sent again
  void cancel_resends();               // what was to go again was applied after all

  // ---- what the target received -------------------------------------------------------------
  // JDWP: a reply to a command ending at `upload_offset` came, so every POST that carried a byte
  // before it was received (a POST is applied whole or not at all).
  void target_received(uint64_t upload_offset);
  // A payload came. Unless the debugger's replies are followed (`tracked`), it answers the POSTs sent
  // while the target owed nothing (request/reply traffic).
  void payload_arrived(bool tracked);
  bool answer_owed() const { return answer_owed_; }  // no payload since the last POST was cut
  bool has_unconfirmed() const;

  // ---- what an answer (200, 204 or 429) says of a POST --------------------------------------
  enum class Outcome {
    kept,          // read, or applied: nothing to do
    lost,          // surely lost: marked to go again (free: it arrives in order)
    maybe_lost,    // maybe lost: marked to go again (a reorder slot, if the server had it)
    jdwp_suspect,  // maybe lost; the JVM's replies will tell within a few round trips
    suspect,       // maybe lost, but most likely its own answer: kept, sent again on a stall
  };
  // `tracked`: the debugger's replies say what the JVM received; `with_payload`: the answer
  // carried target data.
  Outcome on_answered(Post& post, PostFate fate, bool tracked, bool with_payload);

  // The kept POSTs not known to have arrived go again (the target stalled); their x-seq, lowest first.
  std::vector<uint64_t> resend_retained();
  // JDWP: the suspects whose commands the JVM did not answer in time go again.
  std::vector<uint64_t> resend_unanswered_suspects();
  // The unconfirmed suspects go again (the input ended and the target went quiet).
  std::vector<uint64_t> resend_unconfirmed();

  uint64_t lost_resends() const { return lost_resends_; }    // the server surely lost the body
  uint64_t maybe_resends() const { return maybe_resends_; }  // ... may have: a slot each if not
  size_t kept() const { return posts_.size(); }              // POST bodies held

 private:
  void let_go();  // drops the bodies nothing needs any more; their buffers are reused

  std::vector<char> pending_;
  uint64_t pending_since_ns_ = 0;
  uint64_t posted_offset_ = 0;  // ... of which cut into POSTs
  uint64_t next_seq_ = 1;
  bool answer_owed_ = false;
  std::vector<std::unique_ptr<Post>> posts_;  // unique_ptr: the session keeps pointers to them
  std::vector<char> spare_;                   // a let-go body's buffer, for the next cut
  uint64_t lost_resends_ = 0;
  uint64_t maybe_resends_ = 0;
};

}  // namespace tunnel

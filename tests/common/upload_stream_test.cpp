#include "common/upload_stream.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace tunnel;
using Outcome = UploadStream::Outcome;

namespace {
void add(UploadStream& u, const std::string& s, uint64_t now = 1) { u.append(s.data(), s.size(), now); }
std::string text(const Post& p) { return {p.body.begin(), p.body.end()}; }
// A POST cut, sent and answered with `fate`.
Post& sent(UploadStream& u, const std::string& s, bool idle = false) {
  add(u, s);
  Post& p = u.cut(1 << 20, idle);
  p.in_flight = true;
  return p;
}
}  // namespace

TEST_CASE("local bytes are cut into POSTs numbered from 1, at most `cap` bytes each, in order") {
  UploadStream u;
  CHECK(u.last_seq() == 0);
  add(u, "abcdefgh", 42);
  CHECK(u.pending() == 8);
  CHECK(u.pending_since_ns() == 42);
  Post& a = u.cut(5, false);
  CHECK(a.seq == 1);
  CHECK(text(a) == "abcde");
  CHECK(a.upload_start == 0);
  Post& b = u.cut(5, false);
  CHECK(b.seq == 2);
  CHECK(text(b) == "fgh");
  CHECK(b.upload_start == 5);
  CHECK(u.pending() == 0);
  CHECK(u.last_seq() == 2);
  CHECK(u.next_seq() == 3);
}

TEST_CASE("the last POST is kept until the next one; a body nothing needs is let go") {
  UploadStream u;
  Post& a = sent(u, "a");
  CHECK(a.retained);
  a.in_flight = false;  // answered, read
  CHECK(u.on_answered(a, PostFate::read, false, false) == Outcome::kept);
  CHECK(u.kept() == 1);
  Post& b = sent(u, "b");
  CHECK(b.retained);
  CHECK(u.kept() == 1);  // a was let go
  // One in flight is never let go.
  Post& c = sent(u, "c");
  CHECK(u.kept() == 2);
  CHECK_FALSE(b.retained);
  CHECK(c.retained);
}

TEST_CASE("an answer before the body was all sent: surely lost, sent again for free") {
  UploadStream u;
  Post& a = sent(u, "a");
  a.in_flight = false;
  CHECK(u.on_answered(a, PostFate::lost, false, false) == Outcome::lost);
  CHECK(a.resend);
  CHECK(u.lost_resends() == 1);
  CHECK(u.maybe_resends() == 0);
  CHECK(u.next_resend() == &a);
  CHECK(u.busy());
  // Sent again: not in the queue while in flight.
  a.resend = false;
  a.in_flight = true;
  CHECK(u.next_resend() == nullptr);
  CHECK(u.busy());
  a.in_flight = false;
  CHECK_FALSE(u.busy());
}

TEST_CASE("a 429 or 204 within the settle time: maybe lost, sent again, counted") {
  UploadStream u;
  Post& a = sent(u, "a");
  a.in_flight = false;
  CHECK(u.on_answered(a, PostFate::maybe_lost, false, false) == Outcome::maybe_lost);
  CHECK(a.resend);
  CHECK(u.maybe_resends() == 1);
  CHECK(u.lowest_resend_seq() == 1);
}

TEST_CASE("target data within the settle time: a suspect, kept (a resend would cost a slot), sent again on a stall") {
  UploadStream u;
  Post& a = sent(u, "a");
  a.in_flight = false;
  CHECK(u.on_answered(a, PostFate::maybe_lost, false, true) == Outcome::suspect);
  CHECK_FALSE(a.resend);
  CHECK(a.unconfirmed());
  CHECK(u.has_unconfirmed());
  Post& b = sent(u, "b");  // the next POST does not let a suspect go
  CHECK(a.retained);
  b.in_flight = false;
  const auto again = u.resend_retained();
  REQUIRE(again.size() == 2);
  CHECK(again[0] == 1);
  CHECK(again[1] == 2);
  CHECK(u.next_resend() == &a);  // lowest x-seq first
  CHECK(u.maybe_resends() == 2);
}

TEST_CASE("at most four suspects are kept; the oldest beyond goes") {
  UploadStream u;
  std::vector<Post*> posts;
  for (int i = 0; i < 5; ++i) {
    Post& p = sent(u, "x");
    p.in_flight = false;
    u.on_answered(p, PostFate::maybe_lost, false, true);
    posts.push_back(&p);
  }
  CHECK_FALSE(posts[0]->suspect);
  CHECK_FALSE(posts[0]->retained);
  for (int i = 1; i < 5; ++i) CHECK(posts[static_cast<size_t>(i)]->suspect);
}

TEST_CASE("JDWP: a maybe-lost POST waits for its reply; a reply past its bytes confirms it") {
  UploadStream u;
  Post& a = sent(u, "0123456789");  // bytes 0..9
  Post& b = sent(u, "abcdefghij");  // bytes 10..19
  a.in_flight = b.in_flight = false;
  CHECK(u.on_answered(a, PostFate::maybe_lost, true, false) == Outcome::jdwp_suspect);
  CHECK(u.on_answered(b, PostFate::maybe_lost, true, true) == Outcome::jdwp_suspect);
  u.target_received(10);  // a reply to a command ending at byte 10: a arrived, b unknown
  CHECK(a.applied);
  CHECK_FALSE(b.applied);
  const auto again = u.resend_unanswered_suspects();
  REQUIRE(again.size() == 1);
  CHECK(again[0] == 2);
  CHECK(b.resend);
  CHECK_FALSE(a.resend);
  CHECK_FALSE(a.suspect);
  CHECK_FALSE(a.retained);  // not the last POST: nothing keeps it now
  CHECK(b.retained);
}

TEST_CASE("request/reply: a payload answers the POSTs sent while the target owed nothing") {
  UploadStream u;
  Post& idle = sent(u, "ping", true);
  CHECK(u.answer_owed());
  u.payload_arrived(true);  // JDWP followed: the payload proves nothing by itself
  CHECK_FALSE(idle.applied);
  CHECK_FALSE(u.answer_owed());
  Post& busy = sent(u, "more", false);
  u.payload_arrived(false);
  CHECK(idle.applied);
  CHECK_FALSE(busy.applied);
}

TEST_CASE("at the input's end, the unconfirmed suspects go again once") {
  UploadStream u;
  Post& a = sent(u, "a");
  a.in_flight = false;
  u.on_answered(a, PostFate::maybe_lost, false, true);
  auto again = u.resend_unconfirmed();
  REQUIRE(again.size() == 1);
  CHECK(a.resend);
  CHECK_FALSE(u.has_unconfirmed());
  CHECK(u.resend_unconfirmed().empty());
  u.cancel_resends();  // e.g. the target took them and closed
  CHECK(u.next_resend() == nullptr);
}

TEST_CASE("a stall sends again only what is kept and not known to have arrived") {
  UploadStream u;
  Post& a = sent(u, "a");
  a.in_flight = false;
  a.applied = true;
  CHECK(u.resend_retained().empty());
  Post& b = sent(u, "b");  // in flight: not now
  CHECK(u.resend_retained().empty());
  b.in_flight = false;
  CHECK(u.resend_retained().size() == 1);
}

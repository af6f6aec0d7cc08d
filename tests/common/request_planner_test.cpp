#include "common/request_planner.hpp"

#include <doctest/doctest.h>

using namespace tunnel;
using Next = Plan::Next;

namespace {

constexpr uint64_t ms = 1'000'000;
constexpr uint64_t kSettle = 10 * ms;  // the default base, before any round trip is seen
constexpr uint64_t kQuiet = 15 * ms;

InFlightRequest get(uint64_t started) { return {true, 0, started, started}; }
InFlightRequest post(size_t size, uint64_t started, uint64_t body_sent, bool applied = false) {
  return {false, size, started, body_sent, applied};
}
UploadState none() { return {}; }
// Local bytes wait; the target's last payload came at `last_payload` (0: never); `idle`: it owes nothing.
UploadState upload(uint64_t last_payload = 0, bool idle = false) { return {true, last_payload, idle}; }

}  // namespace

TEST_CASE("an idle session keeps one GET waiting, and only one") {
  RequestPlanner p;
  CHECK(p.next({}, none(), true, 1000 * ms).next == Next::get);
  auto plan = p.next({get(0)}, none(), true, 1000 * ms);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == 0);
}

TEST_CASE("while a download runs, two GETs are out: one may sit unread behind a POST's body") {
  RequestPlanner p;
  const uint64_t now = 1000 * ms;
  UploadState big = none();
  big.last_payload_ns = now - 1 * ms;
  big.last_payload_bytes = 100 << 10;
  CHECK(p.next({get(now - 5 * ms)}, big, true, now).next == Next::get);
  CHECK(p.next({get(now - 5 * ms), get(now - 2 * ms)}, big, true, now).next == Next::nothing);
  CHECK(p.next({get(now - 5 * ms)}, big, false, now).next == Next::nothing);  // the local client lags
  // Small payloads (request and reply, as JDWP) keep one GET; so does a download that went quiet.
  UploadState small = big;
  small.last_payload_bytes = 200;
  CHECK(p.next({get(now - 5 * ms)}, small, true, now).next == Next::nothing);
  UploadState over = big;
  over.last_payload_ns = now - kQuiet;
  CHECK(p.next({get(now - 5 * ms)}, over, true, now).next == Next::nothing);
}

TEST_CASE("(b) the request in front is not the one the POST releases") {
  RequestPlanner p;
  const uint64_t now = 1000 * ms;
  // Two GETs out: the POST makes the server release the older one, so the newer one must be held.
  auto plan = p.next({get(now - 50 * ms), get(now - 4 * ms)}, upload(), true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == kSettle - 4 * ms);
  CHECK(p.next({get(now - 50 * ms), get(now - kSettle)}, upload(), true, now).next == Next::post);
  // Order in the list does not matter: the oldest is the one released.
  CHECK(p.next({get(now - 4 * ms), get(now - 50 * ms)}, upload(), true, now).next == Next::nothing);
}

TEST_CASE("the first words to a target that is mute until it has them go alone, at once") {
  RequestPlanner p;
  const uint64_t now = 1000 * ms;
  UploadState hello = upload();
  hello.mute_until_sent = true;
  CHECK(p.next({}, hello, true, now).next == Next::post);
  // A GET out too briefly to be held in front does not matter either.
  CHECK(p.next({get(now - 1 * ms)}, hello, true, now).next == Next::post);
  // Not with a POST out: one unsettled POST at a time still.
  CHECK(p.next({get(now - 50 * ms), post(14, now - 1 * ms, now - 1 * ms)}, hello, true, now).next == Next::nothing);
  // And not for any other target: nothing out means a GET first.
  CHECK(p.next({}, upload(), true, now).next == Next::get);
}

TEST_CASE("a local client that does not keep up stops the polling") {
  RequestPlanner p;
  CHECK(p.next({}, none(), false, 1000 * ms).next == Next::nothing);
}

TEST_CASE("(b) a POST goes only with a request surely held in front of it") {
  RequestPlanner p;
  const uint64_t now = 1000 * ms;
  // Nothing out: a GET first.
  CHECK(p.next({}, upload(), true, now).next == Next::get);
  // The GET left 1 ms ago: it may not be at the server yet; look again when it surely is.
  auto plan = p.next({get(now - 1 * ms)}, upload(), true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == kSettle - 1 * ms);
  // (and out for the quiet time: silence counts only while something was out to carry a payload)
  CHECK(p.next({get(now - kSettle - kQuiet)}, upload(), true, now).next == Next::post);
  // A settled POST is in front as well as a GET.
  CHECK(p.next({post(20, now - kSettle - kQuiet, now - kSettle - kQuiet)}, upload(), true, now).next == Next::post);
  // Nothing in front and no GET allowed (the local client lags): nothing, until an event.
  plan = p.next({}, upload(), false, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == 0);
}

TEST_CASE("(a) one unsettled POST at a time, so that x-seq arrive in order") {
  RequestPlanner p;
  const uint64_t now = 1000 * ms;
  // The previous POST's body left 1 ms ago: the next one waits until it is surely read.
  auto plan = p.next({get(now - 50 * ms), post(20, now - 1 * ms, now - 1 * ms)}, upload(), true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == kSettle - 1 * ms);
  // A body not yet all sent: the whole settle time.
  plan = p.next({get(now - 50 * ms), post(256 << 10, now - 1 * ms, 0)}, upload(), true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == p.settle_ns(256 << 10));
  // The target answered it (a JDWP reply): no wait, and it counts as held in front.
  CHECK(p.next({post(20, now - 1 * ms, now - 1 * ms, true)}, upload(0, true), true, now).next == Next::post);
}

TEST_CASE("(c) a POST waits for a talking target to go quiet, unless it owes nothing") {
  RequestPlanner p;
  const uint64_t now = 1000 * ms;
  const auto front = get(now - 50 * ms);
  auto plan = p.next({front}, upload(now - 2 * ms), true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == kQuiet - 2 * ms);
  CHECK(p.next({front}, upload(now - kQuiet), true, now).next == Next::post);
  // Request/reply traffic: the reply just came, and the target owes nothing more.
  CHECK(p.next({front}, upload(now - 1 * ms, true), true, now).next == Next::post);
  // A target that never talked (an upload) is quiet.
  CHECK(p.next({front}, upload(0), true, now).next == Next::post);
  // Silence counts only while a request was out to carry a payload: the agent stopped polling
  // (a lagging local client) and a GET went out again 11 ms ago: the quiet time runs from then.
  const auto fresh = get(now - kSettle - 1 * ms);
  plan = p.next({fresh}, upload(now - 100 * ms), true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == kQuiet - kSettle - 1 * ms);
  // A target that talks answers the last POST once it has it: silence counts from then. The POST
  // left 12 ms ago, settled 2 ms ago: 13 ms of quiet still to come.
  UploadState after_post = upload(now - 100 * ms);
  after_post.last_post_to_talker_ns = now - 12 * ms;
  // Before any exchange measured the round trip, the answer may be a long one away: a long one
  // is assumed.
  plan = p.next({front}, after_post, true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == kQuiet + RequestPlanner::kAssumedRoundTripNs - 2 * ms);
  // A release showed the round trip is at most 30 ms: that is assumed instead; a longer bound
  // changes nothing.
  p.observe_release_bound(RequestPlanner::kAssumedRoundTripNs + 100 * ms);
  CHECK(p.next({front}, after_post, true, now).recheck_in_ns == kQuiet + RequestPlanner::kAssumedRoundTripNs - 2 * ms);
  p.observe_release_bound(30 * ms);
  CHECK(p.next({front}, after_post, true, now).recheck_in_ns == kQuiet + 30 * ms - 2 * ms);
  p.observe_release_bound(60 * ms);  // the fastest release is the tightest bound
  CHECK(p.next({front}, after_post, true, now).recheck_in_ns == kQuiet + 30 * ms - 2 * ms);
  p.observe_exchange(0);  // a round trip of (next to) nothing: loopback
  plan = p.next({front}, after_post, true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == kQuiet - 2 * ms);
}

TEST_CASE("a lone small POST gets a GET beside it after a while, a big POST at once") {
  RequestPlanner p;
  const uint64_t now = 1000 * ms;
  auto plan = p.next({post(20, now - 10 * ms, now - 10 * ms)}, none(), true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == 40 * ms);
  CHECK(p.next({post(20, now - 50 * ms, now - 50 * ms)}, none(), true, now).next == Next::get);
  CHECK(p.next({post(64 << 10, now, 0)}, none(), true, now).next == Next::get);
}

TEST_CASE("a needed GET goes before more upload") {
  RequestPlanner p;
  const uint64_t now = 1000 * ms;
  CHECK(p.next({post(256 << 10, now - 1 * ms, 0)}, upload(), true, now).next == Next::get);
}

TEST_CASE("a new request only when the one it may release is settled, and never a fourth") {
  RequestPlanner p;
  const uint64_t now = 1000 * ms;
  // Oldest of two is a POST still uploading: a GET would release it unread. Wait.
  auto plan = p.next({post(256 << 10, now - 70 * ms, 0), post(1, now - 60 * ms, now - 60 * ms)}, none(), true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == p.settle_ns(256 << 10));
  // The newer of two is the unsettled one: a GET would release the older, settled one and leave
  // the unread POST in front, where the target's next bytes take its body. Wait until it settles.
  plan = p.next({post(1, now - 60 * ms, now - 60 * ms), post(256 << 10, now - 3 * ms, now - 2 * ms)}, none(), true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == p.settle_ns(256 << 10) - 2 * ms);
  const uint64_t later = now + p.settle_ns(256 << 10);
  CHECK(p.next({post(1, now - 60 * ms, now - 60 * ms), post(256 << 10, now - 3 * ms, now - 2 * ms)}, none(), true, later)
            .next == Next::get);
  // A small body came with its request head and was read with it: the GET goes.
  CHECK(p.next({post(1, now - 60 * ms, now - 60 * ms), post(9, now - 3 * ms, 0)}, none(), true, now).next == Next::get);
  // A GET in that place is held from the start: nothing to wait for.
  CHECK(p.next({post(1, now - 60 * ms, now - 60 * ms), get(now - 3 * ms)}, upload(), true, now).next != Next::get);
  // Oldest of two is a GET: releasing it loses nothing.
  CHECK(p.next({get(now - 60 * ms), post(20, now - 55 * ms, now - 55 * ms)}, upload(), true, now).next ==
        Next::post);
  // Its body went out 4 ms ago: 6 ms more (and the part that came after the head) before anything
  // may release it.
  plan = p.next({post(256 << 10, now - 5 * ms, now - 4 * ms), get(now - 1 * ms)}, upload(), true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == p.settle_ns(256 << 10) - 4 * ms);
  CHECK(p.next({get(now - 90 * ms), post(1, now - 80 * ms, now - 80 * ms), post(1, now - 70 * ms, now - 70 * ms)},
               upload(), true, now)
            .next == Next::nothing);
}

TEST_CASE("the settle and quiet times grow with the round trip seen") {
  RequestPlanner p;
  CHECK(p.settle_ns() == kSettle);
  CHECK(p.quiet_ns() == kQuiet);
  p.observe_exchange(30 * ms);
  p.observe_exchange(10 * ms);
  p.observe_exchange(20 * ms);
  CHECK(p.settle_ns() == kSettle + 10 * ms);  // + the fastest (10 ms)
  CHECK(p.quiet_ns() == kQuiet + 10 * ms);
  const uint64_t now = 1000 * ms;
  CHECK(p.next({get(now - 90 * ms), post(1, now - 31 * ms, now - 19 * ms)}, upload(0, true), true, now).next ==
        Next::nothing);
  CHECK(p.next({get(now - 90 * ms), post(1, now - 31 * ms, now - 20 * ms)}, upload(0, true), true, now).next ==
        Next::post);
}

TEST_CASE("what an answer to a POST says of its body") {
  RequestPlanner p;
  const uint64_t sent = 1000 * ms;
  // Answered while libcurl was still sending the body: the server cannot have read it.
  CHECK(p.fate(post(256 << 10, sent - 5 * ms, 0), sent) == PostFate::lost);
  CHECK(p.fate(post(256 << 10, sent - 5 * ms, sent), sent - 1 * ms) == PostFate::lost);
  // Answered within the settle time: perhaps before the server read it.
  CHECK(p.fate(post(20, sent, sent), sent + 1 * ms) == PostFate::maybe_lost);
  // Later: the body was surely read first.
  CHECK(p.fate(post(20, sent, sent), sent + kSettle) == PostFate::read);
  // The target answered what it carried: read, whenever the answer came.
  CHECK(p.fate(post(20, sent, sent, true), sent + 1 * ms) == PostFate::read);

}

TEST_CASE("a big body settles later: the server reads it from its buffer after the kernel acknowledged it") {
  RequestPlanner p;
  const uint64_t sent = 1000 * ms;
  // 10 ms per MiB after the first 64 KiB (read with the head) on top of the flat margin.
  CHECK(p.settle_ns(0) == kSettle);
  CHECK(p.settle_ns(64 << 10) == kSettle);
  CHECK(p.settle_ns((1 << 20) + (64 << 10)) == kSettle + 10 * ms);
  const size_t big = (2 << 20) + (64 << 10);  // settles 20 ms after the flat margin
  CHECK(p.fate(post(big, sent, sent), sent + kSettle + 10 * ms) == PostFate::maybe_lost);
  CHECK(p.fate(post(big, sent, sent), sent + kSettle + 20 * ms) == PostFate::read);
  CHECK(p.fate(post(20, sent, sent), sent + kSettle) == PostFate::read);
  // The next POST waits for the big one to settle, not just for the flat margin (rule (a)).
  const auto plan = p.next({get(sent - 50 * ms), post(big, sent, sent)}, upload(0, true), true, sent + kSettle + 1 * ms);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == 19 * ms);
  CHECK(p.next({get(sent - 50 * ms), post(big, sent, sent)}, upload(0, true), true, sent + kSettle + 20 * ms).next ==
        Next::post);
  // Quiet counts from when the last POST to a talker settled, by its size too.
  p.observe_exchange(0);
  UploadState talker = upload(sent - 500 * ms);
  talker.last_post_to_talker_ns = sent;
  talker.last_post_to_talker_bytes = big;
  CHECK(p.next({get(sent - 50 * ms)}, talker, true, sent + kSettle + kQuiet + 5 * ms).next == Next::nothing);
  CHECK(p.next({get(sent - 50 * ms)}, talker, true, sent + kSettle + 20 * ms + kQuiet).next == Next::post);
}

TEST_CASE("a target that paused mid-output makes the quiet time longer than the pause, up to a cap") {
  RequestPlanner p;
  const uint64_t now = 1000 * ms;
  const auto front = get(now - 500 * ms);
  CHECK(p.next({front}, upload(now - kQuiet), true, now).next == Next::post);
  p.observe_output_pause(40 * ms);
  p.observe_output_pause(10 * ms);  // the longest counts
  CHECK(p.output_pause_ns() == 40 * ms);
  CHECK(p.quiet_ns() == kQuiet + 40 * ms);
  const auto plan = p.next({front}, upload(now - kQuiet), true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == 40 * ms);
  CHECK(p.next({front}, upload(now - kQuiet - 40 * ms), true, now).next == Next::post);
  // A target that owes nothing (request/reply) is not waited for, whatever its pauses.
  CHECK(p.next({front}, upload(now - 1 * ms, true), true, now).next == Next::post);
  p.observe_output_pause(5000 * ms);  // an app that paused for seconds: capped
  CHECK(p.output_pause_ns() == RequestPlanner::kMaxOutputPauseNs);
}

TEST_CASE("an answer that came after its POST settled makes the quiet after a POST longer, up to a cap") {
  RequestPlanner p;
  const uint64_t now = 1000 * ms;
  const auto front = get(now - 500 * ms);
  UploadState after_post = upload(now - 400 * ms);
  after_post.last_post_to_talker_ns = now - 300 * ms;
  p.observe_exchange(1 * ms);
  CHECK(p.quiet_after_post_ns() == p.quiet_ns());
  CHECK(p.next({front}, after_post, true, now).next == Next::post);
  p.observe_answer_delay(33 * ms);
  p.observe_answer_delay(3 * ms);  // the longest counts
  CHECK(p.quiet_after_post_ns() == p.quiet_ns() + 33 * ms);
  CHECK(p.quiet_ns() == kQuiet + 1 * ms);  // silence with no POST before it is judged as before
  // Settled 20 ms ago, quiet 16 ms: before, it went; now it waits the 33 ms more.
  after_post.last_post_to_talker_ns = now - 20 * ms - p.settle_ns();
  const auto plan = p.next({front}, after_post, true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == p.quiet_after_post_ns() - 20 * ms);
  p.observe_answer_delay(5000 * ms);
  CHECK(p.answer_delay_ns() == RequestPlanner::kMaxAnswerDelayNs);
}

TEST_CASE("(b) across a long round trip a GET is held in front once it left the margin ahead, not a round trip") {
  RequestPlanner p;
  p.observe_exchange(40 * ms);  // 20 ms each way
  const uint64_t now = 1000 * ms;
  const auto applied = post(20, now - 100 * ms, now - 100 * ms, true);  // the last ping, answered by the target
  // The POST releases the applied one; the GET that left 11 ms ago reaches the server 11 ms ahead of it.
  CHECK(p.next({applied, get(now - kSettle - 1 * ms)}, upload(now - 1 * ms, true), true, now).next == Next::post);
  const auto plan = p.next({applied, get(now - 4 * ms)}, upload(now - 1 * ms, true), true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == kSettle - 4 * ms);
  // A POST's body still needs the round trip to be surely read (settled).
  CHECK(p.settle_ns() == kSettle + 40 * ms);
}

TEST_CASE("(b) through a proxy a GET's lead grows by its jitter margin, a body's settle by its buffering") {
  PlannerSettings through_squid;
  through_squid.settle_base_ns += 50 * ms;  // agent/settings.cpp, per hop
  through_squid.lead_base_ns += 5 * ms;
  RequestPlanner p(through_squid);
  p.observe_exchange(40 * ms);
  const uint64_t now = 1000 * ms;
  const auto applied = post(20, now - 200 * ms, now - 200 * ms, true);
  CHECK(p.next({applied, get(now - 16 * ms)}, upload(now - 1 * ms, true), true, now).next == Next::post);
  const auto plan = p.next({applied, get(now - 4 * ms)}, upload(now - 1 * ms, true), true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == 15 * ms - 4 * ms);
  CHECK(p.settle_ns() == 60 * ms + 40 * ms);
  p.add_settle_margin(20 * ms);  // an HTTP/2 front end: both grow
  CHECK(p.next({applied, get(now - 16 * ms)}, upload(now - 1 * ms, true), true, now).next == Next::nothing);
  CHECK(p.settle_ns() == 80 * ms + 40 * ms);
}

TEST_CASE("a body that left but is not acknowledged yet is looked at again soon, whatever else waits") {
  RequestPlanner p;
  const uint64_t now = 1000 * ms;
  InFlightRequest leaving = post(2 << 20, now - 5 * ms, 0);
  // Not left yet: the settle time is all to come, and nothing is worth looking at before.
  auto plan = p.next({get(now - 50 * ms), leaving}, upload(0, true), true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == p.settle_ns(2 << 20));
  // Being sent, or left libcurl and not acknowledged: its settle counts from the acknowledgement,
  // seen at the next look.
  leaving.awaiting_ack = true;
  plan = p.next({get(now - 50 * ms), leaving}, upload(0, true), true, now);
  CHECK(plan.next == Next::nothing);
  CHECK(plan.recheck_in_ns == PlannerSettings{}.ack_poll_ns);
  // Also when nothing else would bring a look again.
  plan = p.next({get(now - 50 * ms), leaving}, none(), true, now);
  CHECK(plan.recheck_in_ns == PlannerSettings{}.ack_poll_ns);
}

TEST_CASE("a round trip is long once measured or bounded by a release at 10 ms or more") {
  RequestPlanner p;
  CHECK_FALSE(p.long_round_trip());  // nothing known yet
  p.observe_release_bound(41 * ms);  // an upload sees only releases
  CHECK(p.long_round_trip());
  RequestPlanner loopback;
  loopback.observe_release_bound(3 * ms);
  CHECK_FALSE(loopback.long_round_trip());
  loopback.observe_exchange(12 * ms);  // a measured round trip counts over the bound
  CHECK(loopback.long_round_trip());
  RequestPlanner near;
  near.observe_exchange(1 * ms);
  near.observe_release_bound(50 * ms);
  CHECK_FALSE(near.long_round_trip());
}

TEST_CASE("with no round trip known, two GETs go before the first POST, whose release of one bounds it") {
  PlannerSettings probing;
  probing.probe_round_trip = true;
  RequestPlanner p(probing);
  const uint64_t now = 1000 * ms;
  CHECK(p.next({}, upload(), true, now).next == Next::get);
  CHECK(p.next({get(now - 1 * ms)}, upload(), true, now).next == Next::get);
  // With two out, the POST (once the newer GET is in front and the target quiet) releases the older.
  CHECK(p.next({get(now - 40 * ms), get(now - 30 * ms)}, upload(), true, now).next == Next::post);
  // Nothing to send: one GET is enough.
  CHECK(p.next({get(now - 1 * ms)}, none(), true, now).next == Next::nothing);
  // Once a release bounded it, or an exchange measured it, one GET as before.
  p.observe_release_bound(41 * ms);
  CHECK(p.next({get(now - 40 * ms)}, upload(), true, now).next == Next::post);
  RequestPlanner measured(probing);
  measured.observe_exchange(1 * ms);
  CHECK(measured.next({get(now - 40 * ms)}, upload(), true, now).next == Next::post);
}

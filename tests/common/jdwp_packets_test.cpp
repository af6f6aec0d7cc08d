#include "common/jdwp_packets.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace tunnel;

namespace {

std::string packet(uint32_t id, uint8_t flags, uint8_t a, uint8_t b, const std::string& data = {}) {
  const uint32_t length = static_cast<uint32_t>(JdwpPackets::kHeader + data.size());
  std::string out;
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((length >> shift) & 0xff);
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((id >> shift) & 0xff);
  out += static_cast<char>(flags);
  out += static_cast<char>(a);
  out += static_cast<char>(b);
  return out + data;
}
std::string command(uint32_t id, uint8_t set, uint8_t cmd, const std::string& data = {}) {
  return packet(id, 0, set, cmd, data);
}
std::string reply(uint32_t id, const std::string& data = {}) { return packet(id, 0x80, 0, 0, data); }
const std::string kHello = "JDWP-Handshake";

}  // namespace

TEST_CASE("a reply tells how far the client's stream surely reached the JVM") {
  JdwpPackets p;
  const std::string first = kHello + command(1, 1, 1);                // VirtualMachine.Version
  const std::string second = command(2, 1, 7, std::string(5, 'x'));  // with a body
  p.from_client(first.data(), first.size(), 100);
  p.from_client(second.data(), second.size(), 200);
  CHECK(p.awaiting_reply());
  CHECK(p.oldest_unanswered()->id == 1);
  CHECK(JdwpPackets::describe(*p.oldest_unanswered()) == "VirtualMachine.1 (id 1)");
  const std::string answers = kHello + reply(2, "abc");
  // The second command's reply first: everything up to its end was received.
  auto received = p.from_target(answers.data(), answers.size());
  REQUIRE(received);
  CHECK(*received == first.size() + second.size());
  CHECK(p.awaiting_reply());  // command 1 still has no reply
  const std::string one = reply(1);
  CHECK_FALSE(p.from_target(one.data(), one.size()));  // nothing moves: an earlier offset
  CHECK_FALSE(p.awaiting_reply());
}

TEST_CASE("packets split anywhere, and events from the JVM, are followed") {
  JdwpPackets p;
  const std::string stream = kHello + command(7, 11, 1, "thread") + command(8, 16, 1);
  for (char c : stream) p.from_client(&c, 1, 0);  // a byte at a time
  CHECK(p.oldest_unanswered()->id == 7);
  const std::string back = kHello + packet(99, 0, 64, 100, "event") + reply(7);
  for (char c : back.substr(0, back.size() - 1)) CHECK_FALSE(p.from_target(&c, 1));
  auto last = p.from_target(&back.back(), 1);
  REQUIRE(last);
  CHECK(*last == kHello.size() + command(7, 11, 1, "thread").size());
  CHECK(p.oldest_unanswered()->id == 8);
  CHECK(JdwpPackets::describe(*p.oldest_unanswered()) == "StackFrame.1 (id 8)");
}

TEST_CASE("a stream that is not JDWP turns the tracker off") {
  JdwpPackets p;
  const std::string junk = kHello + std::string(11, '\0');  // length 0: impossible
  p.from_client(junk.data(), junk.size(), 0);
  CHECK_FALSE(p.active());
  CHECK_FALSE(p.awaiting_reply());
}

TEST_CASE("a debugger that says goodbye (Dispose, Exit) is remembered: the JVM's close is its doing") {
  JdwpPackets p;
  const std::string hello = kHello + command(1, 1, 1);
  p.from_client(hello.data(), hello.size(), 100);
  CHECK(p.goodbye() == JdwpPackets::Goodbye::none);
  const std::string events = kHello + packet(7, 0, 64, 100);  // Event.Composite from the JVM: not the client's
  p.from_target(events.data(), events.size());
  CHECK(p.goodbye() == JdwpPackets::Goodbye::none);
  const std::string dispose = command(2, 1, 6);
  p.from_client(dispose.data(), dispose.size(), 200);
  CHECK(p.goodbye() == JdwpPackets::Goodbye::dispose);
  JdwpPackets q;
  const std::string exit = kHello + command(1, 1, 10, std::string(4, '\0'));
  q.from_client(exit.data(), exit.size(), 100);
  CHECK(q.goodbye() == JdwpPackets::Goodbye::exit);
}

TEST_CASE("the JVM owes answers only to the commands it was sent, not to one still waiting to go") {
  JdwpPackets p;
  const std::string first = kHello + command(1, 1, 1);
  const std::string second = command(2, 11, 1, std::string(8, 'x'));
  p.from_client(first.data(), first.size(), 100);
  CHECK(p.awaiting_reply_within(first.size()));        // command 1 was sent and is not answered
  CHECK_FALSE(p.awaiting_reply_within(first.size() - 1));  // ... not yet sent whole: owes nothing
  const std::string answers = kHello + reply(1);
  p.from_target(answers.data(), answers.size());
  p.from_client(second.data(), second.size(), 200);
  CHECK(p.awaiting_reply());                            // command 2 has no reply yet
  CHECK_FALSE(p.awaiting_reply_within(first.size()));   // but it has not been sent: nothing owed
  CHECK(p.awaiting_reply_within(first.size() + second.size()));
}

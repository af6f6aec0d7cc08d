// Recognises the JDWP handshake at the start of a session's byte streams, so the agent can say when
// a debugger attached to a JVM (and when the target turned out not to speak JDWP). It only looks;
// every byte is carried as it is. Pure: unit-tested without sockets.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

namespace tunnel {

class JdwpHandshake {
 public:
  static constexpr std::string_view kHello = "JDWP-Handshake";  // each side sends these 14 bytes first

  enum class State {
    unknown,        // fewer than 14 bytes seen from the debugger
    not_jdwp,       // the local client does not speak JDWP: nothing more to say
    awaiting_jvm,   // the debugger sent the handshake; the target's 14 bytes are not all there yet
    attached,       // the target answered it: a debugger is attached to a JVM
    wrong_answer,   // the target answered something else: it is not a JDWP port
  };

  // Bytes from the local client, in order. Returns true when the state changed.
  bool from_client(const char* data, size_t size) { return feed(client_, data, size) && settle(); }
  // Bytes from the target, in order.
  bool from_target(const char* data, size_t size) { return feed(target_, data, size) && settle(); }

  State state() const { return state_; }
  bool debugger() const { return state_ == State::awaiting_jvm || state_ == State::attached; }

 private:
  // Appends up to the handshake's length; true when this call completed the prefix.
  static bool feed(std::string& prefix, const char* data, size_t size) {
    if (prefix.size() >= kHello.size()) return false;
    const size_t take = std::min(size, kHello.size() - prefix.size());
    prefix.append(data, take);
    return prefix.size() == kHello.size() || prefix != kHello.substr(0, prefix.size());
  }

  bool settle() {
    const State before = state_;
    auto matches = [](const std::string& prefix) { return prefix == kHello.substr(0, prefix.size()); };
    if (state_ == State::unknown) {
      if (!matches(client_)) state_ = State::not_jdwp;
      else if (client_.size() == kHello.size()) state_ = State::awaiting_jvm;
    }
    if (state_ == State::awaiting_jvm) {
      if (!matches(target_)) state_ = State::wrong_answer;
      else if (target_.size() == kHello.size()) state_ = State::attached;
    }
    return state_ != before;
  }

  std::string client_, target_;
  State state_ = State::unknown;
};

}  // namespace tunnel

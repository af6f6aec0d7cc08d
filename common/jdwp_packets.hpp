// Follows JDWP packets in a session's two byte streams (after the 14-byte handshake) to know which
// debugger commands the JVM has not answered yet. Every command packet gets a reply with its id, so
// a reply proves that the target received every byte of the client's stream up to the end of that
// command: the agent's exact signal that a POST body reached the JVM (docs/PROTOCOL-NOTES.md).
// It only looks; bytes are carried as they are. Pure: unit-tested without sockets.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace tunnel {

class JdwpPackets {
 public:
  static constexpr size_t kHandshake = 14;
  static constexpr size_t kHeader = 11;  // length (4), id (4), flags (1), then 2 bytes
  static constexpr uint8_t kReplyFlag = 0x80;

  struct Command {
    uint32_t id = 0;
    uint8_t command_set = 0;
    uint8_t command = 0;
    uint64_t end = 0;         // offset in the client's stream just past this command
    uint64_t sent_ns = 0;     // when the agent read its last byte
  };

  // Bytes from the local client, in order, read at `now_ns`.
  void from_client(const char* data, size_t size, uint64_t now_ns) { feed(client_, data, size, now_ns, true); }
  // Bytes from the target, in order. Returns the client-stream offset up to which the target has
  // now surely received everything (a reply came for a command ending there), if it moved.
  std::optional<uint64_t> from_target(const char* data, size_t size) {
    received_moved_ = false;
    feed(target_, data, size, 0, false);
    return received_moved_ ? std::optional<uint64_t>(received_up_to_) : std::nullopt;
  }

  // False once either stream is found not to be JDWP (then nothing here means anything).
  bool active() const { return client_.jdwp && target_.jdwp; }
  // Commands that ended within the first `offset` bytes of the client's stream (the bytes the JVM
  // has been sent) and have no answer yet: what the JVM owes. A command still waiting to be sent
  // is owed nothing for.
  bool awaiting_reply_within(uint64_t offset) const {
    return active() && !pending_.empty() && pending_.begin()->second.end <= offset;
  }
  // Commands read from the client, sent or not, without an answer yet.
  bool awaiting_reply() const { return awaiting_reply_within(UINT64_MAX); }
  const Command* oldest_unanswered() const { return pending_.empty() ? nullptr : &pending_.begin()->second; }
  uint64_t received_up_to() const { return received_up_to_; }

  // The debugger ended the session itself: it sent VirtualMachine.Dispose (jdb's quit, an IDE's
  // detach) or VirtualMachine.Exit, after which the JVM closes the connection. Its close then is the
  // debugger's doing, whichever end the agent hears of first.
  enum class Goodbye { none, dispose, exit };
  Goodbye goodbye() const { return goodbye_; }

  // "VirtualMachine.7 (id 42)"-style name of a command, for log lines.
  static std::string describe(const Command& command);

 private:
  struct Stream {
    uint64_t offset = 0;  // bytes seen
    bool jdwp = true;
    std::array<uint8_t, kHeader> head{};
    size_t head_have = 0;
    uint64_t body_left = 0;
  };

  void feed(Stream& s, const char* data, size_t size, uint64_t now_ns, bool client);
  void on_packet(const Stream& s, bool client, uint64_t now_ns);

  Stream client_, target_;
  std::map<uint64_t, Command> pending_;  // by `end`: the oldest first
  std::map<uint32_t, uint64_t> by_id_;   // id -> end
  uint64_t received_up_to_ = 0;
  bool received_moved_ = false;
  Goodbye goodbye_ = Goodbye::none;
};

}  // namespace tunnel

#include "common/jdwp_packets.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace tunnel {
namespace {

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

const char* command_set_name(uint8_t set) {
  switch (set) {
    case 1: return "VirtualMachine";
    case 2: return "ReferenceType";
    case 3: return "ClassType";
    case 6: return "Method";
    case 9: return "ObjectReference";
    case 10: return "StringReference";
    case 11: return "ThreadReference";
    case 12: return "ThreadGroupReference";
    case 13: return "ArrayReference";
    case 15: return "EventRequest";
    case 16: return "StackFrame";
    case 64: return "Event";
    default: return nullptr;
  }
}

}  // namespace

std::string JdwpPackets::describe(const Command& c) {
  const char* set = command_set_name(c.command_set);
  return set != nullptr ? fmt::format("{}.{} (id {})", set, c.command, c.id)
                        : fmt::format("{}.{} (id {})", c.command_set, c.command, c.id);
}

void JdwpPackets::feed(Stream& s, const char* data, size_t size, uint64_t now_ns, bool client) {
  // The handshake: not counted as a packet (JdwpHandshake checks its text).
  if (s.offset < kHandshake) {
    const size_t skip = std::min<uint64_t>(size, kHandshake - s.offset);
    s.offset += skip;
    data += skip;
    size -= skip;
  }
  while (size > 0 && s.jdwp) {
    if (s.body_left > 0) {
      const size_t take = static_cast<size_t>(std::min<uint64_t>(size, s.body_left));
      s.body_left -= take;
      s.offset += take;
      data += take;
      size -= take;
      if (s.body_left == 0) on_packet(s, client, now_ns);
      continue;
    }
    const size_t take = std::min(size, kHeader - s.head_have);
    std::copy(data, data + take, s.head.begin() + static_cast<std::ptrdiff_t>(s.head_have));
    s.head_have += take;
    s.offset += take;
    data += take;
    size -= take;
    if (s.head_have < kHeader) break;
    const uint32_t length = be32(s.head.data());
    if (length < kHeader) {
      s.jdwp = false;  // not a JDWP packet: stop interpreting this session's streams
      pending_.clear();
      by_id_.clear();
      return;
    }
    s.body_left = length - kHeader;
    if (s.body_left == 0) on_packet(s, client, now_ns);
  }
}

// A whole packet went by (its header is in s.head, s.offset is just past it).
void JdwpPackets::on_packet(const Stream& s, bool client, uint64_t now_ns) {
  const uint32_t id = be32(s.head.data() + 4);
  const bool reply = (s.head[8] & kReplyFlag) != 0;
  Stream& self = client ? client_ : target_;
  self.head_have = 0;
  if (client) {
    if (reply) return;  // the debugger does not answer the JVM's events; nothing to follow
    Command c{id, s.head[9], s.head[10], s.offset, now_ns};
    constexpr uint8_t kVirtualMachine = 1, kDispose = 6, kExit = 10;
    if (c.command_set == kVirtualMachine && c.command == kDispose) goodbye_ = Goodbye::dispose;
    if (c.command_set == kVirtualMachine && c.command == kExit) goodbye_ = Goodbye::exit;
    if (auto old = by_id_.find(id); old != by_id_.end()) pending_.erase(old->second);  // an id used again
    by_id_[id] = s.offset;
    pending_[s.offset] = c;
    return;
  }
  if (!reply) return;  // an event from the JVM
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  const uint64_t end = it->second;
  by_id_.erase(it);
  pending_.erase(end);
  if (end > received_up_to_) {
    received_up_to_ = end;
    received_moved_ = true;
  }
}

}  // namespace tunnel

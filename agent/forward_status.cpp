#include "agent/forward_status.hpp"

#include <fmt/format.h>

namespace tunnel {

std::string format_bytes(uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(units)) {
    value /= 1024;
    ++unit;
  }
  return fmt::format("{:.1f} {}", value, units[unit]);
}

namespace {
std::string format_age(double seconds) {
  const auto s = static_cast<uint64_t>(seconds);
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, s % 3600 / 60);
}
}  // namespace

std::string format_status(const ForwardStatus& status) {
  std::string out;
  if (const auto& s = status.session) {
    out += fmt::format("session {} {} {}  up {}  down {}", s->id, s->state, format_age(s->age_s),
                       format_bytes(s->bytes_up), format_bytes(s->bytes_down));
    out += s->rtt_ms ? fmt::format("  rtt {:.0f} ms", *s->rtt_ms) : std::string("  rtt -");
    if (status.waiting > 0) out += fmt::format("  ({} waiting)", status.waiting);
  } else if (status.retry_in_s > 0) {
    out += fmt::format("target not running at the last attempt; the next session waits {:.0f} s", status.retry_in_s);
  } else if (status.sessions_done == 0) {
    out += "idle, waiting for a debugger";
  } else {
    out += fmt::format("idle, {} session{} so far", status.sessions_done, status.sessions_done == 1 ? "" : "s");
    if (!status.last_id.empty()) {
      out += fmt::format("; session {} {}: {}", status.last_id, status.last_failed ? "failed" : "ended",
                         status.last_reason);
    }
  }
  return out + fmt::format("  {} -> {}", status.listen, status.endpoint);
}

}  // namespace tunnel

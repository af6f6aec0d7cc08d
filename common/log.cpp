#include "common/log.hpp"

#include "common/platform.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <sys/time.h>

namespace tunnel::log {
namespace {
Level g_level = Level::info;
Format g_format = Format::text;
std::string g_footer;    // drawn below the last log line
size_t g_footer_rows = 0;

// Moves the cursor back over the footer and clears from there down.
std::string erase_footer() {
  return g_footer_rows == 0 ? std::string() : fmt::format("\r\x1b[{}A\x1b[J", g_footer_rows);
}

const char* level_name(Level level) {
  switch (level) {
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warning";
    case Level::error: return "error";
  }
  return "?";
}
}  // namespace

void set_level(Level level) { g_level = level; }
void set_format(Format format) { g_format = format; }

std::string json_line(std::string_view time_utc, Level level, std::string_view message) {
  std::string out = "{\"time\":\"";
  out.append(time_utc).append("\",\"level\":\"").append(level_name(level)).append("\",\"message\":\"");
  for (char c : message) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", u);
      out.append(escaped);
    } else {
      out.push_back(c);  // UTF-8 passes through; invalid bytes never come from our messages' parts
    }
  }
  out.append("\"}");
  return out;
}
std::string text_safe(std::string_view message) {
  std::string out;
  out.reserve(message.size());
  for (size_t i = 0; i < message.size(); ++i) {
    const auto u = static_cast<unsigned char>(message[i]);
    // C0 controls, DEL, and the C1 controls in UTF-8 (U+0080-U+009F: 0xC2 0x80-0x9F; U+009B is CSI).
    const bool c1 = u == 0xC2 && i + 1 < message.size() && static_cast<unsigned char>(message[i + 1]) >= 0x80 &&
                    static_cast<unsigned char>(message[i + 1]) <= 0x9F;
    if (u < 0x20 || u == 0x7F || c1) {
      const unsigned shown = c1 ? static_cast<unsigned char>(message[++i]) : u;
      out += fmt::format("\\x{:02x}", shown);
    } else {
      out.push_back(message[i]);
    }
  }
  return out;
}

Level level() { return g_level; }
bool enabled(Level level) { return level >= g_level; }

void write(Level level, std::string_view message) {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  if (g_format == Format::json) {
    const std::tm utc = platform::utc_time(tv.tv_sec);
    char stamp[40];
    const size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    std::snprintf(stamp + n, sizeof stamp - n, ".%03ldZ", static_cast<long>(tv.tv_usec / 1000));
    const std::string line = json_line(stamp, level, message) + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);  // Windows' C runtime buffers stderr when it is a pipe
    return;
  }
  const std::tm local = platform::local_time(tv.tv_sec);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%H:%M:%S", &local);
  // One write per line (and footer) so that lines from one process never interleave mid-line.
  const std::string out = fmt::format("{}{}.{:03} tunnel-agent {}: {}\n{}", erase_footer(), stamp,
                                      static_cast<long>(tv.tv_usec / 1000), level_name(level), text_safe(message), g_footer);
  std::fwrite(out.data(), 1, out.size(), stderr);
  std::fflush(stderr);
}

void set_footer(std::string lines) {
  const std::string out = erase_footer() + lines;
  g_footer = std::move(lines);
  g_footer_rows = static_cast<size_t>(std::count(g_footer.begin(), g_footer.end(), '\n'));
  std::fwrite(out.data(), 1, out.size(), stderr);
  std::fflush(stderr);
}

}  // namespace tunnel::log

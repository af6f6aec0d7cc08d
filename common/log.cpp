#include "common/log.hpp"

#include <cstdio>
#include <ctime>
#include <sys/time.h>

namespace tunnel::log {
namespace {
Level g_level = Level::info;

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
Level level() { return g_level; }
bool enabled(Level level) { return level >= g_level; }

void write(Level level, std::string_view message) {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  tm local{};
  localtime_r(&tv.tv_sec, &local);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%H:%M:%S", &local);
  // One fprintf per line so that lines from one process never interleave mid-line.
  std::fprintf(stderr, "%s.%03ld tunnel-agent %s: %.*s\n", stamp, static_cast<long>(tv.tv_usec / 1000),
               level_name(level), static_cast<int>(message.size()), message.data());
}

}  // namespace tunnel::log

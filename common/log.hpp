// One line per event on stderr, with a level. Secrets never reach this module: callers pass
// only names, addresses and counts.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace tunnel::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3 };
enum class Format { text, json };

void set_level(Level level);
void set_format(Format format);
// One JSON object for a log line: {"time":"...Z","level":"info","message":"..."} (message escaped).
std::string json_line(std::string_view time_utc, Level level, std::string_view message);
// A message as a text log line shows it: control characters (a server's reason phrase with escape
// sequences, say) become \xNN, so that nothing from the network drives the terminal.
std::string text_safe(std::string_view message);
Level level();
bool enabled(Level level);
void write(Level level, std::string_view message);
// Lines kept below the log on a terminal (the live status): every log line is written above them
// and they are drawn again under it. Each line ends with '\n' and fits the terminal's width; ""
// erases them. Only the status display calls this.
void set_footer(std::string lines);

template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::debug)) write(Level::debug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::info)) write(Level::info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::warn)) write(Level::warn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  write(Level::error, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace tunnel::log

#include "agent/status_display.hpp"

#include "common/log.hpp"
#include "common/platform.hpp"


#include <csignal>
#include <cstdlib>
#include <cstring>

namespace tunnel {
namespace {
constexpr uint64_t kRedrawMs = 1000;

}  // namespace

bool StatusDisplay::stderr_is_terminal() {
  const char* term = std::getenv("TERM");
  return uv_guess_handle(2) == UV_TTY && term != nullptr && term[0] != '\0' && std::strcmp(term, "dumb") != 0;
}

StatusDisplay::StatusDisplay(uv_loop_t* loop, Snapshot snapshot, bool live_line, uint64_t interval_ms)
    : snapshot_(std::move(snapshot)), live_line_(live_line) {
  if (live_line_) {
    redraw_timer_.init(loop, uv_timer_init);
    redraw_timer_.get()->data = this;
    uv_timer_start(redraw_timer_.get(), &StatusDisplay::on_uv_redraw, 0, kRedrawMs);
  }
  if (interval_ms > 0) {
    interval_timer_.init(loop, uv_timer_init);
    interval_timer_.get()->data = this;
    uv_timer_start(interval_timer_.get(), &StatusDisplay::on_uv_interval, interval_ms, interval_ms);
  }
  if (const auto status_signal = platform::status_signal()) {
    sigusr1_.init(loop, uv_signal_init);
    sigusr1_.get()->data = this;
    uv_signal_start(sigusr1_.get(), &StatusDisplay::on_uv_sigusr1, *status_signal);
  }
}

void StatusDisplay::close() {
  if (live_line_) log::set_footer("");
  live_line_ = false;
  redraw_timer_.close();
  interval_timer_.close();
  sigusr1_.close();
}

void StatusDisplay::log_lines() const {
  for (const auto& forward : snapshot_()) log::write(log::Level::info, "status: " + format_status(forward));
}

void StatusDisplay::redraw() {
  const size_t columns = platform::terminal_columns();
  std::string lines;
  for (const auto& forward : snapshot_()) {
    std::string line = format_status(forward);
    // A wrapped line would leave the count of rows to erase wrong: cut it to the width.
    if (line.size() >= columns) line.resize(columns > 1 ? columns - 1 : 0);
    lines += line + "\n";
  }
  if (lines == drawn_) return;
  drawn_ = lines;
  log::set_footer(std::move(lines));
}

// Called by libuv every second while the live line is shown.
void StatusDisplay::on_uv_redraw(uv_timer_t* timer) noexcept {
  static_cast<StatusDisplay*>(timer->data)->redraw();
}

// Called by libuv every --stats-interval.
void StatusDisplay::on_uv_interval(uv_timer_t* timer) noexcept {
  static_cast<StatusDisplay*>(timer->data)->log_lines();
}

// Called by libuv on SIGUSR1.
void StatusDisplay::on_uv_sigusr1(uv_signal_t* handle, int) noexcept {
  static_cast<StatusDisplay*>(handle->data)->log_lines();
}

}  // namespace tunnel

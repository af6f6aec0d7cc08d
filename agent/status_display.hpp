// The live status: on a terminal, one line per forward kept under the log and redrawn every
// second; on SIGUSR1 and every --stats-interval, the same lines as log lines (any output).
#pragma once

#include "agent/forward_status.hpp"
#include "common/uv_handle.hpp"

#include <uv.h>

#include <functional>
#include <string>
#include <vector>

namespace tunnel {

class StatusDisplay {
 public:
  using Snapshot = std::function<std::vector<ForwardStatus>()>;

  // `live_line`: draw the status under the log (only on a terminal); `interval_ms`: also log it
  // this often (0: never).
  StatusDisplay(uv_loop_t* loop, Snapshot snapshot, bool live_line, uint64_t interval_ms);
  StatusDisplay(const StatusDisplay&) = delete;
  StatusDisplay& operator=(const StatusDisplay&) = delete;

  // Removes the live lines (the terminal is left as if they were never there) and closes the
  // timers and the signal handler.
  void close();
  // The status as log lines, whatever the log level (it was asked for).
  void log_lines() const;

  // Whether standard error is a terminal the live line can be drawn on.
  static bool stderr_is_terminal();

 private:
  static void on_uv_redraw(uv_timer_t* timer) noexcept;
  static void on_uv_interval(uv_timer_t* timer) noexcept;
  static void on_uv_sigusr1(uv_signal_t* handle, int signum) noexcept;
  void redraw();

  Snapshot snapshot_;
  bool live_line_;
  std::string drawn_;  // the lines on screen: unchanged lines are not drawn again
  UvHandle<uv_timer_t> redraw_timer_;
  UvHandle<uv_timer_t> interval_timer_;
  UvHandle<uv_signal_t> sigusr1_;
};

}  // namespace tunnel

// The local side of a tunnel session: an accepted TCP connection (one handle, both ways), or the
// process's standard input and output (stdio mode: two handles, each a pipe, socket or terminal, or
// a file or /dev/null through a FileBridge).
#pragma once

#include "common/file_bridge.hpp"
#include "common/log.hpp"
#include "common/uv_handle.hpp"

#include <uv.h>

#include <string>

namespace tunnel {

class LocalEnd {
 public:
  LocalEnd() = default;

  // A connection the listener accepted into `tcp` (initialised with init_tcp).
  static LocalEnd from_tcp(UvHandle<uv_any_handle> tcp) {
    LocalEnd end;
    end.in_ = std::move(tcp);
    end.tcp_ = true;
    return end;
  }
  static int init_tcp(uv_loop_t* loop, uv_any_handle* handle) { return uv_tcp_init(loop, &handle->tcp); }

  // Standard input and output. On failure returns false with a one-line reason.
  bool open_stdio(uv_loop_t* loop, std::string& error) {
    return open_fd(loop, 0, in_, "standard input", error) && open_fd(loop, 1, out_, "standard output", error);
  }

  uv_stream_t* input() const { return in_.as_stream(); }
  uv_stream_t* output() const { return out_ ? out_.as_stream() : in_.as_stream(); }
  uv_tcp_t* tcp() const { return tcp_ && in_ ? &in_.get()->tcp : nullptr; }
  explicit operator bool() const { return static_cast<bool>(in_); }
  // How many handles close() closes: each calls `on_closed` once.
  int handles() const { return (in_ ? 1 : 0) + (out_ ? 1 : 0); }

  void set_data(void* data) {
    if (in_) in_.as_handle()->data = data;
    if (out_) out_.as_handle()->data = data;
  }
  void close(void (*on_closed)(void* data)) {
    in_.close(on_closed);
    out_.close(on_closed);
  }

 private:
  static bool open_fd(uv_loop_t* loop, int fd, UvHandle<uv_any_handle>& handle, const char* name, std::string& error) {
    int rc = 0;
    switch (uv_guess_handle(fd)) {
      case UV_NAMED_PIPE:
        rc = handle.init(loop, [](uv_loop_t* l, uv_any_handle* h) { return uv_pipe_init(l, &h->pipe, 0); });
        if (rc == 0) rc = uv_pipe_open(&handle.get()->pipe, fd);
        break;
      case UV_TCP:
        rc = handle.init(loop, [](uv_loop_t* l, uv_any_handle* h) { return uv_tcp_init(l, &h->tcp); });
        if (rc == 0) rc = uv_tcp_open(&handle.get()->tcp, fd);
        break;
      case UV_TTY:
        rc = handle.init(loop, [fd](uv_loop_t* l, uv_any_handle* h) { return uv_tty_init(l, &h->tty, fd, 0); });
        break;
      case UV_FILE:
        // A file, or /dev/null: through a socket pair, as `nc < FILE > OUT` takes it.
        return FileBridge::start(
            loop, fd, fd == 0 ? FileBridge::Direction::from_file : FileBridge::Direction::to_file, name,
            [](const std::string& why) { log::error("--stdio: {}: the session ends", why); }, handle, error);
      default:
        error = std::string(name) + " is closed: --stdio needs it open (a pipe, a socket, a terminal or a file)";
        return false;
    }
    if (rc != 0) {
      error = std::string("cannot use ") + name + ": " + uv_strerror(rc);
      handle.close();
      return false;
    }
    return true;
  }

  UvHandle<uv_any_handle> in_;
  UvHandle<uv_any_handle> out_;  // empty for TCP: in_ carries both ways
  bool tcp_ = false;
};

}  // namespace tunnel

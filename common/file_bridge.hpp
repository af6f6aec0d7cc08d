// A regular file (or /dev/null, a character device) made into a stream: libuv reads and writes
// files only with its fs calls, never with uv_read_start/uv_write, so a stream user (the tunnel
// session in --stdio mode) gets one end of a socket pair, and the bridge carries the bytes between
// the other end and the file with uv_fs_read/uv_fs_write, one chunk at a time (back-pressure: the
// next chunk waits for the last one to be taken). As netcat and socat take `< FILE` and `> FILE`.
//
// A bridge owns itself: it ends, and frees itself, once its direction is done (the file's end
// reached and passed on as an end of stream; or the stream's end seen and all of it written), or
// when either side fails. Until then the loop keeps running.
#pragma once

#include "common/uv_handle.hpp"

#include <uv.h>

#include <functional>
#include <string>

namespace tunnel {

class FileBridge {
 public:
  enum class Direction { from_file, to_file };
  // Called once, with a one-line reason, when the bridge fails (a read or write error).
  using OnError = std::function<void(const std::string&)>;

  // Starts a bridge for file descriptor `fd`, named `name` in messages ("standard input"). On
  // success `stream_end` holds the pipe the stream user reads from (from_file) or writes to
  // (to_file), initialised on `loop`; on failure returns false with `error`.
  static bool start(uv_loop_t* loop, int fd, Direction direction, const char* name, OnError on_error,
                    UvHandle<uv_any_handle>& stream_end, std::string& error);

  FileBridge(const FileBridge&) = delete;
  FileBridge& operator=(const FileBridge&) = delete;

 private:
  FileBridge(uv_loop_t* loop, int fd, Direction direction, std::string name, OnError on_error)
      : loop_(loop), fd_(fd), direction_(direction), name_(std::move(name)), on_error_(std::move(on_error)) {}
  ~FileBridge() = default;

  // from_file: read a chunk, write it to the pipe, again; at the end, shut the pipe's write side.
  void read_file();
  static void on_uv_file_read(uv_fs_t* req) noexcept;
  static void on_uv_pipe_written(uv_write_t* req, int status) noexcept;
  static void on_uv_shutdown(uv_shutdown_t* req, int status) noexcept;
  // to_file: read the pipe, write each chunk to the file with the pipe paused, until its end.
  static void on_uv_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept;
  static void on_uv_pipe_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept;
  void write_file();
  static void on_uv_file_written(uv_fs_t* req) noexcept;

  void fail(const std::string& what, int status);
  void end();  // closes our end of the pair; frees the bridge once it is closed
  static void on_uv_closed(void* data);

  uv_loop_t* loop_;
  int fd_;
  Direction direction_;
  std::string name_;
  OnError on_error_;
  UvHandle<uv_any_handle> pipe_;  // our end of the socket pair
  uv_fs_t fs_req_{};
  uv_write_t write_req_{};
  uv_shutdown_t shutdown_req_{};
  static constexpr size_t kChunk = 64 * 1024;
  std::string buffer_;      // the chunk in hand
  size_t chunk_ = 0;        // to_file: its size
  size_t written_ = 0;      // to_file: how much of it is in the file
  bool ended_ = false;
};

}  // namespace tunnel

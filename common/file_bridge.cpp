#include "common/file_bridge.hpp"

#include "common/platform.hpp"

#include <fmt/format.h>


namespace tunnel {

bool FileBridge::start(uv_loop_t* loop, int fd, Direction direction, const char* name, OnError on_error,
                       UvHandle<uv_any_handle>& stream_end, std::string& error) {
  uv_os_sock_t pair[2];
  if (const int rc = uv_socketpair(SOCK_STREAM, 0, pair, UV_NONBLOCK_PIPE, UV_NONBLOCK_PIPE); rc != 0) {
    error = fmt::format("cannot use {} (a file): no socket pair: {}", name, uv_strerror(rc));
    return false;
  }
  auto* bridge = new FileBridge(loop, fd, direction, name, std::move(on_error));
  int rc = platform::open_socket_stream(loop, stream_end, pair[0]);
  if (rc == 0) rc = platform::open_socket_stream(loop, bridge->pipe_, pair[1]);
  if (rc != 0) {
    error = fmt::format("cannot use {} (a file): {}", name, uv_strerror(rc));
    stream_end.close();
    bridge->pipe_.close();
    platform::close_socket(pair[0]);
    platform::close_socket(pair[1]);
    delete bridge;
    return false;
  }
  bridge->pipe_.as_handle()->data = bridge;
  bridge->fs_req_.data = bridge;
  bridge->write_req_.data = bridge;
  bridge->shutdown_req_.data = bridge;
  bridge->buffer_.resize(kChunk);
  if (direction == Direction::from_file) {
    bridge->read_file();
  } else {
    uv_read_start(bridge->pipe_.as_stream(), &FileBridge::on_uv_alloc, &FileBridge::on_uv_pipe_read);
  }
  return true;
}

// ---- from the file ------------------------------------------------------------------------

void FileBridge::read_file() {
  uv_buf_t buf = uv_buf_init(buffer_.data(), static_cast<unsigned>(buffer_.size()));
  const int rc = uv_fs_read(loop_, &fs_req_, fd_, &buf, 1, -1, &FileBridge::on_uv_file_read);
  if (rc < 0) fail("reading", rc);
}

// Called by libuv when a read of the file completed.
void FileBridge::on_uv_file_read(uv_fs_t* req) noexcept {
  auto* self = static_cast<FileBridge*>(req->data);
  const ssize_t result = req->result;
  uv_fs_req_cleanup(req);
  if (result < 0) {
    self->fail("reading", static_cast<int>(result));
  } else if (result == 0) {
    // The file's end is the stream's end: the reader sees it once all before it was read.
    if (uv_shutdown(&self->shutdown_req_, self->pipe_.as_stream(), &FileBridge::on_uv_shutdown) != 0) self->end();
  } else {
    uv_buf_t buf = uv_buf_init(self->buffer_.data(), static_cast<unsigned>(result));
    const int rc = uv_write(&self->write_req_, self->pipe_.as_stream(), &buf, 1, &FileBridge::on_uv_pipe_written);
    if (rc < 0) self->end();  // the reader is gone: nothing wants the rest
  }
}

// Called by libuv when a chunk was taken by the reader's end of the pair (or it went away).
void FileBridge::on_uv_pipe_written(uv_write_t* req, int status) noexcept {
  auto* self = static_cast<FileBridge*>(req->data);
  if (self->ended_) return;
  if (status < 0) {
    self->end();  // the reader closed its end (the session ended): nothing wants the rest
    return;
  }
  self->read_file();
}

void FileBridge::on_uv_shutdown(uv_shutdown_t* req, int) noexcept { static_cast<FileBridge*>(req->data)->end(); }

// ---- to the file --------------------------------------------------------------------------

void FileBridge::on_uv_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
  auto* self = static_cast<FileBridge*>(handle->data);
  *buf = uv_buf_init(self->buffer_.data(), static_cast<unsigned>(kChunk));
}

// Called by libuv with bytes the writer put into its end of the pair, or its end.
void FileBridge::on_uv_pipe_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) noexcept {
  auto* self = static_cast<FileBridge*>(stream->data);
  if (nread == 0) return;
  if (nread < 0) {
    self->end();  // the writer is done (EOF), or gone: all it wrote is in the file
    return;
  }
  uv_read_stop(stream);  // one chunk at a time: the writer waits while the file takes it
  self->chunk_ = static_cast<size_t>(nread);
  self->written_ = 0;
  self->write_file();
}

void FileBridge::write_file() {
  uv_buf_t buf = uv_buf_init(buffer_.data() + written_, static_cast<unsigned>(chunk_ - written_));
  const int rc = uv_fs_write(loop_, &fs_req_, fd_, &buf, 1, -1, &FileBridge::on_uv_file_written);
  if (rc < 0) fail("writing to", rc);
}

// Called by libuv when a write to the file completed (perhaps in part).
void FileBridge::on_uv_file_written(uv_fs_t* req) noexcept {
  auto* self = static_cast<FileBridge*>(req->data);
  const ssize_t result = req->result;
  uv_fs_req_cleanup(req);
  if (result < 0) {
    self->fail("writing to", static_cast<int>(result));
    return;
  }
  self->written_ += static_cast<size_t>(result);
  if (self->written_ < self->chunk_) {
    self->write_file();
  } else {
    uv_read_start(self->pipe_.as_stream(), &FileBridge::on_uv_alloc, &FileBridge::on_uv_pipe_read);
  }
}

// ---- the end ------------------------------------------------------------------------------

void FileBridge::fail(const std::string& what, int status) {
  if (ended_) return;
  // Closing our end makes the stream user's next read or write fail: it ends with its own line.
  if (on_error_) on_error_(fmt::format("{} {} failed: {}", what, name_, uv_strerror(status)));
  end();
}

void FileBridge::end() {
  if (ended_) return;
  ended_ = true;
  pipe_.close(&FileBridge::on_uv_closed);
}

void FileBridge::on_uv_closed(void* data) { delete static_cast<FileBridge*>(data); }

}  // namespace tunnel

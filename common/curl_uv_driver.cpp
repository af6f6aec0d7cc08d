#include "common/curl_uv_driver.hpp"

#include "common/log.hpp"

#include <new>

#include <unistd.h>

namespace tunnel {

CurlUvDriver::CurlUvDriver(uv_loop_t* loop) : loop_(loop) {
  multi_ = curl_multi_init();
  if (multi_ == nullptr) throw std::bad_alloc();
  if (timer_.init(loop_, uv_timer_init) != 0) {
    curl_multi_cleanup(multi_);
    throw std::bad_alloc();
  }
  timer_.get()->data = this;
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &CurlUvDriver::on_curl_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &CurlUvDriver::on_curl_timer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  // libcurl's default cache holds 4 connections per transfer in progress, and when it is full it
  // closes the oldest idle one, which can be the one a transfer just finished on (all others busy
  // with held requests): a connection lost for nothing, and a false "excess after the body"
  // (HttpExchange::excess_after_body). Held requests keep few connections busy; keep them all.
  curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, kMaxConnections);
}

CurlUvDriver::~CurlUvDriver() { close(); }

void CurlUvDriver::close() {
  if (multi_ == nullptr) return;
  CURLM* multi = std::exchange(multi_, nullptr);
  curl_multi_cleanup(multi);
  for (SocketContext* ctx : contexts_) delete ctx;  // each closes its uv_poll_t
  contexts_.clear();
  parked_.clear();
  timer_.close();
}

CURLMcode CurlUvDriver::start(CURL* easy, Transfer* transfer) {
  curl_easy_setopt(easy, CURLOPT_PRIVATE, transfer);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, &CurlUvDriver::on_curl_closesocket);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, this);
  return curl_multi_add_handle(multi_, easy);
}

void CurlUvDriver::cancel(CURL* easy) {
  if (multi_ == nullptr) return;
  curl_multi_remove_handle(multi_, easy);
  // It may have finished in the batch being reported right now: make sure it is not reported.
  for (size_t i = 0; i < done_easy_.size(); ++i) {
    if (done_easy_[i] == easy) done_[i].first = nullptr;
  }
}

// Called by libcurl to say which events it wants on a socket, or that it is done with it.
int CurlUvDriver::on_curl_socket(CURL* easy, curl_socket_t fd, int what, void* userp, void* socketp) noexcept {
  auto* self = static_cast<CurlUvDriver*>(userp);
  auto* ctx = static_cast<SocketContext*>(socketp);
  Transfer* transfer = nullptr;
  if (easy != nullptr && curl_easy_getinfo(easy, CURLINFO_PRIVATE, &transfer) == CURLE_OK && transfer != nullptr) {
    transfer->socket = what == CURL_POLL_REMOVE ? CURL_SOCKET_BAD : fd;
  }
  if (what == CURL_POLL_REMOVE) {
    if (ctx != nullptr) self->park(ctx);
    return 0;
  }
  if (ctx == nullptr) {
    auto parked = self->parked_.find(fd);
    if (parked != self->parked_.end()) {
      ctx = parked->second;
      self->parked_.erase(parked);
      curl_multi_assign(self->multi_, fd, ctx);
    }
  }
  if (ctx == nullptr) {
    ctx = new (std::nothrow) SocketContext{self, fd, {}};
    if (ctx == nullptr || ctx->poll.init(self->loop_, uv_poll_init_socket, fd) != 0) {
      delete ctx;
      return -1;
    }
    ctx->poll.get()->data = ctx;
    self->contexts_.insert(ctx);
    curl_multi_assign(self->multi_, fd, ctx);
  }
  int events = 0;
  ctx->wants_read = (what & CURL_POLL_IN) != 0;
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  uv_poll_start(ctx->poll.get(), events, &CurlUvDriver::on_uv_poll);
  return 0;
}

void CurlUvDriver::park(SocketContext* ctx) {
  uv_poll_stop(ctx->poll.get());
  ctx->wants_read = false;
  if (multi_ != nullptr) curl_multi_assign(multi_, ctx->fd, nullptr);
  auto [it, fresh] = parked_.emplace(ctx->fd, ctx);
  if (!fresh && it->second != ctx) {  // a stale entry for a number the kernel gave out again
    drop_context(it->second);
    it->second = ctx;
  }
}

// Called by libcurl to close one of its sockets: its poll handle goes first (libuv must not watch a
// closed descriptor, whose number the kernel may hand out again).
int CurlUvDriver::on_curl_closesocket(void* clientp, curl_socket_t fd) noexcept {
  auto* self = static_cast<CurlUvDriver*>(clientp);
  auto parked = self->parked_.find(fd);
  if (parked != self->parked_.end()) {
    SocketContext* ctx = parked->second;
    self->parked_.erase(parked);
    self->drop_context(ctx);
  } else {
    for (SocketContext* ctx : self->contexts_) {
      if (ctx->fd == fd) {  // closed while watched (libcurl says REMOVE first; just in case)
        self->drop_context(ctx);
        break;
      }
    }
  }
  return ::close(fd);
}

void CurlUvDriver::drop_context(SocketContext* ctx) {
  if (multi_ != nullptr) curl_multi_assign(multi_, ctx->fd, nullptr);
  contexts_.erase(ctx);
  delete ctx;
}

// Called by libcurl when it wants to be woken after `timeout_ms` (-1: never).
int CurlUvDriver::on_curl_timer(CURLM*, long timeout_ms, void* userp) noexcept {
  auto* self = static_cast<CurlUvDriver*>(userp);
  if (timeout_ms < 0) {
    uv_timer_stop(self->timer_.get());
    return 0;
  }
  if (timeout_ms == 0 && self->in_perform_) {
    // Inside perform() we act on it before returning to the loop: a response's follow-up request
    // leaves in the same loop turn.
    self->timeout_now_ = true;
    return 0;
  }
  // 0 ms means "as soon as possible": a 0 ms uv timer fires at the start of the next loop turn.
  uv_timer_start(self->timer_.get(), &CurlUvDriver::on_uv_timeout, static_cast<uint64_t>(timeout_ms), 0);
  return 0;
}

// Called by libuv when a socket libcurl watches is ready (or failed).
void CurlUvDriver::on_uv_poll(uv_poll_t* poll, int status, int events) noexcept {
  auto* ctx = static_cast<SocketContext*>(poll->data);
  CurlUvDriver* self = ctx->driver;  // ctx may be freed inside perform()
  int flags = 0;
  if (status < 0) {
    flags = CURL_CSELECT_ERR;
  } else {
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  }
  self->perform(ctx->fd, flags);
}

// Called by libuv when libcurl's timeout expires.
void CurlUvDriver::on_uv_timeout(uv_timer_t* timer) noexcept {
  static_cast<CurlUvDriver*>(timer->data)->perform(CURL_SOCKET_TIMEOUT, 0);
}

void CurlUvDriver::perform(curl_socket_t fd, int flags) {
  if (multi_ == nullptr || in_perform_) return;
  in_perform_ = true;
  int running = 0;
  curl_multi_socket_action(multi_, fd, flags, &running);
  for (;;) {
    const bool finished = collect_done();
    if (!finished && !timeout_now_) break;
    const bool multiplexed = multiplexed_done_;
    multiplexed_done_ = false;
    // Report after the drain, so that what the callbacks start is added afresh (no re-entrancy).
    for (size_t i = 0; i < done_.size(); ++i) {
      if (done_[i].first != nullptr) done_[i].first->on_transfer_done(done_[i].second);
    }
    done_.clear();
    done_easy_.clear();
    if (multiplexed) kick_readers();
    if (timeout_now_) {
      timeout_now_ = false;
      if (multi_ != nullptr) curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
    }
  }
  in_perform_ = false;
}

// Moves every finished transfer out of the multi handle into done_; true if there was one.
bool CurlUvDriver::collect_done() {
  bool any = false;
  CURLMsg* msg = nullptr;
  int left = 0;
  while (multi_ != nullptr && (msg = curl_multi_info_read(multi_, &left)) != nullptr) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL* easy = msg->easy_handle;
    CURLcode result = msg->data.result;
    Transfer* transfer = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, reinterpret_cast<char**>(&transfer));
    if (transfer != nullptr) transfer->on_transfer_finishing(easy, result);
    long version = 0;
    curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &version);
    if (version >= CURL_HTTP_VERSION_2_0) multiplexed_done_ = true;
    curl_multi_remove_handle(multi_, easy);  // `msg` is invalid from here on
    done_.emplace_back(transfer, result);
    done_easy_.push_back(easy);
    any = true;
  }
  return any;
}

// libcurl 7.88 (Debian 12) can leave an HTTP/2 stream's response sitting in its buffers when the
// frames arrived while it was reading for another stream that then ended: the socket has nothing
// more to say, so no event ever comes for it and that transfer stalls until something else stirs
// the connection (seen here as 5 to 20 s stalls of a long-poll GET next to finishing POSTs). After a
// transfer ends, give every socket libcurl reads from one read turn; on a socket with nothing
// buffered this costs one recv() that returns EAGAIN.
void CurlUvDriver::kick_readers() {
  std::vector<curl_socket_t> fds;
  for (const SocketContext* ctx : contexts_) {
    if (ctx->wants_read) fds.push_back(ctx->fd);
  }
  int running = 0;
  for (curl_socket_t fd : fds) {
    if (multi_ == nullptr) return;
    curl_multi_socket_action(multi_, fd, CURL_CSELECT_IN, &running);
  }
}

}  // namespace tunnel

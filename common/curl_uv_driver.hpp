// The one place where libcurl's multi_socket API meets the libuv loop (shape of curl's
// docs/examples/multi-uv.c). Every HTTP request of the process runs through one CurlUvDriver.
#pragma once

#include "common/uv_handle.hpp"

#include <curl/curl.h>
#include <uv.h>

#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace tunnel {

// Something that waits for a transfer to finish. Put it in the easy handle's CURLOPT_PRIVATE.
class Transfer {
 public:
  virtual ~Transfer() = default;
  // Called by CurlUvDriver once the easy handle is out of the multi handle, never from inside a
  // libcurl callback, so it may start new transfers or cancel others.
  virtual void on_transfer_done(CURLcode result) noexcept = 0;
  // Called by CurlUvDriver just before the easy handle leaves the multi handle, while libcurl can
  // still tell about its connection (CURLINFO_ACTIVESOCKET of a CONNECT_ONLY transfer). No libcurl
  // multi calls here.
  virtual void on_transfer_finishing(CURL* /*easy*/, CURLcode /*result*/) noexcept {}
  // The socket libcurl polls for this transfer now (CURL_SOCKET_BAD: none), as its socket callback
  // said: libcurl's own CURLINFO_ACTIVESOCKET tells only after the transfer.
  curl_socket_t socket = CURL_SOCKET_BAD;
};

class CurlUvDriver {
 public:
  static constexpr long kMaxConnections = 64;  // idle connections libcurl may keep for reuse
  explicit CurlUvDriver(uv_loop_t* loop);
  ~CurlUvDriver();
  CurlUvDriver(const CurlUvDriver&) = delete;
  CurlUvDriver& operator=(const CurlUvDriver&) = delete;

  // Starts `easy`; `transfer` is told when it finishes (unless it is cancelled first).
  CURLMcode start(CURL* easy, Transfer* transfer);
  // Stops a running transfer; its Transfer hears nothing more about it.
  void cancel(CURL* easy);
  // Releases the multi handle and the timer; afterwards the loop can run dry. Idempotent.
  void close();

  CURLM* multi() const { return multi_; }

 private:
  struct SocketContext {
    CurlUvDriver* driver;
    curl_socket_t fd;
    UvHandle<uv_poll_t> poll;
    bool wants_read = false;  // libcurl last asked for CURL_POLL_IN on it
  };

  static int on_curl_socket(CURL* easy, curl_socket_t fd, int what, void* userp, void* socketp) noexcept;
  static int on_curl_timer(CURLM* multi, long timeout_ms, void* userp) noexcept;
  static int on_curl_closesocket(void* clientp, curl_socket_t fd) noexcept;
  static void on_uv_poll(uv_poll_t* poll, int status, int events) noexcept;
  static void on_uv_timeout(uv_timer_t* timer) noexcept;

  void perform(curl_socket_t fd, int flags);
  bool collect_done();
  void kick_readers();
  void park(SocketContext* ctx);
  void drop_context(SocketContext* ctx);

  uv_loop_t* loop_;
  CURLM* multi_ = nullptr;
  UvHandle<uv_timer_t> timer_;
  bool in_perform_ = false;
  bool timeout_now_ = false;
  bool multiplexed_done_ = false;  // an HTTP/2 transfer finished: its neighbours get a read turn  // libcurl asked for an immediate timeout while we were performing
  std::vector<std::pair<Transfer*, CURLcode>> done_;  // finished, not yet reported
  std::vector<CURL*> done_easy_;                      // the easy handles of done_, for cancel()
  std::unordered_set<SocketContext*> contexts_;       // every context, to free what is left at close()
  // Poll handles of sockets libcurl keeps open but does not watch now (an idle kept-alive
  // connection), stopped and kept for the socket's next request: a new uv_poll_t costs five
  // syscalls per request. Freed when libcurl closes the socket (CURLOPT_CLOSESOCKETFUNCTION).
  std::unordered_map<curl_socket_t, SocketContext*> parked_;
};

}  // namespace tunnel

// A local TCP listener that feeds accepted connections to tunnel sessions, one at a time: the
// server behind an endpoint has one target connection, so two sessions would mix their bytes. The
// same holds across forwards to one endpoint: they take turns through EndpointLocks.
#pragma once

#include "agent/config.hpp"
#include "agent/endpoint_locks.hpp"
#include "agent/session_marker.hpp"
#include "agent/tunnel_session.hpp"
#include "common/curl_uv_driver.hpp"
#include "common/retry_policy.hpp"
#include "common/uv_handle.hpp"

#include <deque>
#include <functional>
#include <memory>
#include <string>

namespace tunnel {

class Listener {
 public:
  // `locks` is shared by every forward of the process and outlives them.
  Listener(uv_loop_t* loop, CurlUvDriver& driver, EndpointLocks& locks, ListenAddress address, BusyPolicy on_busy,
           SessionSettings settings);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Binds and listens; logs "listening on HOST:PORT". On failure returns false with a message.
  bool start(std::string& error);
  // Stops accepting, drops waiting connections, ends the live session; `on_stopped` runs once
  // nothing of this listener is left.
  void stop(std::function<void()> on_stopped);
  int bound_port() const { return bound_port_; }
  ForwardStatus status() const;

 private:
  struct Waiting {
    UvHandle<uv_any_handle> client;
    std::string peer;
  };

  static void on_uv_connection(uv_stream_t* server, int status) noexcept;
  static bool is_loopback(const sockaddr_storage& addr);
  void on_connection(int status);
  void warn_if_few_descriptors(UvHandle<uv_any_handle>& client);
  bool warned_descriptors_ = false;
  void start_session(Waiting next);
  void on_session_closed();
  void on_turn();  // another forward's session to this endpoint ended: the endpoint is ours
  void maybe_stopped();

  uv_loop_t* loop_;
  CurlUvDriver& driver_;
  EndpointLocks& locks_;
  std::string endpoint_key_;  // EndpointLocks::key of the URL
  ListenAddress address_;
  BusyPolicy on_busy_;
  SessionSettings settings_;
  std::unique_ptr<ProxyChain> chain_;  // with two or more proxies
  UvHandle<uv_tcp_t> server_;
  int bound_port_ = 0;
  std::string bound_name_;  // "127.0.0.1:8000"
  uint64_t sessions_done_ = 0;
  uint64_t next_session_id_ = 1;
  std::unique_ptr<TunnelSession> session_;
  std::unique_ptr<SessionMarker> marker_;  // while session_ runs: check, run elsewhere, will not probe
  std::deque<Waiting> waiting_;
  bool stopping_ = false;
  std::function<void()> on_stopped_;
  // After a session ended with 503 (target not running) or could not reach the target (410 before
  // any data), the next one waits before its first
  // request: 1 s, doubling to 16 s, until a session reaches a live tunnel again.
  RefusalBackoff refusals_;  // after 503 or a refused target, the next session waits
  uint64_t next_attempt_ns_ = 0;
  uint64_t round_trip_ns_ = 0;  // what the last session measured, for the next one
};

// "127.0.0.1:54321" or "[::1]:54321" for a connected or bound socket.
std::string socket_name(const uv_tcp_t* tcp, bool peer);

}  // namespace tunnel

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

#include <list>
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
  // With several forwards, sessions are named after the local port ("8000#3"), so that a log line
  // can be traced to its forward; alone, by number ("3"). Call before start().
  void name_sessions_by_port() { name_by_port_ = true; }

 private:
  // A connection waiting for its turn. It is read meanwhile, so that one that goes away frees its
  // descriptor and its place (a queue of dead connections would hold the descriptors the live
  // session needs); what it sends is kept for its session.
  struct Waiting {
    Listener* owner = nullptr;
    UvHandle<uv_any_handle> client;
    std::string peer;
    std::string early;  // bytes it sent while it waited, at most kEarlyCap
    bool ended = false;  // it shut its side after sending `early`
  };
  static constexpr size_t kEarlyCap = 64 * 1024;

  static void on_uv_waiting_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept;
  static void on_uv_waiting_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept;
  void on_waiting_read(Waiting& w, ssize_t nread, const uv_buf_t* buf);

  static void on_uv_connection(uv_stream_t* server, int status) noexcept;
  static bool is_loopback(const sockaddr_storage& addr);
  void on_connection(int status);
  void warn_if_few_descriptors(UvHandle<uv_any_handle>& client);
  bool warned_descriptors_ = false;
  void start_session(Waiting&& next);
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
  std::string last_id_;  // the last session that ended: its name, whether it failed, and why
  bool last_failed_ = false;
  std::string last_reason_;
  uint64_t next_session_id_ = 1;
  bool name_by_port_ = false;
  std::string session_prefix_;  // "8000#" once bound, when named by port
  std::unique_ptr<TunnelSession> session_;
  // Ended sessions whose last requests still run to their 410 (TunnelSession::reaping), each with
  // a deadline, after which they are cancelled; the reap timer sweeps them.
  struct Reaping {
    std::unique_ptr<TunnelSession> session;
    uint64_t deadline_ns;
  };
  static constexpr uint64_t kReapDeadlineNs = 2'000'000'000;
  std::list<Reaping> reaping_;
  UvHandle<uv_timer_t> reap_timer_;
  void sweep_reaping();
  std::unique_ptr<SessionMarker> marker_;  // while session_ runs: check, run elsewhere, will not probe
  std::list<Waiting> waiting_;  // a list: libuv holds each one's address while it is read
  std::string early_buffer_ = std::string(kEarlyCap, '\0');  // read buffer for waiting connections
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

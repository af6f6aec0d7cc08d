#include "agent/listener.hpp"


#include "common/log.hpp"
#include "common/platform.hpp"
#include "common/url.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace tunnel {

std::string socket_name(const uv_tcp_t* tcp, bool peer) {
  sockaddr_storage addr{};
  int len = sizeof addr;
  int rc = peer ? uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&addr), &len)
                : uv_tcp_getsockname(tcp, reinterpret_cast<sockaddr*>(&addr), &len);
  if (rc != 0) return "?";
  char ip[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    uv_ip6_name(a, ip, sizeof ip);
    return fmt::format("[{}]:{}", ip, ntohs(a->sin6_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
  uv_ip4_name(a, ip, sizeof ip);
  return fmt::format("{}:{}", ip, ntohs(a->sin_port));
}

Listener::Listener(uv_loop_t* loop, CurlUvDriver& driver, EndpointLocks& locks, ListenAddress address,
                   BusyPolicy on_busy, SessionSettings settings)
    : loop_(loop),
      driver_(driver),
      locks_(locks),
      address_(std::move(address)),
      on_busy_(on_busy),
      settings_(std::move(settings)) {
  endpoint_key_ = EndpointLocks::key(settings_.http.url);
  if (settings_.http.proxy.hops.size() > 1) chain_ = std::make_unique<ProxyChain>(loop_, driver_, settings_.http);
  reap_timer_.init(loop_, uv_timer_init);
  reap_timer_.get()->data = this;
}

Listener::~Listener() { locks_.forget(this); }

bool Listener::start(std::string& error) {
  if (chain_ && !chain_->start(error)) return false;
  sockaddr_storage addr{};
  if (uv_ip4_addr(address_.host.c_str(), address_.port, reinterpret_cast<sockaddr_in*>(&addr)) != 0 &&
      uv_ip6_addr(address_.host.c_str(), address_.port, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
    error = fmt::format("cannot listen on {}: not an IP address", address_.host);
    return false;
  }
  int rc = server_.init(loop_, uv_tcp_init);
  if (rc == 0) {
    server_.get()->data = this;
    rc = uv_tcp_bind(server_.get(), reinterpret_cast<const sockaddr*>(&addr), 0);
  }
  if (rc == 0) rc = uv_listen(server_.as_stream(), 16, &Listener::on_uv_connection);
  if (rc != 0) {
    std::string hint = rc == UV_EADDRINUSE    ? "another program uses that port: pick another with --listen"
                       : rc == UV_EADDRNOTAVAIL ? "that address is not on this machine"
                       : rc == UV_EACCES        ? "ports below 1024 need privileges: pick another with --listen"
                                                : "check the --listen address";
    std::string where = address_.host.find(':') != std::string::npos
                            ? fmt::format("[{}]:{}", address_.host, address_.port)
                            : fmt::format("{}:{}", address_.host, address_.port);
    error = fmt::format("cannot listen on {}: {}; {}", where, uv_strerror(rc), hint);
    server_.close();
    return false;
  }
  std::string bound = socket_name(server_.get(), false);
  bound_port_ = std::stoi(bound.substr(bound.rfind(':') + 1));
  if (name_by_port_) session_prefix_ = std::to_string(bound_port_) + "#";
  bound_name_ = bound;
  locks_.label(this, "the forward on " + bound);
  log::info("listening on {}, tunnelling to {}", bound, settings_.http.url);
  if (!is_loopback(addr)) {
    log::warn("{} is reachable from other machines: whoever connects to it gets the debug port of the JVM "
              "behind {}, and a debugger can make a JVM run any code; listen on 127.0.0.1 (the default) unless "
              "that is what you want",
              bound, host_port(settings_.http.url));
  }
  return true;
}

// 127.0.0.0/8 or ::1 (or ::ffff:127.x): only this machine can connect.
bool Listener::is_loopback(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET) {
    return (ntohl(reinterpret_cast<const sockaddr_in&>(addr).sin_addr.s_addr) >> 24) == 127;
  }
  const auto& a6 = reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr;
  if (IN6_IS_ADDR_LOOPBACK(&a6)) return true;
  return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
}

// Out of file descriptors, libuv closes the connections waiting to be accepted without a word (its
// EMFILE trick), and libcurl can open no socket: said once, while some are left, with the remedy.
void Listener::warn_if_few_descriptors(UvHandle<uv_any_handle>& client) {
  if (warned_descriptors_) return;
  const auto fd = platform::descriptor_number(client.as_handle());
  const auto limit = platform::descriptor_limit();
  if (!fd || !limit) return;
  const auto left = *limit - *fd;
  if (left > *limit / 8 && left > 16) return;
  warned_descriptors_ = true;
  log::warn("file descriptors are running out (this connection got number {} of at most {}): further local "
            "connections will be closed unanswered and requests will fail; close idle connections, or raise "
            "the limit (ulimit -n; the agent already raised its soft limit to the hard one)",
            *fd, *limit);
}

// Called by libuv when a local client connects.
void Listener::on_uv_connection(uv_stream_t* server, int status) noexcept {
  static_cast<Listener*>(server->data)->on_connection(status);
}

void Listener::on_connection(int status) {
  if (status < 0) {
    log::warn("accepting a local connection failed: {}", uv_strerror(status));
    return;
  }
  Waiting next;
  if (next.client.init(loop_, &LocalEnd::init_tcp) != 0) return;
  if (const int rc = uv_accept(server_.as_stream(), next.client.as_stream()); rc != 0) {
    log::warn("accepting a local connection failed: {}", uv_strerror(rc));
    return;
  }
  next.peer = socket_name(&next.client.get()->tcp, true);
  warn_if_few_descriptors(next.client);
  if (stopping_) return;  // closed by the owner going out of scope
  if (!session_ && waiting_.empty() && locks_.acquire(endpoint_key_, this)) {
    start_session(std::move(next));
    return;
  }
  const std::string busy = session_ ? fmt::format("session {} is still running", session_->id())
                                    : locks_.label_of(locks_.holder(endpoint_key_)) + " has a session to the same endpoint";
  if (on_busy_ == BusyPolicy::refuse) {
    log::warn("refused local connection from {}: {} and --on-busy=refuse is set (the endpoint carries one "
              "connection at a time)",
              next.peer, busy);
    return;
  }
  log::info("local connection from {} waits: {} (the endpoint carries one connection at a time; "
            "--on-busy=refuse turns it away instead)",
            next.peer, busy);
  waiting_.push_back(std::move(next));
  Waiting& w = waiting_.back();
  w.owner = this;
  w.client.as_handle()->data = &w;
  if (const int rc = uv_read_start(w.client.as_stream(), &Listener::on_uv_waiting_alloc,
                                   &Listener::on_uv_waiting_read);
      rc != 0) {
    log::warn("local connection from {}: cannot read it while it waits: {}", w.peer, uv_strerror(rc));
  }
  if (!session_) locks_.wait(endpoint_key_, this, [this] { on_turn(); });
}

// Called by libuv for a buffer to read a waiting connection into.
void Listener::on_uv_waiting_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
  auto* w = static_cast<Waiting*>(handle->data);
  // Reading stops once kEarlyCap bytes are kept, so there is room for one byte at least.
  *buf = uv_buf_init(w->owner->early_buffer_.data(), static_cast<unsigned>(kEarlyCap - w->early.size()));
}

// Called by libuv with bytes, EOF or an error from a waiting connection.
void Listener::on_uv_waiting_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
  auto* w = static_cast<Waiting*>(stream->data);
  w->owner->on_waiting_read(*w, nread, buf);
}

void Listener::on_waiting_read(Waiting& w, ssize_t nread, const uv_buf_t* buf) {
  if (nread > 0) {
    w.early.append(buf->base, static_cast<size_t>(nread));
    if (w.early.size() >= kEarlyCap) uv_read_stop(w.client.as_stream());  // the rest waits in the socket
    return;
  }
  if (nread == 0) return;
  uv_read_stop(w.client.as_stream());
  if (nread == UV_EOF && !w.early.empty()) {
    w.ended = true;  // sent something and shut its side: its session delivers the answer
    return;
  }
  log::info("local connection from {} {} while it waited; it is dropped", w.peer,
            nread == UV_EOF ? "closed" : fmt::format("failed ({})", uv_strerror(static_cast<int>(nread))));
  auto it = std::find_if(waiting_.begin(), waiting_.end(), [&](const Waiting& x) { return &x == &w; });
  if (it != waiting_.end()) waiting_.erase(it);  // closes its socket
}

void Listener::on_turn() {
  if (stopping_ || waiting_.empty() || session_) {
    if (!session_) locks_.release(endpoint_key_, this);
    return;
  }
  Waiting next = std::move(waiting_.front());
  waiting_.pop_front();
  start_session(std::move(next));
}

void Listener::start_session(Waiting&& next) {
  if (next.owner != nullptr) uv_read_stop(next.client.as_stream());  // the session reads it from now on
  const std::string id = session_prefix_ + std::to_string(next_session_id_++);
  session_ = std::make_unique<TunnelSession>(loop_, driver_, settings_, chain_.get(),
                                             LocalEnd::from_tcp(std::move(next.client)), id,
                                             std::move(next.peer), [this](TunnelSession&) { on_session_closed(); });
  session_->seed_round_trip(round_trip_ns_);
  marker_ = std::make_unique<SessionMarker>(settings_.http.url);
  const uint64_t now = uv_hrtime();
  session_->start(next_attempt_ns_ > now ? (next_attempt_ns_ - now) / 1000000 : 0, next.early, next.ended);
}

void Listener::on_session_closed() {
  if (session_->round_trip_ns() != 0) round_trip_ns_ = session_->round_trip_ns();
  // 503 (target not running) and 410 before any data (target refused): the next session waits.
  if (session_->ended_target_unavailable() || session_->ended_target_refused()) {
    next_attempt_ns_ = uv_hrtime() + refusals_.refused() * 1000000;
  } else if (session_->was_served()) {
    refusals_.served();
    next_attempt_ns_ = 0;
  }
  last_id_ = session_->id();
  last_failed_ = session_->failed();
  last_reason_ = session_->end_reason();
  if (session_->reaping() && !stopping_) {
    // Its last requests come back warm for the next session; it takes no part in it.
    session_->on_reaped([this] { uv_timer_start(reap_timer_.get(), [](uv_timer_t* t) {
                                   static_cast<Listener*>(t->data)->sweep_reaping();
                                 }, 0, 0); });
    reaping_.push_back({std::move(session_), uv_hrtime() + kReapDeadlineNs});
    sweep_reaping();
  }
  session_.reset();
  marker_.reset();
  ++sessions_done_;
  if (stopping_) {
    locks_.forget(this);
    maybe_stopped();
    return;
  }
  // Forwards waiting for this endpoint go first; then this one's next connection, in line.
  locks_.release(endpoint_key_, this);
  if (waiting_.empty()) return;
  if (locks_.acquire(endpoint_key_, this)) {
    on_turn();
  } else {
    locks_.wait(endpoint_key_, this, [this] { on_turn(); });
  }
}

ForwardStatus Listener::status() const {
  ForwardStatus out;
  out.listen = bound_name_;
  out.endpoint = host_port(settings_.http.url);
  if (session_) out.session = session_->status();
  out.waiting = waiting_.size();
  out.sessions_done = sessions_done_;
  out.last_id = last_id_;
  out.last_failed = last_failed_;
  out.last_reason = last_reason_;
  const uint64_t now = uv_hrtime();
  if (next_attempt_ns_ > now) out.retry_in_s = static_cast<double>(next_attempt_ns_ - now) / 1e9;
  return out;
}

void Listener::stop(std::function<void()> on_stopped) {
  if (stopping_) return;
  stopping_ = true;
  on_stopped_ = std::move(on_stopped);
  server_.close();
  if (!waiting_.empty()) {
    log::info("dropping {} waiting local connection(s)", waiting_.size());
    waiting_.clear();  // each closes its socket
  }
  if (session_) {
    session_->stop();  // the lock goes once it has ended
  } else {
    locks_.forget(this);
    maybe_stopped();
  }
}

void Listener::sweep_reaping() {
  const uint64_t now = uv_hrtime();
  reaping_.remove_if([now](const Reaping& r) { return !r.session->reaping() || now >= r.deadline_ns; });
  if (reaping_.empty()) {
    uv_timer_stop(reap_timer_.get());
    return;
  }
  uint64_t next = UINT64_MAX;
  for (const Reaping& r : reaping_) next = std::min(next, r.deadline_ns);
  uv_timer_start(reap_timer_.get(), [](uv_timer_t* t) { static_cast<Listener*>(t->data)->sweep_reaping(); },
                 (next - now) / 1000000 + 1, 0);
}

void Listener::maybe_stopped() {
  if (session_ || !on_stopped_) return;
  reaping_.clear();  // cancels what they still run, before the chain and the driver go
  reap_timer_.close();
  if (chain_) chain_->close();  // before the driver goes: its hop transfers run there
  auto done = std::move(on_stopped_);
  on_stopped_ = nullptr;
  done();
}

}  // namespace tunnel

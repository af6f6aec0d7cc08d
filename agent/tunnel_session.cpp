#include "agent/tunnel_session.hpp"

#include "common/log.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace tunnel {
namespace {

using protocol::Answer;

double seconds_since(uint64_t start_ns) { return static_cast<double>(uv_hrtime() - start_ns) / 1e9; }

}  // namespace

TunnelSession::TunnelSession(uv_loop_t* loop, CurlUvDriver& driver, const SessionSettings& settings,
                             ProxyChain* chain, LocalEnd client, std::string id, std::string peer,
                             ClosedCallback on_closed)
    : loop_(loop),
      driver_(driver),
      settings_(settings),
      http_(settings.http),
      chain_(chain),
      client_(std::move(client)),
      id_(std::move(id)),
      peer_(std::move(peer)),
      on_closed_(std::move(on_closed)),
      planner_(settings.planner),
      download_(settings.download_window),
      recovery_({settings.retry_window_ms, settings.retry_base_ms, settings.retry_cap_ms, kUnservedAttempts},
                uv_hrtime() ^ (static_cast<uint64_t>(reinterpret_cast<uintptr_t>(this)) << 16)),
      started_ns_(uv_hrtime()) {
  client_.set_data(this);
  gap_timer_.init(loop_, uv_timer_init);
  gap_timer_.get()->data = this;
  phase_timer_.init(loop_, uv_timer_init);
  phase_timer_.get()->data = this;
  pump_timer_.init(loop_, uv_timer_init);
  pump_timer_.get()->data = this;
  linger_timer_.init(loop_, uv_timer_init);
  linger_timer_.get()->data = this;
  stall_timer_.init(loop_, uv_timer_init);
  stall_timer_.get()->data = this;
  suspect_timer_.init(loop_, uv_timer_init);
  suspect_timer_.get()->data = this;
}

TunnelSession::~TunnelSession() {
  for (auto& r : pool_) {
    if (r->busy) driver_.cancel(r->exchange.easy());
  }
  if (disconnect_ && disconnect_->busy) driver_.cancel(disconnect_->exchange.easy());
}

void TunnelSession::start(uint64_t hold_off_ms, const std::string& early, bool early_eof) {
  log::info("session {}: opened for local client {} (endpoint {})", id_, peer_, http_.url);
  if (hold_off_ms > 0) {
    log::info("session {}: the target was not running or not reachable at the last attempt; asking the server "
              "again in {:.1f} s",
              id_, static_cast<double>(hold_off_ms) / 1000);
    hold_off_until_ns_ = uv_hrtime() + hold_off_ms * 1000000;
  }
  if (client_.tcp() != nullptr) uv_tcp_nodelay(client_.tcp(), 1);
  if (!early.empty()) on_local_data(early.data(), early.size());  // pumps
  if (early_eof) {
    on_local_eof(jdwp_.debugger() ? "the debugger detached (it closed its connection)"
                                  : "the local client closed the connection");
    return;
  }
  if (upload_.pending() < upload_window()) set_reading(true);  // the same back-pressure as on_local_data
  pump();
}

void TunnelSession::stop() {
  if (state_ == State::open || state_ == State::draining) {
    set_reading(false);
    upload_.discard_pending();  // the agent is going away: the server is told to drop the target
    stopping_ = true;
    finish("the agent is stopping", false, true);
  }
}

// ---- local socket -------------------------------------------------------------------------

void TunnelSession::set_reading(bool on) {
  if (on == reading_ || !client_) return;
  if (on) {
    int rc = uv_read_start(client_.input(), &TunnelSession::on_uv_alloc, &TunnelSession::on_uv_read);
    if (rc != 0) {
      finish(fmt::format("cannot read from the local client: {}", uv_strerror(rc)), true, true);
      return;
    }
  } else {
    uv_read_stop(client_.input());
  }
  reading_ = on;
  reading_since_ns_ = on ? uv_hrtime() : UINT64_MAX;
}

// Called by libuv for a buffer to read the local socket into.
void TunnelSession::on_uv_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
  auto* self = static_cast<TunnelSession*>(handle->data);
  *buf = uv_buf_init(self->read_buffer_.data(), static_cast<unsigned>(self->read_buffer_.size()));
}

// Called by libuv with bytes (or EOF, or an error) from the local client.
void TunnelSession::on_uv_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
  auto* self = static_cast<TunnelSession*>(stream->data);
  if (nread > 0) {
    self->on_local_data(buf->base, static_cast<size_t>(nread));
  } else if (nread == UV_EOF) {
    self->on_local_eof(self->jdwp_.debugger() ? "the debugger detached (it closed its connection)"
                                              : "the local client closed the connection");
  } else if (nread < 0) {
    self->on_local_eof(nread == UV_ECONNRESET ? "the local client reset the connection"
                                              : "reading from the local client failed",
                       false);
  }
}

void TunnelSession::on_local_data(const char* data, size_t size) {
  if (state_ != State::open) return;
  const uint64_t now = uv_hrtime();
  if (jdwp_.from_client(data, size)) note_jdwp();
  jdwp_packets_.from_client(data, size, now);
  if (rtt_since_ns_ == 0) rtt_since_ns_ = now;
  try {
    upload_.append(data, size, now);
  } catch (const std::bad_alloc&) {
    finish("out of memory buffering local data", true, true);
    return;
  }
  if (upload_.pending() >= upload_window()) set_reading(false);
  pump();
}

void TunnelSession::on_local_eof(const char* why, bool clean) {
  set_reading(false);
  if (state_ != State::open) return;
  if (settings_.output_outlives_input && !local_input_ended_) {
    // stdio, as netcat: the rest goes up, and the target's output keeps coming until it closes.
    log::debug("session {}: {}; the target's output keeps coming until it closes", id_, why);
    local_input_ended_ = true;
    uv_timer_start(linger_timer_.get(), &TunnelSession::on_uv_linger_timeout, settings_.linger_ms, 0);
    pump();
    return;
  }
  if (stalled_since_ns_ != 0) {
    // Not "the local client closed the connection": it gave up on an answer that never came.
    finish(fmt::format("the local client gave up after the target had answered nothing for {:.0f} s: {}",
                       seconds_since(stalled_since_ns_), stall_text()),
           true, true);
    return;
  }
  if (clean && !jdwp_.debugger() && (upload_.pending() > 0 || upload_.answer_owed())) {
    // An end of input is not the end of the connection: a client that sent its request and shut
    // its write side (nc -N, shutdown(SHUT_WR) in scripts) waits for the answer, which got 0 bytes
    // when the session ended here. TCP cannot tell that from a close, so while the target owes an
    // answer (nothing came since the client's last bytes) its output keeps coming as in --stdio:
    // until the target closes, or says nothing for the linger time, or a write finds the client
    // gone. A client that had its answer and closed ends now, freeing the target at once; so does
    // a debugger (JDWP has no half-close).
    log::debug("session {}: {}; the target's output keeps coming until it closes (a half-close)", id_, why);
    local_input_ended_ = true;
    half_closed_ = true;
    uv_timer_start(linger_timer_.get(), &TunnelSession::on_uv_linger_timeout, settings_.linger_ms, 0);
    pump();
    return;
  }
  log::debug("session {}: {}; sending what is left, then disconnecting", id_, why);
  end_reason_ = why;
  state_ = State::draining;
  draining_since_ns_ = uv_hrtime();
  pump();
}

void TunnelSession::write_local(std::vector<char> data) {
  if (data.empty() || !client_) return;
  const size_t size = data.size();
  if (jdwp_.from_target(data.data(), size)) note_jdwp();
  if (auto received = jdwp_packets_.from_target(data.data(), size); received && jdwp_tracked()) {
    note_target_received(*received);
  }
  if (rtt_since_ns_ != 0) {
    last_rtt_ms_ = static_cast<double>(uv_hrtime() - rtt_since_ns_) / 1e6;
    rtt_since_ns_ = 0;
  }
  auto* w = new LocalWrite{{}, std::move(data), this};
  uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(size));
  int rc = uv_write(&w->req, client_.output(), &buf, 1, &TunnelSession::on_uv_write);
  if (rc != 0) {
    delete w;
    finish(fmt::format("writing to the local client failed: {}", uv_strerror(rc)), true, true);
    return;
  }
  download_.writing(size);
}

SessionStatus TunnelSession::status() const {
  SessionStatus out;
  out.id = id_;
  out.age_s = static_cast<double>(uv_hrtime() - started_ns_) / 1e9;
  out.bytes_up = bytes_up_;
  out.bytes_down = bytes_down_;
  out.rtt_ms = last_rtt_ms_;
  if (state_ != State::open) {
    out.state = "closing";
  } else if (stalled_since_ns_ != 0) {
    out.state = fmt::format("stalled: no answer for {:.0f} s", seconds_since(stalled_since_ns_));
  } else if (recovery_.failures_in_row() > 0) {
    out.state = fmt::format("retrying ({} failed in a row)", recovery_.failures_in_row());
  } else if (jdwp_.state() == JdwpHandshake::State::attached) {
    out.state = "debugger attached";
  } else if (jdwp_.state() == JdwpHandshake::State::awaiting_jvm) {
    out.state = "debugger attaching";
  } else {
    out.state = served_ ? "connected" : "connecting";
  }
  return out;
}

// Once, for a client that is not a debugger: when both the first tunnel answer and the bytes that
// show the client is not JDWP have come, in either order (each of the two happens once).
void TunnelSession::note_connected() {
  if (!served_ || jdwp_.state() != JdwpHandshake::State::not_jdwp) return;
  log::info("session {}: connected to the target after {:.0f} ms", id_,
            static_cast<double>(uv_hrtime() - started_ns_) / 1e6);
}

void TunnelSession::note_jdwp() {
  const double ms = static_cast<double>(uv_hrtime() - started_ns_) / 1e6;
  switch (jdwp_.state()) {
    case JdwpHandshake::State::attached:
      log::info("session {}: debugger attached: the JVM answered the JDWP handshake after {:.0f} ms", id_, ms);
      break;
    case JdwpHandshake::State::wrong_answer:
      log::warn("session {}: the target answered the debugger's JDWP handshake with something else: the server's "
                "target is not a JDWP port (check the address in the JVM's -agentlib:jdwp=... option)",
                id_);
      break;
    case JdwpHandshake::State::not_jdwp:
      note_connected();
      break;
    case JdwpHandshake::State::awaiting_jvm:
      log::debug("session {}: the debugger sent the JDWP handshake; waiting for the JVM's answer", id_);
      break;
    case JdwpHandshake::State::unknown:
      break;
  }
}

// Called by libuv when bytes for the local client have been written (or the write failed).
void TunnelSession::on_uv_write(uv_write_t* req, int status) noexcept {
  auto* w = reinterpret_cast<LocalWrite*>(req);
  TunnelSession* self = w->session;
  const size_t size = w->data.size();
  delete w;
  self->download_.written(size);
  if (status == 0) {
    self->bytes_down_ += size;
    self->pump();
  } else if (status != UV_ECANCELED) {
    if (self->half_closed_ && (status == UV_EPIPE || status == UV_ECONNRESET)) {
      // Its input ended, and now it refuses output: it had closed the connection, not half.
      self->finish("the local client closed the connection", false, true);
      return;
    }
    self->finish(fmt::format("writing to the local client failed: {}", uv_strerror(status)), true, true);
  }
}

// ---- requests -----------------------------------------------------------------------------

TunnelSession::Request& TunnelSession::idle_request() {
  for (auto& r : pool_) {
    if (!r->busy) return *r;
  }
  pool_.push_back(std::make_unique<Request>(*this, http_, chain_));
  pool_.back()->proxy_choice = proxy_choice_;
  return *pool_.back();
}

// Before any answer, proxy 1 could not be reached: when a PAC script named further choices, the
// next one is taken (for this session: the next session tries the script's first again). True
// when it was; the failed request goes again by it.
bool TunnelSession::take_next_pac_choice(Request& r, CURLcode result) {
  if (served_ || chain_ != nullptr || http_.proxy.pac_next.empty() || !r.exchange.failed_at_proxy_1(result)) {
    return false;
  }
  const std::string why = r.exchange.describe_failure(result);
  std::optional<ProxyHop> next = std::move(http_.proxy.pac_next.front());
  http_.proxy.pac_next.erase(http_.proxy.pac_next.begin());
  if (next) {
    http_.proxy.hops.assign(1, std::move(*next));
  } else {
    http_.proxy.hops.clear();
  }
  ++proxy_choice_;
  log::warn("session {}: {}; taking the PAC script's next choice: {}", id_, why,
            http_.proxy.hops.empty() ? std::string("DIRECT") : "proxy " + http_.proxy.hops.front().display);
  return true;
}

// Sends what the planner says, one request at a time, until it says nothing; first, after any
// back-off, what has to go again; after local EOF, disconnects once the upload is through.
void TunnelSession::pump() {
  if (state_ != State::open && state_ != State::draining) return;
  if (target_gone_) {
    end_after_target_closed();  // nothing more to send: the target is gone
    return;
  }
  if (recovery_.releases_owed() > 0 && recovery_.failures_in_row() <= 1) {
    // After one failure, at once, not after the back-off: a request the server may hold for a
    // dead connection must be released before the target's next bytes go out on it.
    send_releases();
    if (state_ != State::open && state_ != State::draining) return;
  }
  if (hold_off_until_ns_ != 0) {
    const uint64_t now = uv_hrtime();
    if (now < hold_off_until_ns_) {
      uv_timer_start(pump_timer_.get(), &TunnelSession::on_uv_pump_timeout, (hold_off_until_ns_ - now) / 1000000 + 1, 0);
      return;
    }
    hold_off_until_ns_ = 0;
    early_410_pending_ = false;  // the retry goes now
  }
  send_releases();
  if (state_ != State::open && state_ != State::draining) return;
  // Payloads wait until the releases have surely reached the server: the target's answer to them
  // must not find a dead request still held.
  const uint64_t gate_ns = release_gate_ns(uv_hrtime());
  for (;;) {
    const uint64_t now = uv_hrtime();
    in_flight_.clear();
    for (const auto& r : pool_) {
      if (!r->busy) continue;
      // A POST counts as sent once the peer acknowledged all of it (a slow link holds it long).
      const uint64_t sent = r->kind == Kind::post ? r->exchange.delivered_ns(now, r->socket) : r->exchange.body_sent_ns();
      const bool applied = r->kind == Kind::post && r->post->applied;
      const bool awaiting_ack = r->kind == Kind::post && sent == 0;
      in_flight_.push_back({r->kind == Kind::get, r->body_size(), r->started_ns, sent, applied, awaiting_ack});
      // Reached, for the quiet rule: acknowledged too (rule (a) holds the next POST until then).
      if (r->kind == Kind::post && sent != 0) note_post_reached(sent, r->body_size());
    }
    Post* resend = upload_.next_resend();  // POSTs to send again go first, lowest x-seq first
    const bool local_keeps_up = download_.keeps_up();
    const bool upload_waiting = local_keeps_up && (resend != nullptr || upload_.pending() > 0);
    const bool keep_one_held = in_flight_.empty() && download_.may_keep_one_held();
    // A target that talked answers the last POST (its answer may be on its way already); one that
    // has not talked yet may be about to: only after a few POSTs without a word is it taken as a sink.
    const bool talker = download_.any_payload() || upload_.next_seq() <= kPostsBeforeSink + 1;
    const UploadState upload{gate_ns == 0 && upload_waiting, download_.last_payload_ns(), target_idle(),
                             talker ? last_post_sent_ns_ : 0, last_post_bytes_, download_.last_payload_bytes(),
                             jvm_awaits_handshake()};
    const Plan plan = planner_.next(in_flight_, upload, local_keeps_up || keep_one_held, uv_hrtime());
    if (plan.next == Plan::Next::nothing) {
      uint64_t recheck_ns = plan.recheck_in_ns;
      if (gate_ns > 0 && (recheck_ns == 0 || gate_ns < recheck_ns)) recheck_ns = gate_ns;
      if (recheck_ns > 0) {
        uv_timer_start(pump_timer_.get(), &TunnelSession::on_uv_pump_timeout, recheck_ns / 1000000 + 1, 0);
      }
      break;
    }
    if (const uint64_t pace_ns = pacer_.wait_ns(uv_hrtime()); pace_ns > 0) {
      // Answers that carry nothing come back at once: not the server's doing (see note_empty_answer).
      uv_timer_start(pump_timer_.get(), &TunnelSession::on_uv_pump_timeout, pace_ns / 1000000 + 1, 0);
      break;
    }
    if (plan.next == Plan::Next::post && resend != nullptr) {
      resend->resend = false;
      send_post(*resend);
    } else if (plan.next == Plan::Next::post) {
      send_post();
    } else {
      send_get();
    }
    if (state_ != State::open && state_ != State::draining) return;
  }
  if (state_ == State::open && !reading_ && !local_input_ended_ && upload_.pending() < upload_window()) {
    set_reading(true);
  }
  if (state_ == State::draining && upload_.pending() == 0) drain();
}

// The requests that make the server release one it may hold for a dead connection.
void TunnelSession::send_releases() {
  // Not while a POST may still be unread: a release would take its body with it.
  const uint64_t now = uv_hrtime();
  uint64_t unsettled = 0;
  for (const auto& r : pool_) {
    if (r->busy && r->kind == Kind::post && !r->post->applied) {
      unsettled = std::max(unsettled, planner_.settle_wait_ns(r->exchange.body_sent_ns(), now, r->body_size()));
    }
  }
  if (recovery_.releases_owed() > 0 && unsettled > 0) {
    uv_timer_start(pump_timer_.get(), &TunnelSession::on_uv_pump_timeout, unsettled / 1000000 + 1, 0);
    return;
  }
  while (recovery_.releases_owed() > 0 && (state_ == State::open || state_ == State::draining)) {
    recovery_.release_sent();
    Request& r = send_get();
    r.release = true;
  }
}

// 0 once the releases sent after the last failure have surely been read by the server (or none
// is needed); else how long until they are.
uint64_t TunnelSession::release_gate_ns(uint64_t now) const {
  if (!recovery_.release_pending()) return 0;
  if (recovery_.releases_owed() > 0) return planner_.settle_ns();  // not sent yet (back-off)
  uint64_t wait = 0;
  for (const auto& r : pool_) {
    if (!r->busy || !r->release || r->epoch != recovery_.epoch()) continue;
    wait = std::max(wait, planner_.settle_wait_ns(r->exchange.body_sent_ns(), now));
  }
  return wait;
}

void TunnelSession::drain() {
  if (hold_off_until_ns_ != 0) return;  // refused POSTs go again first; pump() comes back here
  // A POST held by the server may stay unanswered for a whole long poll, but once its body is
  // surely read (settled: sent a few milliseconds ago) the disconnect cannot overtake it.
  const uint64_t now = uv_hrtime();
  uint64_t wait_ns = 0;
  const uint64_t unsent = upload_.lowest_resend_seq();  // 0: none
  for (const auto& r : pool_) {
    if (!r->busy || r->kind != Kind::post) continue;
    wait_ns = std::max(wait_ns, planner_.settle_wait_ns(r->exchange.body_sent_ns(), now, r->body_size()));
  }
  const bool over = now - draining_since_ns_ >= settings_.drain_limit_ms * 1000000;
  if (!over && (wait_ns > 0 || unsent != 0)) {
    // A resend goes as the planner allows: look again shortly.
    uv_timer_start(phase_timer_.get(), &TunnelSession::on_uv_phase_timeout, unsent != 0 ? 10 : wait_ns / 1000000 + 1, 0);
  } else if (unsent != 0) {
    finish(fmt::format("{}; POST x-seq {} was still to be sent again after {:.1f} s (its body may have been lost by the "
                       "server): the target may not have the client's last bytes",
                       end_reason_, unsent, static_cast<double>(settings_.drain_limit_ms) / 1000),
           true, true);
  } else {
    finish(end_reason_, false, true);
  }
}

// Called by libuv when the planner asked to look again.
void TunnelSession::on_uv_pump_timeout(uv_timer_t* timer) noexcept {
  static_cast<TunnelSession*>(timer->data)->pump();
}

void TunnelSession::build_headers(HeaderLines& lines, const SessionSettings& settings, Kind kind, uint64_t seq) {
  lines.clear();
  if (settings.secret) lines.add().append(settings.secret_header).append(": ").append(*settings.secret);
  for (const auto& header : settings.headers) lines.add().append(header);
  if (kind == Kind::post) {
    lines.add().append("Content-Type: ").append(protocol::kPayloadType);
    char digits[24];
    const auto end = fmt::format_to_n(digits, sizeof digits, "{}", seq).out;
    lines.add().append(protocol::kSeqHeader).append(": ").append(digits, static_cast<size_t>(end - digits));
  } else if (kind == Kind::disconnect) {
    lines.add().append("Content-Type: ").append(protocol::kDisconnectType);
  }
  if (kind != Kind::get) lines.add().append("Expect:");  // the server never answers 100-continue
}

TunnelSession::Request& TunnelSession::send_get() {
  Request& r = idle_request();
  r.post = nullptr;
  build_headers(r.headers, settings_, Kind::get, 0);
  r.exchange.prepare_get(r.headers.list());
  send(r, Kind::get);
  return r;
}

size_t TunnelSession::upload_window() const {
  // Enough unsent bytes for the biggest body an upload may cut.
  return planner_.long_round_trip() ? std::max(settings_.upload_window, settings_.max_long_link_post_body)
                                    : settings_.upload_window;
}

size_t TunnelSession::post_cap() const {
  // While the target talks back, a small POST keeps short the gap that payloads queued behind its
  // body leave; while it is quiet (an upload), bigger POSTs mean fewer settle waits.
  const uint64_t last = download_.last_payload_ns();
  const uint64_t quiet_for = std::max(settings_.quiet_ms * 1000000, 2 * planner_.output_pause_ns());
  const bool quiet = !download_.has_gap() && (last == 0 || uv_hrtime() - last >= quiet_for);
  const size_t quiet_cap = planner_.long_round_trip() ? settings_.max_long_link_post_body : settings_.max_quiet_post_body;
  const size_t cap = quiet ? quiet_cap : settings_.max_post_body;
  // Through proxies a big body reaches the server long after libcurl handed it over (each hop
  // buffers), while the round trip stays short: no settle time would cover it. A body that leaves
  // with the request head arrives with it.
  if (chain_ != nullptr || !http_.proxy.hops.empty() || behind_front_) {
    return std::min(cap, HttpExchange::kInlineBodyMax);
  }
  return cap;
}

void TunnelSession::send_post() {
  Post& post = upload_.cut(post_cap(), target_idle());
  bytes_up_ += post.body.size();
  if (waiting_since_ns_ == 0) wait_for_answer(uv_hrtime());
  log::debug("session {}: sending POST x-seq {} ({} bytes); round trip {:.1f} ms, settle {:.1f} ms, quiet {:.1f} ms{}", id_,
             post.seq, post.body.size(), static_cast<double>(planner_.round_trip_ns()) / 1e6,
             static_cast<double>(planner_.settle_ns(post.body.size())) / 1e6, static_cast<double>(planner_.quiet_ns()) / 1e6,
             planner_.round_trip_known() || planner_.release_bound_ns() == UINT64_MAX
                 ? std::string()
                 : fmt::format(" (round trip at most {:.1f} ms, from a release)",
                               static_cast<double>(planner_.release_bound_ns()) / 1e6));
  send_post(post);
}

// A POST sent again goes unchanged (same x-seq, same body: the server applies an x-seq once).
void TunnelSession::send_post(Post& post) {
  Request& r = idle_request();
  r.post = &post;
  build_headers(r.headers, settings_, Kind::post, post.seq);
  r.exchange.prepare_post(post.body.data(), post.body.size(), r.headers.list(), close_after_post(post.body.size()));
  ++posts_sent_;
  if (send(r, Kind::post)) post.in_flight = true;
}

// Whether the target owes no answer to what it was sent, so that a POST now cannot meet a second
// payload while unread (rule (c) of the planner). A debugger: every JDWP command has its reply. Any
// other client: a payload came after the last POST, and the few bytes to send came after it, while
// the agent was reading (the client waited for the answer before it spoke again: request/reply).
// Bytes read after a pause in reading may have been sent long before: those prove nothing.
// The server writes a POST's body to the target on the request's thread, which blocks while the
// target does not read, and reads that connection's next request only after (Tomcat, and the test
// server as it). A GET that libcurl put on that connection then sits unread, and with two such
// POSTs nothing is left to drain the target: all wait on each other until the request timeout
// (measured: a 64 MiB echo stalled so). A large body (streamed, more than the target's socket
// takes at once) closes its connection when done. Only over HTTP/1.1: over HTTP/2 the front end
// (nghttpx) keeps its own connections to the server, and closing one would end every stream on it.
bool TunnelSession::close_after_post(size_t body_size) const {
  if (body_size <= HttpExchange::kInlineBodyMax || behind_front_) return false;
  return http_.url.rfind("http://", 0) == 0 || served_;  // https: known once answers came
}

bool TunnelSession::target_idle() const {
  // The JVM owes an answer only to the commands it was sent: the command waiting to go (read from
  // the debugger, not yet in a POST) must not make the agent wait for quiet before sending it
  // (every command of a jdb session waited 28-70 ms so, docs/PERFORMANCE.md).
  if (jdwp_tracked()) return !jdwp_packets_.awaiting_reply_within(upload_.posted_offset());
  if (jvm_awaits_handshake()) return true;
  const uint64_t last = download_.last_payload_ns();
  return !upload_.answer_owed() && upload_.pending_since_ns() > last && reading_since_ns_ < last &&
         upload_.pending() <= kReactiveBytes;
}

// A JDWP reply came for a command ending at `upload_offset`.
void TunnelSession::note_target_received(uint64_t upload_offset) { upload_.target_received(upload_offset); }

// A POST was answered (200, 204 or 429). The reference server answers a request it holds even
// before it has read the body, and then the body is lost: a POST answered before its body was surely
// read goes again, same x-seq. Free when the body was lost (it arrives in order); one of the server's
// 100 reorder slots when it was not (docs/PROTOCOL-NOTES.md).
// A 204 or 429. The server answers 204 only after its long poll and 429 only to make room for a
// newer request of ours; a gateway or proxy in front that answers for it (rate-limiting, a cache)
// answers every request at once: about 9,000 requests a second, while the log said "connected".
void TunnelSession::note_empty_answer(const Request& r, bool progress) {
  if (progress) {
    note_progress();
    return;
  }
  if (r.release) return;  // asked for: it makes the server let go of a request held for a dead connection
  if (r.exchange.status() == 429 &&
      std::count_if(pool_.begin(), pool_.end(), [](const auto& other) { return other->busy; }) >= 2) {
    return;  // the server made room for newer requests of ours (a download keeps more GETs out)
  }
  const uint64_t left = r.exchange.body_sent_ns() != 0 ? r.exchange.body_sent_ns() : r.started_ns;
  const uint64_t answered = r.exchange.answered_ns();
  const uint64_t held = answered > left ? answered - left : 0;
  if (!pacer_.on_empty_answer(r.exchange.status(), held)) return;
  std::string what;
  if (pacer_.count_429() > 0) what = fmt::format("429 Too Many Requests x{}", pacer_.count_429());
  if (pacer_.count_204() > 0) what += fmt::format("{}204 No Content x{}", what.empty() ? "" : ", ", pacer_.count_204());
  if (storm_warned_) {
    log::debug("session {}: answers with nothing again ({}): slowing down", id_, what);
    return;
  }
  storm_warned_ = true;
  log::warn("session {}: {} answers in a row came at once and carried nothing ({}); the tunnel server holds a "
            "request until it has data or its long poll ends, so something in front of it (a gateway or proxy "
            "that rate-limits?) answers instead: slowing down to one request every {:.0f} s at most until data "
            "moves",
            id_, pacer_.run(), what, static_cast<double>(EmptyAnswerPacer::Settings{}.cap_ns) / 1e9);
}

void TunnelSession::note_progress() {
  if (pacer_.on_progress()) log::info("session {}: data moves again: requests go at full speed", id_);
}

bool TunnelSession::on_post_answered(Request& r) {
  Post& post = *r.post;
  // Before the peer acknowledged the whole body the server cannot have read it: surely lost.
  const InFlightRequest sent{false, post.body.size(), r.started_ns, r.exchange.delivered_or_sent_ns(), post.applied};
  const PostFate fate = planner_.fate(sent, r.exchange.answered_ns());
  switch (upload_.on_answered(post, fate, jdwp_tracked(), r.exchange.status() == 200)) {
    case UploadStream::Outcome::kept:
      return true;
    case UploadStream::Outcome::jdwp_suspect: {
      // Sent again if the JVM has not answered its commands within a few round trips.
      const uint64_t check_ms = std::max<uint64_t>(50, 4 * planner_.round_trip_ns() / 1000000);
      uv_timer_start(suspect_timer_.get(), &TunnelSession::on_uv_suspect_timeout, check_ms, 0);
      break;
    }
    case UploadStream::Outcome::suspect:
      wait_for_answer(uv_hrtime());  // sent again if nothing comes from the target for the stall time
      // The target spoke after this POST left: it owes no answer, only the suspect is in doubt, and
      // the linger settles that at the input's end (a half-closed 1 MiB echo came back whole, this
      // answer came after its last payload, and the linger waited for an answer until the stall
      // timer failed the session).
      if (download_.last_payload_ns() > r.started_ns) waiting_for_suspects_ = true;
      break;
    case UploadStream::Outcome::lost:
      log::debug("session {}: POST x-seq {} was answered ({}) before its body was all sent: the server lost the "
                 "body; sending it again",
                 id_, post.seq, r.exchange.status());
      break;
    case UploadStream::Outcome::maybe_lost:
      log::debug("session {}: POST x-seq {} was answered ({}) before its body was surely read; sending it again",
                 id_, post.seq, r.exchange.status());
      if (upload_.maybe_resends() == 50 || upload_.maybe_resends() == 90) {
        log::warn("session {}: {} POSTs were sent again for fear of a lost body; each one the server did have "
                  "takes one of its 100 reorder slots for the rest of this session",
                  id_, upload_.maybe_resends());
      }
      break;
  }
  return false;
}

std::string TunnelSession::stall_text() const {
  std::string text = upload_.last_seq() == 0 ? std::string("no POST was sent")
                                             : fmt::format("the last POST sent was x-seq {}", upload_.last_seq());
  if (const auto* command = jdwp_packets_.oldest_unanswered(); command != nullptr && jdwp_tracked()) {
    text += fmt::format("; the JVM has not answered JDWP command {}, sent {:.1f} s ago",
                        JdwpPackets::describe(*command), seconds_since(command->sent_ns));
  }
  if (held_lost_ns_ != 0 && held_lost_ns_ > download_.last_payload_ns()) {
    // Nothing tells whether the server answered it before the releases reached it: only a later
    // payload's x-seq would show the gap, and none has come.
    text += fmt::format("; {} lost its connection {:.1f} s ago while the server held it: if the server answered it "
                        "with the target's bytes, they are gone and this stream cannot go on (reconnect the client)",
                        held_lost_what_, seconds_since(held_lost_ns_));
  }
  return text + "; the server may have lost a request body, or the target hangs";
}

// Called by libuv when the JVM had a few round trips to answer the commands of a POST answered
// before its body was surely read: those it did not answer go again.
void TunnelSession::on_uv_suspect_timeout(uv_timer_t* timer) noexcept {
  auto* self = static_cast<TunnelSession*>(timer->data);
  if (self->state_ != State::open && self->state_ != State::draining) return;
  const auto again = self->upload_.resend_unanswered_suspects();
  if (!again.empty()) {
    log::debug("session {}: no JDWP reply to POST x-seq {}, answered before its body was surely read: sending it again",
               self->id_, fmt::join(again, ", "));
  }
  self->pump();
}

// Bytes handed to the target now wait for a sign of life from it (a payload).
void TunnelSession::wait_for_answer(uint64_t since_ns) {
  waiting_since_ns_ = since_ns;
  waiting_for_suspects_ = false;
  if (settings_.stall_warning_ms > 0) {
    uv_timer_start(stall_timer_.get(), &TunnelSession::on_uv_stall_timeout, settings_.stall_warning_ms, 0);
  }
}

// Called by libuv when what was sent to the target has waited the stall time for any answer. Says
// so once, and sends the kept POSTs again (the suspects: bodies the server may have answered
// unread, and the last POST), lowest x-seq first. Each costs a reorder slot if the server had it.
void TunnelSession::on_uv_stall_timeout(uv_timer_t* timer) noexcept {
  auto* self = static_cast<TunnelSession*>(timer->data);
  if ((self->state_ != State::open && self->state_ != State::draining) || self->waiting_since_ns_ == 0) return;
  if (!self->download_.any_payload()) {
    // A target that never talks (an upload): silence is normal. But its first answer may have gone
    // with a dead connection: said once, without resends (nothing says a body was lost, and each
    // resend the server had costs a reorder slot for good: one per stall time, for ever, to a sink).
    if (self->held_lost_ns_ == 0 || self->held_lost_warned_) return;
    self->held_lost_warned_ = true;
    log::warn("session {}: what the local client sent has waited {:.0f} s for an answer: {}", self->id_,
              std::max(seconds_since(self->waiting_since_ns_), static_cast<double>(self->settings_.stall_warning_ms) / 1000),
              self->stall_text());
    return;
  }
  // The input ended after the target's last payload, with POSTs kept as suspects: the linger sends
  // them once more and ends the session. Silence is the expected end here, not a stall (an 8 MiB
  // --stdio echo came back whole and then failed: the resent suspects were held by the server for a
  // long poll, and this timer fired first).
  if (self->waiting_for_suspects_ && self->local_input_ended_) return;
  if (self->server_refused_ns_ != 0) {
    // The server refused connections mid-session, came back, and nothing has come from the target
    // since: a restarted server (the app redeployed) holds a new target connection whose x-seq
    // starts at 1, so it queues ours for ever and applies none. Nothing can carry this stream on.
    self->finish(fmt::format("the server refused connections {:.0f} s ago and the target has answered nothing "
                             "since (the last POST sent was x-seq {}): the server (the app) most likely restarted, "
                             "and a restarted server queues this session's POSTs for ever; attach again",
                             seconds_since(self->server_refused_ns_), self->upload_.last_seq()),
                 true, true);
    return;
  }
  const auto again = self->upload_.resend_retained();  // pump() sends them as the planner allows
  std::string action;
  if (!again.empty()) action = fmt::format("; sending x-seq {} again", fmt::join(again, ", "));
  if (self->stalled_since_ns_ == 0) {
    self->stalled_since_ns_ = self->waiting_since_ns_;
    // libuv's timer counts from the loop's cached time, a little before the stamp: never less than
    // the threshold that fired it ("waited 1 s" for --stall-warning 1.5 read wrong).
    const double waited = std::max(seconds_since(self->waiting_since_ns_),
                                   static_cast<double>(self->settings_.stall_warning_ms) / 1000);
    log::warn("session {}: what the local client sent has waited {:.0f} s for an answer: {}{}", self->id_, waited,
              self->stall_text(), action);
  } else if (!again.empty()) {
    log::warn("session {}: still no answer after {:.0f} s{}", self->id_, seconds_since(self->stalled_since_ns_), action);
  }
  uv_timer_start(timer, &TunnelSession::on_uv_stall_timeout, self->settings_.stall_warning_ms, 0);
  self->pump();
}

void TunnelSession::send_disconnect(uint64_t timeout_ms) {
  if (!disconnect_) {
    disconnect_ = std::make_unique<Request>(*this, http_, chain_);
    disconnect_->exchange.send_once(false);  // nothing is held for it: libcurl may send it again
  }
  Request* r = disconnect_.get();
  build_headers(r->headers, settings_, Kind::disconnect, 0);
  r->exchange.prepare_post(nullptr, 0, r->headers.list());
  if (!send(*r, Kind::disconnect)) {
    close_local(true);
    return;
  }
  uv_timer_start(phase_timer_.get(), &TunnelSession::on_uv_phase_timeout, timeout_ms, 0);
}

bool TunnelSession::send(Request& r, Kind kind) {
  if (r.proxy_choice != proxy_choice_) {
    r.exchange.reapply_proxy();
    r.proxy_choice = proxy_choice_;
  }
  r.kind = kind;
  r.started_ns = uv_hrtime();
  r.others_at_start = static_cast<size_t>(
      std::count_if(pool_.begin(), pool_.end(), [&](const auto& other) { return other->busy && other.get() != &r; }));
  r.epoch = recovery_.epoch();
  r.release = false;
  CURLMcode rc = driver_.start(r.exchange.easy(), &r);
  if (rc != CURLM_OK) {
    std::string why = fmt::format("cannot start an HTTP request: {}", curl_multi_strerror(rc));
    if (kind == Kind::disconnect) {
      log::error("session {}: {}", id_, why);
    } else {
      finish(why, true, false);
    }
    return false;
  }
  r.busy = true;
  if (kind != Kind::disconnect) pacer_.on_sent(r.started_ns);
  return true;
}

void TunnelSession::log_exchange(const Request& r, CURLcode result) const {
  if (!log::enabled(log::Level::debug)) return;
  const char* what = r.kind == Kind::get ? "GET" : r.kind == Kind::post ? "POST" : "POST x-disconnect";
  std::string sent = r.kind == Kind::post ? fmt::format(" x-seq {} ({} bytes)", r.post->seq, r.body_size()) : "";
  std::string answer;
  if (result != CURLE_OK) {
    answer = describe_curl_error(result, r.exchange.error_detail());
  } else {
    answer = fmt::format("{} {}", r.exchange.http_version(), r.exchange.status());
    if (r.exchange.has_header_value()) {
      answer += fmt::format(" x-seq {} ({} bytes)", r.exchange.header_value(), r.exchange.body().size());
    }
  }
  log::debug("session {}: {}{} -> {} in {:.1f} ms", id_, what, sent, answer,
             static_cast<double>(uv_hrtime() - r.started_ns) / 1e6);
}

// Who closed first, for the closing line: a debugger that said goodbye made the JVM close.
std::string TunnelSession::target_close_reason() const {
  if (jdwp_.state() != JdwpHandshake::State::attached) return "the target closed the connection (410 Gone)";
  switch (jdwp_packets_.goodbye()) {
    case JdwpPackets::Goodbye::dispose:
      return "the debugger detached (it sent VirtualMachine.Dispose, and the JVM closed the connection)";
    case JdwpPackets::Goodbye::exit:
      return "the debugger ended the JVM (it sent VirtualMachine.Exit)";
    case JdwpPackets::Goodbye::none:
      break;
  }
  return "the JVM closed the debug connection (410 Gone): the program ended, or it dropped the debugger";
}

// Once the target closed (410) and no request that may still carry its last payloads is left.
void TunnelSession::end_after_target_closed(bool deadline) {
  if (!target_gone_ || state_ == State::disconnecting || state_ == State::closing || state_ == State::closed) return;
  for (const auto& r : pool_) {
    if (!r->busy) continue;
    if (!deadline) return;
    stray_target_ = true;  // still held long after the 410s: held on a new target connection
  }
  if (stray_target_) {
    // Otherwise it stays open until the server's disconnect timeout, and the target (a JVM) sees
    // a stray connection it cannot tell from a debugger.
    log::info("session {}: a request crossed the target's close and made the server open a new target "
              "connection; telling it to close that one",
              id_);
  }
  const bool disconnect = stray_target_;
  if (download_.has_gap()) {
    finish(fmt::format("the target closed the connection (410 Gone), and server payload x-seq {} never arrived",
                       download_.next_expected()),
           true, disconnect);
  } else if (state_ == State::draining) {
    finish(end_reason_, false, disconnect);
  } else if (download_.any_payload()) {
    finish(target_close_reason(), false, disconnect);
  } else {
    // Nothing ever came from the target: most likely the server could not connect to it.
    target_refused_ = true;
    finish("the server could not reach the target, or the target closed at once (410 Gone): is the JVM "
           "listening on its debug port, and is no other debugger attached?",
           true, disconnect);
  }
}

// The server holds at most two requests: one sent while two were out can release a held one only
// by arriving, so a 429 for an older request after it left came at most a round trip later. Not
// once an exchange failed or was sent twice: a request held for a dead connection is one more held,
// and an earlier arrival may have released this one.
void TunnelSession::note_release_bound(const Request& released, uint64_t answered_ns) {
  if (failed_exchanges_ || retries_ > 0 || answered_ns == 0) return;
  for (const auto& other : pool_) {
    if (!other->busy || other.get() == &released || other->kind == Kind::disconnect) continue;
    if (other->others_at_start == 2 && other->started_ns > released.started_ns && answered_ns > other->started_ns) {
      planner_.observe_release_bound(answered_ns - other->started_ns);
    }
  }
}

void TunnelSession::on_request_done(Request& r, CURLcode result) {
  r.busy = false;
  if (r.kind == Kind::post) {
    r.post->in_flight = false;
    note_post_reached(r.exchange.delivered_or_sent_ns(), r.body_size());
  }
  log_exchange(r, result);
  if (result == CURLE_OK) {
    // The round trip: an answer that was neither a long poll (a 204 waited for the server's timeout)
    // nor a release (a 429 waited for a newer request to arrive). Not the TCP handshake: a proxy or gateway that terminates TCP near
    // the agent answers it in no time, whatever the way to the server costs.
    // From when it left, not from when it was started: setting up a connection through proxies
    // (CONNECT and logins, hop by hop) is no part of the round trip of later requests.
    const uint64_t left = r.exchange.body_sent_ns();
    const uint64_t answered = r.exchange.answered_ns();
    const long status = r.exchange.status();
    if (status != 204 && status != 429 && left != 0 && answered > left) planner_.observe_exchange(answered - left);
    if (status == 429 && r.kind != Kind::disconnect) note_release_bound(r, answered);
  } else {
    failed_exchanges_ = true;
  }

  if (r.kind == Kind::disconnect) {
    if (result != CURLE_OK) {
      log::warn("session {}: could not tell the server to drop the target connection ({}); it will drop it "
                "after its disconnect timeout",
                id_, describe_curl_error(result, r.exchange.error_detail()));
    }
    target_dropped_ = result == CURLE_OK && r.exchange.status() == 410;
    if (state_ == State::disconnecting) close_local(true);
    return;
  }
  if (state_ == State::closed && !reaping() && on_reaped_) {
    auto reaped = std::move(on_reaped_);  // it may destroy the session: nothing after it
    reaped();
    return;
  }
  if (state_ == State::closing || state_ == State::closed) return;

  if (result != CURLE_OK) {
    if (state_ == State::disconnecting) return;
    if (r.proxy_choice != proxy_choice_ && (result == CURLE_COULDNT_CONNECT || result == CURLE_COULDNT_RESOLVE_PROXY)) {
      // Sent by a choice already left behind: it goes again by the new one.
      if (r.kind == Kind::post) r.post->resend = true;
      pump();
      return;
    }
    if (take_next_pac_choice(r, result)) {
      if (r.kind == Kind::post) r.post->resend = true;
      pump();
      return;
    }
    std::string fatal = fatal_transfer_error(r, result);
    if (!fatal.empty()) {
      // A lost or impossible payload: the server is there, so it is told to drop the target.
      finish(std::move(fatal), true, served_ || r.exchange.status() == 200);
      return;
    }
    if (result == CURLE_COULDNT_CONNECT && served_ && chain_ == nullptr && http_.proxy.hops.empty() &&
        server_refused_ns_ == 0) {
      server_refused_ns_ = uv_hrtime();  // the server itself was not listening: it may come back restarted
    }
    // Once sent, it may be held. (libcurl never sends it twice: see HttpExchange::send_once.)
    retry_after_failure(r, r.exchange.describe_failure(result), r.exchange.attempts() > 0);
    return;
  }

  const long status = r.exchange.status();
  const Answer answer = protocol::classify_status(status);
  if (!behind_front_ && std::strcmp(r.exchange.http_version(), "HTTP/2") == 0) {
    // Spring's Tomcat speaks HTTP/1.1 here: HTTP/2 means a front end (a reverse proxy, a gateway)
    // relays to it, and buffers bodies on the way as proxies do (a body lost through nghttpx).
    behind_front_ = true;
    planner_.add_settle_margin(kFrontEndSettleNs);
  }
  if (target_gone_ && answer != Answer::target_closed) stray_target_ = true;  // answered on a new target connection
  const bool data_after_early_410 = answer == Answer::payload && early_410_pending_;
  const bool awaiting_jvm = jdwp_.state() == JdwpHandshake::State::awaiting_jvm;
  if (answer == Answer::payload || answer == Answer::poll_again || answer == Answer::released) {
    if (!served_) {
      served_ = true;
      note_connected();
    }
    recovery_.on_answer(r.epoch);
  }
  switch (answer) {
    case Answer::payload:
      on_payload(r);
      if (state_ != State::open && state_ != State::draining) return;
      note_progress();
      if (data_after_early_410) {
        after_early_410_data(awaiting_jvm && jdwp_.state() == JdwpHandshake::State::attached);
      }
      if (r.kind == Kind::post) on_post_answered(r);
      break;
    case Answer::poll_again:
    case Answer::released:
      // 429: a newer request of ours is held, so a GET needs no replacement.
      note_empty_answer(r, r.kind == Kind::post && on_post_answered(r));
      break;
    case Answer::target_closed:
      if (retry_early_410(r)) return;
      if (state_ != State::disconnecting && !target_gone_) {
        // The server answers 410 to every request it holds once the target closed, after the
        // target's last payloads: those may still be on their way in other requests. Wait for them.
        target_gone_ = true;
        uv_timer_start(phase_timer_.get(), &TunnelSession::on_uv_phase_timeout, settings_.flush_timeout_ms, 0);
      }
      end_after_target_closed();
      return;
    case Answer::target_unavailable:
      if (!r.exchange.body().empty()) {
        // The tunnel's own 503 has no body: a page with it comes from a proxy or gateway in front.
        retry_after_failure(r, fmt::format("HTTP {} from something in front of the server", status_text(status, r.exchange.reason())), true);
        return;
      }
      target_unavailable_ = true;
      finish("the server says the target is not running (503 Service Unavailable): start the JVM with "
             "-agentlib:jdwp=transport=dt_socket,server=y,suspend=n,address=...",
             true, false);
      return;
    case Answer::secret_refused:
      finish(fmt::format("the server refused the secret ({}): {}", status_text(status, r.exchange.reason()),
                         settings_.secret ? "check the secret given by " + settings_.secret_source
                                          : std::string("no secret was given: use --secret-file or TUNNEL_AGENT_SECRET")),
             true, false);
      return;
    case Answer::unexpected:
      if (status == 502 || status == 504) {
        // A proxy or gateway could not reach the server, or gave up waiting: the request may or may
        // not have arrived, so it goes again, and anything the server may hold for it is released.
        retry_after_failure(r, fmt::format("HTTP {} (a proxy or gateway in front of the server)", status_text(status, r.exchange.reason())), true);
        return;
      }
      if (status == 500 && r.kind == Kind::post) {
        // The reference fails a POST with 500 when its reorder queue is full.
        finish(fmt::format("the server failed POST x-seq {} (HTTP {}): its reorder queue may be full (an earlier "
                           "body lost, or more than 100 POSTs sent again in this session); the target's stream "
                           "is broken from x-seq {}",
                           r.post->seq, status_text(status, r.exchange.reason()), r.post->seq),
               true, true);
        return;
      }
      finish(fmt::format("unexpected answer from {}: HTTP {}: not a tunnel response (check the URL's path)",
                         http_.url, status_text(status, r.exchange.reason())),
             true, false);
      return;
  }
  pump();
}

std::string TunnelSession::fatal_transfer_error(const Request& r, CURLcode result) const {
  const HttpExchange& x = r.exchange;
  const std::string seq = x.has_header_value() ? "x-seq " + x.header_value() : std::string("without x-seq");
  if (x.body_too_large() || result == CURLE_FILESIZE_EXCEEDED) {
    const curl_off_t declared = x.content_length();
    return fmt::format("the server's answer ({}) {} bytes, more than a tunnel payload can be ({} at most): not a "
                       "tunnel answer (check the URL)",
                       seq, declared >= 0 ? fmt::format("declares {}", declared) : std::string("exceeds"),
                       HttpExchange::kMaxBody);
  }
  if (x.status() == 200 && (x.has_header_value() || !x.body().empty())) {
    const curl_off_t declared = x.content_length();
    return fmt::format("server payload {} was cut off after {} of {} bytes ({}): the server never sends a payload "
                       "again, so the stream cannot continue",
                       seq, x.body().size(), declared >= 0 ? std::to_string(declared) : std::string("?"),
                       describe_curl_error(result, x.error_detail()));
  }
  long connect_code = 0;
  curl_easy_getinfo(x.easy(), CURLINFO_HTTP_CONNECTCODE, &connect_code);
  bool transient = false;
  if (x.resend_refused()) {
    transient = true;  // its connection died: the session sends it again, after the releases
  } else if (connect_code != 0 && connect_code != 200) {
    transient = served_ && (connect_code == 502 || connect_code == 503 || connect_code == 504);
  } else {
    switch (result) {
      case CURLE_SEND_ERROR:
      case CURLE_RECV_ERROR:
      case CURLE_GOT_NOTHING:
      case CURLE_PARTIAL_FILE:
      case CURLE_OPERATION_TIMEDOUT:
      case CURLE_HTTP2:
      case CURLE_HTTP2_STREAM:
        transient = true;
        break;
      case CURLE_COULDNT_CONNECT:
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_RESOLVE_PROXY:
      case CURLE_SSL_CONNECT_ERROR:
        transient = served_;  // reached before: the server or a proxy may be restarting
        break;
      default:
        break;
    }
  }
  return transient ? std::string() : x.describe_failure(result);
}

void TunnelSession::retry_after_failure(Request& r, const std::string& why, bool maybe_held) {
  const uint64_t now = uv_hrtime();
  const RetryPolicy::Verdict verdict = recovery_.on_failure(now, served_);
  switch (verdict.action) {
    case RetryPolicy::Verdict::Action::give_up_unserved:
      // Never reached a live tunnel: most likely a wrong URL, proxy or certificate; say so soon.
      finish(fmt::format("{} (failed {} times in a row before any answer from the tunnel)", why, verdict.failures),
             true, false);
      return;
    case RetryPolicy::Verdict::Action::give_up_window:
      finish(fmt::format("{}; gave up after {} failed exchanges in a row over {:.2f} s: the next try, in {:.2f} s, "
                         "would end outside --retry-window {} s",
                         why, verdict.failures, static_cast<double>(verdict.failing_for_ns) / 1e9,
                         static_cast<double>(verdict.delay_ms) / 1000,
                         static_cast<double>(settings_.retry_window_ms) / 1000),
             true, true);
      return;
    case RetryPolicy::Verdict::Action::retry:
      break;
  }
  ++retries_;
  const char* what = r.kind == Kind::get ? "GET" : "POST";
  log::warn("session {}: {}{}: {}; trying again in {} ms", id_, what,
            r.kind == Kind::post ? fmt::format(" x-seq {}", r.post->seq) : std::string(), why, verdict.delay_ms);
  if (r.kind == Kind::post) r.post->resend = true;
  if (maybe_held) {
    held_lost_ns_ = now;
    held_lost_what_ = r.kind == Kind::post ? fmt::format("POST x-seq {}", r.post->seq) : std::string("a GET");
  }
  recovery_.note_failure(maybe_held);
  hold_off_until_ns_ = std::max(hold_off_until_ns_, now + verdict.delay_ms * 1000000);
  pump();
}

// Target data came while a 410 from before any data waits to be tried again. Either the target
// replied and closed at once, and the 410 overtook the data: what got 410 was applied, and sending it
// again would feed it to a new target connection a second time. Or the 410 came from a target
// connection the server could not open, and a later request opened one: a JVM between two debuggers
// stops listening for a moment, and one that has just answered the handshake did not close
// (measured: 1 in 5 to 1 in 15 fast re-attaches ended so, and the next debugger met a JVM still
// attached to the last one).
void TunnelSession::after_early_410_data(bool handshake_answered) {
  early_410_pending_ = false;
  hold_off_until_ns_ = 0;
  if (handshake_answered) {
    log::debug("session {}: the JVM answered the handshake after that 410: the 410 was a connection the server "
               "could not open, and the JVM is attached now",
               id_);
    return;  // what got 410 goes again now
  }
  upload_.cancel_resends();
  log::debug("session {}: target data came after that 410: the target took our bytes and closed", id_);
  target_gone_ = true;
  uv_timer_start(phase_timer_.get(), &TunnelSession::on_uv_phase_timeout, settings_.flush_timeout_ms, 0);
}

bool TunnelSession::retry_early_410(Request& r) {
  if (state_ != State::open || served_ || early_410_retries_ >= kEarly410Retries) return false;
  // No request of this session was answered by a live server session yet: most likely an old target
  // connection was still closing, and nothing was applied. But a target that replies and closes at
  // once sends its 410 with its data, and the 410 may come first: the hold-off gives that data time
  // to arrive (on_request_done then ends the session instead). One hold-off covers all requests
  // answered 410 in the same moment.
  early_410_pending_ = true;
  if (hold_off_until_ns_ == 0) {
    const uint64_t pause_ms = 50ull << early_410_retries_;
    ++early_410_retries_;
    hold_off_until_ns_ = uv_hrtime() + pause_ms * 1000000;
    log::debug("session {}: 410 before any data (the server may still be closing its previous target connection); "
               "trying again in {} ms",
               id_, pause_ms);
  }
  if (r.kind == Kind::post) r.post->resend = true;
  pump();
  return true;
}

void TunnelSession::on_payload(Request& r) {
  if (!r.exchange.has_header_value()) {
    finish("the server answered 200 without an x-seq header: not a tunnel response (check the URL)", true, true);
    return;
  }
  auto seq = protocol::parse_seq(r.exchange.header_value());
  if (!seq) {
    finish(fmt::format("the server sent a malformed x-seq '{}'", r.exchange.header_value()), true, true);
    return;
  }
  if (!r.exchange.end_verified()) {
    finish(fmt::format("server payload x-seq {} ({} bytes) came without a Content-Length or chunked framing, so a "
                       "connection cut mid-body cannot be told from its end (something between the agent and the "
                       "server re-framed it); the session ends rather than risk a cut payload",
                       *seq, r.exchange.body().size()),
           true, true);
    return;
  }
  if (r.exchange.excess_after_body()) {
    finish(fmt::format("server payload x-seq {} carried more bytes than its Content-Length ({}) declared: the rest "
                       "is lost, so the stream cannot continue",
                       *seq, r.exchange.content_length()),
           true, true);
    return;
  }
  upload_.payload_arrived(jdwp_tracked());
  server_refused_ns_ = 0;  // the stream goes on: whatever refused, it was not a restart that broke it
  waiting_since_ns_ = 0;
  uv_timer_stop(stall_timer_.get());
  if (stalled_since_ns_ != 0) {
    log::info("session {}: the target answered again after {:.1f} s", id_, seconds_since(stalled_since_ns_));
    stalled_since_ns_ = 0;
  }
  if (!jdwp_tracked() && upload_.has_unconfirmed()) {
    // A POST kept as a suspect goes again once the target has said nothing for the stall time,
    // counted from its last payload: an echo of earlier bytes can run on long after the suspect's
    // answer and then stop short of the suspect's own bytes (a session hung so, silently).
    wait_for_answer(uv_hrtime());
    waiting_for_suspects_ = true;  // not for an answer the input's end is owed (see the linger)
  }
  if (local_input_ended_) {
    uv_timer_start(linger_timer_.get(), &TunnelSession::on_uv_linger_timeout, settings_.linger_ms, 0);
  }
  const uint64_t expected = download_.next_expected();
  const uint64_t now = uv_hrtime();
  const uint64_t previous = download_.last_payload_ns();
  if (previous != 0 && r.started_ns <= previous && posts_sent_ == posts_sent_at_payload_ &&
      download_.last_payload_bytes() >= settings_.planner.download_payload_bytes) {
    // The target paused mid-output (a big payload, then silence while this request was out, and no
    // POST since) and went on by itself: it can do so again, and a POST sent in such a pause takes
    // its next bytes before its body is read. The quiet time grows to cover the longest pause seen
    // (measured: a 64 MiB echo on 2 busy cores lost a body so, twice in two full suite runs).
    const uint64_t before = planner_.output_pause_ns();
    planner_.observe_output_pause(now - previous);
    if (planner_.output_pause_ns() > before) {
      log::debug("session {}: the target paused {:.1f} ms mid-output and went on: the quiet time is {:.1f} ms now", id_,
                 static_cast<double>(now - previous) / 1e6, static_cast<double>(planner_.quiet_ns()) / 1e6);
    }
  }
  posts_sent_at_payload_ = posts_sent_;
  if (answer_due_ns_ != 0 && now > answer_due_ns_ && !jdwp_tracked()) {
    // The first word after a POST came after that POST was settled: a POST sent on the quiet rule
    // in between would have been the front for it (the debugger's replies are tracked exactly).
    const uint64_t before = planner_.answer_delay_ns();
    planner_.observe_answer_delay(now - answer_due_ns_);
    if (planner_.answer_delay_ns() > before) {
      log::debug("session {}: the target answered {:.1f} ms after its POST settled: the quiet after a POST is {:.1f} ms now",
                 id_, static_cast<double>(now - answer_due_ns_) / 1e6,
                 static_cast<double>(planner_.quiet_after_post_ns()) / 1e6);
    }
  }
  // A POST that reached the target and is not settled yet is owed the next answer.
  const uint64_t latest_due = last_post_sent_ns_ == 0 ? 0 : last_post_sent_ns_ + planner_.settle_ns(last_post_bytes_);
  answer_due_ns_ = latest_due > now ? latest_due : 0;
  const auto pushed = download_.push(*seq, std::move(r.exchange.body()), now);
  if (pushed.result != protocol::PayloadReorderer::Result::accepted) {
    finish(protocol::describe(pushed.result, *seq, expected) + "; the session ends rather than corrupt the stream",
           true, true);
    return;
  }
  while (auto ready = download_.pop_ready()) write_local(std::move(*ready));
  if (pushed.gap_opened) {
    uv_timer_start(gap_timer_.get(), &TunnelSession::on_uv_gap_timeout, settings_.gap_timeout_ms, 0);
  } else if (!download_.has_gap()) {
    uv_timer_stop(gap_timer_.get());
  }
}

// Called by libuv when a missing server payload did not arrive in time. It may still be on its way
// in a request sent before the gap opened (a POST is answered only after the server has written its
// body to the target): wait for those, within the request timeout; once none is left, it is lost.
void TunnelSession::on_uv_gap_timeout(uv_timer_t* timer) noexcept {
  auto* self = static_cast<TunnelSession*>(timer->data);
  const uint64_t now = uv_hrtime();
  const uint64_t limit_ns = static_cast<uint64_t>(self->http_.request_timeout_ms) * 1000000;
  for (const auto& r : self->pool_) {
    const uint64_t since = self->download_.gap_since_ns();
    if (r->busy && r->started_ns < since && now - since < limit_ns) {
      uv_timer_start(timer, &TunnelSession::on_uv_gap_timeout, self->settings_.gap_timeout_ms / 5 + 1, 0);
      return;
    }
  }
  self->finish(fmt::format("server payload x-seq {} was lost (later ones arrived, it did not): the stream cannot "
                           "continue without it",
                           self->download_.next_expected()),
               true, true);
}

// Called by libuv when, after the local input ended, the target said nothing for the linger time.
void TunnelSession::on_uv_linger_timeout(uv_timer_t* timer) noexcept {
  auto* self = static_cast<TunnelSession*>(timer->data);
  if (self->state_ != State::open) return;
  if (self->stalled_since_ns_ != 0) {
    // Sent, never answered, sent again: nothing more will come. Not a normal end.
    self->finish(fmt::format("the input ended, and the target has answered nothing for {:.0f} s: {}",
                             seconds_since(self->stalled_since_ns_), self->stall_text()),
                 true, true);
    return;
  }
  if (self->upload_.pending() > 0 || self->upload_.busy() ||
      (self->waiting_since_ns_ != 0 && self->download_.any_payload() && !self->waiting_for_suspects_)) {
    // Still sending the input's end, or waiting for the answer to it (the stall timer speaks if it
    // never comes): output may come after it.
    uv_timer_start(timer, &TunnelSession::on_uv_linger_timeout, self->settings_.linger_ms, 0);
    return;
  }
  // POSTs answered before their bodies were surely read, with nothing after them to show that the
  // target had them: sent again before the end. Safe either way: the server applies one it lost (and
  // the x-seq held up behind it), and keeps one it had as a repeat, whose reorder slot no longer
  // matters in a session that is ending. Then one more linger time for the output that may follow.
  const auto unsure = self->upload_.resend_unconfirmed();
  if (!unsure.empty()) {
    log::debug("session {}: the input ended and the target went quiet; sending x-seq {} again before ending "
               "(they were answered before their bodies were surely read)",
               self->id_, fmt::join(unsure, ", "));
    uv_timer_start(timer, &TunnelSession::on_uv_linger_timeout, self->settings_.linger_ms, 0);
    self->pump();
    return;
  }
  self->finish(fmt::format("{}, and the target sent nothing for {:.1f} s after it",
                           self->half_closed_ ? "the local client closed the connection (or its sending side)"
                                              : "the input ended",
                           static_cast<double>(self->settings_.linger_ms) / 1000),
               false, true);
}

// Called by libuv when the current phase's deadline passes (drain grace, disconnect, flush).
void TunnelSession::on_uv_phase_timeout(uv_timer_t* timer) noexcept {
  auto* self = static_cast<TunnelSession*>(timer->data);
  switch (self->state_) {
    case State::open:
    case State::draining:
      if (self->target_gone_) {
        self->end_after_target_closed(true);  // the last requests did not come back in time
      } else {
        self->pump();  // looks again whether the last POST bodies are surely read
      }
      break;
    case State::disconnecting:
      log::warn("session {}: the server did not confirm the disconnect within {} ms", self->id_,
                self->settings_.disconnect_timeout_ms);
      self->close_local(true);
      break;
    case State::closing:
      self->close_local(false);  // the local client does not take our last bytes: give up on them
      break;
    default:
      break;
  }
}

// ---- ending -------------------------------------------------------------------------------

void TunnelSession::finish(std::string why, bool error, bool disconnect_first) {
  if (state_ == State::disconnecting || state_ == State::closing || state_ == State::closed) return;
  end_reason_ = std::move(why);
  end_is_error_ = error;
  set_reading(false);
  uv_timer_stop(gap_timer_.get());
  uv_timer_stop(phase_timer_.get());
  uv_timer_stop(pump_timer_.get());
  uv_timer_stop(linger_timer_.get());
  uv_timer_stop(stall_timer_.get());
  uv_timer_stop(suspect_timer_.get());
  if (disconnect_first) {
    state_ = State::disconnecting;
    send_disconnect(stopping_ ? kStopDeadlineMs : settings_.disconnect_timeout_ms);
    return;
  }
  close_local(!error);
}

bool TunnelSession::reaping() const {
  if (state_ != State::closed) return false;
  return std::any_of(pool_.begin(), pool_.end(), [](const auto& r) { return r->busy; });
}

void TunnelSession::close_local(bool flush) {
  if (state_ == State::closed) return;
  const bool already_closing = state_ == State::closing;
  state_ = State::closing;
  if (!already_closing) {
    for (auto& r : pool_) {
      // After the server dropped the target it answers what it held at once: leave those to finish
      // (reaping()). Otherwise a held request would wait for a long poll: cancel it.
      if (r->busy && (!target_dropped_ || stopping_)) {
        driver_.cancel(r->exchange.easy());
        r->busy = false;
      }
    }
    if (disconnect_ && disconnect_->busy) {
      driver_.cancel(disconnect_->exchange.easy());
      disconnect_->busy = false;
    }
    uv_timer_stop(gap_timer_.get());
    uv_timer_stop(phase_timer_.get());
    uv_timer_stop(pump_timer_.get());
  }
  if (!client_) return;
  if (flush && !already_closing && download_.backlog() > 0) {
    // Let the local client take what it was sent, then FIN; a deadline covers a client that stalls.
    auto* req = new uv_shutdown_t{};
    req->data = this;
    if (uv_shutdown(req, client_.output(), &TunnelSession::on_uv_shutdown) == 0) {
      uv_timer_start(phase_timer_.get(), &TunnelSession::on_uv_phase_timeout,
                     stopping_ ? kStopDeadlineMs : settings_.flush_timeout_ms, 0);
      return;
    }
    delete req;
  }
  uv_timer_stop(phase_timer_.get());
  gap_timer_.close();
  phase_timer_.close();
  pump_timer_.close();
  linger_timer_.close();
  stall_timer_.close();
  suspect_timer_.close();
  client_handles_open_ = client_.handles();
  client_.close(&TunnelSession::on_client_closed);
}

// Called by libuv when the local socket is shut down for writing (all our bytes are out).
void TunnelSession::on_uv_shutdown(uv_shutdown_t* req, int) noexcept {
  auto* self = static_cast<TunnelSession*>(req->data);
  delete req;
  self->close_local(false);
}

// Called (through UvHandle) by libuv when the local socket is closed: the session's last moment.
void TunnelSession::on_client_closed(void* data) noexcept {
  auto* self = static_cast<TunnelSession*>(data);
  if (--self->client_handles_open_ > 0) return;  // stdio: standard input and output both closed
  self->state_ = State::closed;
  std::string summary = fmt::format("after {:.1f} s, {} bytes sent, {} bytes received", seconds_since(self->started_ns_),
                                    self->bytes_up_, self->bytes_down_);
  if (self->retries_ > 0) summary += fmt::format(", {} exchanges retried", self->retries_);
  const uint64_t lost = self->upload_.lost_resends();
  const uint64_t maybe = self->upload_.maybe_resends();
  if (lost + maybe > 0) {
    summary += fmt::format(", {} POST bodies sent again that the server lost or may have lost ({} perhaps "
                           "needlessly)",
                           lost + maybe, maybe);
  }
  if (self->end_is_error_) {
    log::error("session {} ({}) failed {}: {}", self->id_, self->peer_, summary, self->end_reason_);
  } else {
    log::info("session {} ({}) closed {}: {}", self->id_, self->peer_, summary, self->end_reason_);
  }
  auto on_closed = std::move(self->on_closed_);  // the callback may destroy the session
  on_closed(*self);
}

}  // namespace tunnel

// One accepted local connection carried over the tunnel protocol (docs/PROTOCOL.md):
// one request always waiting, local bytes as numbered POSTs, server payloads written back in
// x-seq order. The reference server holds a request before it reads its body and loses the body
// when it answers first (docs/PROTOCOL-NOTES.md has the rules and why).
//
// The session is the state machine (open, draining, disconnecting, closing), the timers and the
// I/O; each rule lives in a pure part of common/, unit-tested in tests/common:
//  - RequestPlanner: which request goes next, and what an answer says of a POST's body;
//  - UploadStream: the local bytes as numbered POST bodies, and which go again or are kept;
//  - DownloadStream: payloads back in order, the gap a missing one leaves, back-pressure;
//  - RetryPolicy: back-off after failures, when to give up, the releases a failure calls for;
//  - EmptyAnswerPacer: a storm of answers that carry nothing (a gateway in front) slows requests;
//  - JdwpHandshake / JdwpPackets: what a debugger's traffic says the JVM has received.
#pragma once

#include "agent/forward_status.hpp"
#include "agent/local_end.hpp"
#include "common/curl_uv_driver.hpp"
#include "common/download_stream.hpp"
#include "common/http_exchange.hpp"
#include "common/jdwp_handshake.hpp"
#include "common/jdwp_packets.hpp"
#include "common/proxy_chain.hpp"
#include "common/request_planner.hpp"
#include "common/retry_policy.hpp"
#include "common/tunnel_protocol.hpp"
#include "common/upload_stream.hpp"
#include "common/uv_handle.hpp"

#include <uv.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tunnel {

struct SessionSettings {
  HttpOptions http;
  std::string secret_header;
  std::optional<std::string> secret;
  std::string secret_source;           // where the secret came from, for messages
  std::vector<std::string> headers;    // -H "Name: value", on every request
  // stdio: local EOF does not end the session; the target's close does, or this long without output
  // from it (the protocol cannot always tell that the target closed: docs/PROTOCOL-NOTES.md).
  bool output_outlives_input = false;
  uint64_t linger_ms = 2000;
  size_t max_post_body = 256 << 10;    // the most bytes one POST carries while the target talks back
  size_t max_quiet_post_body = 2 << 20;  // ... and while it has been quiet (docs/PROTOCOL-NOTES.md)
  size_t max_long_link_post_body = 8 << 20;  // ... quiet, across a long round trip (and the upload window)
  uint64_t quiet_ms = 100;             // quiet: no payload from the target for this long
  size_t upload_window = 2 << 20;      // stop reading the local socket with this much unsent
  size_t download_window = 4 << 20;    // stop polling with this much not yet written locally
  PlannerSettings planner;             // which request goes next (common/request_planner.hpp)
  uint64_t gap_timeout_ms = 5000;      // how long a missing server payload may lag behind later ones
  uint64_t drain_limit_ms = 2000;      // after local EOF: the longest wait for POST bodies to be read
  uint64_t disconnect_timeout_ms = 2000;
  uint64_t flush_timeout_ms = 2000;    // how long closing waits for the local client to take our bytes
  // Failed exchanges are tried again (GETs reissued, POSTs resent with their x-seq) after a capped,
  // jittered back-off, for at most this long after the first failure in a row: the server ends a
  // session that sees no request for 30 s.
  uint64_t retry_window_ms = 25000;
  uint64_t retry_base_ms = 50;
  uint64_t retry_cap_ms = 2000;
  // The local client sent bytes and the target has answered nothing for this long: say so, and
  // send the last POST again (the server may have lost its body). 0: never.
  uint64_t stall_warning_ms = 10000;
};

class TunnelSession {
 public:
  using ClosedCallback = std::function<void(TunnelSession&)>;

  // `chain`: the proxy chain to send requests through, or null.
  TunnelSession(uv_loop_t* loop, CurlUvDriver& driver, const SessionSettings& settings, ProxyChain* chain,
                LocalEnd client, std::string id, std::string peer, ClosedCallback on_closed);
  ~TunnelSession();
  TunnelSession(const TunnelSession&) = delete;
  TunnelSession& operator=(const TunnelSession&) = delete;

  // `hold_off_ms`: wait this long before the first request (the listener's back-off after a 503).
  // `early`: what the client sent while it waited for its turn; `early_eof`: it then shut its side.
  void start(uint64_t hold_off_ms = 0, const std::string& early = {}, bool early_eof = false);

  enum class Kind { get, post, disconnect };
  // The header lines of one request of the protocol (the secret, -H headers, its Content-Type and
  // x-seq); also used by `tunnel-agent check` for its probe.
  static void build_headers(HeaderLines& lines, const SessionSettings& settings, Kind kind, uint64_t seq);
  // The agent is stopping: ask the server to drop the target connection, then close.
  void stop();
  // "3", or "8000#3" when the process has several forwards: every log line names it.
  const std::string& id() const { return id_; }
  // How the session ended, for the listener's back-off: the server said the target is not running.
  bool ended_target_unavailable() const { return target_unavailable_; }
  // ... or that it could not reach the target (410 before anything came from it).
  bool ended_target_refused() const { return target_refused_; }
  // Some request was answered by a live tunnel (200, 204 or 429).
  bool was_served() const { return served_; }
  // The round trip (fastest exchange) this session saw, 0 if none; a new session to the same
  // endpoint starts from it: its own first exchanges come only after its first POSTs, whose settle
  // and quiet times need it (a body was lost at the start of a second session across a 40 ms link).
  uint64_t round_trip_ns() const { return planner_.round_trip_ns(); }
  void seed_round_trip(uint64_t ns) {
    if (ns != 0) planner_.observe_exchange(ns);
  }
  bool failed() const { return end_is_error_; }
  // Once closed: requests still out after the server dropped the target (x-disconnect answered
  // 410). The server answers each of them 410 at once; left running, not cancelled, their
  // connections go back to libcurl's pool warm, and the next session needs no TCP handshake, TLS
  // handshake or proxy CONNECT for them. `on_reaped` hears when the last one is done.
  bool reaping() const;
  void on_reaped(std::function<void()> callback) { on_reaped_ = std::move(callback); }
  const std::string& end_reason() const { return end_reason_; }  // once closed: why it ended
  // For the status line: state, bytes each way, the last round trip.
  SessionStatus status() const;
  uint64_t bytes_up() const { return bytes_up_; }
  uint64_t bytes_down() const { return bytes_down_; }

 private:
  enum class State {
    open,           // both directions flow
    draining,       // local client sent EOF: flush the last uploads, then disconnect
    disconnecting,  // x-disconnect sent, waiting for its answer
    closing,        // local socket closing
    closed,
  };

  struct Request final : Transfer {
    Request(TunnelSession& s, const HttpOptions& options, ProxyChain* chain) : session(s), exchange(options) {
      exchange.watch_header(std::string(protocol::kSeqHeader));
      if (chain != nullptr) exchange.use_chain(*chain);
      exchange.send_once();  // the session sends it again itself, after the releases
    }
    void on_transfer_done(CURLcode result) noexcept override { session.on_request_done(*this, result); }

    TunnelSession& session;
    HttpExchange exchange;
    HeaderLines headers;
    Kind kind = Kind::get;
    Post* post = nullptr;  // a POST's body and what is known of it, owned by the upload side
    uint64_t started_ns = 0;
    uint64_t epoch = 0;    // the recovery's epoch when it was sent
    bool release = false;  // sent to make the server release a request held for a dead connection
    bool busy = false;
    size_t others_at_start = 0;  // requests of the session out when it was sent
    int proxy_choice = 0;        // the session's PAC choice when its proxy was last set
    size_t body_size() const { return kind == Kind::post && post != nullptr ? post->body.size() : 0; }
  };
  struct LocalWrite {
    uv_write_t req;
    std::vector<char> data;
    TunnelSession* session;
  };

  static void on_uv_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) noexcept;
  static void on_uv_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void on_uv_write(uv_write_t* req, int status) noexcept;
  static void on_uv_shutdown(uv_shutdown_t* req, int status) noexcept;
  static void on_uv_gap_timeout(uv_timer_t* timer) noexcept;
  static void on_uv_linger_timeout(uv_timer_t* timer) noexcept;
  static void on_uv_phase_timeout(uv_timer_t* timer) noexcept;
  static void on_uv_stall_timeout(uv_timer_t* timer) noexcept;
  static void on_uv_suspect_timeout(uv_timer_t* timer) noexcept;
  static void on_client_closed(void* data) noexcept;

  void on_request_done(Request& request, CURLcode result);
  void note_release_bound(const Request& released, uint64_t answered_ns);
  void on_local_data(const char* data, size_t size);
  void on_local_eof(const char* why, bool clean = true);  // clean: EOF, not a reset or read error
  void on_payload(Request& request);
  void pump();
  Request& idle_request();
  Request& send_get();
  uint64_t release_gate_ns(uint64_t now) const;
  void drain();                    // after local EOF: disconnect once the last bodies are surely read
  static void on_uv_pump_timeout(uv_timer_t* timer) noexcept;
  bool send(Request& request, Kind kind);
  bool retry_early_410(Request& request);
  void after_early_410_data(bool handshake_answered);
  // A failed exchange that may be tried again: schedules it (or gives up past the retry window).
  void retry_after_failure(Request& request, const std::string& why, bool maybe_held);
  // One line for a transfer that failed; empty when the failure may be retried.
  std::string fatal_transfer_error(const Request& request, CURLcode result) const;
  void end_after_target_closed(bool deadline = false);
  void send_releases();
  void send_post();
  void send_post(Post& post);  // a new POST, or one sent again unchanged
  size_t post_cap() const;       // the most bytes the next POST may carry
  size_t upload_window() const;  // stop reading the local socket with this much unsent
  void send_disconnect(uint64_t timeout_ms);
  void write_local(std::vector<char> data);
  void note_jdwp();  // a lifecycle line when the JDWP handshake moved on
  void note_connected();
  bool target_idle() const;
  bool close_after_post(size_t body_size) const;  // the POST's connection closes when done (see the .cpp)
  // A JVM says nothing before it has the debugger's handshake: the first POST, which carries it, owes
  // no quiet time and needs no GET in front (it saves an IDE both on every attach).
  bool jvm_awaits_handshake() const {
    return jdwp_.state() == JdwpHandshake::State::awaiting_jvm && upload_.next_seq() == 1 && !download_.any_payload();
  }
  // A debugger attached and its packets are followed: their replies say what the JVM received.
  std::string target_close_reason() const;
  bool jdwp_tracked() const { return jdwp_.state() == JdwpHandshake::State::attached && jdwp_packets_.active(); }
  void note_target_received(uint64_t upload_offset);  // the target surely has the stream up to here
  // 200/204/429 to a POST: was its body read? True when surely so (progress).
  bool on_post_answered(Request& request);
  void note_empty_answer(const Request& request, bool progress);  // a 204 or 429: a storm?
  void note_progress();  // a payload, or a POST's body surely read
  std::string stall_text() const;
  void set_reading(bool on);
  // Ends the session; `error` empty means a normal end. Idempotent.
  void finish(std::string why, bool error, bool disconnect_first);
  void close_local(bool flush);
  void log_exchange(const Request& request, CURLcode result) const;
  bool take_next_pac_choice(Request& r, CURLcode result);

  uv_loop_t* loop_;
  CurlUvDriver& driver_;
  const SessionSettings& settings_;
  HttpOptions http_;  // settings_.http, with the PAC choice this session is on (its requests refer to it)
  int proxy_choice_ = 0;  // how many PAC choices it left behind
  ProxyChain* chain_;
  LocalEnd client_;
  int client_handles_open_ = 0;  // closing the local end: handles whose close has not come back yet
  UvHandle<uv_timer_t> gap_timer_;
  UvHandle<uv_timer_t> phase_timer_;
  UvHandle<uv_timer_t> linger_timer_;  // output_outlives_input: after local EOF, how long output may pause
  UvHandle<uv_timer_t> stall_timer_;   // the local client's bytes wait for an answer
  UvHandle<uv_timer_t> suspect_timer_;  // JDWP: a POST answered early waits this long for its reply
  std::string id_;
  std::string peer_;
  ClosedCallback on_closed_;
  State state_ = State::open;
  bool stopping_ = false;  // the agent stops: shorter deadlines, so that it exits within 2 s
  static constexpr uint64_t kStopDeadlineMs = 700;

  // The parts, each with one job (pure, unit-tested in tests/common): which request goes next, the
  // upload side (local bytes to numbered POST bodies, and what goes again), the download side
  // (payloads in order, gaps, the local client's back-pressure) and recovery (back-off, releases).
  RequestPlanner planner_;
  UploadStream upload_;
  DownloadStream download_;
  RetryPolicy recovery_;
  EmptyAnswerPacer pacer_;     // answers that carry nothing, at once: slow down
  bool storm_warned_ = false;  // said once per session
  JdwpHandshake jdwp_;        // only watches: "debugger attached" and friends
  JdwpPackets jdwp_packets_;  // which debugger commands the JVM has not answered

  // Requests in flight.
  std::vector<std::unique_ptr<Request>> pool_;
  bool target_dropped_ = false;       // the server answered our x-disconnect 410: nothing it holds is ours
  std::function<void()> on_reaped_;  // see reaping()
  std::unique_ptr<Request> disconnect_;
  std::vector<InFlightRequest> in_flight_;  // scratch for the planner, reused
  UvHandle<uv_timer_t> pump_timer_;         // wakes pump() when the planner wants to look again
  bool served_ = false;  // some request was answered by a live server session (not 410)
  uint64_t retries_ = 0;  // all retries of the session, for the closing line
  bool failed_exchanges_ = false;  // an exchange of the session failed (its request may still be held)
  // Round trip as the local client sees it: from bytes it sent to the next bytes from the target.
  uint64_t rtt_since_ns_ = 0;
  std::optional<double> last_rtt_ms_;
  // A 410 before any payload may come from the server still closing the previous session's target
  // connection: the first requests are then tried again after a short, growing pause.
  int early_410_retries_ = 0;
  // A 410 came before any data and its retry waits out the hold-off: target data arriving meanwhile
  // means the 410 was the target closing after it took our bytes, not an old connection closing.
  bool early_410_pending_ = false;
  uint64_t hold_off_until_ns_ = 0;
  static constexpr int kEarly410Retries = 5;  // 50+100+200+400+800 ms
  static constexpr unsigned kUnservedAttempts = 4;  // failures before any tunnel answer: give up
  bool target_unavailable_ = false;
  bool target_refused_ = false;
  // For the planner's rule (c): whether the target owes an answer.
  uint64_t reading_since_ns_ = UINT64_MAX;  // when reading the local client last resumed (MAX: stopped)
  static constexpr size_t kReactiveBytes = 64 << 10;  // request/reply messages are smaller than this
  static constexpr uint64_t kPostsBeforeSink = 3;      // POSTs a silent target gets before it counts as a sink
  static constexpr uint64_t kFrontEndSettleNs = 50'000'000;  // as for a proxy hop (agent/settings.cpp)
  bool behind_front_ = false;  // answers come over HTTP/2: a front end relays to the server
  uint64_t last_post_sent_ns_ = 0;  // when the peer acknowledged the last POST's body (or resend)
  size_t last_post_bytes_ = 0;      // ... and its size: a big one is read long after
  uint64_t posts_sent_ = 0;             // POSTs sent, resends included ...
  uint64_t posts_sent_at_payload_ = 0;  // ... when the last payload came: none since, a pause is the target's own
  // The settle time of the first POST that reached the target since its last payload (0: none):
  // a payload later than this came late, and the planner's quiet time grows to cover it.
  uint64_t answer_due_ns_ = 0;
  void note_post_reached(uint64_t at_ns, size_t bytes) {
    if (at_ns > last_post_sent_ns_ && answer_due_ns_ == 0) answer_due_ns_ = at_ns + planner_.settle_ns(bytes);
    if (at_ns >= last_post_sent_ns_) {
      last_post_sent_ns_ = at_ns;
      last_post_bytes_ = bytes;
    }
  }
  // The stall warning.
  uint64_t stalled_since_ns_ = 0;  // the stall warning was given (0: not stalled)
  // The server itself refused a connection after serving this session, and no payload came since
  // (0: not so): a stall now means it restarted, and the session ends saying so.
  uint64_t server_refused_ns_ = 0;
  // The last request that died while the server may have held it, and when (0: none): the server
  // may have answered it with the target's bytes, which went with its connection.
  uint64_t held_lost_ns_ = 0;
  std::string held_lost_what_;
  bool held_lost_warned_ = false;  // said so while nothing had come from the target
  // Since when bytes handed to the target wait for a sign of life from it: set by a POST sent or
  // answered as a suspect, cleared by any other payload (0: nothing waits).
  uint64_t waiting_since_ns_ = 0;
  bool waiting_for_suspects_ = false;  // the stall clock runs only for suspects, not for an owed answer
  void wait_for_answer(uint64_t since_ns);
  // The local end.
  bool reading_ = false;
  bool local_input_ended_ = false;  // output_outlives_input, or half_closed_: the local input reached EOF
  bool half_closed_ = false;  // a TCP client (not a debugger) sent EOF: it may still read (see on_local_eof)
  std::array<char, 64 * 1024> read_buffer_;
  bool target_gone_ = false;  // a 410 came: the session ends once the requests still out are back
  // A request crossed the target's close: it reached the server after the 410s and opened a new target
  // connection there (the reference opens one for any request once the old one is gone).
  bool stray_target_ = false;

  uint64_t started_ns_;
  uint64_t draining_since_ns_ = 0;
  uint64_t bytes_up_ = 0;    // local client -> target, handed to the server
  uint64_t bytes_down_ = 0;  // target -> local client, written
  std::string end_reason_;
  bool end_is_error_ = false;
};

}  // namespace tunnel

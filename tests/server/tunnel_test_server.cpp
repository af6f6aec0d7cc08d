// A faithful stand-in for Spring Boot DevTools' HttpTunnelServer (1.3-1.5), built for the tests
// and the benchmark, with fault injection. It is meant to be as hostile as the reference, never
// kinder: a test against it proves only what it can do. Reproduced from the reference (docs/
// PROTOCOL.md, and HttpTunnelServer / HttpTunnelPayloadForwarder of v1.5.22):
//  - one target connection per endpoint, opened by the first request, shared until it closes;
//  - every request is held until there is something to answer; at most two are held, a third
//    releases the oldest with 429; target data goes out on the oldest held request, and the reader
//    waits with a chunk in hand when none is held: the next request to arrive gets it at once;
//  - a request is held FIRST and its body read AFTER, as the arriving bytes allow: answering it
//    (data, 429, 204, 410) before the last body byte is read loses that body, silently for the
//    client (logged here as "x-seq N lost", and counted); --body-read-delay-ms widens that window;
//  - 204 when a held request is older than the long-poll timeout (checked when a read from the
//    target times out, so after one to two timeouts);
//  - 410 when the target closes or refuses the connection, 503 with --unavailable, 403 for a wrong
//    secret; x-disconnect closes the target; the session ends after --disconnect-ms without requests;
//  - client payloads are applied in x-seq order through a reorder map of at most 100 entries that
//    is never emptied: every early or repeated x-seq keeps its slot for the life of the target
//    connection, and the 101st fails its request with 500 "Too many messages queued";
//  - the server's x-seq restarts at 1 with each target connection;
//  - a held request whose connection died stays held and may be answered into the dead connection
//    (logged "answered into a dead connection": that payload is gone); the connection faults
//    cut-post and drop-held kill a held request's connection so, and log "fault met" when they do;
//  - a POST's body goes to the target on the request's own thread, which blocks while the target does
//    not read; its answer does not wait for that (the reader thread writes it), but the HTTP
//    connection reads its next request only once the body is through;
//  - Tomcat's keep-alive limit: a connection carries at most 100 requests.
// Not reproduced: Tomcat's thread pool limits, chunked request bodies' exact error paths, the
// interrupted-reader spin after x-disconnect, and HTTP/2 (use nghttpx in front for that).
// Counters (bodies applied, lost and recovered, slots used, ...) are served as JSON at
// kStatsPath, printed on SIGUSR1 and on SIGINT/SIGTERM, so a test can assert that nothing was lost.
// Threads mirror the original too: one per HTTP connection plus one reader per target connection.
// The HTTP/1.1 layer is our own so that faults can be injected at any byte (--fault, see --help);
// where each fault hits and its timing come from --fault-seed, so a run can be repeated.
#include <CLI/CLI.hpp>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kReadSize = 100 * 1024;  // one read from the target = at most one payload
constexpr size_t kMaxQueued = 100;
constexpr int kKeepAliveMax = 100;  // as Tomcat: a connection carries at most 100 requests
constexpr size_t kMaxHead = 64 * 1024;
constexpr size_t kMaxBody = 64 * 1024 * 1024;
constexpr const char* kStatsPath = "/.tunnel-test-server/stats";

void log_line(const std::string& text) {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  tm parts{};
  gmtime_r(&now.tv_sec, &parts);
  std::fprintf(stderr, "%02d:%02d:%02d.%03ld tunnel-test-server: %s\n", parts.tm_hour, parts.tm_min, parts.tm_sec,
               now.tv_nsec / 1000000, text.c_str());
  std::fflush(stderr);
}

// What happened to the client's payloads, for tests to assert on (all target connections).
struct Stats {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> bodies_applied{0};    // payloads written to the target
  std::atomic<uint64_t> bodies_lost{0};       // answered before the body was read: never forwarded
  std::atomic<uint64_t> bodies_recovered{0};  // a lost x-seq that a later resend brought in order
  std::atomic<uint64_t> out_of_order{0};      // arrived before their predecessor was applied
  std::atomic<uint64_t> duplicates{0};        // arrived after the same x-seq was applied
  std::atomic<uint64_t> slots_max{0};         // most reorder-map entries one target connection had
  std::atomic<uint64_t> queue_overflows{0};   // "Too many messages queued" (500)
  std::atomic<uint64_t> released{0};          // 429 answers
  std::atomic<uint64_t> target_connections{0};
  std::atomic<uint64_t> target_connections_open{0};  // opened and not yet ended

  std::string json() const {
    return "{\"requests\": " + std::to_string(requests) + ", \"bodies_applied\": " + std::to_string(bodies_applied) +
           ", \"bodies_lost\": " + std::to_string(bodies_lost) +
           ", \"bodies_recovered\": " + std::to_string(bodies_recovered) +
           ", \"out_of_order\": " + std::to_string(out_of_order) + ", \"duplicates\": " + std::to_string(duplicates) +
           ", \"slots_max\": " + std::to_string(slots_max) + ", \"queue_overflows\": " + std::to_string(queue_overflows) +
           ", \"released\": " + std::to_string(released) +
           ", \"target_connections\": " + std::to_string(target_connections) +
           ", \"target_connections_open\": " + std::to_string(target_connections_open) + "}";
  }
};
Stats g_stats;

// ---- fault injection ------------------------------------------------------------------------

enum class Fault {
  // decided when a request arrives (counted over requests)
  drop_request,  // close the connection right after the request head: the server never saw it
  // The connection faults leave the request held, as the original does when a held request's
  // connection dies (it notices only when it writes the answer, which is then lost).
  cut_post,      // hold the POST, read half its body, then close: the body is never applied
  drop_held,     // hold the request (its body read), then close without answering
  drop_held_get, // drop-held on a request without a body only (counted over those): no target data is
                 // on its way for it, unlike a POST whose target answers it at once
  late,          // hold it, but never for target data, and answer no sooner than --late-ms
  status_500,    // answer 500 without handling the request
  status_429,    // answer 429 at once without handling the request, as a gateway that rate-limits
  status_204,    // answer an empty 204 at once without handling the request, as a gateway or cache
  status_502,    // answer 502 with an HTML page, as a proxy that could not reach the server
  status_504,    // answer 504 with an HTML page, as a proxy that timed out
  lose_body,     // hold the POST and read its body, then drop it: as if answered before it was read
  // decided when a payload (200) goes out (counted over payloads)
  cut_body,      // close the connection halfway through the body
  cl_long,       // Content-Length larger than the body, then close
  cl_short,      // Content-Length half the body (the rest follows on the wire), then close
  cl_huge,       // Content-Length of a petabyte, then close
  close_cut,     // no Content-Length (ends at the close, as a proxy may re-frame it), cut halfway
  seq_dup,       // the payload carries the previous payload's x-seq
  seq_skip,      // one x-seq is skipped: a gap that never fills
  seq_swap,      // this payload and the next go out in swapped order (a legal reordering)
  seq_text,      // x-seq: abc
  seq_zero,      // x-seq: 0
  seq_negative,  // x-seq: -<n>
  seq_missing,   // no x-seq header
  seq_restart,   // x-seq starts again at 1 here, as after a new target connection (the stream broke)
  drop_answer,   // the held request's connection dies just as the payload goes out on it: the payload
                 // is answered into a dead connection and lost, and the client sees only the broken
                 // connection (the reference's race with a dying connection, made to happen)
};

constexpr std::pair<const char*, Fault> kFaultNames[] = {
    {"drop-request", Fault::drop_request}, {"cut-post", Fault::cut_post},   {"drop-held", Fault::drop_held},
    {"drop-held-get", Fault::drop_held_get}, {"drop-answer", Fault::drop_answer},
    {"late", Fault::late},                 {"500", Fault::status_500},      {"429", Fault::status_429},      {"204", Fault::status_204},      {"502", Fault::status_502},
    {"504", Fault::status_504},            {"lose-body", Fault::lose_body},
    {"cut-body", Fault::cut_body},   {"cl-long", Fault::cl_long},
    {"cl-short", Fault::cl_short},         {"cl-huge", Fault::cl_huge},     {"close-cut", Fault::close_cut},     {"seq-dup", Fault::seq_dup},
    {"seq-skip", Fault::seq_skip},         {"seq-swap", Fault::seq_swap},   {"seq-text", Fault::seq_text},
    {"seq-zero", Fault::seq_zero},         {"seq-negative", Fault::seq_negative},
    {"seq-missing", Fault::seq_missing},   {"seq-restart", Fault::seq_restart},
};

const char* fault_name(Fault fault) {
  for (const auto& [name, value] : kFaultNames) {
    if (value == fault) return name;
  }
  return "?";
}

bool is_payload_fault(Fault fault) { return fault >= Fault::cut_body; }

struct FaultRule {
  Fault fault = Fault::drop_request;
  double rate = 0;   // inject with this probability...
  uint64_t nth = 0;  // ...or exactly on this request / payload (1-based)
  bool onwards = false;  // ...or on it and every one after it
};

// "NAME:RATE" (0 < RATE <= 1), "NAME@N" or "NAME@N+". Returns an error text.
std::optional<std::string> parse_fault_rule(const std::string& text, FaultRule& rule) {
  const size_t at = text.find_first_of(":@");
  if (at == std::string::npos) return "expected NAME:RATE or NAME@N, got '" + text + "'";
  const std::string name = text.substr(0, at);
  auto it = std::find_if(std::begin(kFaultNames), std::end(kFaultNames), [&](const auto& p) { return name == p.first; });
  if (it == std::end(kFaultNames)) return "unknown fault '" + name + "'";
  rule.fault = it->second;
  try {
    if (text[at] == ':') {
      rule.rate = std::stod(text.substr(at + 1));
      if (!(rule.rate > 0 && rule.rate <= 1)) return "rate must be in (0, 1]: '" + text + "'";
    } else {
      rule.nth = std::stoull(text.substr(at + 1));
      rule.onwards = text.back() == '+';
      if (rule.nth == 0) return "N counts from 1: '" + text + "'";
    }
  } catch (const std::exception&) {
    return "bad number in '" + text + "'";
  }
  return std::nullopt;
}

// Decides, from a seed, which request or payload gets which fault: one draw per rule, in order.
class Faults {
 public:
  void add(FaultRule rule) { rules_.push_back(rule); }
  void seed(uint64_t seed) { rng_.seed(seed); }

  std::optional<Fault> on_request(bool post_with_body) { return draw(false, post_with_body); }
  std::optional<Fault> on_payload() { return draw(true, false); }
  // A number in [0, n) from the seed: a fault's timing, like its place, repeats from run to run.
  uint64_t below(uint64_t n) {
    std::lock_guard lock(mutex_);
    return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_);
  }

 private:
  // Payload faults count payloads; cut-post and lose-body count POSTs with a body; the rest count
  // requests.
  static bool counts_posts(Fault fault) { return fault == Fault::cut_post || fault == Fault::lose_body; }
  static bool counts_gets(Fault fault) { return fault == Fault::drop_held_get; }

  std::optional<Fault> draw(bool payload, bool post_with_body) {
    std::lock_guard lock(mutex_);
    const uint64_t n = payload ? ++payloads_ : ++requests_;
    const uint64_t nth_post = post_with_body ? ++posts_ : 0;
    const uint64_t nth_get = !payload && !post_with_body ? ++gets_ : 0;
    for (const FaultRule& rule : rules_) {
      if (is_payload_fault(rule.fault) != payload) continue;
      if (counts_posts(rule.fault) && !post_with_body) continue;
      if (counts_gets(rule.fault) && (payload || post_with_body)) continue;
      const uint64_t counter = counts_posts(rule.fault) ? nth_post : counts_gets(rule.fault) ? nth_get : n;
      const bool hit = rule.nth != 0 ? (rule.onwards ? counter >= rule.nth : counter == rule.nth)
                                     : std::uniform_real_distribution<double>(0, 1)(rng_) < rule.rate;
      if (hit) {
        log_line(std::string("fault: ") + fault_name(rule.fault) + " on " +
                 (payload                      ? "payload "
                     : counts_posts(rule.fault) ? "POST "
                     : counts_gets(rule.fault)  ? "request without a body "
                                                : "request ") +
                 std::to_string(counter));
        return rule.fault == Fault::drop_held_get ? Fault::drop_held : rule.fault;
      }
    }
    return std::nullopt;
  }

  std::mutex mutex_;
  std::vector<FaultRule> rules_;
  std::mt19937_64 rng_{1};
  uint64_t requests_ = 0;
  uint64_t payloads_ = 0;
  uint64_t posts_ = 0;
  uint64_t gets_ = 0;
};

struct Options {
  std::string listen = "127.0.0.1:0";
  std::string target = "127.0.0.1:0";
  std::string path = "/.~~spring-boot!~/debug";
  long long long_poll_ms = 10000;
  long long disconnect_ms = 30000;
  long long late_ms = 3000;
  long long body_read_delay_ms = 0;  // after holding a request, wait this long before reading its body
  std::string secret_header = "X-AUTH-TOKEN";
  std::optional<std::string> secret;
  bool unavailable = false;
  bool log_requests = false;
  std::vector<std::string> log_headers;  // log these request headers of every request (lower case)
};

bool split_host_port(const std::string& text, std::string& host, int& port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  host = text.substr(0, colon);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  try {
    port = std::stoi(text.substr(colon + 1));
  } catch (...) {
    return false;
  }
  return port >= 0 && port <= 65535;
}

// ---- the tunnel -----------------------------------------------------------------------------

struct Answer {
  explicit Answer(int status_code, uint64_t seq_number = 0, std::string payload = {})
      : status(status_code), seq(seq_number), body(std::move(payload)) {}
  int status;
  uint64_t seq;
  std::string body;
  std::optional<Fault> fault;  // a payload fault to apply when writing this answer
};

// One request the server holds until it has something to say.
struct Held {
  Clock::time_point since = Clock::now();
  std::optional<Answer> answer;
  bool body_read = false;  // its last body byte was read before any answer
  bool aside = false;      // never chosen for target data (the late fault)
  std::condition_variable answered;
};

class Endpoint;

// The original's ServerThread: one target connection and the requests held for it.
class TargetSession : public std::enable_shared_from_this<TargetSession> {
 public:
  TargetSession(Endpoint& endpoint, int fd, uint64_t id, const Options& options, Faults& faults)
      : endpoint_(endpoint), fd_(fd), id_(id), options_(options), faults_(faults) {}
  ~TargetSession() { ::close(fd_); }

  void start() {
    std::thread([self = shared_from_this()] { self->run(); }).detach();
  }

  // handleIncomingHttp: hold the request (releasing the oldest past two).
  std::shared_ptr<Held> hold(bool aside = false) {
    auto held = std::make_shared<Held>();
    held->aside = aside;
    std::lock_guard lock(mutex_);
    if (closed_) {
      held->answer = Answer{410};
      return held;
    }
    while (held_.size() > 1) {
      answer_locked(held_.front(), Answer{429});
      held_.pop_front();
      ++g_stats.released;
    }
    last_request_ = Clock::now();
    held_.push_back(held);
    reader_wakeup_.notify_all();
    return held;
  }


  // x-disconnect: close the target now; everything held is answered 410 by the reader.
  void disconnect() {
    {
      std::lock_guard lock(mutex_);
      if (!close_reason_) close_reason_ = "x-disconnect";
      closed_ = true;
      reader_wakeup_.notify_all();
    }
    ::shutdown(fd_, SHUT_RDWR);
  }

  // True while the request is unanswered.
  bool unanswered(const Held& held) {
    std::lock_guard lock(mutex_);
    return !held.answer.has_value();
  }

  // The last body byte was read: true if no answer came first (else the body is lost).
  bool finish_body_read(Held& held) {
    std::lock_guard lock(mutex_);
    held.body_read = !held.answer.has_value();
    return held.body_read;
  }

  // A body lost to an early answer: counted, and remembered so that a resend that brings it in
  // order is counted as a recovery.
  // A body answered before it was read: lost, unless it repeats one already applied (a resend the
  // server did not need loses nothing).
  void note_lost(uint64_t seq) {
    std::lock_guard lock(forward_mutex_);
    if (seq <= last_applied_) return;
    ++g_stats.bodies_lost;
    lost_.insert(seq);
  }

  // The original's forwarder: writes payloads to the target in x-seq order. An early or repeated
  // x-seq goes into a map that is never emptied (HttpTunnelPayloadForwarder looks entries up and
  // never removes them): each one keeps a slot for the life of the target connection, and once 100
  // are taken every further early or repeated x-seq fails. Returns an error text.
  std::optional<std::string> forward(uint64_t seq, std::string body) {
    std::lock_guard lock(forward_mutex_);
    if (seq != last_applied_ + 1) {
      if (queued_.size() >= kMaxQueued) {
        ++g_stats.queue_overflows;
        return "Too many messages queued";
      }
      ++(seq <= last_applied_ ? g_stats.duplicates : g_stats.out_of_order);
      queued_[seq] = std::move(body);
      if (queued_.size() > g_stats.slots_max) g_stats.slots_max = queued_.size();
      if (options_.log_requests) {
        log_line("x-seq " + std::to_string(seq) + (seq <= last_applied_ ? " again (already applied)" : " early") +
                 ": queued, " + std::to_string(queued_.size()) + " of " + std::to_string(kMaxQueued) + " slots used");
      }
      return std::nullopt;
    }
    for (const std::string* next = &body;;) {
      if (!write_all(*next)) return "write to the target failed";
      ++last_applied_;
      ++g_stats.bodies_applied;
      if (lost_.erase(last_applied_) != 0) {
        ++g_stats.bodies_recovered;
        log_line("x-seq " + std::to_string(last_applied_) + " recovered: a resend brought the lost body");
      }
      auto it = queued_.find(last_applied_ + 1);
      if (it == queued_.end()) break;
      next = &it->second;  // applied from the map, and its slot stays taken
    }
    return std::nullopt;
  }

  void wait(Held& held) {
    std::unique_lock lock(mutex_);
    held.answered.wait(lock, [&] { return held.answer.has_value(); });
  }

  bool wait_for(Held& held, std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    return held.answered.wait_for(lock, limit, [&] { return held.answer.has_value(); });
  }

  uint64_t id() const { return id_; }

 private:
  static void answer_locked(const std::shared_ptr<Held>& held, Answer answer) {
    held->answer = std::move(answer);
    held->answered.notify_all();
  }

  bool write_all(const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }

  // Must hold mutex_. False once no request arrived for the disconnect timeout.
  bool within_disconnect_timeout() const {
    return options_.disconnect_ms <= 0 ||
           Clock::now() - last_request_ < std::chrono::milliseconds(options_.disconnect_ms);
  }

  // getOrWaitForHttpConnection, then answer on the oldest held request. False once closed.
  bool answer_oldest(Answer answer, std::string& why) {
    std::unique_lock lock(mutex_);
    auto takes_data = [&] { return std::find_if(held_.begin(), held_.end(), [](const auto& h) { return !h->aside; }); };
    while (takes_data() == held_.end() && !closed_) {
      reader_wakeup_.wait_for(lock, std::chrono::milliseconds(options_.long_poll_ms));
      if (!within_disconnect_timeout()) {
        why = "disconnect timeout: no request for " + std::to_string(options_.disconnect_ms) + " ms";
        closed_ = true;
      }
    }
    if (closed_) return false;
    const auto it = takes_data();
    answer_locked(*it, std::move(answer));
    held_.erase(it);
    return true;
  }

  // A payload read from the target, numbered (and perhaps faulted) on its way out.
  Answer make_payload(std::string data) {
    Answer answer{200, 0, std::move(data)};
    answer.fault = faults_.on_payload();
    if (answer.fault == Fault::seq_skip) ++response_seq_;
    if (answer.fault == Fault::seq_restart) response_seq_ = 0;
    answer.seq = answer.fault == Fault::seq_dup && response_seq_ > 0 ? response_seq_ : ++response_seq_;
    return answer;
  }

  // The reader loop (the original's readAndForwardTargetServerData).
  void run();

  Endpoint& endpoint_;
  int fd_;
  uint64_t id_;
  const Options& options_;
  Faults& faults_;
  std::mutex mutex_;
  std::condition_variable reader_wakeup_;
  std::deque<std::shared_ptr<Held>> held_;
  bool closed_ = false;
  std::optional<std::string> close_reason_;
  Clock::time_point last_request_ = Clock::now();
  uint64_t response_seq_ = 0;
  std::mutex forward_mutex_;
  uint64_t last_applied_ = 0;
  std::map<uint64_t, std::string> queued_;
  std::set<uint64_t> lost_;  // x-seqs lost to an early answer and not applied since
};

class Endpoint {
 public:
  Endpoint(const Options& options, Faults& faults) : options_(options), faults_(faults) {
    split_host_port(options.target, target_host_, target_port_);
  }

  // getServerThread: the live session, or a new one with a fresh target connection.
  std::shared_ptr<TargetSession> session(std::string& refused) {
    std::lock_guard lock(mutex_);
    if (session_) return session_;
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(target_port_));
    inet_pton(AF_INET, target_host_.c_str(), &addr.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      refused = std::strerror(errno);
      ::close(fd);
      log_line("target connection to " + options_.target + " failed: " + refused);
      return nullptr;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    session_ = std::make_shared<TargetSession>(*this, fd, ++sessions_, options_, faults_);
    ++g_stats.target_connections;
    ++g_stats.target_connections_open;
    log_line("target connection " + std::to_string(session_->id()) + " opened to " + options_.target);
    session_->start();
    return session_;
  }

  // clearServerThread
  void ended(TargetSession* which) {
    std::lock_guard lock(mutex_);
    if (session_.get() != which) return;
    session_.reset();
    --g_stats.target_connections_open;
  }

 private:
  const Options& options_;
  Faults& faults_;
  std::string target_host_;
  int target_port_ = 0;
  std::mutex mutex_;
  std::shared_ptr<TargetSession> session_;
  uint64_t sessions_ = 0;
};

void TargetSession::run() {
  std::string buffer(kReadSize, '\0');
  std::string why = "the target closed the connection";
  std::optional<Answer> swapped;  // a payload held back to go out after the next one (seq-swap)
  for (;;) {
    {
      // closeStaleHttpConnections
      std::lock_guard lock(mutex_);
      if (closed_) break;
      if (!within_disconnect_timeout()) {
        why = "disconnect timeout: no request for " + std::to_string(options_.disconnect_ms) + " ms";
        break;
      }
      auto limit = Clock::now() - std::chrono::milliseconds(options_.long_poll_ms);
      for (auto it = held_.begin(); it != held_.end();) {
        if ((*it)->since <= limit) {
          answer_locked(*it, Answer{204});
          it = held_.erase(it);
        } else {
          ++it;
        }
      }
    }
    pollfd p{fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(swapped ? 100 : options_.long_poll_ms));
    if (ready == 0) {
      // the read timed out: a held-back payload goes out alone, in order; then check for stale requests
      if (swapped) log_line("fault not met: seq-swap: x-seq " + std::to_string(swapped->seq) + " went out alone");
      if (swapped && !answer_oldest(std::move(*swapped), why)) break;
      swapped.reset();
      continue;
    }
    ssize_t n = ready < 0 ? -1 : ::recv(fd_, buffer.data(), buffer.size(), 0);
    if (n <= 0) break;
    if (options_.log_requests) log_line("read " + std::to_string(n) + " bytes from the target");
    Answer answer = make_payload(std::string(buffer.data(), static_cast<size_t>(n)));
    if (answer.fault == Fault::seq_swap && !swapped) {
      swapped = std::move(answer);
      continue;
    }
    const uint64_t overtaking = answer.seq;
    if (!answer_oldest(std::move(answer), why)) break;
    if (swapped) {
      log_line("fault met: seq-swap: x-seq " + std::to_string(overtaking) + " went out before " +
               std::to_string(swapped->seq));
      if (!answer_oldest(std::move(*swapped), why)) break;
      swapped.reset();
    }
  }
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    if (close_reason_) why = *close_reason_;
    for (auto& held : held_) answer_locked(held, Answer{410});
    held_.clear();
  }
  ::shutdown(fd_, SHUT_RDWR);
  log_line("target connection " + std::to_string(id_) + " closed: " + why);
  endpoint_.ended(this);
}

std::optional<long long> parse_long(const std::string& text) {
  // Java's Long.valueOf: optional sign, decimal digits, nothing else.
  if (text.empty()) return std::nullopt;
  size_t i = (text[0] == '-' || text[0] == '+') ? 1 : 0;
  if (i == text.size() || text.find_first_not_of("0123456789", i) != std::string::npos || text.size() > 19) {
    return std::nullopt;
  }
  return std::stoll(text);
}

// ---- HTTP/1.1 -------------------------------------------------------------------------------

struct Request {
  std::string method;
  std::string target;
  bool http10 = false;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;

  std::string header(const std::string& lowercase_name) const {
    auto it = headers.find(lowercase_name);
    return it == headers.end() ? std::string() : it->second;
  }
  bool has(const std::string& lowercase_name) const { return headers.count(lowercase_name) != 0; }
};

struct Reply {
  explicit Reply(int status_code, std::string type = {}, std::string text = {}, bool close_after = false)
      : status(status_code), content_type(std::move(type)), body(std::move(text)), close(close_after) {}
  int status;
  std::string content_type;
  std::string body;
  std::optional<std::string> seq;  // the x-seq header's text
  std::optional<Fault> fault;      // a payload fault to apply while writing
  bool close = false;              // Connection: close
  size_t swallow_after = 0;        // request body bytes still to read (and drop) once this is written
};

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 410: return "Gone";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string trim(const std::string& text) {
  const size_t b = text.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  return text.substr(b, text.find_last_not_of(" \t") - b + 1);
}

// One client connection: buffered reads, whole writes.
class Connection {
 public:
  explicit Connection(int fd) : fd_(fd) {}
  ~Connection() { ::close(fd_); }
  // The connection dies under the request (the client sees it closed); the fd stays ours.
  void kill() { ::shutdown(fd_, SHUT_RDWR); }

  bool read_head(Request& req) {
    size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (buffer_.size() > kMaxHead || !fill()) return false;
    }
    const std::string head = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    size_t line_end = head.find("\r\n");
    const std::string request_line = head.substr(0, line_end);
    const size_t s1 = request_line.find(' ');
    const size_t s2 = request_line.rfind(' ');
    if (s1 == std::string::npos || s2 == s1) return false;
    req.method = request_line.substr(0, s1);
    req.target = request_line.substr(s1 + 1, s2 - s1 - 1);
    req.http10 = request_line.substr(s2 + 1) == "HTTP/1.0";
    while (line_end != std::string::npos) {
      const size_t next = head.find("\r\n", line_end + 2);
      const std::string line = head.substr(line_end + 2, next == std::string::npos ? std::string::npos : next - line_end - 2);
      const size_t colon = line.find(':');
      if (colon != std::string::npos) req.headers[lower(line.substr(0, colon))] = trim(line.substr(colon + 1));
      line_end = next;
    }
    return true;
  }

  // Content-Length of the request (0 when none), or nullopt when it is malformed.
  static std::optional<size_t> content_length(const Request& req) {
    if (!req.has("content-length")) return 0;
    auto value = parse_long(req.header("content-length"));
    if (!value || *value < 0 || static_cast<size_t>(*value) > kMaxBody) return std::nullopt;
    return static_cast<size_t>(*value);
  }

  bool read_body(Request& req) {
    if (lower(req.header("transfer-encoding")).find("chunked") != std::string::npos) return read_chunked(req.body);
    auto length = content_length(req);
    return length && read_exact(*length, req.body);
  }

  enum class Read { done, stopped, broken };
  // Reads `size` bytes as they arrive, looking at `stop` between arrivals: the bytes read so far
  // stay buffered when it says stop.
  template <typename Stop>
  Read read_exact_unless(size_t size, std::string& out, Stop stop) {
    while (buffer_.size() < size) {
      if (stop()) return Read::stopped;
      pollfd p{fd_, POLLIN, 0};
      const int ready = ::poll(&p, 1, 1);
      if (ready < 0 || (ready > 0 && !fill())) return Read::broken;
    }
    out.assign(buffer_, 0, size);
    buffer_.erase(0, size);
    return Read::done;
  }

  bool read_exact(size_t size, std::string& out) {
    while (buffer_.size() < size) {
      if (!fill()) return false;
    }
    out.assign(buffer_, 0, size);
    buffer_.erase(0, size);
    return true;
  }

  bool write_all(const char* data, size_t size) {
    while (size > 0) {
      ssize_t n = ::send(fd_, data, size, MSG_NOSIGNAL);
      if (n <= 0) return false;
      data += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }
  bool write_all(const std::string& data) { return write_all(data.data(), data.size()); }

  // The client closed its side (or reset): an answer written now is lost.
  bool peer_gone() const {
    pollfd p{fd_, POLLRDHUP, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }

 private:
  bool fill() {
    char chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  bool read_line(std::string& line) {
    size_t end;
    while ((end = buffer_.find("\r\n")) == std::string::npos) {
      if (buffer_.size() > kMaxHead || !fill()) return false;
    }
    line = buffer_.substr(0, end);
    buffer_.erase(0, end + 2);
    return true;
  }

  bool read_chunked(std::string& body) {
    for (;;) {
      std::string line;
      if (!read_line(line)) return false;
      size_t size = 0;
      try {
        size = std::stoul(line, nullptr, 16);
      } catch (const std::exception&) {
        return false;
      }
      if (size == 0) {
        while (read_line(line) && !line.empty()) {
        }
        return true;
      }
      std::string part;
      if (body.size() + size > kMaxBody || !read_exact(size, part) || !read_line(line)) return false;
      body += part;
    }
  }

  int fd_;
  std::string buffer_;
};

// Writes a reply, applying its payload fault. False when the connection must close.
bool write_reply(Connection& conn, const Reply& reply) {
  std::string head = "HTTP/1.1 " + std::to_string(reply.status) + " " + reason_phrase(reply.status) + "\r\n";
  size_t declared = reply.body.size();
  size_t sent = reply.body.size();
  bool close = reply.close;
  if (reply.fault) {
    close = true;
    switch (*reply.fault) {
      case Fault::cut_body: sent = reply.body.size() / 2; break;
      case Fault::cl_long: declared = reply.body.size() + 1000; break;
      case Fault::cl_short:
        // the rest of the body follows as if it were the start of the next answer; as a faulty
        // server would, keep the connection
        declared = reply.body.size() / 2;
        close = reply.close;
        break;
      case Fault::cl_huge: declared = 1000000000000000ull; break;
      case Fault::close_cut: sent = reply.body.size() / 2; break;
      default: close = reply.close; break;
    }
  }
  if (reply.seq) head += "x-seq: " + *reply.seq + "\r\n";
  if (!reply.content_type.empty()) head += "Content-Type: " + reply.content_type + "\r\n";
  if (reply.status != 204 && reply.fault != Fault::close_cut) head += "Content-Length: " + std::to_string(declared) + "\r\n";
  if (close) head += "Connection: close\r\n";
  head += "\r\n";
  head.append(reply.body, 0, sent);
  return conn.write_all(head) && !close;
}

// A thread that is joined when it goes out of scope.
struct Joined {
  std::thread thread;
  ~Joined() {
    if (thread.joinable()) thread.join();
  }
};

class Server {
 public:
  Server(const Options& options, Faults& faults) : options_(options), faults_(faults), endpoint_(options, faults) {}

  void serve(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    Connection conn(fd);
    for (int count = 1;; ++count) {
      Request req;
      if (!conn.read_head(req)) return;
      ++g_stats.requests;
      const auto length = Connection::content_length(req);
      if (!length) {
        write_reply(conn, Reply{400, "text/plain", "bad Content-Length\n", true});
        return;
      }
      const std::optional<Fault> fault = faults_.on_request(req.method == "POST" && *length > 1);
      if (fault == Fault::drop_request) return;
      const bool close = count >= kKeepAliveMax || lower(req.header("connection")) == "close" ||
                         (req.http10 && lower(req.header("connection")) != "keep-alive");
      Joined forwarding;  // declared after req, so joined before req goes
      std::optional<Reply> reply = handle(conn, req, *length, fault, forwarding.thread);
      if (!reply) return;  // drop-held, or the connection broke: it goes without an answer
      reply->close = reply->close || close;
      if (reply->fault == Fault::drop_answer) {
        conn.kill();
        log_line("fault met: drop-answer: payload x-seq " + reply->seq.value_or("?") +
                 " answered into a dead connection: lost");
        return;
      }
      if (reply->status == 200 && conn.peer_gone()) {
        // What the original does too, silently: the payload is gone with the connection.
        log_line("payload x-seq " + reply->seq.value_or("?") + " answered into a dead connection: lost");
      }
      if (!write_reply(conn, *reply)) return;
      std::string rest;  // the body of a request answered before it was read: Tomcat drops it
      if (reply->swallow_after > 0 && !conn.read_exact(reply->swallow_after, rest)) return;
    }
  }

 private:
  // Reads the body of a request that is not held (refused, or not a tunnel request).
  static std::optional<Reply> after_body(Connection& conn, Request& req, Reply reply) {
    if (!conn.read_body(req)) return Reply{400, "text/plain", "bad request body\n", true};
    return reply;
  }

  std::optional<Reply> handle(Connection& conn, Request& req, size_t length, std::optional<Fault> fault,
                              std::thread& forwarding) {
    const std::string path = req.target.substr(0, req.target.find('?'));
    if (path == kStatsPath) return after_body(conn, req, Reply{200, "application/json", g_stats.json() + "\n"});
    const std::optional<Reply> refusal = refuse(req, path, fault);
    if (refusal) return after_body(conn, req, *refusal);
    std::string refused;
    auto session = endpoint_.session(refused);
    if (!session) return after_body(conn, req, Reply{410});
    // handleIncomingHttp: the request is held first, and only then is its body read.
    const auto arrived = Clock::now();
    std::shared_ptr<Held> held = session->hold(fault == Fault::late);
    if (fault == Fault::late) {
      log_line("fault met: late: " + req.method + " held, never for target data, answered no sooner than " +
               std::to_string(options_.late_ms) + " ms");
    }
    if (options_.log_requests) log_line("held " + req.method + " x-seq " + req.header("x-seq"));
    for (const auto& name : options_.log_headers) {
      log_line(req.method + " header " + name + ": " + (req.has(name) ? req.header(name) : std::string("(none)")));
    }
    const std::string what = req.method + (req.has("x-seq") ? " x-seq " + req.header("x-seq") : std::string());
    // drop-held: the connection dies a moment (0-2 ms) after the request was held.
    const auto drop_at = fault == Fault::drop_held ? arrived + std::chrono::milliseconds(faults_.below(3))
                                                   : Clock::time_point::max();
    size_t swallow = 0;
    if (fault == Fault::cut_post) {
      // Its connection dies mid-body: the body is never forwarded, the request stays held.
      std::string half;
      conn.read_exact(length / 2, half);
      conn.kill();
      log_line("fault met: cut-post: " + what + " cut after " + std::to_string(half.size()) + " of " +
               std::to_string(length) + " body bytes; the request stays held");
      return answer_dead(*session, *held, what);
    }
    if (req.header("content-type") == "application/x-disconnect") {
      session->disconnect();
      if (!conn.read_body(req)) return std::nullopt;
    } else if (!req.has("content-length") || length == 0) {
      if (!conn.read_body(req)) return std::nullopt;  // chunked or empty: no payload, as the original
    } else {
      if (options_.body_read_delay_ms > 0) {
        session->wait_for(*held, std::chrono::milliseconds(options_.body_read_delay_ms));
      }
      const auto read = conn.read_exact_unless(length, req.body, [&] { return !session->unanswered(*held); });
      if (read == Connection::Read::broken) return std::nullopt;  // stays held, as in the original
      if (read == Connection::Read::done && fault == Fault::lose_body) {
        session->note_lost(static_cast<uint64_t>(parse_long(req.header("x-seq")).value_or(0)));
        log_line("x-seq " + req.header("x-seq") + " lost: dropped by the lose-body fault");
      } else if (read == Connection::Read::done && session->finish_body_read(*held)) {
        // forwardToTargetServer blocks the request's thread while the target does not read, but the
        // answer does not wait for it: the reader thread writes it (HttpConnection.respond). Here the
        // body goes on a thread of its own, and this connection reads its next request only once it
        // is through (`forwarding` is joined by serve), as Tomcat's request thread would.
        auto error = std::make_shared<std::optional<std::string>>();
        auto done = std::make_shared<std::atomic<bool>>(false);
        forwarding = std::thread([session, &req, error, done] {
          *error = forward_payload(*session, req);
          if (*error) log_line("request failed: " + **error);
          done->store(true);
        });
        while (!session->wait_for(*held, std::chrono::milliseconds(drop_at == Clock::time_point::max() ? 5 : 1))) {
          if (done->load() && *error) {
            // like the original, the held entry stays in the list until answered or closed
            return Reply{500, "text/plain", **error};
          }
          if (Clock::now() >= drop_at) break;
        }
      } else {
        // Answering closed the request's input on Tomcat: the body never reaches the target.
        if (read == Connection::Read::stopped) swallow = length;
        const auto seq = parse_long(req.header("x-seq"));
        session->note_lost(seq ? static_cast<uint64_t>(*seq) : 0);
        session->wait(*held);
        log_line("x-seq " + req.header("x-seq") + " lost: answered (" + std::to_string(held->answer->status) +
                 ") before its body was read");
      }
    }
    if (fault == Fault::drop_held) {
      // Unanswered when its connection dies, the request stays held.
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(drop_at - Clock::now());
      if (!session->wait_for(*held, std::max(left, std::chrono::milliseconds(0)))) {
        conn.kill();
        log_line("fault met: drop-held: the connection of held " + what + " closed unanswered; the request stays held");
        return answer_dead(*session, *held, what);
      }
    }
    session->wait(*held);
    if (fault == Fault::late) std::this_thread::sleep_until(arrived + std::chrono::milliseconds(options_.late_ms));
    const Answer& answer = *held->answer;
    Reply reply{answer.status};
    reply.swallow_after = swallow;
    if (answer.status == 200) {
      reply.content_type = "application/octet-stream";
      reply.body = answer.body;
      reply.fault = answer.fault;
      if (answer.fault == Fault::seq_text) {
        reply.seq = "abc";
      } else if (answer.fault == Fault::seq_zero) {
        reply.seq = "0";
      } else if (answer.fault == Fault::seq_negative) {
        reply.seq = "-" + std::to_string(answer.seq);
      } else if (answer.fault != Fault::seq_missing) {
        reply.seq = std::to_string(answer.seq);
      }
    }
    return reply;
  }

  // A request held for a dead connection is answered some time (data, 429, 204 or 410), and the
  // answer is lost with the connection: a payload so answered is gone from the stream.
  static std::optional<Reply> answer_dead(TargetSession& session, Held& held, const std::string& what) {
    session.wait(held);
    if (held.answer->status == 200) {
      log_line("payload x-seq " + std::to_string(held.answer->seq) + " answered into a dead connection (held " + what +
               "): lost");
    }
    return std::nullopt;
  }

  // A payload request's body goes to the target in x-seq order. Returns an error text.
  static std::optional<std::string> forward_payload(TargetSession& session, const Request& req) {
    if (req.body.empty()) return std::nullopt;
    auto seq = parse_long(req.header("x-seq"));
    if (!seq) return "Missing or bad sequence header";
    return session.forward(static_cast<uint64_t>(*seq), req.body);
  }

  // The answers given before the tunnel sees a request: not found, faults, 503, a wrong secret.
  std::optional<Reply> refuse(const Request& req, const std::string& path, std::optional<Fault> fault) const {
    if (path != options_.path && !(path.size() > options_.path.size() &&
                                   path.compare(path.size() - options_.path.size(), std::string::npos, options_.path) == 0 &&
                                   path.find("://") != std::string::npos)) {
      return Reply{404, "text/html", "<html><body><h1>404 Not Found</h1></body></html>\n"};
    }
    if (req.method != "GET" && req.method != "POST") return Reply{405, "text/plain", "method not allowed\n"};
    if (fault == Fault::status_500) return Reply{500, "text/plain", "Internal Server Error (injected)\n"};
    if (fault == Fault::status_429) return Reply{429};
    if (fault == Fault::status_204) return Reply{204};
    if (fault == Fault::status_502 || fault == Fault::status_504) {
      const int status = fault == Fault::status_502 ? 502 : 504;
      return Reply{status, "text/html",
                   "<html><body><h1>" + std::to_string(status) + " " + reason_phrase(status) +
                       "</h1><p>injected by tunnel-test-server</p></body></html>\n"};
    }
    if (options_.unavailable) return Reply{503, {}, {}, true};
    if (options_.secret && req.header(lower(options_.secret_header)) != *options_.secret) return Reply{403};
    return std::nullopt;
  }

  const Options& options_;
  Faults& faults_;
  Endpoint endpoint_;
};

int listen_socket(const std::string& host, int port, int& bound) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return -1;
  int fd = ::socket(found->ai_family, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || ::bind(fd, found->ai_addr, found->ai_addrlen) != 0 || ::listen(fd, 128) != 0) {
    freeaddrinfo(found);
    if (fd >= 0) ::close(fd);
    return -1;
  }
  freeaddrinfo(found);
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  bound = ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                           : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  Faults faults;
  std::string secret_file;
  std::vector<std::string> fault_texts;
  uint64_t seed = 1;
  std::string fault_help = "inject a fault: NAME:RATE (each request or payload with probability RATE) or NAME@N "
                           "(the Nth request or payload; cut-post and lose-body count POSTs with a body, drop-held-get requests without one), NAME@N+ (the Nth and "
                           "all after it); repeatable. NAME is one of:";
  for (const auto& [name, value] : kFaultNames) fault_help += std::string(" ") + name;
  CLI::App app{"tunnel-test-server: a faithful HttpTunnelServer (Spring Boot DevTools) for tests"};
  app.add_option("--listen", options.listen, "HOST:PORT to serve HTTP on (port 0: a free port)")->capture_default_str();
  app.add_option("--target", options.target, "HOST:PORT of the target (e.g. a JVM's JDWP port)")->required();
  app.add_option("--path", options.path, "the endpoint's path")->capture_default_str();
  app.add_option("--long-poll-ms", options.long_poll_ms, "long-poll timeout")->capture_default_str();
  app.add_option("--disconnect-ms", options.disconnect_ms, "end a session after this long without requests")
      ->capture_default_str();
  app.add_option("--secret-header", options.secret_header, "header that carries the secret")->capture_default_str();
  app.add_option("--secret-file", secret_file, "require the secret on this file's first line");
  app.add_flag("--unavailable", options.unavailable, "answer 503 as when the target is not running");
  app.add_option("--fault", fault_texts, fault_help);
  app.add_flag("--log-requests", options.log_requests, "log each request the server holds");
  app.add_option("--log-header", options.log_headers, "log this header of each request it holds (repeatable)")
      ->transform([](std::string name) { return lower(name); });
  app.add_option("--fault-seed", seed, "seed for the fault rates, to replay a run")->capture_default_str();
  app.add_option("--late-ms", options.late_ms, "how long the late fault sits on a request")->capture_default_str();
  app.add_option("--body-read-delay-ms", options.body_read_delay_ms,
                 "after holding a request, wait this long before reading its body: an answer meanwhile loses "
                 "the body (the reference's race, made to happen every time)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  for (const auto& text : fault_texts) {
    FaultRule rule;
    if (auto error = parse_fault_rule(text, rule)) {
      std::fprintf(stderr, "tunnel-test-server: --fault: %s\n", error->c_str());
      return 2;
    }
    faults.add(rule);
  }
  faults.seed(seed);
  if (!secret_file.empty()) {
    std::ifstream in(secret_file);
    std::string line;
    if (!std::getline(in, line) || line.empty()) {
      std::fprintf(stderr, "tunnel-test-server: cannot read a secret from %s\n", secret_file.c_str());
      return 2;
    }
    options.secret = line;
  }
  std::string host;
  int port = 0;
  if (!split_host_port(options.listen, host, port)) {
    std::fprintf(stderr, "tunnel-test-server: bad --listen %s\n", options.listen.c_str());
    return 2;
  }
  int bound = 0;
  int listener = listen_socket(host, port, bound);
  if (listener < 0) {
    std::fprintf(stderr, "tunnel-test-server: cannot listen on %s: %s\n", options.listen.c_str(), std::strerror(errno));
    return 1;
  }
  std::printf("listening on %s:%d\n", host.c_str(), bound);
  std::fflush(stdout);
  log_line("listening on " + host + ":" + std::to_string(bound) + options.path + " for target " + options.target +
           (options.unavailable ? " (answering 503: target not running)" : "") +
           (fault_texts.empty() ? "" : " with faults, seed " + std::to_string(seed)));
  // Counters on SIGUSR1; on SIGINT/SIGTERM too, then exit. Blocked here, before any thread starts, so
  // that only the waiting thread takes them.
  sigset_t signals;
  sigemptyset(&signals);
  for (int sig : {SIGINT, SIGTERM, SIGUSR1}) sigaddset(&signals, sig);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread([signals] {
    for (;;) {
      int sig = 0;
      if (sigwait(&signals, &sig) != 0) continue;
      log_line("stats: " + g_stats.json());
      if (sig != SIGUSR1) std::_Exit(0);
    }
  }).detach();
  Server server(options, faults);
  for (;;) {
    int fd = ::accept(listener, nullptr, nullptr);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE) continue;
      std::fprintf(stderr, "tunnel-test-server: accept failed: %s\n", std::strerror(errno));
      return 1;
    }
    std::thread([&server, fd] { server.serve(fd); }).detach();
  }
}

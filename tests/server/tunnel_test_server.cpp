// A faithful stand-in for Spring Boot DevTools' HttpTunnelServer (1.3-1.5), built for the tests
// and the benchmark. The behaviour follows the shared PROTOCOL.md point by point:
//  - one target connection per endpoint, opened by the first request, shared until it closes;
//  - every request is held until there is something to answer; at most two are held, a third
//    releases the oldest with 429; target data goes out on the oldest held request;
//  - 204 when a held request is older than the long-poll timeout (checked when a read from the
//    target times out, so after one to two timeouts);
//  - 410 when the target closes or refuses the connection, 503 with --unavailable, 403 for a wrong
//    secret; x-disconnect closes the target; the session ends after --disconnect-ms without requests;
//  - client payloads are applied in x-seq order through a reorder queue of at most 100 entries
//    (an already-applied x-seq is queued and never applied again, as in the original).
// Threads mirror the original too: one per HTTP connection (cpp-httplib's pool) plus one reader
// per target connection.
#include <CLI/CLI.hpp>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kReadSize = 100 * 1024;  // one read from the target = at most one payload
constexpr size_t kMaxQueued = 100;

struct Options {
  std::string listen = "127.0.0.1:0";
  std::string target = "127.0.0.1:0";
  std::string path = "/.~~spring-boot!~/debug";
  long long long_poll_ms = 10000;
  long long disconnect_ms = 30000;
  std::string secret_header = "X-AUTH-TOKEN";
  std::optional<std::string> secret;
  bool unavailable = false;
};

void log_line(const std::string& text) {
  std::fprintf(stderr, "tunnel-test-server: %s\n", text.c_str());
  std::fflush(stderr);
}

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

struct Answer {
  explicit Answer(int status_code, uint64_t seq_number = 0, std::string payload = {})
      : status(status_code), seq(seq_number), body(std::move(payload)) {}
  int status;
  uint64_t seq;
  std::string body;
};

// One request the server holds until it has something to say.
struct Held {
  Clock::time_point since = Clock::now();
  std::optional<Answer> answer;
  std::condition_variable answered;
};

class Endpoint;

// The original's ServerThread: one target connection and the requests held for it.
class TargetSession : public std::enable_shared_from_this<TargetSession> {
 public:
  TargetSession(Endpoint& endpoint, int fd, uint64_t id, const Options& options)
      : endpoint_(endpoint), fd_(fd), id_(id), options_(options) {}
  ~TargetSession() { ::close(fd_); }

  void start() {
    std::thread([self = shared_from_this()] { self->run(); }).detach();
  }

  // handleIncomingHttp: hold the request (releasing the oldest past two), then apply its payload.
  std::shared_ptr<Held> hold() {
    auto held = std::make_shared<Held>();
    std::lock_guard lock(mutex_);
    if (closed_) {
      held->answer = Answer{410};
      return held;
    }
    while (held_.size() > 1) {
      answer_locked(held_.front(), Answer{429});
      held_.pop_front();
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

  // The original's forwarder: writes payloads to the target in x-seq order. Returns an error text.
  std::optional<std::string> forward(uint64_t seq, std::string body) {
    std::lock_guard lock(forward_mutex_);
    if (seq != last_applied_ + 1) {
      if (queued_.size() >= kMaxQueued) return "Too many messages queued";
      queued_[seq] = std::move(body);
      return std::nullopt;
    }
    if (!write_all(body)) return "write to the target failed";
    last_applied_ = seq;
    for (auto it = queued_.find(last_applied_ + 1); it != queued_.end(); it = queued_.find(last_applied_ + 1)) {
      if (!write_all(it->second)) return "write to the target failed";
      ++last_applied_;
      queued_.erase(it);
    }
    return std::nullopt;
  }

  void wait(Held& held) {
    std::unique_lock lock(mutex_);
    held.answered.wait(lock, [&] { return held.answer.has_value(); });
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

  // The reader loop (the original's readAndForwardTargetServerData).
  void run();

  Endpoint& endpoint_;
  int fd_;
  uint64_t id_;
  const Options& options_;
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
};

class Endpoint {
 public:
  explicit Endpoint(const Options& options) : options_(options) {
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
    session_ = std::make_shared<TargetSession>(*this, fd, ++sessions_, options_);
    log_line("target connection " + std::to_string(session_->id()) + " opened to " + options_.target);
    session_->start();
    return session_;
  }

  // clearServerThread
  void ended(TargetSession* which) {
    std::lock_guard lock(mutex_);
    if (session_.get() == which) session_.reset();
  }

 private:
  const Options& options_;
  std::string target_host_;
  int target_port_ = 0;
  std::mutex mutex_;
  std::shared_ptr<TargetSession> session_;
  uint64_t sessions_ = 0;
};

void TargetSession::run() {
  std::string buffer(kReadSize, '\0');
  std::string why = "the target closed the connection";
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
    int ready = ::poll(&p, 1, static_cast<int>(options_.long_poll_ms));
    if (ready == 0) continue;  // the read timed out: check for stale requests again
    ssize_t n = ready < 0 ? -1 : ::recv(fd_, buffer.data(), buffer.size(), 0);
    if (n <= 0) break;
    // getOrWaitForHttpConnection, then answer on the oldest held request
    std::unique_lock lock(mutex_);
    while (held_.empty() && !closed_) {
      reader_wakeup_.wait_for(lock, std::chrono::milliseconds(options_.long_poll_ms));
      if (!within_disconnect_timeout()) {
        why = "disconnect timeout: no request for " + std::to_string(options_.disconnect_ms) + " ms";
        closed_ = true;
      }
    }
    if (closed_) break;
    answer_locked(held_.front(), Answer{200, ++response_seq_, std::string(buffer.data(), static_cast<size_t>(n))});
    held_.pop_front();
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

void send_answer(httplib::Response& res, const Answer& answer) {
  res.status = answer.status;
  if (answer.status == 200) {
    res.set_header("x-seq", std::to_string(answer.seq));
    res.set_content(answer.body, "application/octet-stream");
  }
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

}  // namespace

int main(int argc, char** argv) {
  Options options;
  std::string secret_file;
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
  CLI11_PARSE(app, argc, argv);
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

  Endpoint endpoint(options);
  httplib::Server server;
  server.new_task_queue = [] { return new httplib::ThreadPool(64); };
  server.set_keep_alive_max_count(100);  // as Tomcat
  server.set_tcp_nodelay(true);
  server.set_payload_max_length(64 * 1024 * 1024);

  auto handle = [&](const httplib::Request& req, httplib::Response& res) {
    if (options.unavailable) {
      res.status = 503;
      res.set_header("Connection", "close");
      return;
    }
    if (options.secret && req.get_header_value(options.secret_header) != *options.secret) {
      res.status = 403;
      return;
    }
    std::string refused;
    auto session = endpoint.session(refused);
    if (!session) {
      res.status = 410;
      return;
    }
    auto held = session->hold();
    if (req.get_header_value("Content-Type") == "application/x-disconnect") {
      session->disconnect();
    } else if (req.has_header("Content-Length") && !req.body.empty()) {
      // A payload: the original reads it only when Content-Length is positive.
      auto seq = parse_long(req.get_header_value("x-seq"));
      std::optional<std::string> error;
      if (!seq) {
        error = "Missing or bad sequence header";
      } else {
        error = session->forward(static_cast<uint64_t>(*seq), req.body);
      }
      if (error) {
        log_line("request failed: " + *error);
        res.status = 500;
        res.set_content(*error, "text/plain");
        return;  // like the original, the held entry stays in the list until answered or closed
      }
    }
    session->wait(*held);
    send_answer(res, *held->answer);
  };
  server.Get(options.path, handle);
  server.Post(options.path, handle);

  int bound = port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
  if (bound < 0) {
    std::fprintf(stderr, "tunnel-test-server: cannot listen on %s\n", options.listen.c_str());
    return 1;
  }
  std::printf("listening on %s:%d\n", host.c_str(), bound);
  std::fflush(stdout);
  log_line("listening on " + host + ":" + std::to_string(bound) + options.path + " for target " + options.target +
           (options.unavailable ? " (answering 503: target not running)" : ""));
  server.listen_after_bind();
  return 0;
}

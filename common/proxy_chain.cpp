#include "common/proxy_chain.hpp"

#include "common/negotiate.hpp"
#include "common/platform.hpp"
#include "common/url.hpp"

#include "common/log.hpp"

#include <fmt/format.h>


#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

namespace tunnel {
namespace {

constexpr size_t kSpliceQueueLimit = 1 << 20;        // stop reading a side while the other has this much queued
constexpr size_t kMaxConnectAnswer = 16 * 1024;       // a proxy's answer to CONNECT, headers only
constexpr uint64_t kRecentErrorNs = 30'000'000'000;  // a hop failure explains request failures for 30 s

std::string auth_list(long mask) {
  std::string out;
  for (auto [bit, name] : {std::pair{CURLAUTH_BASIC, "Basic"}, std::pair{CURLAUTH_DIGEST, "Digest"},
                           std::pair{CURLAUTH_NTLM, "NTLM"}, std::pair{CURLAUTH_NEGOTIATE, "Negotiate"}}) {
    if (mask & static_cast<long>(bit)) out += (out.empty() ? "" : ", ") + std::string(name);
  }
  return out;
}

std::string base64(const std::string& in) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += {table[v >> 18], table[(v >> 12) & 63], table[(v >> 6) & 63], table[v & 63]};
  }
  if (i < in.size()) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                       (i + 1 < in.size() ? static_cast<unsigned char>(in[i + 1]) << 8 : 0);
    out += {table[v >> 18], table[(v >> 12) & 63], i + 1 < in.size() ? table[(v >> 6) & 63] : '=', '='};
  }
  return out;
}

// The value of header `name` in an answer's head (case-insensitive name), or "" when it has none.
std::string header_value(const std::string& head, std::string_view name) {
  for (size_t at = head.find("\r\n"); at != std::string::npos; at = head.find("\r\n", at + 2)) {
    const size_t start = at + 2;
    if (head.size() - start > name.size() && head[start + name.size()] == ':' &&
        std::equal(name.begin(), name.end(), head.begin() + static_cast<long>(start),
                   [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) ==
                                               std::tolower(static_cast<unsigned char>(b)); })) {
      const size_t value = head.find_first_not_of(' ', start + name.size() + 1);
      const size_t end = head.find("\r\n", start);
      return value == std::string::npos || value >= end ? "" : head.substr(value, end - value);
    }
  }
  return "";
}

}  // namespace

// Hop 1: a CONNECT_ONLY transfer through proxy 1.
struct ProxyChain::Hop final : Transfer {
  explicit Hop(Link& l) : link(l), easy(curl_easy_init()) {}
  ~Hop() override {
    curl_easy_cleanup(easy);
    if (tunnel_fd != CURL_SOCKET_BAD) platform::close_socket(tunnel_fd);
  }
  void on_transfer_finishing(CURL* e, CURLcode result) noexcept override {
    if (result != CURLE_OK) return;
    curl_socket_t active = CURL_SOCKET_BAD;
    curl_easy_getinfo(e, CURLINFO_ACTIVESOCKET, &active);
    // Our own descriptor for the tunnel: libcurl keeps, and later closes, its copy.
    tunnel_fd = active == CURL_SOCKET_BAD ? CURL_SOCKET_BAD : platform::duplicate_socket(active);
  }
  void on_transfer_done(CURLcode result) noexcept override;
  // Called by libcurl with each header line of proxy 1's answer to CONNECT.
  static size_t on_curl_header(char* data, size_t size, size_t count, void* userp) noexcept {
    auto* self = static_cast<Hop*>(userp);
    std::string_view line(data, size * count);
    if (line.rfind("HTTP/", 0) == 0) {
      auto first = line.find(' ');
      auto second = first == std::string_view::npos ? first : line.find(' ', first + 1);
      self->reason = second == std::string_view::npos ? "" : std::string(line.substr(second + 1));
      while (!self->reason.empty() && (self->reason.back() == '\r' || self->reason.back() == '\n')) self->reason.pop_back();
    }
    return size * count;
  }

  Link& link;
  CURL* easy;
  curl_socket_t tunnel_fd = CURL_SOCKET_BAD;
  std::string reason;
  char error[CURL_ERROR_SIZE] = {};
};

// One of libcurl's connections to the endpoint: the relay side, the chain side, and their splice.
struct ProxyChain::Link {
  enum class Phase { hop1, connecting, spliced };
  struct Write {
    uv_write_t req;
    std::vector<char> data;
    Link* link;
  };
  explicit Link(ProxyChain& c) : chain(c) {}

  ProxyChain& chain;
  UvHandle<uv_tcp_t> curl_side;   // accepted from libcurl on the relay
  UvHandle<uv_tcp_t> chain_side;  // the tunnel through the proxies
  std::unique_ptr<Hop> hop;
  Phase phase = Phase::hop1;
  size_t next_hop = 1;  // the proxy our current CONNECT goes to (index into hops)
  std::string answer;   // that proxy's answer so far
  bool sent_ticket = false;  // our CONNECT to that proxy carried a Kerberos token
  int open_handles = 0;
  bool dropped = false;
  std::array<char, 64 * 1024> from_curl{};
  std::array<char, 64 * 1024> from_chain{};
};

void ProxyChain::Hop::on_transfer_done(CURLcode result) noexcept { link.chain.hop_done(link, result); }

ProxyChain::ProxyChain(uv_loop_t* loop, CurlUvDriver& driver, const HttpOptions& options)
    : loop_(loop), driver_(driver), options_(options) {
  const std::string host = url_part(options.url, CURLUPART_HOST);
  const std::string port = url_part(options.url, CURLUPART_PORT, CURLU_DEFAULT_PORT);
  endpoint_ = host + ":" + port;
}

ProxyChain::~ProxyChain() {
  close();
  curl_slist_free_all(connect_to_list_);
}

bool ProxyChain::start(std::string& error) {
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", 0, &addr);
  int rc = relay_.init(loop_, uv_tcp_init);
  if (rc == 0) {
    relay_.get()->data = this;
    rc = uv_tcp_bind(relay_.get(), reinterpret_cast<const sockaddr*>(&addr), 0);
  }
  if (rc == 0) rc = uv_listen(relay_.as_stream(), 16, &ProxyChain::on_uv_connection);
  sockaddr_in bound{};
  int len = sizeof bound;
  if (rc == 0) rc = uv_tcp_getsockname(relay_.get(), reinterpret_cast<sockaddr*>(&bound), &len);
  if (rc != 0) {
    error = fmt::format("cannot open the proxy chain's local relay on 127.0.0.1: {}", uv_strerror(rc));
    relay_.close();
    return false;
  }
  connect_to_ = fmt::format("::127.0.0.1:{}", ntohs(bound.sin_port));
  connect_to_list_ = curl_slist_append(nullptr, connect_to_.c_str());
  return connect_to_list_ != nullptr;
}

void ProxyChain::close() {
  relay_.close();
  while (!links_.empty()) drop(*links_.front());
}

std::string ProxyChain::recent_error() const {
  if (last_error_.empty() || uv_hrtime() - last_error_ns_ > kRecentErrorNs) return "";
  return last_error_;
}

void ProxyChain::attach(CURL* easy) {
  curl_easy_setopt(easy, CURLOPT_PROXY, "");  // libcurl sees a direct connection: the chain is behind it
  curl_easy_setopt(easy, CURLOPT_CONNECT_TO, connect_to_list_);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, &ProxyChain::on_curl_opensocket);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, this);
}

// Called by libcurl for a socket towards the relay: bound here, so the relay knows it is ours.
curl_socket_t ProxyChain::on_curl_opensocket(void* clientp, curlsocktype, curl_sockaddr* address) noexcept {
  auto* self = static_cast<ProxyChain*>(clientp);
  unsigned port = 0;
  const curl_socket_t fd = platform::open_loopback_socket(address->family, address->socktype, address->protocol, port);
  if (fd != CURL_SOCKET_BAD) self->expected_ports_.insert(port);
  return fd;
}

// Called by libuv when libcurl (or anyone else) connects to the relay.
void ProxyChain::on_uv_connection(uv_stream_t* server, int status) noexcept {
  if (status == 0) static_cast<ProxyChain*>(server->data)->accept_link();
}

void ProxyChain::accept_link() {
  auto* link = new Link(*this);
  links_.push_back(link);
  if (link->curl_side.init(loop_, uv_tcp_init) != 0) {
    drop(*link);
    return;
  }
  ++link->open_handles;
  link->curl_side.get()->data = link;
  sockaddr_in peer{};
  int len = sizeof peer;
  if (uv_accept(relay_.as_stream(), link->curl_side.as_stream()) != 0 ||
      uv_tcp_getpeername(link->curl_side.get(), reinterpret_cast<sockaddr*>(&peer), &len) != 0) {
    drop(*link);
    return;
  }
  if (expected_ports_.erase(ntohs(peer.sin_port)) == 0) {
    // Someone else on this machine: the chain and its logins are not theirs to use.
    log::warn("proxy chain relay: refused a local connection from port {}: not opened by this agent",
              ntohs(peer.sin_port));
    drop(*link);
    return;
  }
  uv_tcp_nodelay(link->curl_side.get(), 1);
  // libcurl's request waits in the socket until the chain stands. Hop 1: libcurl, any login.
  const auto& hops = options_.proxy.hops;
  link->hop = std::make_unique<Hop>(*link);
  CURL* e = link->hop->easy;
  curl_easy_setopt(e, CURLOPT_URL, ("http://" + hops[1].display + "/").c_str());
  curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
  curl_easy_setopt(e, CURLOPT_PROXY, hops[0].url.c_str());
  curl_easy_setopt(e, CURLOPT_HTTPPROXYTUNNEL, 1L);
  curl_easy_setopt(e, CURLOPT_NOPROXY, "");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, options_.connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, link->hop->error);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Hop::on_curl_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, link->hop.get());
  apply_proxy_login(e, options_.proxy, hops[0]);
  if (driver_.start(e, link->hop.get()) != CURLM_OK) fail(*link, "cannot start a CONNECT through proxy 1");
}

void ProxyChain::hop_done(Link& link, CURLcode result) {
  Hop& hop = *link.hop;
  const auto& hops = options_.proxy.hops;
  const std::string name = fmt::format("proxy 1 ({})", hops[0].display);
  if (result != CURLE_OK || hop.tunnel_fd == CURL_SOCKET_BAD) {
    long code = 0;
    curl_easy_getinfo(hop.easy, CURLINFO_HTTP_CONNECTCODE, &code);
    const std::string status = hop.reason.empty() ? std::to_string(code) : std::to_string(code) + " " + hop.reason;
    if (code == 407) {
      long offered = 0;
      curl_easy_getinfo(hop.easy, CURLINFO_PROXYAUTH_AVAIL, &offered);
      const std::string offers = auth_list(offered).empty() ? "" : " (offers " + auth_list(offered) + ")";
      const bool has_user = !options_.proxy.user.empty() || !url_part(hops[0].url, CURLUPART_USER).empty();
      if (!has_user && (offered & CURLAUTH_NEGOTIATE) != 0 && (options_.proxy.auth & CURLAUTH_NEGOTIATE) != 0) {
        fail(link, name + " requires a Kerberos login (Negotiate): " +
                       kerberos_login_advice(url_part(hops[0].url, CURLUPART_HOST)));
        return;
      }
      fail(link, has_user ? name + " refused the login (" + status + ")" + offers + ": check --proxy-user and the password"
                          : name + " requires authentication" + offers + ": give --proxy-user");
    } else if (code != 0 && code != 200) {
      fail(link, name + " refused CONNECT to " + hops[1].display + ": " + status);
    } else {
      fail(link, name + " cannot be reached: " + (hop.error[0] ? hop.error : curl_easy_strerror(result)));
    }
    return;
  }
  const curl_socket_t fd = std::exchange(hop.tunnel_fd, CURL_SOCKET_BAD);
  if (link.chain_side.init(loop_, uv_tcp_init) != 0) {
    platform::close_socket(fd);
    fail(link, "cannot set up the proxy chain's connection");
    return;
  }
  ++link.open_handles;
  if (uv_tcp_open(link.chain_side.get(), fd) != 0) {
    platform::close_socket(fd);
    fail(link, "cannot set up the proxy chain's connection");
    return;
  }
  link.chain_side.get()->data = &link;
  uv_tcp_nodelay(link.chain_side.get(), 1);
  link.phase = Link::Phase::connecting;
  uv_read_start(link.chain_side.as_stream(), &ProxyChain::on_uv_alloc, &ProxyChain::on_uv_read);
  send_connect(link);
}

// Asks proxy `link.next_hop` to reach the next proxy, or the endpoint.
void ProxyChain::send_connect(Link& link) {
  const auto& hops = options_.proxy.hops;
  const ProxyHop& via = hops[link.next_hop];
  const std::string target = link.next_hop + 1 < hops.size() ? hops[link.next_hop + 1].display : endpoint_;
  std::string request = fmt::format("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n", target);
  const std::string user = url_part(via.url, CURLUPART_USER, CURLU_URLDECODE);
  link.sent_ticket = false;
  if (!user.empty()) {
    request += "Proxy-Authorization: Basic " + base64(user + ":" + url_part(via.url, CURLUPART_PASSWORD, CURLU_URLDECODE)) + "\r\n";
  } else if (kerberos_hops_.count(link.next_hop) != 0) {
    // This proxy asked for Kerberos before: the ticket goes with the first CONNECT.
    const std::string host = url_part(via.url, CURLUPART_HOST);
    const NegotiateToken token = negotiate_token(host);
    if (!token.ok) {
      fail(link, fmt::format("proxy {} ({}) requires a Kerberos login (Negotiate): {}", link.next_hop + 1, via.display,
                             kerberos_login_advice(host)));
      return;
    }
    request += "Proxy-Authorization: Negotiate " + base64(token.value) + "\r\n";
    link.sent_ticket = true;
  }
  request += "\r\n";
  link.answer.clear();
  write_to(link, link.chain_side.as_stream(), request.data(), request.size());
}

void ProxyChain::on_connect_answer(Link& link, const char* data, size_t size) {
  const auto& hops = options_.proxy.hops;
  const std::string name = fmt::format("proxy {} ({})", link.next_hop + 1, hops[link.next_hop].display);
  link.answer.append(data, size);
  const auto end = link.answer.find("\r\n\r\n");
  if (end == std::string::npos) {
    if (link.answer.size() > kMaxConnectAnswer) fail(link, name + " sent an over-long answer to CONNECT");
    return;
  }
  // "HTTP/1.1 200 Connection established"
  const std::string head = link.answer.substr(0, end);
  const std::string status_line = head.substr(0, head.find("\r\n"));
  int code = 0;
  if (status_line.rfind("HTTP/1.", 0) == 0 && status_line.size() >= 12) code = std::atoi(status_line.c_str() + 9);
  std::string status = status_line.size() > 9 ? status_line.substr(9) : status_line;
  const std::string target = link.next_hop + 1 < hops.size() ? hops[link.next_hop + 1].display : endpoint_;
  if (code == 407) {
    std::string offers;
    for (size_t at = 0; (at = head.find("\r\nProxy-Authenticate: ", at)) != std::string::npos;) {
      at += 22;
      const std::string scheme = head.substr(at, head.find_first_of(" \r", at) - at);
      offers += (offers.empty() ? "" : ", ") + scheme;
    }
    const bool no_user = url_part(hops[link.next_hop].url, CURLUPART_USER).empty();
    if (no_user && (options_.proxy.auth & CURLAUTH_NEGOTIATE) != 0 && offers.find("Negotiate") != std::string::npos) {
      const std::string host = url_part(hops[link.next_hop].url, CURLUPART_HOST);
      if (link.sent_ticket) {
        fail(link, name + " requires a Kerberos login (Negotiate): " + kerberos_login_advice(host));
        return;
      }
      // Log in with the user's ticket: again on this connection once the 407's body has been read
      // past, or, if the proxy closes it, on the next connection, which sends the ticket at once.
      kerberos_hops_.insert(link.next_hop);
      const std::string length = header_value(head, "Content-Length");
      const size_t body = length.empty() ? 0 : std::strtoull(length.c_str(), nullptr, 10);
      const bool closes = header_value(head, "Connection").find("close") != std::string::npos ||
                          header_value(head, "Proxy-Connection").find("close") != std::string::npos;
      if (closes || body > kMaxConnectAnswer * 4) {
        fail(link, name + " asked for a Kerberos login and closed the connection; the next one logs in at once");
        return;
      }
      if (link.answer.size() < end + 4 + body) return;  // the rest of the body is still to come
      send_connect(link);
      return;
    }
    offers = offers.empty() ? "" : " (offers " + offers + ")";
    fail(link, url_part(hops[link.next_hop].url, CURLUPART_USER).empty()
                   ? name + " requires authentication" + offers + ": put user:password in its --proxy URL"
                   : name + " refused the login (" + status + ")" + offers + ": check the user and password in its --proxy URL");
    return;
  }
  if (code != 200) {
    fail(link, name + " refused CONNECT to " + target + ": " + status);
    return;
  }
  std::string rest = link.answer.substr(end + 4);  // the tunnel's first bytes, if any came along
  link.answer.clear();
  if (++link.next_hop < hops.size()) {
    send_connect(link);
    return;
  }
  splice(link, std::move(rest));
}

void ProxyChain::splice(Link& link, std::string early_bytes) {
  link.phase = Link::Phase::spliced;
  last_error_.clear();
  log::debug("proxy chain of {} hops to {} established", options_.proxy.hops.size(), endpoint_);
  if (!early_bytes.empty() && !write_to(link, link.curl_side.as_stream(), early_bytes.data(), early_bytes.size())) return;
  uv_read_start(link.curl_side.as_stream(), &ProxyChain::on_uv_alloc, &ProxyChain::on_uv_read);
}

bool ProxyChain::write_to(Link& link, uv_stream_t* to, const char* data, size_t size) {
  auto* w = new Link::Write{{}, std::vector<char>(data, data + size), &link};
  uv_buf_t out = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  if (uv_write(&w->req, to, &out, 1, &ProxyChain::on_uv_write) != 0) {
    delete w;
    drop(link);
    return false;
  }
  return true;
}

// Called by libuv for a buffer to read one side of a link into.
void ProxyChain::on_uv_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
  auto* l = static_cast<Link*>(handle->data);
  auto& storage = handle == reinterpret_cast<uv_handle_t*>(l->curl_side.get()) ? l->from_curl : l->from_chain;
  *buf = uv_buf_init(storage.data(), static_cast<unsigned>(storage.size()));
}

// Called by libuv with bytes from one side of a link: a proxy's answer to CONNECT, or bytes for
// the other side.
void ProxyChain::on_uv_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
  auto* l = static_cast<Link*>(stream->data);
  const bool from_chain = stream == l->chain_side.as_stream();
  if (nread < 0) {
    if (l->phase == Link::Phase::connecting) {
      l->chain.fail(*l, fmt::format("proxy {} ({}) closed the connection instead of answering CONNECT", l->next_hop + 1,
                                    l->chain.options_.proxy.hops[l->next_hop].display));
    } else {
      l->chain.drop(*l);  // either side ended: the connection ends
    }
    return;
  }
  if (nread == 0) return;
  if (l->phase == Link::Phase::connecting && from_chain) {
    l->chain.on_connect_answer(*l, buf->base, static_cast<size_t>(nread));
    return;
  }
  uv_stream_t* to = from_chain ? l->curl_side.as_stream() : l->chain_side.as_stream();
  if (!l->chain.write_to(*l, to, buf->base, static_cast<size_t>(nread))) return;
  if (uv_stream_get_write_queue_size(to) >= kSpliceQueueLimit) uv_read_stop(stream);  // backpressure
}

// Called by libuv when bytes for one side of a link are written (or the link is closing).
void ProxyChain::on_uv_write(uv_write_t* req, int status) noexcept {
  auto* w = reinterpret_cast<Link::Write*>(req);
  Link* l = w->link;
  uv_stream_t* to = req->handle;
  delete w;
  if (status < 0 || l->dropped || l->phase != Link::Phase::spliced) return;
  uv_stream_t* from = to == l->chain_side.as_stream() ? l->curl_side.as_stream() : l->chain_side.as_stream();
  if (uv_stream_get_write_queue_size(to) < kSpliceQueueLimit && !uv_is_active(reinterpret_cast<uv_handle_t*>(from))) {
    uv_read_start(from, &ProxyChain::on_uv_alloc, &ProxyChain::on_uv_read);
  }
}

void ProxyChain::fail(Link& link, std::string why) {
  log::warn("{}", why);
  last_error_ = std::move(why);
  last_error_ns_ = uv_hrtime();
  drop(link);  // libcurl's connection closes: the waiting request fails, and the session says why
}

// Called (through UvHandle) when one of a dropped link's handles has closed; the last one frees it.
void ProxyChain::on_link_handle_closed(void* data) noexcept {
  auto* l = static_cast<Link*>(data);
  if (--l->open_handles == 0) delete l;
}

void ProxyChain::drop(Link& link) {
  if (link.dropped) return;
  link.dropped = true;
  links_.remove(&link);
  if (link.hop) driver_.cancel(link.hop->easy);
  if (link.open_handles == 0) {
    delete &link;
    return;
  }
  // libuv may still call the handles' callbacks until they are closed: the link lives until then.
  if (link.curl_side) link.curl_side.close(&ProxyChain::on_link_handle_closed);
  if (link.chain_side) link.chain_side.close(&ProxyChain::on_link_handle_closed);
}

}  // namespace tunnel

#include "common/http_exchange.hpp"

#include "common/log.hpp"
#include "common/negotiate.hpp"
#include "common/platform.hpp"
#include "common/proxy_chain.hpp"
#include "common/tls_issuer.hpp"
#include "common/url.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

#include <uv.h>
#include <new>

namespace tunnel {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

void apply_proxy(CURL* easy, const ProxySettings& proxy) {
  if (proxy.hops.empty()) {
    curl_easy_setopt(easy, CURLOPT_PROXY, "");  // none, and none from the environment either
    return;
  }
  curl_easy_setopt(easy, CURLOPT_PROXY, proxy.hops.front().url.c_str());
  // Always CONNECT, also for http:// endpoints: a forward proxy buffers and times out long polls.
  curl_easy_setopt(easy, CURLOPT_HTTPPROXYTUNNEL, 1L);
  curl_easy_setopt(easy, CURLOPT_NOPROXY, proxy.no_proxy.c_str());  // resolved from no_proxy by config
  apply_proxy_login(easy, proxy, proxy.hops.front());
}

void apply_tls(CURL* easy, const TlsSettings& tls) {
  watch_untrusted_issuer(easy);
  if (!tls.cacert.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, tls.cacert.c_str());
  if (!tls.capath.empty()) curl_easy_setopt(easy, CURLOPT_CAPATH, tls.capath.c_str());
  if (tls.insecure) {
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!tls.cert.empty()) curl_easy_setopt(easy, CURLOPT_SSLCERT, tls.cert.c_str());
  if (!tls.key.empty()) curl_easy_setopt(easy, CURLOPT_SSLKEY, tls.key.c_str());
  if (!tls.pinned_pubkey.empty()) curl_easy_setopt(easy, CURLOPT_PINNEDPUBLICKEY, tls.pinned_pubkey.c_str());
  if (!tls.proxy_cacert.empty()) curl_easy_setopt(easy, CURLOPT_PROXY_CAINFO, tls.proxy_cacert.c_str());
  if (tls.proxy_insecure) {
    curl_easy_setopt(easy, CURLOPT_PROXY_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(easy, CURLOPT_PROXY_SSL_VERIFYHOST, 0L);
  }
}

std::string hint_for(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST: return "check the host name in the URL";
    case CURLE_COULDNT_CONNECT: return "check the URL and that the server is running and reachable";
    case CURLE_OPERATION_TIMEDOUT: return "the server or the network is too slow; see --request-timeout";
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE: return "the connection to the server broke";
    default: return "";
  }
}

std::string auth_names(long mask) {
  std::string out;
  auto add = [&out](const char* name) { out += out.empty() ? name : std::string(", ") + name; };
  if (mask & CURLAUTH_BASIC) add("Basic");
  if (mask & CURLAUTH_DIGEST) add("Digest");
  if (mask & CURLAUTH_NTLM) add("NTLM");
  if (mask & CURLAUTH_NEGOTIATE) add("Negotiate");
  return out;
}

}  // namespace

void apply_proxy_login(CURL* easy, const ProxySettings& proxy, const ProxyHop& hop1) {
  if (!proxy.user.empty()) {
    curl_easy_setopt(easy, CURLOPT_PROXYAUTH, proxy.auth);
    curl_easy_setopt(easy, CURLOPT_PROXYUSERNAME, proxy.user.c_str());
    curl_easy_setopt(easy, CURLOPT_PROXYPASSWORD, proxy.password ? proxy.password->c_str() : "");
  } else if (url_part(hop1.url, CURLUPART_USER).empty() && (proxy.auth & CURLAUTH_NEGOTIATE) != 0) {
    // No user: the ticket, and nothing else (no empty Basic login). libcurl logs in to a proxy only
    // with a user set, so the empty one curl's "-U :" gives.
    curl_easy_setopt(easy, CURLOPT_PROXYAUTH, CURLAUTH_NEGOTIATE);
    curl_easy_setopt(easy, CURLOPT_PROXYUSERPWD, ":");
  } else {
    curl_easy_setopt(easy, CURLOPT_PROXYAUTH, proxy.auth);
  }
}

HttpExchange::HttpExchange(const HttpOptions& options) : easy_(curl_easy_init()), options_(options) {
  if (easy_ == nullptr) throw std::bad_alloc();
  curl_easy_setopt(easy_, CURLOPT_URL, options.url.c_str());
  curl_easy_setopt(easy_, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy_, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(easy_, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  if (options.url.rfind("https://", 0) == 0) {
    // Wait for the TLS handshake (ALPN) to say whether HTTP/2 can multiplex this request on the
    // existing connection. Over plain http:// curl would wait for a whole response instead.
    curl_easy_setopt(easy_, CURLOPT_PIPEWAIT, 1L);
  }
  curl_easy_setopt(easy_, CURLOPT_CONNECTTIMEOUT_MS, options.connect_timeout_ms);
  curl_easy_setopt(easy_, CURLOPT_TIMEOUT_MS, options.request_timeout_ms);
  // A declared body larger than any tunnel payload fails at once, before a byte of it is read.
  curl_easy_setopt(easy_, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(kMaxBody));
  curl_easy_setopt(easy_, CURLOPT_USERAGENT, "tunnel-agent/" TUNNEL_AGENT_VERSION);
  curl_easy_setopt(easy_, CURLOPT_ERRORBUFFER, error_buffer_);
  curl_easy_setopt(easy_, CURLOPT_HEADERFUNCTION, &HttpExchange::on_curl_header);
  curl_easy_setopt(easy_, CURLOPT_HEADERDATA, this);
  curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &HttpExchange::on_curl_write);
  curl_easy_setopt(easy_, CURLOPT_PREREQFUNCTION, &HttpExchange::on_curl_prereq);
  curl_easy_setopt(easy_, CURLOPT_PREREQDATA, this);
  curl_easy_setopt(easy_, CURLOPT_WRITEDATA, this);
  apply_proxy(easy_, options.proxy);
  apply_tls(easy_, options.tls);
  // libcurl's trace is always on, for one line of it: "Excess found", the only sign that an answer
  // carried more bytes than its Content-Length (libcurl cuts the body there and goes on). It is
  // printed only with -vv (options.verbose), secrets masked.
  sensitive_headers_ = options.sensitive_headers;
  for (const char* always : {"Authorization", "Proxy-Authorization", "Cookie"}) sensitive_headers_.emplace_back(always);
  curl_easy_setopt(easy_, CURLOPT_DEBUGFUNCTION, &HttpExchange::on_curl_debug);
  curl_easy_setopt(easy_, CURLOPT_DEBUGDATA, this);
  curl_easy_setopt(easy_, CURLOPT_VERBOSE, 1L);
}

// Called by libcurl with its trace (-vv): text and headers go to the log, sensitive values masked,
// bodies are left out (they are the tunnelled bytes).
int HttpExchange::on_curl_debug(CURL*, curl_infotype type, char* data, size_t size, void* userp) noexcept {
  auto* self = static_cast<HttpExchange*>(userp);
  static constexpr std::string_view kExcess = "Excess found";
  if (type == CURLINFO_TEXT && size >= kExcess.size() && std::memcmp(data, kExcess.data(), kExcess.size()) == 0) {
    self->excess_ = true;
  } else if (type == CURLINFO_TEXT) {
    static constexpr std::string_view kTls = "SSL connection using ";
    static constexpr std::string_view kAlpn = "ALPN: server accepted ";
    std::string_view text = trim(std::string_view(data, size));
    try {
      if (text.substr(0, kTls.size()) == kTls) {
        self->tls_summary_ = std::string(text.substr(kTls.size()));
      } else if (text.substr(0, kAlpn.size()) == kAlpn) {
        self->tls_summary_ += "; ALPN " + std::string(text.substr(kAlpn.size()));
      }
    } catch (const std::bad_alloc&) {
    }
  }
  if (!self->options_.verbose) return 0;
  const char* prefix = type == CURLINFO_TEXT ? "* " : type == CURLINFO_HEADER_OUT ? "> " : type == CURLINFO_HEADER_IN ? "< " : nullptr;
  if (prefix == nullptr) return 0;
  std::string_view block(data, size);
  while (!block.empty()) {
    auto end = block.find('\n');
    std::string_view line = block.substr(0, end);
    block = end == std::string_view::npos ? std::string_view() : block.substr(end + 1);
    line = trim(line);
    if (line.empty()) continue;
    std::string masked;  // the line with every sensitive value replaced by ***
    for (const auto& value : self->options_.sensitive_values) {
      if (value.size() < 3 || line.find(value) == std::string_view::npos) continue;
      if (masked.empty()) masked.assign(line);
      for (size_t at = masked.find(value); at != std::string::npos; at = masked.find(value, at + 3)) {
        masked.replace(at, value.size(), "***");
      }
    }
    if (!masked.empty()) line = masked;
    auto colon = line.find(':');
    bool secret = false;
    if (type != CURLINFO_TEXT && colon != std::string_view::npos) {
      for (const auto& name : self->sensitive_headers_) secret = secret || iequals(trim(line.substr(0, colon)), name);
    }
    // Through the log: a JSON line in JSON mode, control characters escaped in text mode, and
    // written above the live status line rather than into it.
    try {
      log::write(log::Level::debug, secret ? fmt::format("curl {}{}: ***", prefix, line.substr(0, colon))
                                           : fmt::format("curl {}{}", prefix, line));
    } catch (const std::bad_alloc&) {
    }
  }
  return 0;
}

HttpExchange::~HttpExchange() { curl_easy_cleanup(easy_); }

void HttpExchange::use_chain(ProxyChain& chain) {
  chain.attach(easy_);
  chain_ = &chain;
}

void HttpExchange::reset_answer() {
  attempts_ = 0;
  resend_refused_ = false;
  excess_ = false;
  watched_value_.clear();
  watched_seen_ = false;
  reason_.clear();
  answered_ns_ = 0;
  delivered_ns_ = 0;
  undelivered_seen_ns_ = 0;
  body_.clear();
  body_too_large_ = false;
  error_buffer_[0] = '\0';
}

void HttpExchange::prepare_get(curl_slist* headers) {
  reset_answer();
  curl_easy_setopt(easy_, CURLOPT_FORBID_REUSE, 0L);
  body_sent_ns_ = 0;
  inline_body_ = true;  // a GET is all head: body_sent_ns() says when it left
  curl_easy_setopt(easy_, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, headers);
}

void HttpExchange::prepare_post(const char* data, size_t size, curl_slist* headers, bool close_after) {
  reset_answer();
  curl_easy_setopt(easy_, CURLOPT_FORBID_REUSE, close_after ? 1L : 0L);
  upload_ = data;
  upload_size_ = size;
  upload_offset_ = 0;
  body_sent_ns_ = size == 0 ? uv_hrtime() : 0;
  // A small body given as POSTFIELDS (not copied) goes out in the same send() as the request head;
  // a read callback would cost a second send(), and for JDWP-sized messages a second segment for
  // the server to wait for. Larger bodies stream from the read callback.
  inline_body_ = size > 0 && size <= kInlineBodyMax;
  curl_easy_setopt(easy_, CURLOPT_POST, 1L);
  curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, inline_body_ ? data : nullptr);
  curl_easy_setopt(easy_, CURLOPT_READFUNCTION, &HttpExchange::on_curl_read);
  curl_easy_setopt(easy_, CURLOPT_READDATA, this);
  curl_easy_setopt(easy_, CURLOPT_SEEKFUNCTION, &HttpExchange::on_curl_seek);
  curl_easy_setopt(easy_, CURLOPT_SEEKDATA, this);
  curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(size));
  curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, headers);
}

// Called by libcurl for the next part of a POST body; notes when it has taken the last byte.
size_t HttpExchange::on_curl_read(char* buffer, size_t size, size_t count, void* userp) noexcept {
  auto* self = static_cast<HttpExchange*>(userp);
  const size_t n = std::min(size * count, self->upload_size_ - self->upload_offset_);
  if (n > 0) std::memcpy(buffer, self->upload_ + self->upload_offset_, n);
  self->upload_offset_ += n;
  if (self->upload_offset_ == self->upload_size_ && self->body_sent_ns_ == 0) self->body_sent_ns_ = uv_hrtime();
  return n;
}

curl_off_t HttpExchange::content_length() const { return declared_length_; }

bool HttpExchange::end_verified() const {
  long version = 0;
  curl_easy_getinfo(easy_, CURLINFO_HTTP_VERSION, &version);
  return declared_length_ >= 0 || chunked_ || version >= CURL_HTTP_VERSION_2_0;
}

uint64_t HttpExchange::delivered_ns(uint64_t now, curl_socket_t sock) {
  if (delivered_ns_ != 0 || body_sent_ns_ == 0) return delivered_ns_;
  if (sock == CURL_SOCKET_BAD) return 0;  // no socket to ask now
  // A system that cannot tell (Windows) goes by libcurl's hand-over: read as soon as it is sent.
  const long unacked = platform::unacknowledged_bytes(sock).value_or(0);
  if (unacked == 0) {
    // Seen now, delivered some time since it was last seen undelivered (or since libcurl let go of
    // it). Seen only after the answer came, that is the time to go by: "now" would make a body the
    // server had read look answered before it was all sent, and a long-held one look just sent.
    delivered_ns_ = answered_ns_ != 0 && answered_ns_ < now ? std::max(body_sent_ns_, undelivered_seen_ns_) : now;
  } else {
    undelivered_seen_ns_ = now;
  }
  return delivered_ns_;
}


long HttpExchange::status() const {
  long code = 0;
  curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &code);
  return code;
}

// Called by libcurl right before it sends the request on a new or reused connection: an inline
// body leaves now, with the head.
int HttpExchange::on_curl_prereq(void* userp, char*, char*, int, int) noexcept {
  auto* self = static_cast<HttpExchange*>(userp);
  if (self->send_once_ && self->attempts_ > 0) {
    self->resend_refused_ = true;
    return CURL_PREREQFUNC_ABORT;
  }
  ++self->attempts_;
  if (self->inline_body_) self->body_sent_ns_ = uv_hrtime();
  return CURL_PREREQFUNC_OK;
}

// Called by libcurl to rewind the POST body, when it sends the request again on a new connection.
int HttpExchange::on_curl_seek(void* userp, curl_off_t offset, int origin) noexcept {
  auto* self = static_cast<HttpExchange*>(userp);
  if (origin != SEEK_SET || offset < 0 || static_cast<size_t>(offset) > self->upload_size_) return CURL_SEEKFUNC_FAIL;
  self->upload_offset_ = static_cast<size_t>(offset);
  self->body_sent_ns_ = 0;
  self->delivered_ns_ = 0;
  self->undelivered_seen_ns_ = 0;
  return CURL_SEEKFUNC_OK;
}

const char* HttpExchange::http_version() const {
  long version = 0;
  curl_easy_getinfo(easy_, CURLINFO_HTTP_VERSION, &version);
  switch (version) {
    case CURL_HTTP_VERSION_1_0: return "HTTP/1.0";
    case CURL_HTTP_VERSION_1_1: return "HTTP/1.1";
    case CURL_HTTP_VERSION_2_0: return "HTTP/2";
    case CURL_HTTP_VERSION_3: return "HTTP/3";
    default: return "HTTP/?";
  }
}

// Called by libcurl for each response header line (status line included), also of a proxy's answer.
size_t HttpExchange::on_curl_header(char* data, size_t size, size_t count, void* userp) noexcept {
  const size_t n = size * count;
  static_cast<HttpExchange*>(userp)->take_header_line(std::string_view(data, n));
  return n;
}

void HttpExchange::take_header_line(std::string_view line) noexcept {
  if (line.rfind("HTTP/", 0) == 0) {
    // A new status line (after a 100 Continue or a proxy's answer): forget the previous headers.
    answered_ns_ = uv_hrtime();
    watched_seen_ = false;
    watched_value_.clear();
    declared_length_ = -1;
    chunked_ = false;
    auto space = line.find(' ');
    auto second = space == std::string_view::npos ? space : line.find(' ', space + 1);
    reason_ = second == std::string_view::npos ? std::string() : std::string(trim(line.substr(second + 1)));
    return;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return;
  const std::string_view name = trim(line.substr(0, colon));
  const std::string_view value = trim(line.substr(colon + 1));
  if (iequals(name, "content-length")) {
    // Kept here too: libcurl does not report a length it refused (CURLOPT_MAXFILESIZE).
    curl_off_t length = 0;
    bool digits = !value.empty() && value.size() <= 18;
    for (char c : value) {
      digits = digits && c >= '0' && c <= '9';
      if (digits) length = length * 10 + (c - '0');
    }
    declared_length_ = digits ? length : -1;
  }
  if (iequals(name, "transfer-encoding")) {
    // The last coding of a body framed by its chunks is "chunked": it ends with a zero-size chunk.
    const auto comma = value.rfind(',');
    chunked_ = iequals(trim(comma == std::string_view::npos ? value : value.substr(comma + 1)), "chunked");
  }
  if (!watched_name_.empty() && iequals(name, watched_name_)) {
    if (watched_seen_) {
      watched_value_ = "<repeated header>";  // two values: refuse to guess which one counts
    } else {
      watched_value_ = std::string(value);
    }
    watched_seen_ = true;
  }
}

// Called by libcurl with response body bytes.
size_t HttpExchange::on_curl_write(char* data, size_t size, size_t count, void* userp) noexcept {
  auto* self = static_cast<HttpExchange*>(userp);
  const size_t n = size * count;
  if (self->body_.size() + n > kMaxBody) {
    self->body_too_large_ = true;
    return 0;  // makes libcurl fail the transfer with CURLE_WRITE_ERROR
  }
  try {
    self->body_.insert(self->body_.end(), data, data + n);
  } catch (const std::bad_alloc&) {
    return 0;
  }
  return n;
}

std::string status_text(long status, const std::string& reason) {
  return reason.empty() ? std::to_string(status) : std::to_string(status) + " " + reason;
}

std::string describe_curl_error(CURLcode code, const char* detail) {
  std::string text = curl_easy_strerror(code);
  if (detail != nullptr && detail[0] != '\0') {
    std::string_view d = trim(detail);
    text += ": ";
    text += d;
  }
  return text;
}

bool HttpExchange::failed_at_proxy_1(CURLcode result) const {
  const auto& hops = options_.proxy.hops;
  if (hops.empty()) return false;
  long connect_code = 0;
  curl_easy_getinfo(easy_, CURLINFO_HTTP_CONNECTCODE, &connect_code);
  if (connect_code != 0) return false;  // it answered CONNECT
  if (result == CURLE_COULDNT_RESOLVE_PROXY) return true;
  // libcurl names what it failed to reach ("Failed to connect to HOST port N"): the proxy, or the
  // endpoint itself when no_proxy let it go direct. (CURLINFO_PRIMARY_PORT is not set then.)
  return result == CURLE_COULDNT_CONNECT &&
         describe_curl_error(result, error_buffer_).find(" port " + std::to_string(hops.front().port) + " ") !=
             std::string::npos;
}

void HttpExchange::reapply_proxy() { apply_proxy(easy_, options_.proxy); }

namespace {
constexpr const char* kClientCertificateHint =
    "if the server requires a TLS client certificate, give --cert and --key";
}

// With TLS 1.3 a server that wants a client certificate says so only after the handshake, and
// libcurl sees a connection that broke before any answer.
bool HttpExchange::wants_client_certificate_hint() const {
  return options_.url.rfind("https://", 0) == 0 && options_.tls.cert.empty() && status() == 0;
}

std::string HttpExchange::describe_failure(CURLcode result) const {
  if (resend_refused_) {
    return "the connection to " + host_port(options_.url) +
           " broke before any answer to a request sent on it (the server may hold that request)" +
           (wants_client_certificate_hint() ? std::string("; ") + kClientCertificateHint : std::string());
  }
  if (chain_ != nullptr) {
    // A request through a chain fails as a broken connection; the hop that failed says why.
    std::string hop_error = chain_->recent_error();
    if (!hop_error.empty()) return hop_error;
  }
  const std::string detail = describe_curl_error(result, error_buffer_);
  const std::string endpoint = host_port(options_.url);
  const auto& hops = options_.proxy.hops;
  long connect_code = 0;
  curl_easy_getinfo(easy_, CURLINFO_HTTP_CONNECTCODE, &connect_code);
  if (!hops.empty() && connect_code != 0 && connect_code != 200) {
    const std::string hop = "proxy 1 (" + hops.front().display + ")";
    if (connect_code == 407) {
      long offered = 0;
      curl_easy_getinfo(easy_, CURLINFO_PROXYAUTH_AVAIL, &offered);
      const std::string offers = auth_names(offered).empty() ? "" : " (offers " + auth_names(offered) + ")";
      const bool has_user = !options_.proxy.user.empty() || hops.front().url.find('@') != std::string::npos;
      if (!has_user && (offered & CURLAUTH_NEGOTIATE) != 0 && (options_.proxy.auth & CURLAUTH_NEGOTIATE) != 0) {
        return hop + " requires a Kerberos login (Negotiate): " +
               kerberos_login_advice(url_part(hops.front().url, CURLUPART_HOST));
      }
      if (!has_user) {
        return hop + " requires authentication" + offers +
               ": give --proxy-user, with the password in TUNNEL_AGENT_PROXY_PASSWORD or --proxy-password-file";
      }
      return hop + " refused the login (" + status_text(connect_code, reason_) + ")" + offers +
             ": check --proxy-user, the password and --proxy-auth";
    }
    return hop + " refused CONNECT to " + endpoint + ": " + status_text(connect_code, reason_);
  }
  switch (result) {
    case CURLE_COULDNT_RESOLVE_PROXY:
      return "cannot resolve the host of proxy 1 (" + hops.front().display + ", from " + hops.front().source +
             "): " + detail;
    case CURLE_COULDNT_CONNECT:
      if (failed_at_proxy_1(result)) {
        return "cannot connect to proxy 1 (" + hops.front().display + ", from " + hops.front().source + "): " +
               detail + "; check the proxy address, or --no-proxy to go direct";
      }
      break;
    case CURLE_PEER_FAILED_VERIFICATION: {
      long proxy_verify = 0;
      curl_easy_getinfo(easy_, CURLINFO_PROXY_SSL_VERIFYRESULT, &proxy_verify);
      const std::string issuer = last_untrusted_issuer();
      const std::string signer = issuer.empty() ? "" : " signed by \"" + issuer + "\"";
      if (detail.find("failed to match connection hostname") != std::string::npos) {
        // Schannel (Windows): the name in the URL is not among the certificate's DNS names, and an
        // IP address never is (Debian's curl 7.88 does not match IP addresses under Schannel).
        return "TLS: the certificate " + endpoint + " presented does not name that host (" + detail +
               "); use the host name the certificate was made for in the URL, not an IP address";
      }
      if (!hops.empty() && proxy_verify != 0) {
        return "TLS to proxy 1 (https://" + hops.front().display + ", from " + hops.front().source +
               "): its certificate" + signer + " is not trusted (" + detail +
               "); use --proxy-cacert with the CA that signed it";
      }
      if (!issuer.empty()) {
        // Behind a company gateway this is most often TLS inspection: the gateway re-signs every
        // site with its own CA, which browsers trust from the company's settings and we do not.
        return "TLS: the certificate " + endpoint + " presented is" + signer + ", which is not trusted here (" +
               detail + "); if that is your company's TLS inspection" +
               (hops.empty() ? "" : " (on the way through proxy 1, " + hops.front().display + ")") +
               ", pass its CA certificate with --cacert FILE (or add it to the system's store); otherwise do not "
               "trust it";
      }
      return "TLS: certificate not trusted (" + detail + "); use --cacert with the CA that signed it" +
             (hops.empty() ? "" : ", or --proxy-cacert for an https:// proxy");
    }
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      return "TLS: the pinned public key does not match the one " + endpoint + " presented (--pinned-pubkey)";
    case CURLE_SSL_CERTPROBLEM:
      return "TLS: cannot use the client certificate (--cert, --key): " + detail;
    case CURLE_SSL_CACERT_BADFILE:
      return "TLS: cannot read the CA certificates (--cacert, --capath): " + detail;
    case CURLE_SSL_CONNECT_ERROR:
      return "TLS: the handshake with " + endpoint + " failed (" + detail +
             "); if the server wants a client certificate, give --cert and --key";
    default:
      break;
  }
  std::string hint = hint_for(result);
  const bool broke = result == CURLE_HTTP2 || result == CURLE_SEND_ERROR || result == CURLE_RECV_ERROR ||
                     result == CURLE_GOT_NOTHING;
  if (broke && wants_client_certificate_hint()) hint = std::string("the connection broke before any answer: ") +
                                                        kClientCertificateHint;
  return "HTTP request to " + options_.url + " failed: " + detail + (hint.empty() ? "" : "; " + hint);
}

}  // namespace tunnel

// One reusable HTTP request/response slot: an easy handle plus the buffers for its answer.
// Reusing it keeps connections warm and spares an allocation per request.
#pragma once

#include "common/http_options.hpp"

#include <curl/curl.h>

#include <array>
#include <stdexcept>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tunnel {

class ProxyChain;

struct CurlSlistFree {
  void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};
using CurlSlist = std::unique_ptr<curl_slist, CurlSlistFree>;

// The extra header lines of one request, handed to libcurl as a curl_slist built in place: lines
// and list nodes are reused from one request to the next, so a request allocates nothing once the
// strings have grown. Never give the list to curl_slist_free_all.
class HeaderLines {
 public:
  static constexpr size_t kMax = 12;  // the protocol's four, and up to eight -H headers
  void clear() { count_ = 0; }
  // Starts a new line (empty, its old capacity kept) and returns it to be filled.
  std::string& add() {
    if (count_ == kMax) throw std::length_error("HeaderLines: too many header lines");
    std::string& line = lines_[count_++];
    line.clear();
    return line;
  }
  // The list for CURLOPT_HTTPHEADER (null when empty); valid until the next add() or clear().
  curl_slist* list() {
    for (size_t i = 0; i < count_; ++i) {
      nodes_[i].data = lines_[i].data();
      nodes_[i].next = i + 1 < count_ ? &nodes_[i + 1] : nullptr;
    }
    return count_ == 0 ? nullptr : nodes_.data();
  }

 private:
  std::array<std::string, kMax> lines_;
  std::array<curl_slist, kMax> nodes_{};
  size_t count_ = 0;
};

class HttpExchange {
 public:
  // Bodies up to this size are sent with the request head (libcurl's limit is just under 64 KiB).
  static constexpr size_t kInlineBodyMax = 60 << 10;

  // The most body a response may have: tunnel payloads are ~100 KB; more is not a tunnel answer.
  static constexpr size_t kMaxBody = 16 * 1024 * 1024;

  explicit HttpExchange(const HttpOptions& options);  // `options` must outlive the exchange
  ~HttpExchange();
  HttpExchange(const HttpExchange&) = delete;
  HttpExchange& operator=(const HttpExchange&) = delete;

  CURL* easy() const { return easy_; }

  // Send this exchange's requests through a chain of proxies (two or more hops).
  void use_chain(ProxyChain& chain);

  // The value of this response header (case-insensitive name) is kept for header_value().
  void watch_header(std::string lowercase_name) { watched_name_ = std::move(lowercase_name); }

  // Make the next request a GET / a POST of `size` bytes at `data` (kept alive by the caller until
  // the transfer ends). `headers` stays owned by the caller, alive until the transfer ends.
  void prepare_get(curl_slist* headers);
  // `close_after`: the connection closes once this transfer is done, so no later request queues
  // behind it (see the session's use).
  void prepare_post(const char* data, size_t size, curl_slist* headers, bool close_after = false);
  // uv_hrtime() at which libcurl took the last byte of the POST body, or sent a GET (0: not yet).
  uint64_t body_sent_ns() const { return body_sent_ns_; }
  // uv_hrtime() at which the peer had acknowledged every byte of the request (head and body): the
  // kernel takes a big body at once, and on a slow link it reaches the server much later than
  // libcurl let go of it. Looked up on the connection's socket when asked (SIOCOUTQ); 0: not yet.
  // Through a proxy the peer is the first hop.
  uint64_t delivered_ns(uint64_t now, curl_socket_t sock);
  // Once the transfer is over: when delivery was seen, else when libcurl let go of the body.
  uint64_t delivered_or_sent_ns() const { return delivered_ns_ != 0 ? delivered_ns_ : body_sent_ns_; }
  // uv_hrtime() at which the answer's status line arrived (0: none yet).
  uint64_t answered_ns() const { return answered_ns_; }

  // Takes one response header line (libcurl's header callback; public for the fuzz target).
  void take_header_line(std::string_view line) noexcept;

  // The answer, valid once the transfer is done.
  long status() const;
  const char* http_version() const;  // "HTTP/1.1", "HTTP/2", ... of the last answer
  const std::string& reason() const { return reason_; }
  bool has_header_value() const { return watched_seen_; }
  const std::string& header_value() const { return watched_value_; }
  std::vector<char>& body() { return body_; }
  const std::vector<char>& body() const { return body_; }
  bool body_too_large() const { return body_too_large_; }
  // The answer's Content-Length, or -1 when it had none.
  curl_off_t content_length() const;
  // The answer's body has an end libcurl checked: a Content-Length, chunked framing, or HTTP/2's
  // frames. Without one (a proxy that re-framed it to end at the connection's close) a body cut
  // short looks whole.
  bool end_verified() const;
  // True when libcurl found bytes past the answer's Content-Length (it cuts the body there and goes
  // on; only its trace says so).
  bool excess_after_body() const { return excess_; }
  // What libcurl's trace said of TLS on a new connection: "TLSv1.3 / TLS_AES_256_GCM_SHA384; ALPN h2".
  const std::string& tls_summary() const { return tls_summary_; }
  // How many times libcurl sent this request: more than once when it found a reused connection dead
  // before any answer and tried again on a fresh one, on its own.
  int attempts() const { return attempts_; }
  // Each request goes once: when libcurl would send it again on a fresh connection (the reused one
  // died before any answer), the transfer fails instead (CURLE_ABORTED_BY_CALLBACK, resend_refused()).
  // A tunnel request may be held by the server for the dead connection, and a copy sent at once,
  // before anything releases that one, lets the server answer the target's next bytes into it.
  void send_once(bool once = true) { send_once_ = once; }
  bool resend_refused() const { return resend_refused_; }
  const char* error_detail() const { return error_buffer_; }
  // One line for a failed or refused exchange: what failed, where (which proxy hop, TLS or the
  // endpoint) and what to try.
  std::string describe_failure(CURLcode result) const;
  // The failure was reaching proxy 1 itself (its name or its port), not anything behind it.
  bool failed_at_proxy_1(CURLcode result) const;
  bool wants_client_certificate_hint() const;
  // Sets the proxy again from the options (which changed since: a PAC's next choice).
  void reapply_proxy();

 private:
  void reset_answer();
  static size_t on_curl_header(char* data, size_t size, size_t count, void* userp) noexcept;
  static size_t on_curl_write(char* data, size_t size, size_t count, void* userp) noexcept;
  static size_t on_curl_read(char* buffer, size_t size, size_t count, void* userp) noexcept;
  static int on_curl_seek(void* userp, curl_off_t offset, int origin) noexcept;
  static int on_curl_prereq(void* userp, char* conn_primary_ip, char* conn_local_ip, int conn_primary_port,
                            int conn_local_port) noexcept;
  static int on_curl_debug(CURL* easy, curl_infotype type, char* data, size_t size, void* userp) noexcept;

  CURL* easy_;
  const HttpOptions& options_;
  const ProxyChain* chain_ = nullptr;
  std::vector<std::string> sensitive_headers_;
  std::string watched_name_;
  std::string watched_value_;
  bool watched_seen_ = false;
  bool excess_ = false;  // libcurl's trace said "Excess found"
  std::string tls_summary_;
  bool chunked_ = false;  // the answer said Transfer-Encoding: ..., chunked
  curl_off_t declared_length_ = -1;  // the answer's Content-Length, as the header said
  std::string reason_;
  std::vector<char> body_;
  bool body_too_large_ = false;
  const char* upload_ = nullptr;
  size_t upload_size_ = 0;
  size_t upload_offset_ = 0;
  bool inline_body_ = false;  // the body leaves with the request head (small POSTs)
  uint64_t body_sent_ns_ = 0;
  uint64_t answered_ns_ = 0;
  uint64_t delivered_ns_ = 0;
  uint64_t undelivered_seen_ns_ = 0;  // when bytes of the body were last seen unacknowledged
  int attempts_ = 0;
  bool send_once_ = false;
  bool resend_refused_ = false;
  char error_buffer_[CURL_ERROR_SIZE] = {};
};

// "403 Forbidden", or "403" when there is no reason phrase (HTTP/2 has none).
std::string status_text(long status, const std::string& reason);

// "Connection refused (while connecting to 127.0.0.1:8080)"-style text for a failed transfer.
std::string describe_curl_error(CURLcode code, const char* detail);

}  // namespace tunnel

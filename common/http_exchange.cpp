#include "common/http_exchange.hpp"

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

}  // namespace

HttpExchange::HttpExchange(const HttpOptions& options) : easy_(curl_easy_init()) {
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
  curl_easy_setopt(easy_, CURLOPT_USERAGENT, "tunnel-agent/" TUNNEL_AGENT_VERSION);
  curl_easy_setopt(easy_, CURLOPT_ERRORBUFFER, error_buffer_);
  curl_easy_setopt(easy_, CURLOPT_HEADERFUNCTION, &HttpExchange::on_curl_header);
  curl_easy_setopt(easy_, CURLOPT_HEADERDATA, this);
  curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &HttpExchange::on_curl_write);
  curl_easy_setopt(easy_, CURLOPT_WRITEDATA, this);
  if (options.verbose) {
    sensitive_headers_ = options.sensitive_headers;
    for (const char* always : {"Authorization", "Proxy-Authorization", "Cookie"}) sensitive_headers_.emplace_back(always);
    curl_easy_setopt(easy_, CURLOPT_DEBUGFUNCTION, &HttpExchange::on_curl_debug);
    curl_easy_setopt(easy_, CURLOPT_DEBUGDATA, this);
    curl_easy_setopt(easy_, CURLOPT_VERBOSE, 1L);
  }
}

// Called by libcurl with its trace (-vv): text and headers go to stderr, sensitive values masked,
// bodies are left out (they are the tunnelled bytes).
int HttpExchange::on_curl_debug(CURL*, curl_infotype type, char* data, size_t size, void* userp) noexcept {
  auto* self = static_cast<HttpExchange*>(userp);
  const char* prefix = type == CURLINFO_TEXT ? "* " : type == CURLINFO_HEADER_OUT ? "> " : type == CURLINFO_HEADER_IN ? "< " : nullptr;
  if (prefix == nullptr) return 0;
  std::string_view block(data, size);
  while (!block.empty()) {
    auto end = block.find('\n');
    std::string_view line = block.substr(0, end);
    block = end == std::string_view::npos ? std::string_view() : block.substr(end + 1);
    line = trim(line);
    if (line.empty()) continue;
    auto colon = line.find(':');
    bool secret = false;
    if (type != CURLINFO_TEXT && colon != std::string_view::npos) {
      for (const auto& name : self->sensitive_headers_) secret = secret || iequals(trim(line.substr(0, colon)), name);
    }
    if (secret) {
      std::fprintf(stderr, "curl %s%.*s: ***\n", prefix, static_cast<int>(colon), line.data());
    } else {
      std::fprintf(stderr, "curl %s%.*s\n", prefix, static_cast<int>(line.size()), line.data());
    }
  }
  return 0;
}

HttpExchange::~HttpExchange() { curl_easy_cleanup(easy_); }

void HttpExchange::reset_answer() {
  watched_value_.clear();
  watched_seen_ = false;
  reason_.clear();
  body_.clear();
  body_too_large_ = false;
  error_buffer_[0] = '\0';
}

void HttpExchange::prepare_get(curl_slist* headers) {
  reset_answer();
  body_sent_ns_ = 0;
  curl_easy_setopt(easy_, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, headers);
}

void HttpExchange::prepare_post(const char* data, size_t size, curl_slist* headers) {
  reset_answer();
  upload_ = data;
  upload_size_ = size;
  upload_offset_ = 0;
  body_sent_ns_ = size == 0 ? uv_hrtime() : 0;
  curl_easy_setopt(easy_, CURLOPT_POST, 1L);
  curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, nullptr);
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

long HttpExchange::status() const {
  long code = 0;
  curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &code);
  return code;
}

// Called by libcurl to rewind the POST body, when it sends the request again on a new connection.
int HttpExchange::on_curl_seek(void* userp, curl_off_t offset, int origin) noexcept {
  auto* self = static_cast<HttpExchange*>(userp);
  if (origin != SEEK_SET || offset < 0 || static_cast<size_t>(offset) > self->upload_size_) return CURL_SEEKFUNC_FAIL;
  self->upload_offset_ = static_cast<size_t>(offset);
  self->body_sent_ns_ = 0;
  return CURL_SEEKFUNC_OK;
}

// Called by libcurl for each response header line (status line included), also of a proxy's answer.
size_t HttpExchange::on_curl_header(char* data, size_t size, size_t count, void* userp) noexcept {
  auto* self = static_cast<HttpExchange*>(userp);
  const size_t n = size * count;
  std::string_view line(data, n);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new status line (after a 100 Continue or a proxy's answer): forget the previous headers.
    self->watched_seen_ = false;
    self->watched_value_.clear();
    auto space = line.find(' ');
    auto second = space == std::string_view::npos ? space : line.find(' ', space + 1);
    self->reason_ = second == std::string_view::npos ? std::string() : std::string(trim(line.substr(second + 1)));
    return n;
  }
  auto colon = line.find(':');
  if (colon != std::string_view::npos && !self->watched_name_.empty() &&
      iequals(trim(line.substr(0, colon)), self->watched_name_)) {
    if (self->watched_seen_) {
      self->watched_value_ = "<repeated header>";  // two values: refuse to guess which one counts
    } else {
      self->watched_value_ = std::string(trim(line.substr(colon + 1)));
    }
    self->watched_seen_ = true;
  }
  return n;
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

std::string describe_curl_error(CURLcode code, const char* detail) {
  std::string text = curl_easy_strerror(code);
  if (detail != nullptr && detail[0] != '\0') {
    std::string_view d = trim(detail);
    text += ": ";
    text += d;
  }
  return text;
}

}  // namespace tunnel

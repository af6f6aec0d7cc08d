#include "agent/settings.hpp"

namespace tunnel {

SessionSettings session_settings(const Config& config, const Forward& forward) {
  SessionSettings s;
  s.http.url = forward.url;
  s.http.connect_timeout_ms = config.connect_timeout_ms;
  s.http.request_timeout_ms = config.request_timeout_ms;
  s.retry_window_ms = static_cast<uint64_t>(config.retry_window_ms);
  s.http.verbose = config.curl_trace;
  s.http.sensitive_headers = {config.secret_header};
  for (const auto& header : config.headers) s.http.sensitive_headers.push_back(header.substr(0, header.find(':')));
  s.headers = config.headers;
  s.http.proxy = forward.proxy;
  s.http.tls = config.tls;
  s.secret_header = config.secret_header;
  s.secret = config.secret;
  s.secret_source = config.secret_source;
  return s;
}

}  // namespace tunnel

#include "agent/settings.hpp"

#include "common/url.hpp"

#include <strings.h>

#include <algorithm>

namespace tunnel {

SessionSettings session_settings(const Config& config, const Forward& forward) {
  SessionSettings s;
  s.http.url = forward.url;
  s.http.connect_timeout_ms = config.connect_timeout_ms;
  s.http.request_timeout_ms = config.request_timeout_ms;
  s.retry_window_ms = static_cast<uint64_t>(config.retry_window_ms);
  s.stall_warning_ms = static_cast<uint64_t>(config.stall_warning_ms);
  s.http.verbose = config.curl_trace;
  // The forward's own headers replace -H headers of the same name.
  auto name_of = [](const std::string& header) { return header.substr(0, header.find(':')); };
  for (const auto& header : config.headers) {
    const bool replaced = std::any_of(forward.headers.begin(), forward.headers.end(), [&](const std::string& own) {
      return strcasecmp(name_of(own).c_str(), name_of(header).c_str()) == 0;
    });
    if (!replaced) s.headers.push_back(header);
  }
  s.headers.insert(s.headers.end(), forward.headers.begin(), forward.headers.end());
  s.http.sensitive_headers = {config.secret_header};
  for (const auto& header : s.headers) s.http.sensitive_headers.push_back(name_of(header));
  s.http.proxy = forward.proxy;
  const auto secret = forward.secret ? forward.secret : config.secret;
  if (secret) s.http.sensitive_values.push_back(*secret);
  for (const auto& header : s.headers) {
    std::string value = header.substr(std::min(header.size(), header.find(':') + 1));
    value.erase(0, value.find_first_not_of(" \t"));
    if (!value.empty()) s.http.sensitive_values.push_back(value);
  }
  if (forward.proxy.password) s.http.sensitive_values.push_back(*forward.proxy.password);
  for (const auto& hop : forward.proxy.hops) {
    for (unsigned flags : {0u, static_cast<unsigned>(CURLU_URLDECODE)}) {
      const std::string password = url_part(hop.url, CURLUPART_PASSWORD, flags);
      if (!password.empty()) s.http.sensitive_values.push_back(password);
    }
  }
  // Each proxy hop may hold a body back a while after the request head went through (it buffers):
  // a POST is taken as read by the server that much later (docs/PROTOCOL-NOTES.md).
  // Measured: through tinyproxy, a 60 KiB body was still unread 20 ms after it left, again and again.
  // A GET's head is not held back: its lead over a request behind it grows by a jitter margin only
  // (with the body margin, each ping-pong through squid across a 20 ms link took 56 ms, not 41).
  const auto hops = static_cast<uint64_t>(forward.proxy.hops.size());
  s.planner.settle_base_ns += 50'000'000 * hops;
  s.planner.probe_round_trip = true;
  s.planner.lead_base_ns += 5'000'000 * hops;
  s.http.tls = config.tls;
  s.secret_header = config.secret_header;
  s.secret = forward.secret ? forward.secret : config.secret;
  s.secret_source = forward.secret ? forward.secret_source : config.secret_source;
  return s;
}

}  // namespace tunnel

#include "common/url.hpp"

#include <uv.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>

namespace tunnel {

std::string url_part(const std::string& url, CURLUPart which, unsigned flags) {
  CURLU* u = curl_url();
  std::string out;
  char* raw = nullptr;
  if (u != nullptr &&
      curl_url_set(u, CURLUPART_URL, url.c_str(), CURLU_NON_SUPPORT_SCHEME | CURLU_GUESS_SCHEME) == CURLUE_OK &&
      curl_url_get(u, which, &raw, flags) == CURLUE_OK && raw != nullptr) {
    out = raw;
  }
  curl_free(raw);
  curl_url_cleanup(u);
  return out;
}

std::string host_port(const std::string& url) {
  const std::string host = url_part(url, CURLUPART_HOST);
  return host.empty() ? "?" : host + ":" + url_part(url, CURLUPART_PORT, CURLU_DEFAULT_PORT);
}

namespace {

std::string lower_host(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  while (!text.empty() && text.back() == '.') text.remove_suffix(1);  // "host." is "host"
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::optional<uint32_t> ipv4(const std::string& text) {
  in_addr addr{};
  if (uv_inet_pton(AF_INET, text.c_str(), &addr) != 0) return std::nullopt;
  return ntohl(addr.s_addr);
}

}  // namespace

bool no_proxy_covers(std::string_view list, std::string_view host_text) {
  const std::string host = lower_host(host_text);
  if (host.empty()) return false;
  size_t at = 0;
  while (at < list.size()) {
    const size_t end = std::min(list.find_first_of(", ", at), list.size());
    std::string_view entry = list.substr(at, end - at);
    at = end + 1;
    if (entry.empty()) continue;
    if (entry == "*") return true;
    while (!entry.empty() && entry.front() == '.') entry.remove_prefix(1);
    const size_t slash = entry.find('/');
    if (slash != std::string_view::npos) {
      // CIDR: IPv4 only (an IPv6 block is left to libcurl, which gets the same list).
      const auto net = ipv4(std::string(entry.substr(0, slash)));
      const auto addr = ipv4(host);
      int bits = -1;
      const std::string_view prefix = entry.substr(slash + 1);
      if (!prefix.empty() && prefix.size() <= 2 && std::all_of(prefix.begin(), prefix.end(), ::isdigit)) {
        bits = std::stoi(std::string(prefix));
      }
      if (net && addr && bits >= 0 && bits <= 32) {
        const uint32_t mask = bits == 0 ? 0 : ~uint32_t{0} << (32 - bits);
        if ((*net & mask) == (*addr & mask)) return true;
      }
      continue;
    }
    const std::string name = lower_host(entry);
    if (name.empty()) continue;
    if (host == name) return true;
    if (host.size() > name.size() && host.compare(host.size() - name.size(), name.size(), name) == 0 &&
        host[host.size() - name.size() - 1] == '.' && !ipv4(host)) {
      return true;  // a subdomain (never a part of an IP address: 10.0.0.1 is not under 0.1)
    }
  }
  return false;
}

}  // namespace tunnel

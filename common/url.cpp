#include "common/url.hpp"

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

}  // namespace tunnel

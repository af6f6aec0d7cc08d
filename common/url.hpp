// One part of a URL, through libcurl's parser (curl_url()).
#pragma once

#include <curl/curl.h>

#include <string>
#include <string_view>

namespace tunnel {

// The part (decoded with CURLU_URLDECODE in `flags`), or "" when absent or the URL does not parse.
// A URL without a scheme is read as http://, as curl reads a proxy.
std::string url_part(const std::string& url, CURLUPart which, unsigned flags = 0);

// "host:port" of a URL (the scheme's port when none is given), for messages; never its credentials.
std::string host_port(const std::string& url);

// Whether `host` is reached without a proxy by a no_proxy list, as curl reads it: entries split by
// commas (and spaces), "*" alone covers every host, a name covers itself and its subdomains (a
// leading dot is dropped), an IP address covers itself and an IPv4 CIDR block ("10.0.0.0/8") its
// addresses; case does not matter, brackets around an IPv6 host are dropped.
bool no_proxy_covers(std::string_view list, std::string_view host);

}  // namespace tunnel

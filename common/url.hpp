// One part of a URL, through libcurl's parser (curl_url()).
#pragma once

#include <curl/curl.h>

#include <string>

namespace tunnel {

// The part (decoded with CURLU_URLDECODE in `flags`), or "" when absent or the URL does not parse.
// A URL without a scheme is read as http://, as curl reads a proxy.
std::string url_part(const std::string& url, CURLUPart which, unsigned flags = 0);

// "host:port" of a URL (the scheme's port when none is given), for messages; never its credentials.
std::string host_port(const std::string& url);

}  // namespace tunnel

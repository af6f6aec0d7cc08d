// How the agent's HTTP requests reach the endpoint: proxies, TLS, timeouts. Filled from the
// command line and environment (agent/config.cpp), applied to every easy handle (http_exchange.cpp).
#pragma once

#include <curl/curl.h>

#include <optional>
#include <string>
#include <vector>

namespace tunnel {

struct ProxyHop {
  std::string url;      // as given; may carry credentials, so never logged
  std::string display;  // "proxy.example:3128", for messages
  long port = 0;
  std::string source;   // "--proxy", "https_proxy", ... for messages
};

struct ProxySettings {
  std::vector<ProxyHop> hops;   // empty: no proxy
  std::string no_proxy;         // hosts reached without a proxy, in curl's syntax
  // The proxies given were dropped because no_proxy covers the endpoint's host: why, for the start
  // line and check ("https_proxy (proxy:3128) is not used: ..."); empty when none was.
  std::string bypassed;
  std::string user;             // for hop 1, unless its URL carries credentials
  std::optional<std::string> password;
  long auth = CURLAUTH_ANY;     // schemes libcurl may use with hop 1
  // From a PAC script (--proxy-auto, --pac): its answer's further choices after hop 1, in order
  // (nullopt: DIRECT), taken by a session whose proxy refuses connections before any answer.
  std::vector<std::optional<ProxyHop>> pac_next;
};

// The login libcurl offers proxy 1 (`hop1`, which may carry its own credentials in its URL): the
// user and password given, or with none, the user's Kerberos ticket (Negotiate, as curl's
// `--proxy-negotiate -U :`) when `proxy.auth` allows it. (http_exchange.cpp)
void apply_proxy_login(CURL* easy, const ProxySettings& proxy, const ProxyHop& hop1);

struct TlsSettings {
  std::string cacert, capath;   // trust for the endpoint (default: the system's)
  bool insecure = false;        // no verification of the endpoint (warned about at start)
  std::string cert, key;        // client certificate
  std::string pinned_pubkey;    // "sha256//..."
  std::string proxy_cacert;     // trust for an https:// proxy
  bool proxy_insecure = false;
};

struct HttpOptions {
  std::string url;
  long connect_timeout_ms = 15000;
  long request_timeout_ms = 30000;  // a long poll is answered within two server poll timeouts
  bool verbose = false;             // libcurl's own trace on stderr (-vv), secrets masked
  std::vector<std::string> sensitive_headers;  // their values never reach the trace
  // The secret, header values, proxy passwords: masked wherever they appear in a trace line (HTTP/2
  // traces them in lines of their own, "h2h3 [x-auth-token: ...]", that no header name gives away).
  std::vector<std::string> sensitive_values;
  ProxySettings proxy;
  TlsSettings tls;
};

}  // namespace tunnel

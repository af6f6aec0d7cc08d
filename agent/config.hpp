// The agent's settings, from the command line and the environment. Parsing is pure (no sockets),
// so every rule here is unit-tested.
#pragma once

#include "common/http_options.hpp"
#include "common/log.hpp"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace tunnel {

enum class BusyPolicy { wait, refuse };

struct ListenAddress {
  std::string host = "127.0.0.1";
  int port = 8000;
};

// One local listener and the endpoint its connections are carried to.
struct Forward {
  ListenAddress listen;
  std::string url;
  ProxySettings proxy;  // proxies for this endpoint (from the environment they depend on its scheme)
  // From a [[forward]] table of the config file: its own secret, and headers added to (or replacing
  // the same-named) -H headers.
  std::optional<std::string> secret;
  std::string secret_source;
  std::vector<std::string> headers;
  std::string url_warning;  // what resolve_endpoint_url said of the URL as typed ("": nothing)
  // A [[forward]] table's own proxy choice, which wins over --proxy and the environment for it:
  // proxy URLs (a chain) or no proxy at all, and where that was said ("[[forward]] at FILE line N").
  std::vector<std::string> own_proxies;
  bool own_no_proxy = false;
  std::string own_proxy_source;
  // The proxy is chosen by the PAC script (--pac, --proxy-auto) once it has been fetched and run:
  // agent/proxy_auto.cpp fills `proxy` before anything connects.
  bool auto_proxy = false;
};

struct Config {
  std::vector<Forward> forwards;  // the URL argument with --listen, and every -L
  std::vector<std::string> headers;  // -H "Name: value", sent with every request (values never logged)
  bool stdio = false;  // --stdio: one session over standard input and output, then exit
  long stdio_linger_ms = 2000;  // --stdio-linger
  bool check = false;  // tunnel-agent check URL: diagnose the path, then exit
  std::string secret_header = "X-AUTH-TOKEN";
  std::optional<std::string> secret;  // never printed
  std::string secret_source;          // "--secret-file PATH" or "TUNNEL_AGENT_SECRET", for messages
  BusyPolicy on_busy = BusyPolicy::wait;
  log::Level log_level = log::Level::info;
  log::Format log_format = log::Format::text;
  bool curl_trace = false;  // -vv
  bool status_line = true;  // on a terminal, a live status line per forward (--no-status-line)
  long stats_interval_ms = 0;  // --stats-interval: the status as log lines this often (0: never)
  long connect_timeout_ms = 15000;
  long request_timeout_ms = 30000;
  long retry_window_ms = 25000;
  long stall_warning_ms = 10000;  // --stall-warning
  std::string pac;          // --pac URL|FILE: the proxy auto-configuration script
  bool proxy_auto = false;  // --proxy-auto: the PAC script from --pac, else found by WPAD
  ProxySettings proxy;  // the first forward's proxies (the shared login settings live here too)
  TlsSettings tls;
  std::vector<std::string> warnings;  // found while reading the settings; logged once logging is set up
};

inline constexpr size_t kMaxHeaders = 8;

struct ParseResult {
  std::optional<Config> config;  // set when the agent should run
  int exit_code = 0;             // otherwise: exit with this...
  std::string message;           // ...after printing this (stdout when exit_code is 0, else stderr)
};

using GetEnv = std::function<const char*(const char*)>;

// Reads the command line, the TUNNEL_* environment and the config file (precedence in that order).
ParseResult parse_command_line(int argc, const char* const* argv, const GetEnv& getenv);

// $XDG_CONFIG_HOME/tunnel-agent/config.toml, else ~/.config/tunnel-agent/config.toml.
std::optional<std::string> default_config_path(const GetEnv& getenv);

// "[HOST:]PORT", "[v6]:PORT"; HOST must be an IP address or "localhost". Empty optional if invalid.
std::optional<ListenAddress> parse_listen_address(const std::string& text, std::string& error);

// "[HOST:]PORT=URL" (-L). Empty optional if invalid.
std::optional<Forward> parse_forward(const std::string& text, std::string& error);

// "Name: value" (-H): a plain header name, a value without line breaks. Empty string if valid.
std::string check_header(const std::string& text);

// The path of the tunnel endpoint of Spring Boot DevTools (spring.devtools.remote.debug.url).
inline constexpr const char* kEndpointPath = "/.~~spring-boot!~/debug";

// The endpoint URL to use for what the user typed, checked with libcurl's URL parser (http or
// https, a host, no password), so that no one has to type the `!` of the endpoint path (bash
// history expansion):
//  - no scheme: https://, unless a port other than 443 is given or the host is a loopback name
//    (then http://, as curl);
//  - no path, or a context path (/app): the endpoint path is added after it;
//  - a path that ends in the endpoint path: as given;
//  - a path that looks like a mistyped endpoint (it has "spring-boot" or "~" in it, as when the
//    shell ate the `!`): as given, and `warning` says so (else it is left empty).
// Empty optional if invalid, with `error`.
std::optional<std::string> resolve_endpoint_url(const std::string& text, std::string& error, std::string& warning);

// Checks a proxy URL (http:// or https://, credentials allowed) and describes it for messages.
std::optional<ProxyHop> parse_proxy(const std::string& url, const std::string& source, std::string& error);

}  // namespace tunnel

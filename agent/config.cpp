#include "agent/config.hpp"

#include "agent/config_file.hpp"
#include "common/platform.hpp"
#include "common/url.hpp"

#include <CLI/CLI.hpp>
#include <curl/curl.h>
#include <fmt/format.h>
#include <uv.h>

#include <strings.h>

#include <algorithm>
#include <cctype>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>
#include <memory>
#include <sstream>

namespace tunnel {
namespace {

struct CurlUrlFree {
  void operator()(CURLU* u) const noexcept { curl_url_cleanup(u); }
};
struct CurlStrFree {
  void operator()(char* s) const noexcept { curl_free(s); }
};

bool is_ip_literal(const std::string& host) {
  sockaddr_in v4{};
  sockaddr_in6 v6{};
  return uv_ip4_addr(host.c_str(), 0, &v4) == 0 || uv_ip6_addr(host.c_str(), 0, &v6) == 0;
}

// A number of seconds from `min` to `max`, said in words: CLI::Range said "Value abc not in range
// 0.000000 to 3600.000000", and alone let "nan" through (every comparison with NaN is false):
// "--request-timeout nan" turned the timeout off. No type noise in --help (the name is empty).
// A validator whose description stays out of --help (the type name says it: "FILE", "wait|refuse").
CLI::Validator quiet(CLI::Validator v) {
  v.description("");
  return v;
}

CLI::Validator seconds(double min, double max) {
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        if (text.empty() || end == text.c_str() || *end != '\0') {
          return fmt::format("'{}' is not a number of seconds (write e.g. 20 or 0.5)", text);
        }
        if (!std::isfinite(value)) return fmt::format("'{}' is not a finite number of seconds", text);
        if (value < min || value > max) {
          return fmt::format("{} is out of range: give {:g} to {:g} seconds", text, min, max);
        }
        return {};
      },
      "");
}

// `what`: "secret" or "proxy password", for messages. A file others may read gets a line in
// `warnings`, as ssh does for a key.
std::optional<std::string> read_secret_file(const std::string& path, const char* what, std::string& error,
                                            std::vector<std::string>& warnings) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = fmt::format("cannot read the {} file {}: check the path and its permissions", what, path);
    return std::nullopt;
  }
  // At most this much: a secret is one short line (--secret-file /dev/zero never returned).
  constexpr size_t kMaxSecretFile = 64 << 10;
  std::string secret(kMaxSecretFile + 1, '\0');
  in.read(secret.data(), static_cast<std::streamsize>(secret.size()));
  secret.resize(static_cast<size_t>(in.gcount()));
  if (secret.size() > kMaxSecretFile) {
    error = fmt::format("the {} file {} holds more than {} KiB: not a {} file (put the {} on its first line)", what,
                        path, kMaxSecretFile >> 10, what, what);
    return std::nullopt;
  }
  if (const std::string how = platform::readable_by_others(path); !how.empty()) {
    warnings.push_back(fmt::format("the {} file {} can be read by other users ({}): {}", what, path, how,
                                   platform::make_private_command(path)));
  }
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.empty()) {
    error = fmt::format("the {} file {} is empty: put the {} on its first line", what, path, what);
    return std::nullopt;
  }
  if (secret.find_first_of("\r\n") != std::string::npos) {
    error = fmt::format("the {} file {} has more than one line: keep only the {}", what, path, what);
    return std::nullopt;
  }
  return secret;
}

// A header whose value is likely a credential, by its name.
bool secret_looking(const std::string& header) {
  std::string name = header.substr(0, header.find(':'));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* part : {"auth", "token", "secret", "key", "cookie", "session", "password", "credential"}) {
    if (name.find(part) != std::string::npos) return true;
  }
  return false;
}

// -H @FILE: one header per line; blank lines and lines starting with # are skipped. At most 64 KiB;
// a file others may read gets a warning, as a secret file does.
std::optional<std::vector<std::string>> read_header_file(const std::string& path, std::string& error,
                                                         std::vector<std::string>& warnings) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = fmt::format("cannot read the header file {} (-H @{}): check the path and its permissions", path, path);
    return std::nullopt;
  }
  constexpr size_t kMaxHeaderFile = 64 << 10;
  std::string text(kMaxHeaderFile + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxHeaderFile) {
    error = fmt::format("the header file {} holds more than {} KiB: not a header file", path, kMaxHeaderFile >> 10);
    return std::nullopt;
  }
  if (const std::string how = platform::readable_by_others(path); !how.empty()) {
    warnings.push_back(fmt::format("the header file {} can be read by other users ({}): {}", path, how,
                                   platform::make_private_command(path)));
  }
  std::vector<std::string> headers;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    headers.push_back(line.substr(start));
  }
  if (headers.empty()) {
    error = fmt::format("the header file {} holds no header: write one \"Name: value\" per line", path);
    return std::nullopt;
  }
  return headers;
}

}  // namespace

std::optional<ListenAddress> parse_listen_address(const std::string& text, std::string& error) {
  ListenAddress out;
  std::string port_text = text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      error = fmt::format("bad listen address '{}': write an IPv6 address as [ADDR]:PORT", text);
      return std::nullopt;
    }
    out.host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else if (auto colon = text.rfind(':'); colon != std::string::npos) {
    out.host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (out.host.find(':') != std::string::npos) {
      error = fmt::format("bad listen address '{}': write an IPv6 address as [ADDR]:PORT", text);
      return std::nullopt;
    }
  }
  if (out.host == "localhost") out.host = "127.0.0.1";
  if (out.host.empty() || !is_ip_literal(out.host)) {
    error = fmt::format("bad listen address '{}': the host must be an IP address (e.g. 127.0.0.1)", text);
    return std::nullopt;
  }
  int port = -1;
  if (!port_text.empty() && port_text.size() <= 5 &&
      port_text.find_first_not_of("0123456789") == std::string::npos) {
    port = std::stoi(port_text);
  }
  if (port < 0 || port > 65535) {
    error = fmt::format("bad listen port in '{}': give a number from 0 to 65535 (0 picks a free port)", text);
    return std::nullopt;
  }
  out.port = port;
  return out;
}

std::optional<Forward> parse_forward(const std::string& text, std::string& error) {
  const auto eq = text.find('=');
  if (eq == std::string::npos) {
    error = fmt::format("bad forward '{}': write -L [HOST:]PORT=URL, e.g. -L 8001=https://host",
                        text);
    return std::nullopt;
  }
  auto listen = parse_listen_address(text.substr(0, eq), error);
  if (!listen) return std::nullopt;
  std::string warning;
  auto url = resolve_endpoint_url(text.substr(eq + 1), error, warning);
  if (!url) return std::nullopt;
  Forward forward;
  forward.listen = *listen;
  forward.url = *url;
  forward.url_warning = warning;
  return forward;
}

std::string check_header(const std::string& text) {
  const auto colon = text.find(':');
  const std::string name = colon == std::string::npos ? text : text.substr(0, colon);
  if (colon == std::string::npos || name.empty() ||
      name.find_first_not_of("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") !=
          std::string::npos) {
    return fmt::format("bad header '{}': write -H \"Name: value\" with a plain header name", name);
  }
  if (text.find_first_of("\r\n") != std::string::npos) return fmt::format("the -H {} value contains a line break", name);
  for (const char* reserved : {"x-seq", "content-type", "content-length", "host", "transfer-encoding", "expect"}) {
    if (strcasecmp(name.c_str(), reserved) == 0) {
      return fmt::format("-H cannot set {}: the tunnel protocol uses it", name);
    }
  }
  return {};
}

std::optional<std::string> resolve_endpoint_url(const std::string& text, std::string& error, std::string& warning) {
  warning.clear();
  std::string url = text;
  if (text.find("://") == std::string::npos) {
    // Which scheme: from the host and port as typed.
    const std::string host = url_part("http://" + text, CURLUPART_HOST);
    const std::string port = url_part("http://" + text, CURLUPART_PORT);
    const bool loopback = host == "localhost" || host == "[::1]" || host.rfind("127.", 0) == 0;
    url = (loopback || (!port.empty() && port != "443") ? "http://" : "https://") + text;
  }
  std::unique_ptr<CURLU, CurlUrlFree> handle(curl_url());
  if (!handle) {
    error = "out of memory";
    return std::nullopt;
  }
  CURLUcode rc = curl_url_set(handle.get(), CURLUPART_URL, url.c_str(), 0);
  if (rc != CURLUE_OK) {
    error = fmt::format("invalid endpoint URL '{}': {}", text, curl_url_strerror(rc));
    return std::nullopt;
  }
  auto part = [&](CURLUPart which) -> std::optional<std::string> {
    char* raw = nullptr;
    if (curl_url_get(handle.get(), which, &raw, 0) != CURLUE_OK || raw == nullptr) return std::nullopt;
    std::unique_ptr<char, CurlStrFree> owned(raw);
    return std::string(raw);
  };
  const std::string scheme = part(CURLUPART_SCHEME).value_or("");
  if (scheme != "http" && scheme != "https") {
    error = fmt::format("invalid endpoint URL '{}': the scheme must be http or https", text);
    return std::nullopt;
  }
  if (part(CURLUPART_HOST).value_or("").empty()) {
    error = fmt::format("invalid endpoint URL '{}': it has no host", text);
    return std::nullopt;
  }
  if (part(CURLUPART_PASSWORD)) {
    error = "the endpoint URL must not carry a password: give the secret with --secret-file or TUNNEL_AGENT_SECRET";
    return std::nullopt;
  }
  const std::string path = part(CURLUPART_PATH).value_or("/");
  const std::string_view endpoint = kEndpointPath;
  if (path.size() >= endpoint.size() && path.compare(path.size() - endpoint.size(), endpoint.size(), endpoint) == 0) {
    return part(CURLUPART_URL);
  }
  if (path.find("spring-boot") != std::string::npos || path.find('~') != std::string::npos) {
    warning = fmt::format("the endpoint URL's path {} does not end in {}, the path of Spring Boot's tunnel: if the "
                          "shell ate a '!', put the URL in single quotes, or give only https://host",
                          path, endpoint);
    return part(CURLUPART_URL);
  }
  // No path, or a context path: the endpoint is under it.
  std::string context = path;
  while (!context.empty() && context.back() == '/') context.pop_back();
  if (curl_url_set(handle.get(), CURLUPART_PATH, (context + kEndpointPath).c_str(), 0) != CURLUE_OK) {
    error = fmt::format("invalid endpoint URL '{}': its path cannot take {}", text, endpoint);
    return std::nullopt;
  }
  return part(CURLUPART_URL);
}

std::optional<ProxyHop> parse_proxy(const std::string& url, const std::string& source, std::string& error) {
  std::unique_ptr<CURLU, CurlUrlFree> handle(curl_url());
  // A proxy given without a scheme is an http:// one, as curl takes it.
  const std::string full = url.find("://") == std::string::npos ? "http://" + url : url;
  CURLUcode rc = handle ? curl_url_set(handle.get(), CURLUPART_URL, full.c_str(), CURLU_NON_SUPPORT_SCHEME) : CURLUE_OUT_OF_MEMORY;
  auto part = [&](CURLUPart which, unsigned flags = 0) {
    char* raw = nullptr;
    std::string out;
    if (curl_url_get(handle.get(), which, &raw, flags) == CURLUE_OK && raw != nullptr) out = raw;
    curl_free(raw);
    return out;
  };
  // Never echo the URL itself: it may hold a password.
  if (rc != CURLUE_OK) {
    error = fmt::format("invalid proxy from {}: {}", source, curl_url_strerror(rc));
    return std::nullopt;
  }
  const std::string scheme = part(CURLUPART_SCHEME);
  if (scheme != "http" && scheme != "https") {
    error = fmt::format("unsupported proxy scheme '{}' from {}: use an http:// or https:// proxy", scheme, source);
    return std::nullopt;
  }
  ProxyHop hop;
  hop.url = full;
  hop.source = source;
  const std::string host = part(CURLUPART_HOST);
  const std::string port = part(CURLUPART_PORT);
  if (host.empty()) {
    error = fmt::format("invalid proxy from {}: it has no host", source);
    return std::nullopt;
  }
  hop.port = !port.empty() ? std::stol(port) : scheme == "https" ? 443 : 1080;  // curl's proxy defaults
  hop.display = fmt::format("{}:{}", host, hop.port);
  return hop;
}

namespace {

// Everything the option definitions write into; Config's own fields are bound directly.
struct Raw {
  Config config;
  std::string url;
  std::vector<std::string> forward_texts;
  std::string listen_text = "127.0.0.1:8000";
  std::string on_busy = "wait";
  std::string secret_file;
  int verbose = 0;
  bool quiet = false;
  double connect_timeout_s = 15;
  double request_timeout_s = 30;
  double retry_window_s = 25;
  double linger_s = 2;
  double stall_warning_s = 10;
  bool no_status_line = false;
  double stats_interval_s = 0;
  std::vector<std::string> proxies;
  bool no_proxy = false;
  std::string proxy_password_file;
  std::string proxy_auth = "any";
  std::string log_format = "text";
  std::string config_path;
  bool no_config = false;
  bool print_config = false;
};

// Options that only steer the command line itself: not settable from a file or the environment.
bool command_line_only(const std::string& name) {
  return name == "help" || name == "version" || name == "config" || name == "no-config" || name == "print-config";
}

std::unique_ptr<CLI::App> make_app(Raw& raw) {
  auto app = std::make_unique<CLI::App>(
      "tunnel-agent: carries local TCP connections (e.g. a debugger's JDWP) to a remote Spring Boot\n"
      "DevTools HttpTunnelServer endpoint over plain long-poll HTTP(S) requests.\n"
      "'tunnel-agent check URL' diagnoses the path to an endpoint; 'tunnel-agent help check' says how.\n",
      "tunnel-agent");
  app->set_version_flag("-V,--version", "tunnel-agent " TUNNEL_AGENT_VERSION " (" + std::string(curl_version()) + ")");
  app->get_formatter()->column_width(32);
  Config& config = raw.config;
  app->option_defaults()->group("Endpoints");
  app->add_option("URL", raw.url,
                  "the tunnel endpoint: https://host[:port][/context-path], to which the endpoint path "
                  "/.~~spring-boot!~/debug is added, or the whole URL in single quotes (or use -L)")
      ->type_name("");
  app->add_option("-L,--forward", raw.forward_texts,
                  "[HOST:]PORT=URL: one more local port and the endpoint it goes to; repeatable, each with its own "
                  "listener and sessions (HOST defaults to 127.0.0.1; IPv6 as [::1]:PORT)")
      ->allow_extra_args(false)->type_name("[HOST:]PORT=URL");
  app->add_flag("--stdio", config.stdio,
                "carry standard input and output through one session to URL, then exit (for ssh's ProxyCommand "
                "and scripts); exit code 0 when the session ended normally");
  app->add_option("--stdio-linger", raw.linger_s,
                  "with --stdio: once standard input ends, wait this long for more output before ending (the session "
                  "also ends when the target closes)")
      ->check(seconds(0.0, 86400.0))->type_name("SECONDS")
      ->capture_default_str();
  app->add_option("-l,--listen", raw.listen_text,
                  "local address to accept connections on, [HOST:]PORT; port 0 picks a free one")
      ->type_name("[HOST:]PORT")->capture_default_str();
  app->add_option("--on-busy", raw.on_busy,
                  "a second local connection while a session runs: wait for it to end, or refuse it")
      ->check(quiet(CLI::IsMember({"wait", "refuse"})))->type_name("wait|refuse")
      ->capture_default_str();
  app->option_defaults()->group("Secret and headers");
  app->add_option("-H,--header", config.headers,
                  "\"Name: value\": an extra header on every request (an SSO gateway's token...); repeatable; values "
                  "are never logged; @FILE reads them from FILE, one per line, out of sight of ps")
      ->allow_extra_args(false)->type_name("HEADER|@FILE");
  app->add_option("--secret-header", config.secret_header, "header that carries the secret")
      ->type_name("NAME")->capture_default_str();
  app->add_option("--secret-file", raw.secret_file,
                  "file whose first line is the secret (else the environment variable TUNNEL_AGENT_SECRET)")
      ->type_name("FILE");
  app->option_defaults()->group("Proxies");
  app->add_option("-x,--proxy", raw.proxies,
                  "HTTP(S) proxy to reach the endpoint through, always with CONNECT; repeat for a chain; credentials "
                  "may be in the URL (percent-encoded). Default: https_proxy, http_proxy or all_proxy, as curl reads "
                  "them")
      ->allow_extra_args(false)->type_name("URL");
  app->add_flag("--no-proxy", raw.no_proxy, "ignore the proxy environment variables: connect directly");
  app->add_option("--pac", config.pac,
                  "proxy auto-configuration script (PAC, wpad.dat) from a URL or a file: it picks the proxy for "
                  "each endpoint, the next one when the first does not answer")
      ->type_name("URL|FILE");
  app->add_flag("--proxy-auto", config.proxy_auto,
                "find the proxy as browsers do: the PAC script of --pac, else the desktop's proxy settings "
                "(GNOME, KDE), else a PAC script found by WPAD (http://wpad.DOMAIN/wpad.dat for the machine's "
                "DNS domains)");
  app->add_option("--proxy-user", config.proxy.user, "user name for the proxy's login")->type_name("NAME");
  app->add_option("--proxy-password-file", raw.proxy_password_file,
                  "file whose first line is the proxy password (else TUNNEL_AGENT_PROXY_PASSWORD)")
      ->type_name("FILE");
  app->add_option("--proxy-auth", raw.proxy_auth, "proxy login scheme; any: the strongest the proxy offers")
      ->check(quiet(CLI::IsMember({"any", "basic", "digest", "ntlm", "negotiate"})))
      ->type_name("any|basic|digest|ntlm|negotiate")
      ->capture_default_str();
  app->option_defaults()->group("TLS");
  app->add_option("--cacert", config.tls.cacert, "CA certificates (PEM) to trust for the endpoint")
      ->check(quiet(CLI::ExistingFile))->type_name("FILE");
  app->add_option("--capath", config.tls.capath, "directory of CA certificates to trust")
      ->check(quiet(CLI::ExistingDirectory))->type_name("DIR");
  app->add_flag("-k,--insecure", config.tls.insecure, "do not verify the endpoint's certificate (unsafe)");
  app->add_option("--cert", config.tls.cert, "client certificate (PEM) for the endpoint")
      ->check(quiet(CLI::ExistingFile))->type_name("FILE");
  app->add_option("--key", config.tls.key, "private key (PEM) of the client certificate")
      ->check(quiet(CLI::ExistingFile))->type_name("FILE");
  app->add_option("--pinned-pubkey", config.tls.pinned_pubkey,
                  "accept only this public key: sha256//BASE64[;sha256//...] or a PEM/DER file")
      ->type_name("PIN|FILE");
  app->add_option("--proxy-cacert", config.tls.proxy_cacert, "CA certificates to trust for an https:// proxy")
      ->check(quiet(CLI::ExistingFile))->type_name("FILE");
  app->add_flag("--proxy-insecure", config.tls.proxy_insecure, "do not verify an https:// proxy's certificate");
  app->option_defaults()->group("Timing");
  app->add_option("--connect-timeout", raw.connect_timeout_s, "seconds to wait for a TCP/TLS connection")
      ->check(seconds(0.1, 3600.0))->type_name("SECONDS")
      ->capture_default_str();
  app->add_option("--request-timeout", raw.request_timeout_s,
                  "seconds one HTTP request may take (a long poll takes up to twice the server's poll timeout)")
      ->check(seconds(1.0, 86400.0))->type_name("SECONDS")
      ->capture_default_str();
  app->add_option("--stall-warning", raw.stall_warning_s,
                  "seconds the local client's bytes may wait for any answer from the target before the agent says "
                  "so and sends the last request body again (the server may have lost it); 0: never")
      ->check(seconds(0.0, 3600.0))->type_name("SECONDS")
      ->capture_default_str();
  app->add_option("--retry-window", raw.retry_window_s,
                  "seconds a session keeps retrying failed requests, from the first failure in a row; the server "
                  "drops a session that sees no request for 30 s, so keep it below that")
      ->check(seconds(0.0, 3600.0))->type_name("SECONDS")
      ->capture_default_str();
  app->option_defaults()->group("Output");
  app->add_flag("-v,--verbose", raw.verbose, "log every HTTP exchange; twice: also libcurl's own trace");
  app->add_flag("-q,--quiet", raw.quiet, "log errors only");
  app->add_flag("--no-status-line", raw.no_status_line,
                "no live status line under the log (it is only drawn when stderr is a terminal)");
  app->add_option("--stats-interval", raw.stats_interval_s,
                  "every this many seconds, log each forward's status (SIGUSR1 logs it at once); 0: never")
      ->check(seconds(0.0, 86400.0))->type_name("SECONDS")
      ->capture_default_str();
  app->add_option("--log-format", raw.log_format,
                  "text, or json: one JSON object per line on stderr, for log collectors")
      ->check(quiet(CLI::IsMember({"text", "json"})))->type_name("text|json")
      ->capture_default_str();
  app->option_defaults()->group("Configuration");
  app->add_option("--config", raw.config_path,
                  "TOML file of settings, with the long option names as keys (default: "
                  "$XDG_CONFIG_HOME/tunnel-agent/config.toml, when it exists; or TUNNEL_AGENT_CONFIG)")
      ->type_name("FILE");
  app->add_flag("--no-config", raw.no_config, "read no config file");
  app->add_flag("--print-config", raw.print_config,
                "print the settings in effect, and where each came from, as TOML (secrets masked), then exit");
  app->footer(
      "Environment (our own prefix: cloudflared's TUNNEL_* variables are never read):\n"
      "  TUNNEL_AGENT_SECRET          the secret, when --secret-file is not given (never logged)\n"
      "  TUNNEL_AGENT_PROXY_PASSWORD  the proxy password, when --proxy-password-file is not given\n"
      "  TUNNEL_AGENT_<OPTION>        any long option, e.g. TUNNEL_AGENT_RETRY_WINDOW=20,\n"
      "                          TUNNEL_AGENT_URL=..., TUNNEL_AGENT_INSECURE=1; lists (TUNNEL_AGENT_HEADER)\n"
      "                          one item per line; TUNNEL_AGENT_FORWARD and TUNNEL_AGENT_PROXY also\n"
      "                          split on spaces\n"
      "  https_proxy, http_proxy, all_proxy, no_proxy (and HTTPS_PROXY, ALL_PROXY, NO_PROXY)\n"
      "                          the proxy, as curl reads them, unless --proxy or --no-proxy\n\n"
      "Precedence: command line > environment > config file > default. A setting given by a higher\n"
      "source replaces the whole setting (all its -H, -L or -x items). --print-config shows the result.\n\n"
      "The agent listens on loopback only unless --listen names another address. It logs to stderr\n"
      "and exits 0 on Ctrl-C or SIGTERM after telling the server to drop live sessions.\n\n"
      "Examples:\n"
      "  tunnel-agent --secret-file ~/.tunnel-secret app.example.com   # then: jdb -attach 127.0.0.1:8000\n"
      "  tunnel-agent -x http://proxy.corp:3128 --proxy-user jdoe 'https://app.example.com/myapp'\n"
      "  tunnel-agent check app.example.com   # why does the debugger not attach?");
  return app;
}

// Parses `tokens` (without the program name). Throws CLI::ParseError.
void parse_tokens(CLI::App& app, const std::vector<std::string>& tokens) {
  std::vector<const char*> argv{"tunnel-agent"};
  for (const auto& t : tokens) argv.push_back(t.c_str());
  app.parse(static_cast<int>(argv.size()), argv.data());
}

// curl's spellings of the same settings, so that a curl command line's options carry over:
// rewritten to ours before parsing (not in --help: one name per setting there).
std::vector<std::string> curl_spellings(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  bool positionals = false;  // after "--"
  for (const std::string& a : args) {
    positionals = positionals || a == "--";
    if (positionals) {
      out.push_back(a);
    } else if (a == "--pinnedpubkey" || a.rfind("--pinnedpubkey=", 0) == 0) {
      out.push_back("--pinned-pubkey" + a.substr(std::string_view("--pinnedpubkey").size()));
    } else if (a == "-U") {
      out.push_back("--proxy-user");
    } else if (a == "--proxy-basic" || a == "--proxy-digest" || a == "--proxy-ntlm" || a == "--proxy-negotiate") {
      out.push_back("--proxy-auth=" + a.substr(std::string_view("--proxy-").size()));
    } else if (a == "--proxy-anyauth") {
      out.push_back("--proxy-auth=any");
    } else {
      out.push_back(a);
    }
  }
  return out;
}

// The option `token` names ("--name", "--name=value", "-x"), or null.
const CLI::Option* option_named(const CLI::App& app, const std::string& token) {
  if (token.size() < 2 || token[0] != '-' || token == "--") return nullptr;
  const std::string name = token.substr(0, token.find('='));
  if (name.size() > 2 && name[1] != '-') return app.get_option_no_throw(name.substr(0, 2));  // -vv, -Lspec
  return app.get_option_no_throw(name);
}

// Whether `token` is an option that takes its value from the next token.
bool takes_next(const CLI::App& app, const std::string& token) {
  const CLI::Option* opt = option_named(app, token);
  if (opt == nullptr || opt->get_expected_max() == 0 || token.find('=') != std::string::npos) return false;
  return token.size() == 2 || token[1] == '-';  // "-Lspec" carries its value
}

// Where the first positional argument is ("check", "help" or the URL), past options and their values.
size_t first_positional(const CLI::App& app, const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--") return i + 1;
    if (args[i].size() > 1 && args[i][0] == '-') {
      if (takes_next(app, args[i])) ++i;
      continue;
    }
    return i;
  }
  return args.size();
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// One line that says what is wrong with the command line, where CLI11's own words mislead
// ("The following arguments were not expected: URL --secret" for a "--secret X URL").
std::string explain_parse_error(const CLI::App& app, const std::vector<std::string>& args, const CLI::ParseError& e) {
  for (size_t i = 0; i < args.size() && args[i] != "--"; ++i) {
    const std::string& token = args[i];
    if (token.size() < 2 || token[0] != '-') continue;
    if (option_named(app, token) != nullptr) {
      if (takes_next(app, token)) ++i;
      continue;
    }
    const std::string name = token.substr(0, token.find('='));
    if (name == "--secret" || name == "--token" || name == "--password") {
      return fmt::format("there is no {}: a secret on the command line shows in ps and in the shell's history; put "
                         "it in a file only you can read and give --secret-file FILE, or set TUNNEL_AGENT_SECRET",
                         name);
    }
    if (name == "--proxy-password" || name == "--proxy-pass") {
      return fmt::format("there is no {}: a password on the command line shows in ps and in the shell's history; put "
                         "it in a file only you can read and give --proxy-password-file FILE, or set "
                         "TUNNEL_AGENT_PROXY_PASSWORD",
                         name);
    }
    if (name == "--noproxy") {
      return "unknown option --noproxy: curl's --noproxy takes the hosts to reach directly, which here is the "
             "no_proxy variable; --no-proxy ignores every proxy variable";
    }
    std::string best;
    size_t best_distance = SIZE_MAX;
    for (const CLI::Option* opt : app.get_options()) {
      for (const std::string& long_name : opt->get_lnames()) {
        const size_t d = edit_distance(name.substr(name.find_first_not_of('-')), long_name);
        if (d < best_distance) {
          best_distance = d;
          best = long_name;
        }
      }
    }
    if (!best.empty() && best_distance <= std::max<size_t>(2, best.size() / 4)) {
      return fmt::format("unknown option {}: did you mean --{}?", name, best);
    }
    return fmt::format("unknown option {}", name);
  }
  if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) {
    const size_t first = first_positional(app, args);
    const size_t extra = first_positional(app, std::vector<std::string>(args.begin() + std::min(first + 1, args.size()), args.end()));
    const size_t at = first + 1 + extra;
    return fmt::format("unexpected argument '{}': the agent takes one URL (more endpoints go with -L PORT=URL)",
                       at < args.size() ? args[at] : std::string(e.what()));
  }
  return e.what();
}

const char* const kCheckHelp =
    "Usage: tunnel-agent check [OPTIONS] URL\n\n"
    "Walks the path to the endpoint and prints one line per step with a verdict: name resolution,\n"
    "each proxy hop, TLS (certificate subject, issuer, expiry), what the endpoint answered to a probe,\n"
    "then the JDWP handshake through the tunnel, as a debugger does. It detaches with x-disconnect:\n"
    "a debug session live through that endpoint ends (it says so before it probes).\n\n"
    "Options: the same as the agent's (tunnel-agent --help), before or after check.\n"
    "Exit status: 0 when the JVM answered the handshake, 1 when a step failed, 2 for a usage error.\n\n"
    "Examples:\n"
    "  tunnel-agent check app.example.com\n"
    "  tunnel-agent check --proxy http://proxy.corp:3128 --secret-file ~/.tunnel-secret app.example.com\n";

std::string env_name(const std::string& key) {
  std::string out = "TUNNEL_AGENT_";
  for (char c : key) out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// Settings that are replaced together: a source that gives one of them decides all of them.
std::string group_of(const std::string& key) {
  if (key == "url" || key == "forward") return "endpoints";
  if (key == "proxy" || key == "no-proxy" || key == "pac" || key == "proxy-auto") return "proxy";
  if (key == "quiet" || key == "verbose") return "verbosity";
  return key;
}

enum class Source { default_value, file, environment, command_line };


std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// A proxy URL for display: the password, if any, replaced by ***.
std::string mask_proxy(const std::string& url) {
  std::unique_ptr<CURLU, CurlUrlFree> handle(curl_url());
  const std::string full = url.find("://") == std::string::npos ? "http://" + url : url;
  if (!handle || curl_url_set(handle.get(), CURLUPART_URL, full.c_str(), CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
    return "(not shown)";
  }
  char* raw = nullptr;
  if (curl_url_get(handle.get(), CURLUPART_PASSWORD, &raw, 0) == CURLUE_OK && raw != nullptr) {
    curl_url_set(handle.get(), CURLUPART_PASSWORD, "***", 0);
  }
  curl_free(raw);
  raw = nullptr;
  std::string out = "(not shown)";
  if (curl_url_get(handle.get(), CURLUPART_URL, &raw, 0) == CURLUE_OK && raw != nullptr) out = raw;
  curl_free(raw);
  return out;
}

std::string mask_header(const std::string& header) { return header.substr(0, header.find(':')) + ": ***"; }

}  // namespace

std::optional<std::string> default_config_path(const GetEnv& getenv) { return platform::default_config_path(getenv); }

namespace {

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
// A value's own error, prefixed with where the value came from (key, why) -> line.
using Prefixed = std::function<std::string(const std::string&, const std::string&)>;

// Where each setting came from, for --print-config.
struct Sources {
  const std::vector<std::string>& keys;
  const OptionKinds& kinds;
  const std::map<std::string, Source>& chosen;  // group -> source
  const std::map<std::string, std::string>& env_names;
  const std::optional<ConfigFile>& file;
  const std::string& file_note;
};

// What the environment gives: key -> its tokens, and key -> the variable's name (for messages).
struct EnvSettings {
  std::map<std::string, std::vector<std::string>> given;
  std::map<std::string, std::string> names;
};

// The settings the environment gives: TUNNEL_AGENT_<OPTION> for each key, and the secret and the
// proxy password as values. Returns the error, or "".
std::string read_environment(const std::vector<std::string>& keys, const OptionKinds& kinds, const EnvLookup& env,
                             EnvSettings& out) {
  std::string error;
  for (const std::string& key : keys) {
    const std::string name = env_name(key);
    auto value = env(name);
    if (!value || value->empty()) continue;  // empty is unset, as curl reads its variables
    out.names[key] = name;
    if (key == "url") {
      out.given[key] = {*value};
      continue;
    }
    auto tokens = env_tokens(key, kinds.at(key), *value, key == "forward" || key == "proxy", error);
    if (!tokens) return fmt::format("{}: {}", name, error);
    out.given[key] = std::move(*tokens);
  }
  // TUNNEL_AGENT_SECRET and TUNNEL_AGENT_PROXY_PASSWORD are values, the options name files: the same settings.
  for (const auto& [value_name, key] : {std::pair<const char*, const char*>{"TUNNEL_AGENT_SECRET", "secret-file"},
                                        {"TUNNEL_AGENT_PROXY_PASSWORD", "proxy-password-file"}}) {
    if (!env(value_name).value_or("").empty()) {
      if (out.given.count(key) != 0) {
        return fmt::format("both {} and {} are set: keep one of them", value_name, env_name(key));
      }
      out.given[key] = {};
      out.names[key] = value_name;
    }
  }
  return "";
}

// The config file: --config, TUNNEL_AGENT_CONFIG, or the default path when it exists; `note` says
// which, for --print-config. Returns the error, or "".
std::string read_config_file(const Raw& cli, const OptionKinds& kinds, const EnvLookup& env, const GetEnv& getenv,
                             std::optional<ConfigFile>& file, std::string& note) {
  if (cli.no_config && !cli.config_path.empty()) return "--config and --no-config contradict each other";
  std::optional<std::string> path;
  if (!cli.config_path.empty()) {
    path = cli.config_path;
  } else if (auto from_env = env("TUNNEL_AGENT_CONFIG"); from_env && !from_env->empty() && !cli.no_config) {
    path = *from_env;
  } else if (auto fallback = default_config_path(getenv); fallback && !cli.no_config) {
    if (platform::file_exists(*fallback)) path = fallback;
    else note = fmt::format("none ({} does not exist)", *fallback);
  } else {
    note = cli.no_config ? "none (--no-config)" : "none";
  }
  if (!path) return "";
  std::string error;
  file = load_config_file(*path, kinds, error);
  if (!file) {
    return cli.config_path.empty() && !env("TUNNEL_AGENT_CONFIG")
               ? error + " (this file is read by default; --no-config skips it)"
               : error;
  }
  note = *path;
  return "";
}

}  // namespace

namespace {

// The proxies of each forward (--proxy, else the environment as curl reads it) and the proxy login.
// Returns the error, or "".
std::string resolve_proxies(const Raw& raw, Source proxy_source, const EnvLookup& env, const Prefixed& from,
                            Config& config) {
  std::string error;
  // Proxies: --proxy, else the environment as curl reads it (the upper-case HTTP_PROXY is not read:
  // a CGI program's Proxy: request header would set it), unless --no-proxy.
  if (raw.no_proxy && !raw.proxies.empty()) {
    return ("--proxy and --no-proxy contradict each other: give one of them");
  }
  const bool automatic = config.proxy_auto || !config.pac.empty();
  if (automatic && (!raw.proxies.empty() || raw.no_proxy)) {
    return fmt::format("{} and {} contradict each other: give one of them",
                       config.pac.empty() ? "--proxy-auto" : "--pac", raw.no_proxy ? "--no-proxy" : "--proxy");
  }
  auto env_text = [&](const char* name) { return env(name).value_or(""); };
  for (auto& forward : config.forwards) {
    ProxySettings& proxy = forward.proxy;
    if (forward.own_no_proxy) {
      proxy.bypassed = fmt::format("no-proxy in {}", forward.own_proxy_source);
      continue;
    }
    if (forward.own_proxies.empty() && automatic) {
      forward.auto_proxy = true;  // the PAC script decides, once it is fetched (agent/proxy_auto.cpp)
      continue;
    }
    if (!forward.own_proxies.empty()) {
      for (const auto& proxy_url : forward.own_proxies) {
        auto hop = parse_proxy(proxy_url, forward.own_proxy_source.c_str(), error);
        if (!hop) return error;  // it names the table
        proxy.hops.push_back(std::move(*hop));
      }
    } else if (!raw.proxies.empty()) {
      const char* label = proxy_source == Source::environment ? "TUNNEL_AGENT_PROXY"
                          : proxy_source == Source::file      ? "proxy in the config file"
                                                              : "--proxy";
      for (const auto& proxy_url : raw.proxies) {
        auto hop = parse_proxy(proxy_url, label, error);
        if (!hop) return from("proxy", error);
        if (&forward == &config.forwards.front() && proxy_source == Source::command_line &&
            !url_part(proxy_url, CURLUPART_PASSWORD).empty()) {
          config.warnings.push_back(fmt::format(
              "--proxy {}: the password in its URL is visible to every user of this machine (ps, /proc); give it "
              "with --proxy-password-file or TUNNEL_AGENT_PROXY_PASSWORD (and the user with --proxy-user)",
              hop->display));
        }
        proxy.hops.push_back(std::move(*hop));
      }
    } else if (!raw.no_proxy) {
      const bool https = forward.url.rfind("https://", 0) == 0;
      std::vector<const char*> names = https ? std::vector<const char*>{"https_proxy", "HTTPS_PROXY"}
                                             : std::vector<const char*>{"http_proxy"};
      names.insert(names.end(), {"all_proxy", "ALL_PROXY"});
      for (const char* name : names) {
        if (env_text(name).empty()) continue;
        auto hop = parse_proxy(env_text(name), name, error);
        if (!hop) return (error);
        proxy.hops.push_back(std::move(*hop));
        break;
      }
    }
    if (!proxy.hops.empty()) proxy.no_proxy = !env_text("no_proxy").empty() ? env_text("no_proxy") : env_text("NO_PROXY");
    const std::string endpoint_host = url_part(forward.url, CURLUPART_HOST);
    if (!proxy.hops.empty() && no_proxy_covers(proxy.no_proxy, endpoint_host)) {
      // libcurl would go direct anyway; dropping them here keeps the report (check, the start line)
      // and the session's choices (no proxy-sized bodies, no chain) true to what happens.
      proxy.bypassed = fmt::format("{} ({}){} not used: {} is in no_proxy ({})", proxy.hops.front().source,
                                   proxy.hops.front().display, proxy.hops.size() > 1 ? " and the rest of the chain are" : " is",
                                   endpoint_host, proxy.no_proxy);
      proxy.hops.clear();
    }
    if (proxy.hops.size() > 1) {
      for (size_t i = 0; i < proxy.hops.size(); ++i) {
        if (proxy.hops[i].url.rfind("https://", 0) == 0) {
          return (fmt::format("proxy {} ({}) is an https:// proxy: in a chain every proxy must be http:// (the "
                                  "tunnel to the endpoint can still be https://)",
                                  i + 1, proxy.hops[i].display));
        }
      }
    }
  }
  if (!raw.proxy_password_file.empty()) {
    auto password = read_secret_file(raw.proxy_password_file, "proxy password", error, config.warnings);
    if (!password) return from("proxy-password-file", error);
    config.proxy.password = std::move(*password);
  } else if (!env_text("TUNNEL_AGENT_PROXY_PASSWORD").empty()) {
    config.proxy.password = env_text("TUNNEL_AGENT_PROXY_PASSWORD");
  }
  if (const size_t colon = config.proxy.user.find(':'); colon != std::string::npos) {
    // USER:PASSWORD, as curl's -U takes it: the user alone would end in an unexplained 407.
    if (config.proxy.password) {
      return ("the proxy password is given twice: in --proxy-user USER:PASSWORD and by --proxy-password-file "
                  "or TUNNEL_AGENT_PROXY_PASSWORD; give only the user in --proxy-user");
    }
    config.proxy.password = config.proxy.user.substr(colon + 1);
    config.proxy.user.resize(colon);
    config.warnings.push_back(
        "the proxy password was given in --proxy-user USER:PASSWORD, where ps and the shell's history show it: "
        "put it in a file only you can read and give --proxy-password-file FILE");
  }
  if (config.proxy.password && config.proxy.user.empty()) {
    return ("a proxy password was given but no --proxy-user");
  }
  config.proxy.auth = raw.proxy_auth == "basic"       ? CURLAUTH_BASIC
                      : raw.proxy_auth == "digest"    ? CURLAUTH_DIGEST
                      : raw.proxy_auth == "ntlm"      ? CURLAUTH_NTLM
                      : raw.proxy_auth == "negotiate" ? CURLAUTH_NEGOTIATE
                                                      : CURLAUTH_ANY;
  for (auto& forward : config.forwards) {  // the login settings are the same for every forward
    forward.proxy.user = config.proxy.user;
    forward.proxy.password = config.proxy.password;
    forward.proxy.auth = config.proxy.auth;
  }
  if (!config.forwards.empty()) config.proxy = config.forwards.front().proxy;
  return "";
}

// --print-config: the settings in effect as TOML, each with its source; secrets and header values
// masked.
std::string print_config(const Sources& sources, const CLI::App& app, const Raw& raw) {
  // Named references, not a structured binding: clang (the fuzz build) refuses to capture those.
  const auto& keys = sources.keys;
  const auto& kinds = sources.kinds;
  const auto& chosen = sources.chosen;
  const auto& env_names = sources.env_names;
  const auto& file = sources.file;
  const auto& file_note = sources.file_note;
  const Config& config = raw.config;
  std::string out = fmt::format(
      "# tunnel-agent settings in effect. Precedence: command line > environment > config file > default.\n"
      "# config file: {}\n",
      file_note);
  auto source_text = [&](const std::string& key) {
    switch (chosen.at(group_of(key))) {
      case Source::command_line: return std::string("command line");
      case Source::environment: return env_names.count(key) != 0 ? env_names.at(key) : std::string("environment");
      case Source::file:
        return file->lines.count(key) != 0 ? fmt::format("config file line {}", file->lines.at(key))
                                           : std::string("config file");
      case Source::default_value: break;
    }
    return std::string("default");
  };
  auto line = [&](const std::string& key, const std::string& value) {
    out += fmt::format("{:<44} # {}\n", fmt::format("{} = {}", key, value), source_text(key));
  };
  auto scalar = [](const std::string& text) {
    const bool number = !text.empty() && text.find_first_not_of("0123456789.") == std::string::npos &&
                        std::count(text.begin(), text.end(), '.') <= 1 && text.front() != '.' && text.back() != '.';
    return number ? text : toml_string(text);
  };
  for (const std::string& key : keys) {
    if (key == "url") {
      if (!raw.url.empty()) line(key, toml_string(config.forwards.front().url));  // as resolved
      continue;
    }
    const CLI::Option* opt = app.get_option("--" + key);
    switch (kinds.at(key)) {
      case OptionKind::flag: line(key, opt->count() > 0 && opt->as<bool>() ? "true" : "false"); break;
      case OptionKind::count: line(key, std::to_string(raw.verbose)); break;
      case OptionKind::list: {
        std::vector<std::string> items;
        for (const auto& item : opt->results()) {
          items.push_back(toml_string(key == "header" ? mask_header(item) : key == "proxy" ? mask_proxy(item) : item));
        }
        if (!items.empty()) line(key, fmt::format("[{}]", fmt::join(items, ", ")));
        break;
      }
      case OptionKind::scalar:
        if (opt->count() > 0 && key == "proxy-user") line(key, scalar(config.proxy.user));  // never USER:PASSWORD
        else if (opt->count() > 0) line(key, scalar(opt->results().back()));
        else if (!opt->get_default_str().empty()) line(key, scalar(opt->get_default_str()));
        else out += fmt::format("# {} is not set\n", key);
        break;
    }
  }
  out += config.secret ? fmt::format("# secret: from {} (not shown)\n", config.secret_source)
                       : "# secret: none (--secret-file, TUNNEL_AGENT_SECRET or secret-file in the config file)\n";
  if (config.proxy.password) out += "# proxy password: given (not shown)\n";
  // The path each forward's connections take, and who chose it.
  for (size_t i = 0; i < config.forwards.size(); ++i) {
    const Forward& forward = config.forwards[i];
    const ProxySettings& proxy = forward.proxy;
    std::vector<std::string> hops;
    for (size_t h = 0; h < proxy.hops.size(); ++h) {
      hops.push_back(fmt::format("proxy {} {} (from {})", h + 1, proxy.hops[h].display, proxy.hops[h].source));
    }
    const std::string chooser = config.pac.empty() ? std::string("the desktop's proxy settings, else the PAC script WPAD finds")
                                                   : "the PAC script " + config.pac;
    const std::string path = forward.auto_proxy       ? "chosen at start by " + chooser + " (check shows its choice)"
                             : !hops.empty()            ? fmt::format("{}", fmt::join(hops, ", then "))
                             : !proxy.bypassed.empty() ? "direct: " + proxy.bypassed
                                                       : std::string("direct (no proxy given or in the environment)");
    out += fmt::format("# forward {} ({}:{} -> {}): {}\n", i + 1, forward.listen.host, forward.listen.port,
                       forward.url, path);
  }
  if (chosen.at("endpoints") == Source::file) {
    for (const FileForward& table : file->forwards) {
      out += fmt::format("\n[[forward]]                                  # {}\n", table.where);
      if (!table.listen.empty()) out += fmt::format("listen = {}\n", toml_string(table.listen));
      out += fmt::format("url = {}\n", toml_string(table.url));
      if (!table.secret_file.empty()) out += fmt::format("secret-file = {}\n", toml_string(table.secret_file));
      std::vector<std::string> headers;
      for (const auto& h : table.headers) headers.push_back(toml_string(mask_header(h)));
      if (!headers.empty()) out += fmt::format("header = [{}]\n", fmt::join(headers, ", "));
      std::vector<std::string> proxies;
      for (const auto& p : table.proxies) proxies.push_back(toml_string(mask_proxy(p)));
      if (!proxies.empty()) out += fmt::format("proxy = [{}]\n", fmt::join(proxies, ", "));
      if (table.no_proxy) out += "no-proxy = true\n";
    }
  }
  return out;
}

}  // namespace

ParseResult parse_command_line(int argc, const char* const* argv, const GetEnv& getenv) {
  ParseResult result;
  auto fail = [&](const std::string& why) {
    result.exit_code = 2;
    result.message = fmt::format("tunnel-agent: {}\n", why);
    return result;
  };
  const EnvLookup env = [&](const std::string& name) -> std::optional<std::string> {
    const char* v = getenv(name.c_str());
    return v != nullptr ? std::optional<std::string>(v) : std::nullopt;
  };

  std::vector<std::string> args = curl_spellings(std::vector<std::string>(argv + std::min(argc, 1), argv + argc));
  Raw cli;
  auto cli_app = make_app(cli);
  // The commands: "check" (the same options, a diagnosis instead of a listener) and "help", where
  // the first positional argument is, options before or after them.
  bool check = false;
  const size_t command = first_positional(*cli_app, args);
  if (command < args.size() && args[command] == "help") {
    const bool about_check = command + 1 < args.size() && args[command + 1] == "check";
    result.message = about_check ? std::string(kCheckHelp) : cli_app->help();
    return result;
  }
  if (command < args.size() && args[command] == "check") {
    check = true;
    args.erase(args.begin() + static_cast<std::ptrdiff_t>(command));
  }

  // 1. The command line alone: help, version, its syntax, and which settings it gives.
  try {
    parse_tokens(*cli_app, args);
  } catch (const CLI::CallForHelp&) {
    result.message = check ? std::string(kCheckHelp) : cli_app->help();
    return result;
  } catch (const CLI::CallForVersion&) {
    result.message = cli_app->version() + "\n";
    return result;
  } catch (const CLI::ParseError& e) {
    result.exit_code = 2;
    result.message = fmt::format("tunnel-agent: {}\nRun 'tunnel-agent {}--help' for the options.\n",
                                 explain_parse_error(*cli_app, args, e), check ? "check " : "");
    return result;
  }

  // The settings a file or the environment may give, and how each takes its value.
  OptionKinds kinds;
  std::vector<std::string> keys{"url"};  // in --help's order, for --print-config
  for (const CLI::Option* opt : cli_app->get_options()) {
    if (opt->get_lnames().empty()) continue;  // the URL positional
    const std::string name = opt->get_lnames().front();
    if (command_line_only(name)) continue;
    keys.push_back(name);
    kinds[name] = name == "verbose"                      ? OptionKind::count
                  : opt->get_expected_max() == 0          ? OptionKind::flag
                  : opt->get_items_expected_max() > 1    ? OptionKind::list
                                                         : OptionKind::scalar;
  }
  auto given_on_command_line = [&](const std::string& key) {
    return key == "url" ? !cli.url.empty() : cli_app->get_option("--" + key)->count() > 0;
  };

  // 2. The environment.
  EnvSettings from_env;
  if (auto why = read_environment(keys, kinds, env, from_env); !why.empty()) return fail(why);
  auto& env_given = from_env.given;
  auto& env_names = from_env.names;
  std::string error;

  // 3. The config file: --config, TUNNEL_AGENT_CONFIG, or the default path when it exists.
  std::optional<ConfigFile> file;
  std::string file_note;  // for --print-config
  if (auto why = read_config_file(cli, kinds, env, getenv, file, file_note); !why.empty()) return fail(why);

  // 4. Each group of settings from its highest source; each source's values checked on their own, so
  // an error names where the value came from.
  std::map<std::string, Source> chosen;  // group -> where it comes from (default_value when absent)
  for (const std::string& key : keys) {
    Source& c = chosen[group_of(key)];
    if (given_on_command_line(key)) {
      c = Source::command_line;
    } else if (env_given.count(key) != 0 && c < Source::environment) {
      c = Source::environment;
    } else if (file && (file->tokens.count(key) != 0 || (key == "forward" && !file->forwards.empty())) &&
               c < Source::file) {
      c = Source::file;
    }
  }
  std::vector<std::string> merged;
  for (const std::string& key : keys) {
    const Source c = chosen[group_of(key)];
    const std::vector<std::string>* tokens = nullptr;
    if (c == Source::environment && env_given.count(key) != 0) tokens = &env_given[key];
    if (c == Source::file && file->tokens.count(key) != 0) tokens = &file->tokens[key];
    if (tokens == nullptr) continue;
    Raw probe;
    auto probe_app = make_app(probe);
    try {
      parse_tokens(*probe_app, *tokens);
    } catch (const CLI::ParseError& e) {
      return fail(c == Source::environment
                      ? fmt::format("{}: {}", env_names[key], e.what())
                      : fmt::format("config file {} line {}: {}", file->path, file->lines[key], e.what()));
    }
    merged.insert(merged.end(), tokens->begin(), tokens->end());
  }
  merged.insert(merged.end(), args.begin(), args.end());

  // 5. The merged settings, checked once more as a whole, then turned into a Config.
  Raw raw;
  auto app = make_app(raw);
  try {
    parse_tokens(*app, merged);
  } catch (const CLI::ParseError& e) {
    return fail(fmt::format("{} (from the command line, environment and config file together)", e.what()));
  }
  Config& config = raw.config;
  config.check = check;
  // A value's own error, prefixed with where the value came from when that was not the command line.
  const Prefixed from = [&](const std::string& key, const std::string& why) {
    switch (chosen[group_of(key)]) {
      case Source::environment: return fmt::format("{}: {}", env_names[key], why);
      case Source::file: return fmt::format("config file {} line {}: {}", file->path, file->lines[key], why);
      case Source::command_line:
      case Source::default_value: break;
    }
    return why;
  };
  auto fail_from = [&](const std::string& key, const std::string& why) { return fail(from(key, why)); };

  if (!raw.url.empty()) {
    auto listen = parse_listen_address(raw.listen_text, error);
    if (!listen) return fail_from("listen", error);
    std::string warning;
    auto url = resolve_endpoint_url(raw.url, error, warning);
    if (!url) return fail_from("url", error);
    if (!warning.empty()) config.warnings.push_back(warning);
    Forward forward;
    forward.listen = *listen;
    forward.url = *url;
    config.forwards.push_back(std::move(forward));
  }
  for (const auto& text : raw.forward_texts) {
    auto forward = parse_forward(text, error);
    if (!forward) return fail_from("forward", error);
    if (!forward->url_warning.empty()) config.warnings.push_back(forward->url_warning);
    config.forwards.push_back(std::move(*forward));
  }
  if (chosen["endpoints"] == Source::file) {
    for (const FileForward& table : file->forwards) {
      auto listen = parse_listen_address(table.listen.empty() ? raw.listen_text : table.listen, error);
      std::string warning;
      auto url = listen ? resolve_endpoint_url(table.url, error, warning) : std::nullopt;
      if (!url) return fail(fmt::format("{}: {}", table.where, error));
      if (!warning.empty()) config.warnings.push_back(fmt::format("{}: {}", table.where, warning));
      Forward forward;
      forward.listen = *listen;
      forward.url = *url;
      if (!table.secret_file.empty()) {
        auto secret = read_secret_file(table.secret_file, "secret", error, config.warnings);
        if (!secret) return fail(fmt::format("{}: {}", table.where, error));
        forward.secret = std::move(*secret);
        forward.secret_source = fmt::format("secret-file {} ({})", table.secret_file, table.where);
      }
      for (const auto& header : table.headers) {
        if (auto why = check_header(header); !why.empty()) return fail(fmt::format("{}: {}", table.where, why));
      }
      forward.headers = table.headers;
      forward.own_proxies = table.proxies;
      forward.own_no_proxy = table.no_proxy;
      forward.own_proxy_source = fmt::format("[[forward]] at {}", table.where);
      config.forwards.push_back(std::move(forward));
    }
  }
  const bool endpoints_given = !config.forwards.empty();
  // check and --stdio take the one endpoint given, whether by URL, -L or the config file.
  if (config.check && (config.forwards.size() != 1 || config.stdio)) {
    return fail(fmt::format("check looks at one endpoint: tunnel-agent check URL [OPTIONS] (there are {})",
                            config.forwards.size()));
  }
  if (config.stdio && config.forwards.size() != 1) {
    return fail(fmt::format("--stdio carries one session to one endpoint: give the URL, and no -L (there are {})",
                            config.forwards.size()));
  }
  if (!endpoints_given && !raw.print_config) {
    return fail("give the endpoint URL (tunnel-agent [OPTIONS] URL), or one or more -L [HOST:]PORT=URL, or "
                "forwards in a config file (--config)");
  }
  std::set<std::pair<std::string, int>> taken;
  for (const auto& forward : config.forwards) {
    if (forward.listen.port != 0 && !taken.insert({forward.listen.host, forward.listen.port}).second) {
      return fail(fmt::format("two forwards listen on {}:{}: give each its own port", forward.listen.host,
                              forward.listen.port));
    }
  }
  {
    // -H @FILE: the headers in FILE, one per line (as curl's -H @file), so that no value shows in ps.
    std::vector<std::string> headers;
    for (const auto& header : config.headers) {
      if (header.empty() || header.front() != '@') {
        if (chosen["header"] == Source::command_line && secret_looking(header)) {
          config.warnings.push_back(fmt::format(
              "-H {}: its value is visible to every user of this machine (ps, /proc); put the header in a file and "
              "give -H @FILE, or in the config file",
              mask_header(header)));
        }
        headers.push_back(header);
        continue;
      }
      auto lines = read_header_file(header.substr(1), error, config.warnings);
      if (!lines) return fail_from("header", error);
      headers.insert(headers.end(), lines->begin(), lines->end());
    }
    config.headers = std::move(headers);
  }
  if (config.headers.size() > kMaxHeaders) return fail(fmt::format("at most {} -H headers", kMaxHeaders));
  for (const auto& forward : config.forwards) {
    if (config.headers.size() + forward.headers.size() > kMaxHeaders) {
      return fail(fmt::format("at most {} headers per forward", kMaxHeaders));
    }
  }
  for (const auto& header : config.headers) {
    if (auto why = check_header(header); !why.empty()) return fail_from("header", why);
  }
  if (config.secret_header.empty() || config.secret_header.find_first_of(": \r\n") != std::string::npos) {
    return fail_from("secret-header",
                     fmt::format("bad --secret-header '{}': give a plain header name", config.secret_header));
  }
  const Source secret_chosen = chosen["secret-file"];
  if (!raw.secret_file.empty()) {
    auto secret = read_secret_file(raw.secret_file, "secret", error, config.warnings);
    if (!secret) return fail_from("secret-file", error);
    config.secret = std::move(*secret);
    config.secret_source = (secret_chosen == Source::command_line ? "--secret-file " : "secret-file ") +
                           raw.secret_file;
  } else if (auto value = env("TUNNEL_AGENT_SECRET"); value && !value->empty()) {
    config.secret = *value;
    config.secret_source = "TUNNEL_AGENT_SECRET";
  }
  if (config.secret && config.secret->find_first_of("\r\n") != std::string::npos) {
    return fail("the secret contains a line break: it cannot be sent in an HTTP header");
  }
  if (auto why = resolve_proxies(raw, chosen.at("proxy"), env, from, config); !why.empty()) return fail(why);
  if (!config.tls.key.empty() && config.tls.cert.empty()) return fail("--key needs --cert");
#ifdef _WIN32
  // Schannel (libcurl's TLS on Windows) takes neither a directory of CA files nor a PEM key: said
  // here, not as a session that fails (--capath was silently ignored, and the session hung).
  if (!config.tls.capath.empty()) {
    return fail("--capath is not supported on Windows: give the CA certificate file with --cacert, or add the CA "
                "to the Windows certificate store");
  }
  if (!config.tls.key.empty()) {
    return fail("--key is not supported on Windows: give --cert a PKCS#12 file (.pfx or .p12) holding the "
                "certificate and its key");
  }
#endif
  config.on_busy = raw.on_busy == "refuse" ? BusyPolicy::refuse : BusyPolicy::wait;
  if (raw.quiet && raw.verbose > 0) return fail("-q and -v contradict each other: give one of them");
  // --stdio is quiet unless asked (-v): as an ssh ProxyCommand its stderr is the user's terminal, and
  // info lines on every run are noise there. Warnings and errors still show.
  config.log_level = raw.quiet          ? log::Level::error
                     : raw.verbose > 0  ? log::Level::debug
                     : config.stdio     ? log::Level::warn
                                        : log::Level::info;
  config.curl_trace = raw.verbose > 1;
  config.log_format = raw.log_format == "json" ? log::Format::json : log::Format::text;
  config.connect_timeout_ms = static_cast<long>(raw.connect_timeout_s * 1000);
  config.request_timeout_ms = static_cast<long>(raw.request_timeout_s * 1000);
  config.retry_window_ms = static_cast<long>(raw.retry_window_s * 1000);
  config.stall_warning_ms = static_cast<long>(raw.stall_warning_s * 1000);
  config.stdio_linger_ms = static_cast<long>(raw.linger_s * 1000);
  config.status_line = !raw.no_status_line;
  config.stats_interval_ms = static_cast<long>(raw.stats_interval_s * 1000);

  if (raw.print_config) {
    result.message = print_config({keys, kinds, chosen, env_names, file, file_note}, *app, raw);
    return result;
  }
  result.config = std::move(config);
  return result;
}

}  // namespace tunnel

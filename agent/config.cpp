#include "agent/config.hpp"

#include <CLI/CLI.hpp>
#include <curl/curl.h>
#include <fmt/format.h>
#include <uv.h>

#include <strings.h>

#include <fstream>
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

// `what`: "secret" or "proxy password", for messages.
std::optional<std::string> read_secret_file(const std::string& path, const char* what, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = fmt::format("cannot read the {} file {}: check the path and its permissions", what, path);
    return std::nullopt;
  }
  std::ostringstream content;
  content << in.rdbuf();
  std::string secret = content.str();
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
    error = fmt::format("bad forward '{}': write -L [HOST:]PORT=URL, e.g. -L 8001=https://host/.~~spring-boot!~/debug",
                        text);
    return std::nullopt;
  }
  auto listen = parse_listen_address(text.substr(0, eq), error);
  if (!listen) return std::nullopt;
  Forward forward;
  forward.listen = *listen;
  forward.url = text.substr(eq + 1);
  if (!check_endpoint_url(forward.url, error)) return std::nullopt;
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

bool check_endpoint_url(const std::string& url, std::string& error) {
  std::unique_ptr<CURLU, CurlUrlFree> handle(curl_url());
  if (!handle) {
    error = "out of memory";
    return false;
  }
  CURLUcode rc = curl_url_set(handle.get(), CURLUPART_URL, url.c_str(), 0);
  if (rc != CURLUE_OK) {
    error = fmt::format("invalid endpoint URL '{}': {}", url, curl_url_strerror(rc));
    return false;
  }
  char* raw = nullptr;
  curl_url_get(handle.get(), CURLUPART_SCHEME, &raw, 0);
  std::unique_ptr<char, CurlStrFree> scheme(raw);
  std::string s = scheme ? scheme.get() : "";
  if (s != "http" && s != "https") {
    error = fmt::format("invalid endpoint URL '{}': the scheme must be http or https", url);
    return false;
  }
  raw = nullptr;
  if (curl_url_get(handle.get(), CURLUPART_HOST, &raw, 0) != CURLUE_OK || raw == nullptr || raw[0] == '\0') {
    curl_free(raw);
    error = fmt::format("invalid endpoint URL '{}': it has no host", url);
    return false;
  }
  curl_free(raw);
  raw = nullptr;
  if (curl_url_get(handle.get(), CURLUPART_PASSWORD, &raw, 0) == CURLUE_OK && raw != nullptr) {
    curl_free(raw);
    error = "the endpoint URL must not carry a password: give the secret with --secret-file or TUNNEL_SECRET";
    return false;
  }
  return true;
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

ParseResult parse_command_line(int argc, const char* const* argv, const GetEnv& getenv) {
  CLI::App app{
      "tunnel-agent: carries local TCP connections (e.g. a debugger's JDWP) to a remote Spring Boot\n"
      "DevTools HttpTunnelServer endpoint over plain long-poll HTTP(S) requests.\n\n"
      "Example:\n"
      "  TUNNEL_SECRET=mysecret tunnel-agent https://app.example.com/.~~spring-boot!~/debug\n"
      "  jdb -attach 127.0.0.1:8000\n",
      "tunnel-agent"};
  app.set_version_flag("--version", "tunnel-agent " TUNNEL_AGENT_VERSION " (" + std::string(curl_version()) + ")");
  app.get_formatter()->column_width(32);

  Config config;
  std::string listen_text = "127.0.0.1:8000";
  std::string on_busy = "wait";
  std::string secret_file;
  int verbose = 0;
  bool quiet = false;
  double connect_timeout_s = 15;
  double request_timeout_s = 30;
  double retry_window_s = 25;

  std::string url;
  std::vector<std::string> forward_texts;
  app.add_option("URL", url, "the tunnel endpoint, e.g. https://host/.~~spring-boot!~/debug (or use -L)");
  app.add_option("-L,--forward", forward_texts,
                 "[HOST:]PORT=URL: one more local port and the endpoint it goes to; repeatable, each with its own "
                 "listener and sessions (HOST defaults to 127.0.0.1; IPv6 as [::1]:PORT)")
      ->allow_extra_args(false);
  app.add_flag("--stdio", config.stdio,
               "carry standard input and output through one session to URL, then exit (for ssh's ProxyCommand "
               "and scripts); exit code 0 when the session ended normally");
  double linger_s = 2;
  app.add_option("--stdio-linger", linger_s,
                 "with --stdio: once standard input ends, wait this long for more output before ending (the session "
                 "also ends when the target closes)")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  app.add_option("-H,--header", config.headers,
                 "\"Name: value\": an extra header on every request (an SSO gateway's token...); repeatable; values "
                 "are never logged")
      ->allow_extra_args(false);
  app.add_option("-l,--listen", listen_text,
                 "local address to accept connections on, [HOST:]PORT; port 0 picks a free one")
      ->capture_default_str();
  app.add_option("--secret-header", config.secret_header, "header that carries the secret")->capture_default_str();
  app.add_option("--secret-file", secret_file,
                 "file whose first line is the secret (else the environment variable TUNNEL_SECRET)");
  app.add_option("--on-busy", on_busy,
                 "a second local connection while a session runs: wait for it to end, or refuse it")
      ->check(CLI::IsMember({"wait", "refuse"}))
      ->capture_default_str();
  app.add_option("--connect-timeout", connect_timeout_s, "seconds to wait for a TCP/TLS connection")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_option("--request-timeout", request_timeout_s,
                 "seconds one HTTP request may take (a long poll takes up to twice the server's poll timeout)")
      ->check(CLI::Range(1.0, 86400.0))
      ->capture_default_str();
  app.add_option("--retry-window", retry_window_s,
                 "seconds a session keeps retrying failed requests, from the first failure in a row; the server "
                 "drops a session that sees no request for 30 s, so keep it below that")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  std::vector<std::string> proxies;
  bool no_proxy = false;
  std::string proxy_password_file;
  std::string proxy_auth = "any";
  app.add_option("-x,--proxy", proxies,
                 "HTTP(S) proxy to reach the endpoint through, always with CONNECT; credentials may be in the URL "
                 "(percent-encoded). Default: https_proxy, http_proxy or all_proxy, as curl reads them")
      ->allow_extra_args(false);
  app.add_flag("--no-proxy", no_proxy, "ignore the proxy environment variables: connect directly");
  app.add_option("--proxy-user", config.proxy.user, "user name for the proxy's login");
  app.add_option("--proxy-password-file", proxy_password_file,
                 "file whose first line is the proxy password (else TUNNEL_PROXY_PASSWORD)");
  app.add_option("--proxy-auth", proxy_auth, "proxy login scheme; any: the strongest the proxy offers")
      ->check(CLI::IsMember({"any", "basic", "digest", "ntlm", "negotiate"}))
      ->capture_default_str();
  app.add_option("--cacert", config.tls.cacert, "CA certificates (PEM) to trust for the endpoint")->check(CLI::ExistingFile);
  app.add_option("--capath", config.tls.capath, "directory of CA certificates to trust")->check(CLI::ExistingDirectory);
  app.add_flag("-k,--insecure", config.tls.insecure, "do not verify the endpoint's certificate (unsafe)");
  app.add_option("--cert", config.tls.cert, "client certificate (PEM) for the endpoint")->check(CLI::ExistingFile);
  app.add_option("--key", config.tls.key, "private key (PEM) of the client certificate")->check(CLI::ExistingFile);
  app.add_option("--pinned-pubkey", config.tls.pinned_pubkey,
                 "accept only this public key: sha256//BASE64[;sha256//...] or a PEM/DER file");
  app.add_option("--proxy-cacert", config.tls.proxy_cacert, "CA certificates to trust for an https:// proxy")
      ->check(CLI::ExistingFile);
  app.add_flag("--proxy-insecure", config.tls.proxy_insecure, "do not verify an https:// proxy's certificate");
  app.add_flag("-v,--verbose", verbose, "log every HTTP exchange; twice: also libcurl's own trace");
  app.add_flag("-q,--quiet", quiet, "log errors only");
  std::string log_format = "text";
  app.add_option("--log-format", log_format, "text, or json: one JSON object per line on stderr, for log collectors")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.footer(
      "Environment:\n"
      "  TUNNEL_SECRET           the secret, when --secret-file is not given (never logged)\n"
      "  TUNNEL_PROXY_PASSWORD   the proxy password, when --proxy-password-file is not given\n"
      "  https_proxy, http_proxy, all_proxy, no_proxy (and HTTPS_PROXY, ALL_PROXY, NO_PROXY)\n"
      "                          the proxy, as curl reads them, unless --proxy or --no-proxy\n\n"
      "The agent listens on loopback only unless --listen names another address. It logs to stderr\n"
      "and exits 0 on Ctrl-C or SIGTERM after telling the server to drop live sessions.");

  ParseResult result;
  std::vector<const char*> args(argv, argv + argc);
  if (args.size() > 1 && std::string_view(args[1]) == "check") {
    // tunnel-agent check URL [OPTIONS]: the same options, a diagnosis instead of a listener.
    config.check = true;
    args.erase(args.begin() + 1);
  }
  try {
    app.parse(static_cast<int>(args.size()), args.data());
  } catch (const CLI::CallForHelp&) {
    result.message = app.help();
    return result;
  } catch (const CLI::CallForVersion&) {
    result.message = app.version() + "\n";
    return result;
  } catch (const CLI::ParseError& e) {
    result.exit_code = 2;
    result.message = fmt::format("tunnel-agent: {}\nRun 'tunnel-agent --help' for the options.\n", e.what());
    return result;
  }

  auto fail = [&](const std::string& why) {
    result.exit_code = 2;
    result.message = fmt::format("tunnel-agent: {}\n", why);
    return result;
  };

  std::string error;
  if (!url.empty()) {
    auto listen = parse_listen_address(listen_text, error);
    if (!listen) return fail(error);
    if (!check_endpoint_url(url, error)) return fail(error);
    config.forwards.push_back(Forward{*listen, url, {}});
  }
  for (const auto& text : forward_texts) {
    auto forward = parse_forward(text, error);
    if (!forward) return fail(error);
    config.forwards.push_back(std::move(*forward));
  }
  if (config.check && (url.empty() || !forward_texts.empty() || config.stdio)) {
    return fail("check looks at one endpoint: tunnel-agent check URL [OPTIONS]");
  }
  if (config.stdio && (url.empty() || !forward_texts.empty())) {
    return fail("--stdio carries one session to the URL argument: give the URL, and no -L");
  }
  if (config.forwards.empty()) {
    return fail("give the endpoint URL (tunnel-agent [OPTIONS] URL), or one or more -L [HOST:]PORT=URL");
  }
  std::set<std::pair<std::string, int>> taken;
  for (const auto& forward : config.forwards) {
    if (forward.listen.port != 0 && !taken.insert({forward.listen.host, forward.listen.port}).second) {
      return fail(fmt::format("two forwards listen on {}:{}: give each its own port", forward.listen.host,
                              forward.listen.port));
    }
  }
  if (config.headers.size() > kMaxHeaders) return fail(fmt::format("at most {} -H headers", kMaxHeaders));
  for (const auto& header : config.headers) {
    if (auto why = check_header(header); !why.empty()) return fail(why);
  }
  if (config.secret_header.empty() || config.secret_header.find_first_of(": \r\n") != std::string::npos) {
    return fail(fmt::format("bad --secret-header '{}': give a plain header name", config.secret_header));
  }
  if (!secret_file.empty()) {
    auto secret = read_secret_file(secret_file, "secret", error);
    if (!secret) return fail(error);
    config.secret = std::move(*secret);
    config.secret_source = "--secret-file " + secret_file;
  } else if (const char* env = getenv("TUNNEL_SECRET"); env != nullptr && env[0] != '\0') {
    config.secret = std::string(env);
    config.secret_source = "TUNNEL_SECRET";
  }
  if (config.secret && config.secret->find_first_of("\r\n") != std::string::npos) {
    return fail("the secret contains a line break: it cannot be sent in an HTTP header");
  }
  // Proxies: --proxy, else the environment as curl reads it (the upper-case HTTP_PROXY is not read:
  // a CGI program's Proxy: request header would set it), unless --no-proxy.
  if (no_proxy && !proxies.empty()) return fail("--proxy and --no-proxy contradict each other: give one of them");
  auto env = [&](const char* name) -> std::string {
    const char* v = getenv(name);
    return v != nullptr ? v : "";
  };
  for (auto& forward : config.forwards) {
    ProxySettings& proxy = forward.proxy;
    if (!proxies.empty()) {
      for (const auto& proxy_url : proxies) {
        auto hop = parse_proxy(proxy_url, "--proxy", error);
        if (!hop) return fail(error);
        proxy.hops.push_back(std::move(*hop));
      }
    } else if (!no_proxy) {
      const bool https = forward.url.rfind("https://", 0) == 0;
      std::vector<const char*> names = https ? std::vector<const char*>{"https_proxy", "HTTPS_PROXY"}
                                             : std::vector<const char*>{"http_proxy"};
      names.insert(names.end(), {"all_proxy", "ALL_PROXY"});
      for (const char* name : names) {
        if (env(name).empty()) continue;
        auto hop = parse_proxy(env(name), name, error);
        if (!hop) return fail(error);
        proxy.hops.push_back(std::move(*hop));
        break;
      }
    }
    if (!proxy.hops.empty()) proxy.no_proxy = !env("no_proxy").empty() ? env("no_proxy") : env("NO_PROXY");
    if (proxy.hops.size() > 1) {
      for (size_t i = 0; i < proxy.hops.size(); ++i) {
        if (proxy.hops[i].url.rfind("https://", 0) == 0) {
          return fail(fmt::format("proxy {} ({}) is an https:// proxy: in a chain every proxy must be http:// (the "
                                  "tunnel to the endpoint can still be https://)",
                                  i + 1, proxy.hops[i].display));
        }
      }
    }
  }
  if (!proxy_password_file.empty()) {
    auto password = read_secret_file(proxy_password_file, "proxy password", error);
    if (!password) return fail(error);
    config.proxy.password = std::move(*password);
  } else if (!env("TUNNEL_PROXY_PASSWORD").empty()) {
    config.proxy.password = env("TUNNEL_PROXY_PASSWORD");
  }
  if (config.proxy.password && config.proxy.user.empty()) {
    return fail("a proxy password was given but no --proxy-user");
  }
  config.proxy.auth = proxy_auth == "basic"       ? CURLAUTH_BASIC
                      : proxy_auth == "digest"    ? CURLAUTH_DIGEST
                      : proxy_auth == "ntlm"      ? CURLAUTH_NTLM
                      : proxy_auth == "negotiate" ? CURLAUTH_NEGOTIATE
                                                  : CURLAUTH_ANY;
  for (auto& forward : config.forwards) {  // the login settings are the same for every forward
    forward.proxy.user = config.proxy.user;
    forward.proxy.password = config.proxy.password;
    forward.proxy.auth = config.proxy.auth;
  }
  config.proxy = config.forwards.front().proxy;
  if (!config.tls.key.empty() && config.tls.cert.empty()) return fail("--key needs --cert");
  config.on_busy = on_busy == "refuse" ? BusyPolicy::refuse : BusyPolicy::wait;
  if (quiet && verbose > 0) return fail("-q and -v contradict each other: give one of them");
  config.log_level = quiet ? log::Level::error : verbose > 0 ? log::Level::debug : log::Level::info;
  config.curl_trace = verbose > 1;
  config.log_format = log_format == "json" ? log::Format::json : log::Format::text;
  config.connect_timeout_ms = static_cast<long>(connect_timeout_s * 1000);
  config.request_timeout_ms = static_cast<long>(request_timeout_s * 1000);
  config.retry_window_ms = static_cast<long>(retry_window_s * 1000);
  config.stdio_linger_ms = static_cast<long>(linger_s * 1000);
  result.config = std::move(config);
  return result;
}

}  // namespace tunnel

#include "agent/check.hpp"

#include "agent/session_marker.hpp"
#include "agent/settings.hpp"
#include "common/curl_uv_driver.hpp"
#include "common/http_exchange.hpp"
#include "common/jdwp_handshake.hpp"
#include "common/platform.hpp"
#include "common/proxy_chain.hpp"
#include "common/tls_issuer.hpp"
#include "common/url.hpp"

#include <curl/curl.h>
#include <fmt/format.h>
#include <uv.h>

#include <cstdio>
#include <ctime>
#include <memory>
#include <optional>
#include <string>

namespace tunnel {
namespace {

// Prints the step lines: "ok", "FAIL" or "info", the step, what was found.
class Report {
 public:
  void ok(std::string_view step, const std::string& text) { line("ok", step, text); }
  void info(std::string_view step, const std::string& text) { line("info", step, text); }
  void fail(std::string_view step, const std::string& text) {
    ++failures_;
    line("FAIL", step, text);
  }
  int failures() const { return failures_; }

 private:
  static void line(std::string_view verdict, std::string_view step, const std::string& text) {
    fmt::print("{:<5} {:<9} {}\n", verdict, step, text);
    std::fflush(stdout);
  }
  int failures_ = 0;
};

// Resolves `host` (synchronously: a one-shot diagnosis) and lists its addresses.
bool resolve(uv_loop_t* loop, const std::string& host, std::string& out) {
  uv_getaddrinfo_t req;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  const int rc = uv_getaddrinfo(loop, &req, nullptr, host.c_str(), nullptr, &hints);
  if (rc != 0) {
    out = uv_strerror(rc);
    return false;
  }
  for (addrinfo* a = req.addrinfo; a != nullptr; a = a->ai_next) {
    char ip[INET6_ADDRSTRLEN] = {};
    if (a->ai_family == AF_INET) {
      uv_ip4_name(reinterpret_cast<sockaddr_in*>(a->ai_addr), ip, sizeof ip);
    } else if (a->ai_family == AF_INET6) {
      uv_ip6_name(reinterpret_cast<sockaddr_in6*>(a->ai_addr), ip, sizeof ip);
    } else {
      continue;
    }
    if (out.find(ip) == std::string::npos) out += (out.empty() ? "" : ", ") + std::string(ip);
  }
  uv_freeaddrinfo(req.addrinfo);
  return true;
}

// "Subject: CN=host", "Issuer: ...", "Expire date: ..." of the server's certificate.
std::string certificate_summary(CURL* easy) {
  curl_certinfo* info = nullptr;
  if (curl_easy_getinfo(easy, CURLINFO_CERTINFO, &info) != CURLE_OK || info == nullptr || info->num_of_certs < 1) {
    return "";
  }
  std::string subject, issuer, expires;
  for (curl_slist* item = info->certinfo[0]; item != nullptr; item = item->next) {
    const std::string_view field(item->data);
    auto take = [&](std::string_view name, std::string& into) {
      if (field.substr(0, name.size()) == name) into = std::string(field.substr(name.size()));
    };
    take("Subject:", subject);
    take("Issuer:", issuer);
    take("Expire date:", expires);
  }
  std::string text = fmt::format("certificate {}, issued by {}, expires {}", subject, issuer, expires);
  // "Nov 23 21:19:30 2026 GMT" (OpenSSL) or "2026-11-23 21:19:30 GMT": how far off.
  auto when = platform::parse_utc(expires, "%b %d %H:%M:%S %Y");
  if (!when) when = platform::parse_utc(expires, "%Y-%m-%d %H:%M:%S");
  if (when) {
    const double days = std::difftime(*when, std::time(nullptr)) / 86400;
    text += days < 0 ? " (EXPIRED)" : fmt::format(" (in {:.0f} days)", days);
  }
  return text;
}

// Through a proxy, a certificate that only a CA given with --cacert/--capath makes trusted, not the
// system's store, is what TLS inspection looks like: the proxy re-signs every site with its
// company's CA. (An internal server with an internal CA looks the same; the line says both.)
void report_inspection(Report& report, CURL* easy, const ProxyHop& hop1) {
  curl_certinfo* info = nullptr;
  if (curl_easy_getinfo(easy, CURLINFO_CERTINFO, &info) != CURLE_OK || info == nullptr || info->num_of_certs < 1) {
    return;
  }
  std::vector<std::string> chain;
  std::string issuer;
  for (int i = 0; i < info->num_of_certs; ++i) {
    for (curl_slist* item = info->certinfo[i]; item != nullptr; item = item->next) {
      const std::string_view field(item->data);
      if (field.substr(0, 5) == "Cert:") chain.emplace_back(field.substr(5));
      if (i == 0 && field.substr(0, 7) == "Issuer:") issuer = std::string(field.substr(7));
    }
  }
  if (chain.empty() || trusted_by_system_store(chain)) return;
  report.info("TLS", fmt::format("TLS inspected by {}, or a server with a private CA: the certificate is trusted "
                                 "only through --cacert/--capath, not by the system's store, and the path goes "
                                 "through proxy 1 ({}); an inspecting proxy sees every byte of the tunnel, the "
                                 "secret included",
                                 issuer, hop1.display));
}

struct Probe final : Transfer {
  explicit Probe(const HttpOptions& options) : exchange(options) {}
  void on_transfer_done(CURLcode code) noexcept override {
    result = code;
    done = true;
  }
  HttpExchange exchange;
  HeaderLines headers;
  CURLcode result = CURLE_OK;
  bool done = false;
};

std::string html_title(const std::vector<char>& body) {
  const std::string text(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(std::min<size_t>(body.size(), 65536)));
  const auto open = text.find("<title>");
  const auto close = open == std::string::npos ? open : text.find("</title>", open);
  if (close == std::string::npos) return "";
  std::string title = text.substr(open + 7, close - open - 7);
  for (char& c : title) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return title.size() > 80 ? title.substr(0, 80) + "..." : title;
}

// Runs one exchange of `probe` to its end.
void run_exchange(uv_loop_t& loop, CurlUvDriver& driver, Probe& probe) {
  probe.done = false;
  probe.result = CURLE_OK;
  if (driver.start(probe.exchange.easy(), &probe) != CURLM_OK) {
    probe.result = CURLE_FAILED_INIT;
    probe.done = true;
    return;
  }
  while (!probe.done && uv_run(&loop, UV_RUN_ONCE) != 0) {
  }
}

void pause_ms(uv_loop_t& loop, uint64_t ms) {
  uv_timer_t timer;
  uv_timer_init(&loop, &timer);
  bool fired = false;
  timer.data = &fired;
  uv_timer_start(&timer, [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; }, ms, 0);
  while (!fired && uv_run(&loop, UV_RUN_ONCE) != 0) {
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
  uv_run(&loop, UV_RUN_NOWAIT);
}

// Bytes for a message: printable ASCII as it is, the rest as \xNN; at most 32 of them.
std::string shown_bytes(const std::string& bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < 32; ++i) {
    const auto u = static_cast<unsigned char>(bytes[i]);
    out += u >= 0x20 && u < 0x7f && u != '"' && u != '\\' ? std::string(1, bytes[i]) : fmt::format("\\x{:02x}", u);
  }
  return bytes.size() > 32 ? out + "..." : out;
}

// 3. A debugger's first words through the tunnel: the JDWP handshake, which a JVM answers with the
// same 14 bytes. A 410 to the tunnel probe says only that a tunnel server answered: it comes as well
// when the server cannot reach the JVM (a wrong port, another debugger attached). Then x-disconnect,
// as a debugger that detaches.
void probe_jdwp(Report& report, uv_loop_t& loop, CurlUvDriver& driver, ProxyChain* chain,
                const SessionSettings& settings) {
  constexpr std::string_view hello = JdwpHandshake::kHello;
  Probe probe(settings.http);
  if (chain != nullptr) probe.exchange.use_chain(*chain);
  const uint64_t started = uv_hrtime();
  std::string answer;  // what the target sent back
  long status = 0;
  std::string failure;
  for (int attempt = 0, polls = 0;;) {
    const bool first = answer.empty() && polls == 0;
    if (first) {
      TunnelSession::build_headers(probe.headers, settings, TunnelSession::Kind::post, 1);
      probe.exchange.prepare_post(hello.data(), hello.size(), probe.headers.list());
    } else {
      TunnelSession::build_headers(probe.headers, settings, TunnelSession::Kind::get, 0);
      probe.exchange.prepare_get(probe.headers.list());
    }
    run_exchange(loop, driver, probe);
    if (probe.result != CURLE_OK) {
      failure = probe.exchange.describe_failure(probe.result);
      break;
    }
    status = probe.exchange.status();
    if (status == 410 && first && attempt < 5) {
      // The server may still be closing the target connection the tunnel probe opened: the first
      // words go again after a short, growing pause, as a session's do.
      pause_ms(loop, 50u << attempt++);
      continue;
    }
    if (status != 200) break;
    answer.append(probe.exchange.body().begin(), probe.exchange.body().end());
    // The JVM's 14 bytes may come in parts: poll for the rest, a few times.
    if (answer.size() >= hello.size() || hello.substr(0, answer.size()) != answer || ++polls > 4) break;
  }
  const double ms = static_cast<double>(uv_hrtime() - started) / 1e6;
  const std::string status_line = status_text(status, probe.exchange.reason());
  if (!failure.empty()) {
    report.fail("jdwp", "the JDWP handshake through the tunnel failed: " + failure);
  } else if (answer.substr(0, hello.size()) == hello) {
    report.ok("jdwp", fmt::format("the JVM answered the JDWP handshake through the tunnel ({:.0f} ms)", ms));
  } else if (!answer.empty()) {
    report.fail("jdwp", fmt::format("the target answered the JDWP handshake with something else (\"{}\", {} bytes): "
                                    "the port the server forwards to is not a JVM's debug port; check the address "
                                    "in the JVM's -agentlib:jdwp=...",
                                    shown_bytes(answer), answer.size()));
  } else if (status == 410) {
    report.fail("jdwp", "the server could not reach the JVM, or the target closed at once (410 Gone): is the JVM "
                        "listening on its debug port (-agentlib:jdwp=...,address=...), and is no other debugger "
                        "attached?");
  } else if (status == 204) {
    report.fail("jdwp", fmt::format("the target took the JDWP handshake and answered nothing ({} after {:.1f} s): "
                                    "not a JVM's debug port, or a JVM that cannot answer",
                                    status_line, ms / 1000));
  } else if (status == 503) {
    report.fail("jdwp", "the server says the target is not running (503): start the JVM with "
                        "-agentlib:jdwp=transport=dt_socket,server=y,suspend=n,address=...");
  } else {
    report.fail("jdwp", fmt::format("the JDWP handshake got {}, not the JVM's answer", status_line));
  }
  TunnelSession::build_headers(probe.headers, settings, TunnelSession::Kind::disconnect, 0);
  probe.exchange.prepare_post(nullptr, 0, probe.headers.list());
  run_exchange(loop, driver, probe);
  if (probe.result != CURLE_OK) {
    report.info("jdwp", "could not tell the server to drop the target connection (" +
                            probe.exchange.describe_failure(probe.result) + "); it drops it after its disconnect timeout");
  }
}

}  // namespace

int run_check(const Config& config) {
  Report report;
  const Forward& forward = config.forwards.front();
  const SessionSettings settings = session_settings(config, forward);
  const std::string host = url_part(forward.url, CURLUPART_HOST);
  const std::string port = url_part(forward.url, CURLUPART_PORT, CURLU_DEFAULT_PORT);
  const bool https = forward.url.rfind("https://", 0) == 0;
  report.info("endpoint", fmt::format("{} (host {}, port {})", forward.url, host, port));
  report.info("secret", settings.secret ? fmt::format("sent in {}, from {}", settings.secret_header, settings.secret_source)
                                        : fmt::format("none given (--secret-file or TUNNEL_AGENT_SECRET): no {} header",
                                                      settings.secret_header));
  if (config.tls.insecure) report.info("TLS", "--insecure: the endpoint's certificate is NOT checked");
  if (!settings.http.proxy.bypassed.empty()) report.info("proxy", "direct: " + settings.http.proxy.bypassed);

  uv_loop_t loop;
  uv_loop_init(&loop);
  int code = 1;
  {
    // 1. Names: the endpoint's, unless a proxy reaches it (then the proxy resolves it), and proxy 1's.
    const auto& hops = settings.http.proxy.hops;
    std::string addresses;
    if (hops.empty()) {
      if (resolve(&loop, host, addresses)) {
        report.ok("name", fmt::format("{} is {}", host, addresses));
      } else {
        report.fail("name", fmt::format("cannot resolve {}: {}; check the host name in the URL", host, addresses));
      }
    } else {
      const std::string proxy_host = url_part(hops.front().url, CURLUPART_HOST);
      if (resolve(&loop, proxy_host, addresses)) {
        report.ok("name", fmt::format("proxy 1 host {} is {} ({} is resolved by the proxy)", proxy_host, addresses, host));
      } else {
        report.fail("name", fmt::format("cannot resolve proxy 1's host {}: {}; check the proxy ({})", proxy_host,
                                        addresses, hops.front().source));
      }
    }

    // 2. The probe: one x-disconnect POST. It opens the server's target connection, as a debugger
    //    would, and closes it again at once (a JVM accepts one debugger at a time).
    if (report.failures() == 0) {
      CurlUvDriver driver(&loop);
      std::unique_ptr<ProxyChain> chain;
      std::string error;
      if (hops.size() > 1) {
        chain = std::make_unique<ProxyChain>(&loop, driver, settings.http);
        if (!chain->start(error)) report.fail("proxy", error);
      }
      if (const long pid = SessionMarker::live_session(forward.url); pid != 0 && report.failures() == 0) {
        report.fail("probe", fmt::format("tunnel-agent{} has a live session on this endpoint, and the probe would end "
                                         "it: run check once no debugger is attached through it",
                                         pid > 0 ? fmt::format(" (pid {})", pid) : std::string()));
      }
      if (report.failures() == 0) {
        report.info("probe", "opens the server's connection to the target and closes it again: a debug session "
                             "live on this endpoint now ends");
        Probe probe(settings.http);
        if (chain) probe.exchange.use_chain(*chain);
        curl_easy_setopt(probe.exchange.easy(), CURLOPT_CERTINFO, 1L);
        TunnelSession::build_headers(probe.headers, settings, TunnelSession::Kind::disconnect, 0);
        probe.exchange.prepare_post(nullptr, 0, probe.headers.list());
        if (driver.start(probe.exchange.easy(), &probe) == CURLM_OK) {
          while (!probe.done && uv_run(&loop, UV_RUN_ONCE) != 0) {
          }
        }
        const HttpExchange& x = probe.exchange;
        bool tunnel_answers = false;
        long connect_code = 0;
        curl_easy_getinfo(x.easy(), CURLINFO_HTTP_CONNECTCODE, &connect_code);
        const bool answered = probe.done && probe.result == CURLE_OK;
        const std::string failure = answered ? std::string() : x.describe_failure(probe.result);
        const bool proxy_failed =
            !answered && (failure.rfind("proxy", 0) == 0 || failure.find("proxy 1") != std::string::npos ||
                          failure.find("proxy 2") != std::string::npos || (connect_code != 0 && connect_code != 200));
        for (size_t i = 0; i < hops.size(); ++i) {
          if (proxy_failed) break;
          // In a chain each hop's CONNECT goes to the next hop; the last one's to the endpoint.
          const std::string next = i + 1 < hops.size() ? hops[i + 1].display : fmt::format("{}:{}", host, port);
          report.ok(fmt::format("proxy {}", i + 1),
                    fmt::format("{} (from {}): CONNECT to {} accepted", hops[i].display, hops[i].source, next));
        }
        const bool tls_failed = !answered && failure.rfind("TLS", 0) == 0;
        if (proxy_failed) {
          report.fail("proxy", failure);
        } else if (tls_failed) {
          report.fail("TLS", failure);
        } else if (!answered) {
          report.fail("connect", failure);
        } else {
          if (https) {
            report.ok("TLS", fmt::format("{}; {}", x.tls_summary().empty() ? "TLS" : x.tls_summary(),
                                         certificate_summary(x.easy())));
            if (!hops.empty() && !config.tls.insecure) report_inspection(report, x.easy(), hops.front());
          }
          const long status = x.status();
          const std::string status_line = status_text(status, x.reason());
          char* content_type = nullptr;
          curl_easy_getinfo(x.easy(), CURLINFO_CONTENT_TYPE, &content_type);
          const std::string type = content_type != nullptr ? content_type : "";
          char* location = nullptr;
          curl_easy_getinfo(x.easy(), CURLINFO_REDIRECT_URL, &location);
          report.ok("HTTP", fmt::format("{} answered {}", x.http_version(), status_line));
          const bool html = type.find("html") != std::string::npos;
          if (status == 410 || status == 204 || (status == 200 && !html)) {
            report.ok("tunnel", fmt::format("the endpoint answered the probe as a tunnel server does ({})", status_line));
            tunnel_answers = true;
          } else if (status == 503 && x.body().empty()) {
            report.fail("tunnel", "the server says the target is not running (503): start the JVM with "
                                  "-agentlib:jdwp=transport=dt_socket,server=y,suspend=n,address=...");
          } else if (status == 401 || status == 403) {
            report.fail("tunnel", fmt::format("the server refused the secret ({}): {}", status_line,
                                              settings.secret ? "check the secret given by " + settings.secret_source
                                                              : std::string("no secret was given: use --secret-file or "
                                                                            "TUNNEL_AGENT_SECRET")));
          } else if (status == 404) {
            report.fail("tunnel", fmt::format("nothing at this path ({}): check the URL's path (Spring Boot: "
                                              "/.~~spring-boot!~/debug, with spring.devtools.remote.secret set)",
                                              status_line));
          } else if (status >= 300 && status < 400) {
            report.fail("tunnel", fmt::format("redirected ({}) to {}: something in front of the app (a login or SSO "
                                              "gateway?) answers instead; give its token with -H",
                                              status_line, location != nullptr ? location : "?"));
          } else if (html) {
            const std::string title = html_title(x.body());
            report.fail("tunnel", fmt::format("an HTML page answered ({}{}): a login page or portal in front of the "
                                              "app; give its token with -H, or ask for the endpoint to be let through",
                                              status_line, title.empty() ? "" : ", \"" + title + "\""));
          } else {
            report.fail("tunnel", fmt::format("not a tunnel answer: {} (the tunnel answers the probe with 410)",
                                              status_line));
          }
        }
        if (probe.done == false) driver.cancel(probe.exchange.easy());
        if (tunnel_answers) probe_jdwp(report, loop, driver, chain.get(), settings);
      }
      if (chain) chain->close();
      driver.close();
      uv_run(&loop, UV_RUN_DEFAULT);
    }
    code = report.failures() == 0 ? 0 : 1;
    fmt::print("{}\n", code == 0 ? "verdict: a debugger can attach (tunnel-agent with the same options)"
                                 : "verdict: a debugger cannot attach yet: fix the FAIL line above");
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return code;
}

}  // namespace tunnel

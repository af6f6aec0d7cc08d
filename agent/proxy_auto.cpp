#include "agent/proxy_auto.hpp"

#include "agent/desktop_proxy.hpp"
#include "common/pac.hpp"
#include "common/platform.hpp"
#include "common/url.hpp"

#include <curl/curl.h>
#include <fmt/format.h>

#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

namespace tunnel {
namespace {

constexpr size_t kMaxPacBytes = 1 << 20;
constexpr long kFetchTimeoutMs = 10000;
constexpr long kWpadTimeoutMs = 3000;

struct CurlEasyFree {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};

size_t collect_body(char* data, size_t size, size_t count, void* userp) {
  auto* body = static_cast<std::string*>(userp);
  if (body->size() + size * count > kMaxPacBytes) return 0;  // too big for a PAC script: fail
  body->append(data, size * count);
  return size * count;
}

// A PAC script from a URL, fetched directly (a PAC file is never fetched through a proxy: it is what
// says which one to use). nullopt with the reason.
std::optional<std::string> fetch(const std::string& url, const TlsSettings& tls, long timeout_ms, std::string& error) {
  std::unique_ptr<CURL, CurlEasyFree> easy(curl_easy_init());
  if (!easy) {
    error = "out of memory";
    return std::nullopt;
  }
  std::string body;
  char curl_error[CURL_ERROR_SIZE] = {};
  CURL* e = easy.get();
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_PROXY, "");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, curl_error);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &collect_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "tunnel-agent/" TUNNEL_AGENT_VERSION);
  if (!tls.cacert.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, tls.cacert.c_str());
  if (!tls.capath.empty()) curl_easy_setopt(e, CURLOPT_CAPATH, tls.capath.c_str());
  const CURLcode result = curl_easy_perform(e);
  if (result != CURLE_OK) {
    error = curl_error[0] != '\0' ? curl_error : curl_easy_strerror(result);
    return std::nullopt;
  }
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) {
    error = fmt::format("HTTP {}", status);
    return std::nullopt;
  }
  return body;
}

std::optional<std::string> read_file(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = fmt::format("cannot read {}: {}", path, std::strerror(errno));
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The script, and where it came from ("PAC https://wpad/x.pac"), for every automatic forward.
struct Script {
  std::string text;
  std::string source;
};

// The script at `pac` (a URL, a file:// URL or a path; "": look for it by WPAD). `origin` says who
// gave it ("" for --pac, else the desktop's settings).
std::optional<Script> load_script(const std::string& pac, const std::string& origin, const Config& config,
                                  AutoProxyResult& result) {
  std::string error;
  if (!pac.empty()) {
    const bool url = pac.rfind("http://", 0) == 0 || pac.rfind("https://", 0) == 0;
    const std::string path = pac.rfind("file://", 0) == 0 ? pac.substr(7) : pac;
    auto text = url ? fetch(pac, config.tls, kFetchTimeoutMs, error) : read_file(path, error);
    if (text) error = not_a_pac_script(*text);
    if (!text || !error.empty()) {
      result.error = fmt::format("cannot get the PAC script {}{}: {}; check {}", pac,
                                 origin.empty() ? "" : " (from " + origin + ")",
                                 text ? (url ? "HTTP 200 but " : "") + error : error,
                                 origin.empty() ? "--pac" : "the proxy settings of your desktop, or give --pac");
      return std::nullopt;
    }
    return Script{*text, "PAC " + pac + (origin.empty() ? "" : " (from " + origin + ")")};
  }
  std::string resolv_conf, tried;
  std::string ignored;
  if (auto text = read_file("/etc/resolv.conf", ignored)) resolv_conf = *text;
  char host[256] = {};
  size_t host_size = sizeof host;
  if (uv_os_gethostname(host, &host_size) != 0) host[0] = '\0';
  for (const auto& url : wpad_urls(resolv_conf, host)) {
    // Like a browser, an answer that is no script (a captive portal's page) is a miss: on to the next.
    if (auto text = fetch(url, config.tls, kWpadTimeoutMs, error)) {
      error = not_a_pac_script(*text);
      if (error.empty()) return Script{*text, "PAC " + url + " (WPAD)"};
      error = "HTTP 200 but " + error;
    }
    tried += fmt::format("{}{} ({})", tried.empty() ? "" : ", ", url, error);
  }
  result.warnings.push_back(fmt::format("--proxy-auto: no PAC script found by WPAD ({}): going direct; give --pac "
                                        "URL|FILE if your network publishes one",
                                        tried.empty() ? "the machine has no DNS domain to look in" : "tried " + tried));
  return std::nullopt;
}

// The desktop says "no proxy", or names them: each automatic forward takes the one for its scheme.
void use_desktop_proxies(const DesktopProxy& desktop, Config& config, AutoProxyResult& result) {
  for (auto& forward : config.forwards) {
    if (!forward.auto_proxy) continue;
    ProxySettings& proxy = forward.proxy;
    if (desktop.mode == DesktopProxy::Mode::none) {
      proxy.bypassed = desktop.source + " say no proxy";
      continue;
    }
    std::string why_direct, error;
    const std::string host = url_part(forward.url, CURLUPART_HOST);
    const std::string chosen = desktop_proxy_for(desktop, url_part(forward.url, CURLUPART_SCHEME), host, why_direct);
    if (chosen.empty()) {
      proxy.bypassed = why_direct;
      continue;
    }
    auto hop = parse_proxy("http://" + chosen, desktop.source, error);
    if (!hop) {
      result.error = fmt::format("{}: {}; fix the proxy in the settings of your desktop, or give --proxy", desktop.source,
                                 error);
      return;
    }
    proxy.hops.push_back(std::move(*hop));
  }
  if (!config.forwards.empty() && config.forwards.front().auto_proxy) config.proxy = config.forwards.front().proxy;
}

}  // namespace

std::vector<std::string> wpad_urls(const std::string& resolv_conf, const std::string& hostname) {
  std::vector<std::string> domains;
  std::istringstream lines(resolv_conf);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string keyword;
    words >> keyword;
    if (keyword != "search" && keyword != "domain") continue;
    for (std::string domain; words >> domain;) domains.push_back(domain);
  }
  if (const size_t dot = hostname.find('.'); dot != std::string::npos) domains.push_back(hostname.substr(dot + 1));
  std::vector<std::string> urls;
  for (std::string domain : domains) {
    while (!domain.empty() && domain.back() == '.') domain.pop_back();
    // wpad.corp.example.com, wpad.example.com; never wpad.com, which anyone could own.
    for (std::string d = domain; d.find('.') != std::string::npos; d = d.substr(d.find('.') + 1)) {
      const std::string url = "http://wpad." + d + "/wpad.dat";
      if (std::find(urls.begin(), urls.end(), url) == urls.end()) urls.push_back(url);
    }
  }
  return urls;
}

AutoProxyResult resolve_auto_proxies(Config& config, const EnvFunction& env, long probe_timeout_ms) {
  AutoProxyResult result;
  bool any = false;
  for (const auto& forward : config.forwards) any = any || forward.auto_proxy;
  if (!any) return result;
  // --pac first; else what the desktop's proxy settings say; else WPAD.
  const DesktopProxy desktop = config.pac.empty() ? read_desktop_proxy(env) : DesktopProxy{};
  if (desktop.mode == DesktopProxy::Mode::none || desktop.mode == DesktopProxy::Mode::manual) {
    use_desktop_proxies(desktop, config, result);
    return result;
  }
  const std::optional<Script> script =
      desktop.mode == DesktopProxy::Mode::pac ? load_script(desktop.pac_url, desktop.source, config, result)
                                              : load_script(config.pac, "", config, result);
  if (!result.error.empty()) return result;
  for (auto& forward : config.forwards) {
    if (!forward.auto_proxy) continue;
    ProxySettings& proxy = forward.proxy;
    if (!script) {
      proxy.bypassed = "--proxy-auto found no PAC script";
      continue;
    }
    std::string error;
    const std::string host = url_part(forward.url, CURLUPART_HOST);
    const auto answer = find_proxy_for_url(script->text, forward.url, host, error);
    if (!answer) {
      result.error = fmt::format("{}: {}", script->source, error);
      return result;
    }
    std::vector<std::string> passed;  // choices not taken, and why
    std::optional<ProxyHop> chosen;
    std::optional<ProxyHop> first_proxy;
    bool direct = false;
    const std::vector<PacEntry> entries = parse_pac_answer(*answer);
    size_t taken = entries.size();  // the entry hop 1 comes from
    for (size_t i = 0; i < entries.size(); ++i) {
      const PacEntry& entry = entries[i];
      if (entry.kind == PacEntry::Kind::direct) {
        direct = true;
        break;
      }
      if (entry.kind == PacEntry::Kind::unsupported) {
        passed.push_back(fmt::format("{}: not an HTTP proxy", entry.text));
        continue;
      }
      const std::string source = fmt::format("{}, which answered \"{}\"", script->source, *answer);
      auto hop = parse_proxy((entry.kind == PacEntry::Kind::https_proxy ? "https://" : "http://") + entry.host_port,
                             source, error);
      if (!hop) {
        passed.push_back(fmt::format("{}: {}", entry.text, error));
        continue;
      }
      if (!first_proxy) {
        first_proxy = hop;
        taken = i;
      }
      if (const std::string why = platform::tcp_probe(entry.host_port, probe_timeout_ms); !why.empty()) {
        passed.push_back(fmt::format("{}: {}", entry.host_port, why));
        continue;
      }
      chosen = std::move(hop);
      taken = i;
      break;
    }
    // What a session takes when hop 1 refuses it: the choices after hop 1's, up to DIRECT.
    std::vector<std::optional<ProxyHop>> next;
    for (size_t i = taken + 1; (chosen || first_proxy) && i < entries.size(); ++i) {
      const PacEntry& entry = entries[i];
      if (entry.kind == PacEntry::Kind::direct) {
        next.emplace_back(std::nullopt);
        break;
      }
      if (entry.kind == PacEntry::Kind::unsupported) continue;
      const std::string source = fmt::format("{}, which answered \"{}\"", script->source, *answer);
      std::string ignored;
      if (auto hop = parse_proxy((entry.kind == PacEntry::Kind::https_proxy ? "https://" : "http://") + entry.host_port,
                                 source, ignored)) {
        next.emplace_back(std::move(*hop));
      }
    }
    const std::string not_taken = passed.empty() ? "" : fmt::format(" (not taken: {})", fmt::join(passed, "; "));
    if (chosen) {
      chosen->source += not_taken;  // the start line and check say it all
      proxy.hops.push_back(std::move(*chosen));
      proxy.pac_next = std::move(next);
    } else if (direct) {
      proxy.bypassed = fmt::format("{} answered \"{}\": DIRECT{}", script->source, *answer, not_taken);
    } else if (first_proxy) {
      // None answers now; the first may come back: the sessions say so if it does not.
      result.warnings.push_back(fmt::format("{}: none of the proxies \"{}\" for {} answers{}; using {} anyway",
                                            script->source, *answer, forward.url, not_taken, first_proxy->display));
      proxy.hops.push_back(std::move(*first_proxy));
      proxy.pac_next = std::move(next);
    } else {
      result.error = fmt::format("{} answered \"{}\" for {}: no HTTP proxy in it{}", script->source, *answer,
                                 forward.url, not_taken);
      return result;
    }
  }
  // The first forward's proxies stand for the agent's (check, --stdio), login settings included.
  if (!config.forwards.empty() && config.forwards.front().auto_proxy) config.proxy = config.forwards.front().proxy;
  return result;
}

}  // namespace tunnel

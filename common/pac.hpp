// Proxy auto-configuration (PAC): the JavaScript a company publishes (wpad.dat, proxy.pac) that
// says, per URL, which proxies to try in order. Run by pacparser (Debian's libpacparser, a small
// self-contained JavaScript engine), never by our own code; its answer is parsed here.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace tunnel {

// One choice of a PAC answer, in the order to try them.
struct PacEntry {
  enum class Kind { proxy, https_proxy, direct, unsupported };
  Kind kind = Kind::direct;
  std::string host_port;  // "proxy.corp:3128" for proxy and https_proxy
  std::string text;       // the entry as written ("SOCKS5 s:1080"), for messages
};

// "PROXY a:3128; HTTPS b:443; DIRECT" -> its entries. Empty or blank text means DIRECT.
std::vector<PacEntry> parse_pac_answer(const std::string& answer);

// Empty when `text` can be a PAC script (it names FindProxyForURL); else what it looks like
// instead, for a message: a captive portal or a web server's error page answers 200 with HTML, and a
// browser takes such an answer for no script at all.
std::string not_a_pac_script(const std::string& text);

// Runs FindProxyForURL(url, host) of `script`. nullopt with what the engine said when the script
// does not parse or does not answer.
std::optional<std::string> find_proxy_for_url(const std::string& script, const std::string& url,
                                              const std::string& host, std::string& error);

}  // namespace tunnel

#include "common/pac.hpp"

#ifdef TUNNEL_HAVE_PACPARSER
#include <pacparser.h>
#endif

#include <algorithm>
#include <cctype>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>

namespace tunnel {
namespace {

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t\r\n") - begin + 1);
}

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return s;
}

#ifdef TUNNEL_HAVE_PACPARSER
// What pacparser prints (syntax errors, exceptions) goes here instead of stderr.
std::string& engine_said() {
  static std::string text;
  return text;
}

int collect(const char* format, va_list args) {
  char line[512];
  const int n = std::vsnprintf(line, sizeof line, format, args);
  std::string& said = engine_said();
  said += line;
  while (!said.empty() && (said.back() == '\n' || said.back() == ' ')) said.pop_back();
  if (!said.empty()) said += ' ';
  return n;
}

#endif

}  // namespace

std::vector<PacEntry> parse_pac_answer(const std::string& answer) {
  std::vector<PacEntry> entries;
  size_t start = 0;
  while (start <= answer.size()) {
    const size_t end = std::min(answer.find(';', start), answer.size());
    const std::string item = trim(answer.substr(start, end - start));
    start = end + 1;
    if (item.empty()) continue;
    PacEntry entry;
    entry.text = item;
    const size_t space = item.find_first_of(" \t");
    const std::string keyword = upper(item.substr(0, space));
    const std::string where = space == std::string::npos ? "" : trim(item.substr(space));
    if (keyword == "DIRECT" && where.empty()) {
      entry.kind = PacEntry::Kind::direct;
    } else if ((keyword == "PROXY" || keyword == "HTTP" || keyword == "HTTPS") && !where.empty() &&
               where.find_first_of(" \t/") == std::string::npos) {
      entry.kind = keyword == "HTTPS" ? PacEntry::Kind::https_proxy : PacEntry::Kind::proxy;
      entry.host_port = where;
    } else {
      entry.kind = PacEntry::Kind::unsupported;  // SOCKS, SOCKS5, anything else
    }
    entries.push_back(std::move(entry));
  }
  if (entries.empty()) entries.push_back({PacEntry::Kind::direct, "", "DIRECT"});
  return entries;
}

std::string not_a_pac_script(const std::string& text) {
  if (text.find("FindProxyForURL") != std::string::npos) return {};
  const size_t start = text.find_first_not_of(" \t\r\n");
  if (start == std::string::npos) return "an empty answer, not a PAC script";
  if (text[start] == '<') return "an HTML page, not a PAC script (a login or error page?)";
  return "not a PAC script (it defines no FindProxyForURL)";
}

#ifdef TUNNEL_HAVE_PACPARSER
std::optional<std::string> find_proxy_for_url(const std::string& script, const std::string& url,
                                              const std::string& host, std::string& error) {
  engine_said().clear();
  pacparser_set_error_printer(&collect);
  if (pacparser_init() == 0) {
    error = "cannot start the PAC engine (pacparser): " + trim(engine_said());
    return std::nullopt;
  }
  std::optional<std::string> answer;
  if (pacparser_parse_pac_string(script.c_str()) == 0) {
    error = "the PAC script does not parse: " + trim(engine_said());
  } else if (const char* found = pacparser_find_proxy(url.c_str(), host.c_str()); found == nullptr) {
    error = "the PAC script's FindProxyForURL gave no answer: " + trim(engine_said());
  } else {
    answer = std::string(found);
  }
  pacparser_cleanup();
  return answer;
}

#else
// A build without pacparser (the Windows one) runs no script: --pac and --proxy-auto say so.
std::optional<std::string> find_proxy_for_url(const std::string&, const std::string&, const std::string&,
                                              std::string& error) {
  error = "this build of tunnel-agent runs no PAC scripts (it has no pacparser); name the proxy with --proxy";
  return std::nullopt;
}
#endif

}  // namespace tunnel

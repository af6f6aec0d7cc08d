#include "agent/desktop_proxy.hpp"

#include <fmt/format.h>

#ifdef TUNNEL_HAVE_GIO
#include <gio/gio.h>
#endif

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

namespace tunnel {
namespace {

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

std::string trim(const std::string& text) {
  const size_t begin = text.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(" \t\r") - begin + 1);
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::istringstream in(text);
  for (std::string part; std::getline(in, part, separator);) {
    if (!trim(part).empty()) parts.push_back(trim(part));
  }
  return parts;
}

// "http://proxy.example.com:8080/", "proxy.example.com 8080" (as KDE writes it): host:port, "" if none.
std::string host_port(std::string value) {
  value = trim(value);
  if (const size_t scheme = value.find("://"); scheme != std::string::npos) value = value.substr(scheme + 3);
  while (!value.empty() && value.back() == '/') value.pop_back();
  if (const size_t space = value.find(' '); space != std::string::npos) {
    value = value.substr(0, space) + ":" + trim(value.substr(space + 1));
  }
  return value;
}

// The keys of one [group] of an INI text (KDE's config files): key=value, '#' comments; a key's
// "[$e]"-style flags are dropped.
std::vector<std::pair<std::string, std::string>> ini_group(const std::string& text, const std::string& group) {
  std::vector<std::pair<std::string, std::string>> keys;
  std::istringstream lines(text);
  bool in_group = false;
  for (std::string line; std::getline(lines, line);) {
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '[') {
      in_group = line == "[" + group + "]";
      continue;
    }
    const size_t equals = line.find('=');
    if (!in_group || equals == std::string::npos) continue;
    std::string key = trim(line.substr(0, equals));
    if (const size_t flags = key.find('['); flags != std::string::npos) key = trim(key.substr(0, flags));
    keys.emplace_back(key, trim(line.substr(equals + 1)));
  }
  return keys;
}

bool ipv4(const std::string& text, uint32_t& address) {
  unsigned a, b, c, d;
  char end;
  if (std::sscanf(text.c_str(), "%u.%u.%u.%u%c", &a, &b, &c, &d, &end) != 4 || a > 255 || b > 255 || c > 255 ||
      d > 255) {
    return false;
  }
  address = (a << 24) | (b << 16) | (c << 8) | d;
  return true;
}

// GNOME's and KDE's exception entries: a name, "*.domain" or ".domain" (the domain and below),
// "*", or an IPv4 network a.b.c.d/n for an address literal.
bool ignored(const std::string& entry_text, const std::string& host_text) {
  const std::string entry = lower(trim(entry_text)), host = lower(host_text);
  if (entry == "*" || entry == host) return true;
  if (entry.rfind("*.", 0) == 0 || entry.rfind('.', 0) == 0) {
    const std::string domain = entry.substr(entry.find('.') + 1);
    return host == domain || (host.size() > domain.size() && host.compare(host.size() - domain.size() - 1,
                                                                           domain.size() + 1, "." + domain) == 0);
  }
  if (const size_t slash = entry.find('/'); slash != std::string::npos) {
    uint32_t network, address;
    const int bits = std::atoi(entry.c_str() + slash + 1);
    if (!ipv4(entry.substr(0, slash), network) || !ipv4(host, address) || bits < 0 || bits > 32) return false;
    const uint32_t mask = bits == 0 ? 0 : ~uint32_t{0} << (32 - bits);
    return (network & mask) == (address & mask);
  }
  return false;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  return text.str();
}

#ifdef TUNNEL_HAVE_GIO
struct GObjectUnref {
  void operator()(gpointer object) const { g_object_unref(object); }
};
using Settings = std::unique_ptr<GSettings, GObjectUnref>;

std::string get_string(GSettings* settings, const char* key) {
  gchar* value = g_settings_get_string(settings, key);
  std::string text = value ? value : "";
  g_free(value);
  return text;
}

// GNOME's keys through GIO; nullopt when the schema is not installed (no GNOME here).
std::optional<GnomeProxyKeys> read_gnome_keys() {
  GSettingsSchemaSource* schemas = g_settings_schema_source_get_default();
  if (!schemas) return std::nullopt;
  GSettingsSchema* schema = g_settings_schema_source_lookup(schemas, "org.gnome.system.proxy", TRUE);
  if (!schema) return std::nullopt;
  g_settings_schema_unref(schema);
  Settings proxy(g_settings_new("org.gnome.system.proxy"));
  Settings http(g_settings_get_child(proxy.get(), "http"));
  Settings https(g_settings_get_child(proxy.get(), "https"));
  GnomeProxyKeys keys;
  keys.mode = get_string(proxy.get(), "mode");
  keys.autoconfig_url = get_string(proxy.get(), "autoconfig-url");
  gchar** hosts = g_settings_get_strv(proxy.get(), "ignore-hosts");
  for (gchar** host = hosts; host && *host; ++host) keys.ignore_hosts.emplace_back(*host);
  g_strfreev(hosts);
  keys.http_host = get_string(http.get(), "host");
  keys.http_port = g_settings_get_int(http.get(), "port");
  keys.https_host = get_string(https.get(), "host");
  keys.https_port = g_settings_get_int(https.get(), "port");
  return keys;
}
#endif

}  // namespace

std::string desktop_of(const std::string& xdg_current_desktop) {
  for (const std::string& name : split(xdg_current_desktop, ':')) {
    const std::string desktop = lower(name);
    if (desktop == "kde") return "kde";
    for (const char* gnome_like : {"gnome", "unity", "x-cinnamon", "cinnamon", "budgie", "pantheon"}) {
      if (desktop == gnome_like) return "gnome";
    }
  }
  return "";
}

DesktopProxy gnome_proxy(const GnomeProxyKeys& keys) {
  DesktopProxy desktop;
  desktop.source = "GNOME's proxy settings (org.gnome.system.proxy)";
  if (keys.mode == "none") {
    desktop.mode = DesktopProxy::Mode::none;
  } else if (keys.mode == "manual") {
    desktop.mode = DesktopProxy::Mode::manual;
    if (!keys.http_host.empty() && keys.http_port > 0) desktop.http = fmt::format("{}:{}", keys.http_host, keys.http_port);
    if (!keys.https_host.empty() && keys.https_port > 0) {
      desktop.https = fmt::format("{}:{}", keys.https_host, keys.https_port);
    }
    desktop.ignore_hosts = keys.ignore_hosts;
  } else if (keys.mode == "auto") {
    desktop.pac_url = trim(keys.autoconfig_url);
    desktop.mode = desktop.pac_url.empty() ? DesktopProxy::Mode::wpad : DesktopProxy::Mode::pac;
  }
  return desktop;
}

DesktopProxy kde_proxy(const std::string& kioslaverc, const std::string& path, const EnvFunction& env) {
  DesktopProxy desktop;
  desktop.source = fmt::format("KDE's proxy settings ({})", path);
  std::string type, http, https, script, no_proxy;
  for (const auto& [key, value] : ini_group(kioslaverc, "Proxy Settings")) {
    if (key == "ProxyType") type = value;
    if (key == "httpProxy") http = value;
    if (key == "httpsProxy") https = value;
    if (key == "Proxy Config Script") script = value;
    if (key == "NoProxyFor") no_proxy = value;
  }
  if (type == "0") {
    desktop.mode = DesktopProxy::Mode::none;
  } else if (type == "1" || type == "4") {
    if (type == "4") {  // the entries name environment variables
      http = env(http.c_str()).value_or("");
      https = env(https.c_str()).value_or("");
      no_proxy = env(no_proxy.c_str()).value_or("");
    }
    desktop.mode = DesktopProxy::Mode::manual;
    desktop.http = host_port(http);
    desktop.https = host_port(https);
    desktop.ignore_hosts = split(no_proxy, ',');
  } else if (type == "2") {
    desktop.pac_url = script;
    desktop.mode = script.empty() ? DesktopProxy::Mode::wpad : DesktopProxy::Mode::pac;
  } else if (type == "3") {
    desktop.mode = DesktopProxy::Mode::wpad;
  }
  return desktop;
}

DesktopProxy read_desktop_proxy(const EnvFunction& env) {
  const std::string desktop = desktop_of(env("XDG_CURRENT_DESKTOP").value_or(""));
  if (desktop == "kde") {
    std::string dir = env("XDG_CONFIG_HOME").value_or("");
    if (dir.empty()) dir = env("HOME").value_or("") + "/.config";
    const std::string path = dir + "/kioslaverc";
    return kde_proxy(read_text(path), path, env);
  }
#ifdef TUNNEL_HAVE_GIO
  if (desktop == "gnome") {
    if (auto keys = read_gnome_keys()) return gnome_proxy(*keys);
  }
#endif
  return {};
}

std::string desktop_proxy_for(const DesktopProxy& desktop, const std::string& scheme, const std::string& host,
                              std::string& why_direct) {
  for (const std::string& entry : desktop.ignore_hosts) {
    if (ignored(entry, host)) {
      why_direct = fmt::format("{} is in the exceptions of {} (\"{}\")", host, desktop.source, entry);
      return "";
    }
  }
  const std::string& proxy = lower(scheme) == "https" ? desktop.https : desktop.http;
  if (proxy.empty()) why_direct = fmt::format("{} set no proxy for {} URLs", desktop.source, lower(scheme));
  return proxy;
}

}  // namespace tunnel

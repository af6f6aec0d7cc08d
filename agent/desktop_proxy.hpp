// The desktop's own proxy settings, for --proxy-auto (agent/proxy_auto.cpp): what a user set in
// GNOME's Settings > Network > Proxy (GSettings org.gnome.system.proxy, read through GIO) or in
// KDE's System Settings > Proxy (~/.config/kioslaverc), as a browser on that desktop follows them.
// The desktop is the one XDG_CURRENT_DESKTOP names; without one (an ssh login, a server) there are
// no desktop settings. Logins kept in the settings are not read: give --proxy-user.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace tunnel {

struct DesktopProxy {
  enum class Mode {
    unknown,  // no desktop, or settings that say nothing usable: WPAD, as before
    none,     // "no proxy": direct
    manual,   // a proxy per URL scheme
    pac,      // a PAC script at pac_url
    wpad,     // "automatic" with no script given: WPAD
  };
  Mode mode = Mode::unknown;
  std::string source;  // "GNOME's proxy settings (org.gnome.system.proxy)", for the start line
  std::string http;    // manual: host:port for http:// URLs ("" none)
  std::string https;   // manual: host:port for https:// URLs ("" none)
  std::vector<std::string> ignore_hosts;  // manual: hosts that go direct (names, *.domain, .domain, a.b.c.d/n)
  std::string pac_url;
};

// GNOME's keys as GSettings holds them (org.gnome.system.proxy and its http and https children).
struct GnomeProxyKeys {
  std::string mode;  // "none", "manual", "auto"
  std::string autoconfig_url;
  std::vector<std::string> ignore_hosts;
  std::string http_host;
  int http_port = 0;
  std::string https_host;
  int https_port = 0;
};

using EnvFunction = std::function<std::optional<std::string>(const char*)>;

// Which desktop's settings XDG_CURRENT_DESKTOP (a colon-separated list) points at: "gnome" (GNOME
// and the desktops that keep GNOME's proxy keys: Unity, Cinnamon, Budgie, Pantheon), "kde", or "".
std::string desktop_of(const std::string& xdg_current_desktop);

// Pure: the settings from GNOME's keys.
DesktopProxy gnome_proxy(const GnomeProxyKeys& keys);

// Pure: the settings from the text of KDE's kioslaverc ([Proxy Settings]: ProxyType 0 none, 1
// manual, 2 a PAC script, 3 WPAD, 4 environment variables, whose names httpProxy and httpsProxy
// hold, looked up in `env`). `path` names the file in `source`.
DesktopProxy kde_proxy(const std::string& kioslaverc, const std::string& path, const EnvFunction& env);

// The desktop's settings: XDG_CURRENT_DESKTOP's desktop, read from GSettings or kioslaverc.
DesktopProxy read_desktop_proxy(const EnvFunction& env);

// Pure: with manual settings, the proxy (host:port) for a URL of that scheme and host, or "" with
// `why_direct` set (the host is ignored, or no proxy is set for the scheme).
std::string desktop_proxy_for(const DesktopProxy& desktop, const std::string& scheme, const std::string& host,
                              std::string& why_direct);

}  // namespace tunnel

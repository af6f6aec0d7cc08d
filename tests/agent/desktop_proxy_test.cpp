// The desktop's proxy settings: which desktop, GNOME's keys, KDE's kioslaverc, and exceptions.
#include "agent/desktop_proxy.hpp"

#include <doctest/doctest.h>

#include <map>

using namespace tunnel;

namespace {

EnvFunction env_of(std::map<std::string, std::string> values) {
  return [values](const char* name) -> std::optional<std::string> {
    auto it = values.find(name);
    return it == values.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

}  // namespace

TEST_CASE("XDG_CURRENT_DESKTOP names the desktop whose settings count") {
  CHECK(desktop_of("GNOME") == "gnome");
  CHECK(desktop_of("ubuntu:GNOME") == "gnome");
  CHECK(desktop_of("X-Cinnamon") == "gnome");
  CHECK(desktop_of("KDE") == "kde");
  CHECK(desktop_of("XFCE") == "");
  CHECK(desktop_of("") == "");
}

TEST_CASE("GNOME: none is direct, manual names a proxy per scheme, auto is a script or WPAD") {
  GnomeProxyKeys keys;
  keys.mode = "none";
  keys.http_host = "proxy.corp";  // set but not in use: mode decides
  keys.http_port = 3128;
  CHECK(gnome_proxy(keys).mode == DesktopProxy::Mode::none);

  keys.mode = "manual";
  keys.https_host = "secure.corp";
  keys.https_port = 8443;
  keys.ignore_hosts = {"localhost", "127.0.0.0/8", "*.internal"};
  const DesktopProxy manual = gnome_proxy(keys);
  CHECK(manual.mode == DesktopProxy::Mode::manual);
  std::string why;
  CHECK(desktop_proxy_for(manual, "http", "app.example.com", why) == "proxy.corp:3128");
  CHECK(desktop_proxy_for(manual, "https", "app.example.com", why) == "secure.corp:8443");
  CHECK(desktop_proxy_for(manual, "https", "127.0.0.1", why).empty());
  CHECK(why == "127.0.0.1 is in the exceptions of GNOME's proxy settings (org.gnome.system.proxy) (\"127.0.0.0/8\")");
  CHECK(desktop_proxy_for(manual, "http", "build.internal", why).empty());
  CHECK(desktop_proxy_for(manual, "http", "internal", why).empty());  // *.internal covers the domain itself
  CHECK(desktop_proxy_for(manual, "http", "notinternal", why) == "proxy.corp:3128");
  CHECK(desktop_proxy_for(manual, "http", "128.0.0.1", why) == "proxy.corp:3128");

  keys.https_host.clear();  // no HTTPS proxy set: https URLs go direct, as GNOME's browsers do
  why.clear();
  CHECK(desktop_proxy_for(gnome_proxy(keys), "https", "app.example.com", why).empty());
  CHECK(why == "GNOME's proxy settings (org.gnome.system.proxy) set no proxy for https URLs");

  keys.mode = "auto";
  keys.autoconfig_url = "http://wpad.corp/proxy.pac";
  CHECK(gnome_proxy(keys).mode == DesktopProxy::Mode::pac);
  CHECK(gnome_proxy(keys).pac_url == "http://wpad.corp/proxy.pac");
  keys.autoconfig_url = "";
  CHECK(gnome_proxy(keys).mode == DesktopProxy::Mode::wpad);
  keys.mode = "something new";
  CHECK(gnome_proxy(keys).mode == DesktopProxy::Mode::unknown);
}

TEST_CASE("KDE: kioslaverc's proxy types, as KDE writes them") {
  const auto none = env_of({});
  const std::string path = "/home/u/.config/kioslaverc";
  const std::string manual_text =
      "[Notification Messages]\nWarnOnUnencryptedForm=false\n\n"
      "[Proxy Settings]\nNoProxyFor=localhost,.corp.example.com\nProxyType=1\n"
      "httpProxy=http://proxy.corp 8080\nhttpsProxy=http://proxy.corp:8443/\n\n"
      "[Other]\nProxyType=0\n";  // another group's key is not ours
  const DesktopProxy manual = kde_proxy(manual_text, path, none);
  CHECK(manual.mode == DesktopProxy::Mode::manual);
  CHECK(manual.source == "KDE's proxy settings (/home/u/.config/kioslaverc)");
  std::string why;
  CHECK(desktop_proxy_for(manual, "http", "app.example.com", why) == "proxy.corp:8080");
  CHECK(desktop_proxy_for(manual, "https", "app.example.com", why) == "proxy.corp:8443");
  CHECK(desktop_proxy_for(manual, "https", "git.corp.example.com", why).empty());
  CHECK(desktop_proxy_for(manual, "https", "LOCALHOST", why).empty());

  CHECK(kde_proxy("[Proxy Settings]\nProxyType=0\n", path, none).mode == DesktopProxy::Mode::none);
  const DesktopProxy pac = kde_proxy("[Proxy Settings]\nProxyType=2\nProxy Config Script=file:///etc/corp.pac\n", path,
                                     none);
  CHECK(pac.mode == DesktopProxy::Mode::pac);
  CHECK(pac.pac_url == "file:///etc/corp.pac");
  CHECK(kde_proxy("[Proxy Settings]\nProxyType=3\n", path, none).mode == DesktopProxy::Mode::wpad);
  CHECK(kde_proxy("", path, none).mode == DesktopProxy::Mode::unknown);  // no file: no settings

  // Type 4: the entries name environment variables.
  const DesktopProxy from_env =
      kde_proxy("[Proxy Settings]\nProxyType=4\nhttpProxy=http_proxy\nhttpsProxy=https_proxy\nNoProxyFor=no_proxy\n",
                path, env_of({{"http_proxy", "http://envproxy:3128"}, {"no_proxy", "skip.example"}}));
  CHECK(desktop_proxy_for(from_env, "http", "app.example.com", why) == "envproxy:3128");
  CHECK(desktop_proxy_for(from_env, "https", "app.example.com", why).empty());
  CHECK(desktop_proxy_for(from_env, "http", "skip.example", why).empty());
}

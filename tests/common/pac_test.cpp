// PAC answers parsed, and PAC scripts run by the real engine (pacparser).
#include "common/pac.hpp"

#include <doctest/doctest.h>

using namespace tunnel;

TEST_CASE("a PAC answer is its entries in order, DIRECT included") {
  auto entries = parse_pac_answer("PROXY a.corp:3128; PROXY  b.corp:8080 ;HTTPS c.corp:443; DIRECT");
  REQUIRE(entries.size() == 4);
  CHECK(entries[0].kind == PacEntry::Kind::proxy);
  CHECK(entries[0].host_port == "a.corp:3128");
  CHECK(entries[1].host_port == "b.corp:8080");
  CHECK(entries[2].kind == PacEntry::Kind::https_proxy);
  CHECK(entries[3].kind == PacEntry::Kind::direct);
  // SOCKS is named, not taken for an HTTP proxy.
  entries = parse_pac_answer("SOCKS5 s:1080; PROXY p:1");
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].kind == PacEntry::Kind::unsupported);
  CHECK(entries[0].text == "SOCKS5 s:1080");
  CHECK(entries[1].kind == PacEntry::Kind::proxy);
  // Nothing, or only separators: DIRECT (as browsers read it).
  for (const char* empty : {"", "  ", ";;"}) {
    CAPTURE(empty);
    entries = parse_pac_answer(empty);
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].kind == PacEntry::Kind::direct);
  }
  CHECK(parse_pac_answer("PROXY")[0].kind == PacEntry::Kind::unsupported);  // no host
  CHECK(parse_pac_answer("proxy lower:3128")[0].host_port == "lower:3128");
}

#ifdef TUNNEL_HAVE_PACPARSER
TEST_CASE("a PAC script runs per URL and host, and its errors are said") {
  const std::string script =
      "function FindProxyForURL(url, host) {\n"
      "  if (shExpMatch(host, '*.billing.corp')) return 'PROXY billing-gw:8080';\n"
      "  if (isPlainHostName(host)) return 'DIRECT';\n"
      "  return 'PROXY a:3128; PROXY b:3128; DIRECT';\n"
      "}\n";
  std::string error;
  CHECK(find_proxy_for_url(script, "https://app.billing.corp/x", "app.billing.corp", error) ==
        "PROXY billing-gw:8080");
  CHECK(find_proxy_for_url(script, "http://buildbox/x", "buildbox", error) == "DIRECT");
  CHECK(find_proxy_for_url(script, "https://example.com/", "example.com", error) ==
        "PROXY a:3128; PROXY b:3128; DIRECT");
  // The engine starts afresh each time: a broken script after a good one is still broken.
  CHECK_FALSE(find_proxy_for_url("function FindProxyForURL(url, host) { return ", "http://h/", "h", error));
  CHECK(error.rfind("the PAC script does not parse", 0) == 0);
  CHECK(find_proxy_for_url(script, "http://buildbox/x", "buildbox", error) == "DIRECT");
  CHECK_FALSE(find_proxy_for_url("var x = 1;", "http://h/", "h", error));
  CHECK(error.rfind("the PAC script's FindProxyForURL gave no answer", 0) == 0);
}
#else
TEST_CASE("a build without a PAC engine says so, and names the way around it") {
  std::string error;
  CHECK_FALSE(find_proxy_for_url("function FindProxyForURL(url, host) { return 'DIRECT'; }", "http://h/", "h", error));
  CHECK(error.find("runs no PAC scripts") != std::string::npos);
  CHECK(error.find("--proxy") != std::string::npos);
}
#endif

TEST_CASE("an answer that is no PAC script says what it looks like") {
  CHECK(not_a_pac_script("function FindProxyForURL(url, host) { return 'DIRECT'; }").empty());
  CHECK(not_a_pac_script("\n  <!DOCTYPE html><html><body>Sign in to the guest network</body></html>") ==
        "an HTML page, not a PAC script (a login or error page?)");
  CHECK(not_a_pac_script(" \r\n") == "an empty answer, not a PAC script");
  CHECK(not_a_pac_script("var proxy = 'PROXY p:3128';") == "not a PAC script (it defines no FindProxyForURL)");
}

#include "common/url.hpp"

#include <doctest/doctest.h>

using tunnel::no_proxy_covers;

TEST_CASE("no_proxy, as curl reads it: names and their subdomains, IPs, IPv4 blocks, and *") {
  CHECK(no_proxy_covers("*", "anything.example"));
  CHECK(no_proxy_covers("localhost,127.0.0.1", "127.0.0.1"));
  CHECK(no_proxy_covers("localhost, 127.0.0.1", "LOCALHOST"));
  CHECK(no_proxy_covers("corp.example", "app.corp.example"));
  CHECK(no_proxy_covers(".corp.example", "corp.example"));
  CHECK(no_proxy_covers(".corp.example", "a.b.corp.example"));
  CHECK_FALSE(no_proxy_covers("corp.example", "evilcorp.example"));  // a suffix, not a subdomain
  CHECK_FALSE(no_proxy_covers("corp.example", "corp.example.evil"));
  CHECK(no_proxy_covers("10.0.0.0/8", "10.20.30.40"));
  CHECK_FALSE(no_proxy_covers("10.0.0.0/8", "11.0.0.1"));
  CHECK(no_proxy_covers("192.168.1.7/32", "192.168.1.7"));
  CHECK_FALSE(no_proxy_covers("0.1", "10.0.0.1"));  // never a part of an address
  CHECK(no_proxy_covers("::1", "[::1]"));
  CHECK_FALSE(no_proxy_covers("", "host"));
  CHECK_FALSE(no_proxy_covers("a,,b", "c"));
  CHECK_FALSE(no_proxy_covers("*.corp.example", "app.corp.example"));  // curl has no wildcards but a lone *
}

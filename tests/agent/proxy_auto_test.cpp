// Where WPAD looks for a PAC script.
#include "agent/proxy_auto.hpp"

#include <doctest/doctest.h>

using namespace tunnel;

TEST_CASE("WPAD looks in each DNS domain of the machine, most specific first, never at the top level") {
  const std::string resolv = "# a comment\nnameserver 10.0.0.1\nsearch corp.example.com lab.example.com\n"
                             "domain corp.example.com.\n";
  CHECK(wpad_urls(resolv, "laptop.branch.example.com") ==
        std::vector<std::string>{"http://wpad.corp.example.com/wpad.dat", "http://wpad.example.com/wpad.dat",
                                 "http://wpad.lab.example.com/wpad.dat", "http://wpad.branch.example.com/wpad.dat"});
  CHECK(wpad_urls("nameserver 1.1.1.1\n", "laptop").empty());  // no domain: nowhere to look
  CHECK(wpad_urls("search example\n", "laptop").empty());      // a one-label domain would be a top level
}

// Runs parse_command_line on an argument list with an environment of the test's own (nothing from
// the process environment), for the config tests.
#pragma once

#include "agent/config.hpp"

#include <map>
#include <string>
#include <vector>

namespace tunnel::test {

struct Run {
  std::map<std::string, std::string> env;
  ParseResult operator()(std::vector<std::string> args) const {
    args.insert(args.begin(), "tunnel-agent");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    return parse_command_line(static_cast<int>(argv.size()), argv.data(), [this](const char* name) -> const char* {
      auto it = env.find(name);
      return it == env.end() ? nullptr : it->second.c_str();
    });
  }
};

inline const char* const kUrl = "http://127.0.0.1:9/.~~spring-boot!~/debug";

}  // namespace tunnel::test

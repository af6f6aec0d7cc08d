// The TOML config file: the same names as the long flags, turned into the tokens those flags would
// be on the command line, so one parser (CLI11's) checks every source alike. [[forward]] tables
// carry what -L cannot: a secret and headers of their own.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tunnel {

// How a flag takes its value; derived from the command-line definitions.
enum class OptionKind { flag, count, scalar, list };

using OptionKinds = std::map<std::string, OptionKind>;  // long name ("retry-window") -> kind

// One [[forward]] table.
struct FileForward {
  std::string listen;  // "[HOST:]PORT"; empty: 127.0.0.1:8000
  std::string url;
  std::string secret_file;
  std::vector<std::string> headers;
  std::vector<std::string> proxies;  // its own proxy (or chain), for this endpoint only
  bool no_proxy = false;             // this endpoint is reached directly, whatever else says
  std::string where;  // "FILE line N", for messages
};

struct ConfigFile {
  std::string path;
  std::map<std::string, std::vector<std::string>> tokens;  // key -> {"--key", "value", ...}; "url" -> {"URL"}
  std::map<std::string, int> lines;                        // key -> line, for messages
  std::vector<FileForward> forwards;
};

// Reads `path`. Unknown keys, wrong types and TOML syntax errors give an empty optional and an
// `error` naming the file and line.
std::optional<ConfigFile> load_config_file(const std::string& path, const OptionKinds& kinds, std::string& error);

// Turns one value given as text (an environment variable) into tokens. Lists are split on line
// breaks, or also on spaces for `split_on_spaces`; a flag takes 1/true/yes/on or 0/false/no/off.
std::optional<std::vector<std::string>> env_tokens(const std::string& name, OptionKind kind, const std::string& value,
                                                   bool split_on_spaces, std::string& error);

}  // namespace tunnel

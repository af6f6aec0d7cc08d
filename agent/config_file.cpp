#include "agent/config_file.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <filesystem>
#include <fstream>

namespace tunnel {
namespace {

std::string where(const std::string& path, const toml::source_region& source) {
  return source.begin.line > 0 ? fmt::format("config file {} line {}", path, source.begin.line)
                               : fmt::format("config file {}", path);
}

// A scalar TOML value as the text a flag would take; empty optional for tables and arrays.
std::optional<std::string> scalar_text(const toml::node& value) {
  if (auto s = value.value_exact<std::string>()) return *s;
  if (auto i = value.value_exact<int64_t>()) return std::to_string(*i);
  if (auto d = value.value_exact<double>()) return fmt::format("{}", *d);
  return std::nullopt;
}

// A string, or an array of strings, as a list.
std::optional<std::vector<std::string>> string_list(const toml::node& value) {
  std::vector<std::string> out;
  if (auto s = value.value_exact<std::string>()) {
    out.push_back(*s);
    return out;
  }
  const toml::array* array = value.as_array();
  if (array == nullptr) return std::nullopt;
  for (const toml::node& item : *array) {
    auto s = item.value_exact<std::string>();
    if (!s) return std::nullopt;
    out.push_back(*s);
  }
  return out;
}

std::optional<FileForward> read_forward_table(const std::string& path, const toml::table& table, std::string& error) {
  FileForward forward;
  forward.where = where(path, table.source());
  for (auto&& [key, value] : table) {
    const std::string name(key.str());
    const std::string at = where(path, key.source());
    if (name == "listen") {
      auto text = scalar_text(value);
      if (!text) {
        error = fmt::format("{}: listen must be \"[HOST:]PORT\" or a port number", at);
        return std::nullopt;
      }
      forward.listen = *text;
    } else if (name == "url" || name == "secret-file") {
      auto text = value.value_exact<std::string>();
      if (!text) {
        error = fmt::format("{}: {} must be a string", at, name);
        return std::nullopt;
      }
      (name == "url" ? forward.url : forward.secret_file) = *text;
    } else if (name == "header") {
      auto list = string_list(value);
      if (!list) {
        error = fmt::format("{}: header must be a string or an array of strings (\"Name: value\")", at);
        return std::nullopt;
      }
      forward.headers = std::move(*list);
    } else if (name == "proxy") {
      auto list = string_list(value);
      if (!list || list->empty()) {
        error = fmt::format("{}: proxy must be a proxy URL or an array of them (a chain, in order)", at);
        return std::nullopt;
      }
      forward.proxies = std::move(*list);
    } else if (name == "no-proxy") {
      auto flag = value.value_exact<bool>();
      if (!flag) {
        error = fmt::format("{}: no-proxy must be true or false", at);
        return std::nullopt;
      }
      forward.no_proxy = *flag;
    } else if (name == "secret") {
      error = fmt::format("{}: a config file takes no secret: put it in a file of its own and name that with "
                          "secret-file",
                          at);
      return std::nullopt;
    } else {
      error = fmt::format("{}: unknown key '{}' in a [[forward]] table: it takes listen, url, secret-file, header, proxy and no-proxy",
                          at, name);
      return std::nullopt;
    }
  }
  if (forward.url.empty()) {
    error = fmt::format("{}: this [[forward]] table has no url", forward.where);
    return std::nullopt;
  }
  if (forward.no_proxy && !forward.proxies.empty()) {
    error = fmt::format("{}: this [[forward]] table has both proxy and no-proxy: give one of them", forward.where);
    return std::nullopt;
  }
  return forward;
}

}  // namespace

std::optional<ConfigFile> load_config_file(const std::string& path, const OptionKinds& kinds, std::string& error) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    error = fmt::format("the config file {} is a directory: give the path of a TOML file", path);
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = fmt::format("cannot read the config file {}: check the path and its permissions", path);
    return std::nullopt;
  }
  toml::table root;
  try {
    root = toml::parse(in, path);
  } catch (const toml::parse_error& e) {
    error = fmt::format("{}: {}", where(path, e.source()), e.description());
    return std::nullopt;
  }
  ConfigFile file;
  file.path = path;
  for (auto&& [key, value] : root) {
    const std::string name(key.str());
    const std::string at = where(path, key.source());
    file.lines[name] = static_cast<int>(key.source().begin.line);
    if (name == "forward" && value.is_array()) {
      // Either -L strings or [[forward]] tables (or both).
      for (const toml::node& item : *value.as_array()) {
        if (const toml::table* table = item.as_table()) {
          auto forward = read_forward_table(path, *table, error);
          if (!forward) return std::nullopt;
          file.forwards.push_back(std::move(*forward));
        } else if (auto text = item.value_exact<std::string>()) {
          file.tokens[name].insert(file.tokens[name].end(), {"--forward", *text});
        } else {
          error = fmt::format("{}: forward takes \"[HOST:]PORT=URL\" strings or [[forward]] tables", at);
          return std::nullopt;
        }
      }
      continue;
    }
    if (name == "url") {
      auto text = value.value_exact<std::string>();
      if (!text) {
        error = fmt::format("{}: url must be a string", at);
        return std::nullopt;
      }
      file.tokens[name] = {*text};
      continue;
    }
    if (name == "secret" || name == "proxy-password") {
      error = fmt::format("{}: a config file takes no {}: put it in a file of its own and name that with {}-file", at,
                          name, name);
      return std::nullopt;
    }
    auto kind = kinds.find(name);
    if (kind == kinds.end()) {
      error = fmt::format("{}: unknown key '{}': the keys are the long option names of tunnel-agent --help, "
                          "without the dashes",
                          at, name);
      return std::nullopt;
    }
    std::vector<std::string>& tokens = file.tokens[name];
    const std::string flag = "--" + name;
    switch (kind->second) {
      case OptionKind::flag:
        if (auto b = value.value_exact<bool>()) {
          if (*b) tokens.push_back(flag);
          continue;
        }
        error = fmt::format("{}: {} must be true or false", at, name);
        return std::nullopt;
      case OptionKind::count:
        if (auto b = value.value_exact<bool>()) {
          if (*b) tokens.push_back(flag);
          continue;
        }
        if (auto n = value.value_exact<int64_t>(); n && *n >= 0 && *n <= 2) {
          tokens.assign(static_cast<size_t>(*n), flag);
          continue;
        }
        error = fmt::format("{}: {} must be 0, 1 or 2", at, name);
        return std::nullopt;
      case OptionKind::scalar:
        if (auto text = scalar_text(value)) {
          tokens = {flag, *text};
          continue;
        }
        error = fmt::format("{}: {} takes one value", at, name);
        return std::nullopt;
      case OptionKind::list:
        if (auto list = string_list(value)) {
          for (auto& item : *list) tokens.insert(tokens.end(), {flag, std::move(item)});
          continue;
        }
        error = fmt::format("{}: {} must be a string or an array of strings", at, name);
        return std::nullopt;
    }
  }
  return file;
}

std::optional<std::vector<std::string>> env_tokens(const std::string& name, OptionKind kind, const std::string& value,
                                                   bool split_on_spaces, std::string& error) {
  const std::string flag = "--" + name;
  std::vector<std::string> tokens;
  auto is = [&](std::initializer_list<const char*> words) {
    for (const char* w : words) {
      if (value == w) return true;
    }
    return false;
  };
  switch (kind) {
    case OptionKind::flag:
    case OptionKind::count:
      if (is({"1", "true", "yes", "on"})) return std::vector<std::string>{flag};
      if (is({"0", "false", "no", "off", ""})) return tokens;
      if (kind == OptionKind::count && value == "2") return std::vector<std::string>{flag, flag};
      error = fmt::format("'{}' is not a yes or no: use 1 or 0", value);
      return std::nullopt;
    case OptionKind::scalar:
      return std::vector<std::string>{flag, value};
    case OptionKind::list: {
      size_t start = 0;
      const char* separators = split_on_spaces ? " \t\r\n" : "\r\n";
      while (start <= value.size()) {
        const size_t end = std::min(value.find_first_of(separators, start), value.size());
        if (end > start) tokens.insert(tokens.end(), {flag, value.substr(start, end - start)});
        start = end + 1;
      }
      return tokens;
    }
  }
  return tokens;
}

}  // namespace tunnel

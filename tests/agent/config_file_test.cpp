// The config file, the TUNNEL_AGENT_* environment and their precedence (flags > environment > file > default).
#include "agent/config.hpp"
#include "agent/settings.hpp"
#include "tests/agent/parse_run.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

using namespace tunnel;
using tunnel::test::kUrl;
using tunnel::test::Run;

namespace {

// A directory of its own, removed at the end; XDG_CONFIG_HOME points into it.
struct ConfigDir {
  std::filesystem::path root;
  ConfigDir() {
    char templ[] = "/tmp/tunnel-config-XXXXXX";
    REQUIRE(mkdtemp(templ) != nullptr);
    root = templ;
    std::filesystem::create_directories(root / "tunnel-agent");
  }
  ~ConfigDir() { std::filesystem::remove_all(root); }
  std::string write(const std::string& name, const std::string& text) const {
    const auto path = root / name;
    std::ofstream(path) << text;
    return path.string();
  }
  std::string write_default(const std::string& text) const { return write("tunnel-agent/config.toml", text); }
};


bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Some line of `text` holds `value` and, after it, `source`: a setting and where it came from.
bool line_with(const std::string& text, const std::string& value, const std::string& source) {
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find('\n', start), text.size());
    const std::string line = text.substr(start, end - start);
    const size_t at = line.find(value);
    if (at != std::string::npos && line.find(source, at + value.size()) != std::string::npos) return true;
    start = end + 1;
  }
  return false;
}

}  // namespace

TEST_CASE("precedence: command line > environment > config file > default") {
  ConfigDir dir;
  dir.write_default("retry-window = 20\non-busy = \"refuse\"\n");
  Run run;
  run.env["XDG_CONFIG_HOME"] = dir.root.string();

  auto r = run({kUrl});
  REQUIRE(r.config);
  CHECK(r.config->retry_window_ms == 20000);             // file
  CHECK(r.config->on_busy == BusyPolicy::refuse);        // file
  CHECK(r.config->request_timeout_ms == 30000);          // default

  run.env["TUNNEL_AGENT_RETRY_WINDOW"] = "10";
  r = run({kUrl});
  REQUIRE(r.config);
  CHECK(r.config->retry_window_ms == 10000);             // environment over file
  CHECK(r.config->on_busy == BusyPolicy::refuse);

  r = run({"--retry-window", "5", "--on-busy", "wait", kUrl});
  REQUIRE(r.config);
  CHECK(r.config->retry_window_ms == 5000);              // command line over both
  CHECK(r.config->on_busy == BusyPolicy::wait);

  r = run({"--no-config", kUrl});
  REQUIRE(r.config);
  CHECK(r.config->retry_window_ms == 10000);
  CHECK(r.config->on_busy == BusyPolicy::wait);          // the file is not read
}

TEST_CASE("a higher source replaces a whole list, and the settings that go together") {
  ConfigDir dir;
  dir.write_default(
      "header = [\"X-A: 1\", \"X-B: 2\"]\n"
      "proxy = \"http://proxy.example:3128\"\n"
      "verbose = 1\n"
      "insecure = true\n"
      "forward = [\"8001=http://127.0.0.1:9/a\"]\n");
  Run run;
  run.env["XDG_CONFIG_HOME"] = dir.root.string();

  auto r = run({});
  REQUIRE(r.config);
  CHECK(r.config->headers == std::vector<std::string>{"X-A: 1", "X-B: 2"});
  REQUIRE(r.config->forwards.size() == 1);
  CHECK(r.config->forwards[0].listen.port == 8001);
  CHECK(r.config->forwards[0].proxy.hops.size() == 1);
  CHECK(r.config->log_level == log::Level::debug);
  CHECK(r.config->tls.insecure);

  // -H replaces the file's headers; --no-proxy its proxy; -q its verbosity; a URL its forwards.
  r = run({"-H", "X-C: 3", "--no-proxy", "-q", kUrl});
  REQUIRE(r.config);
  CHECK(r.config->headers == std::vector<std::string>{"X-C: 3"});
  REQUIRE(r.config->forwards.size() == 1);
  CHECK(r.config->forwards[0].url == kUrl);
  CHECK(r.config->forwards[0].proxy.hops.empty());
  CHECK(r.config->log_level == log::Level::error);

  // A flag turned off by the environment or the command line.
  run.env.emplace("TUNNEL_AGENT_INSECURE", "0");
  r = run({});
  REQUIRE(r.config);
  CHECK_FALSE(r.config->tls.insecure);
  run.env.erase("TUNNEL_AGENT_INSECURE");
  r = run({"--insecure=false"});
  REQUIRE(r.config);
  CHECK_FALSE(r.config->tls.insecure);

  // Lists from the environment: one item per line; forwards and proxies also split on spaces.
  run.env["TUNNEL_AGENT_HEADER"] = "X-D: a b\nX-E: c";
  run.env["TUNNEL_AGENT_FORWARD"] = "8002=http://127.0.0.1:9/b 8003=http://127.0.0.1:9/c";
  r = run({});
  REQUIRE(r.config);
  CHECK(r.config->headers == std::vector<std::string>{"X-D: a b", "X-E: c"});
  REQUIRE(r.config->forwards.size() == 2);
  CHECK(r.config->forwards[1].listen.port == 8003);
}

TEST_CASE("[[forward]] tables carry their own secret and headers") {
  ConfigDir dir;
  const std::string secret_a = dir.write("a.secret", "secret-a\n");
  dir.write_default(
      "header = [\"X-Gateway: global\", \"X-Team: blue\"]\n"
      "[[forward]]\n"
      "listen = 8001\n"
      "url = \"http://127.0.0.1:9/a\"\n"
      "secret-file = \"" + secret_a + "\"\n"
      "header = \"X-Gateway: only-a\"\n"
      "[[forward]]\n"
      "listen = \"[::1]:8002\"\n"
      "url = \"http://127.0.0.1:9/b\"\n");
  Run run;
  run.env["XDG_CONFIG_HOME"] = dir.root.string();
  run.env["TUNNEL_AGENT_SECRET"] = "global-secret";
  auto r = run({});
  REQUIRE(r.config);
  REQUIRE(r.config->forwards.size() == 2);
  const SessionSettings a = session_settings(*r.config, r.config->forwards[0]);
  const SessionSettings b = session_settings(*r.config, r.config->forwards[1]);
  CHECK(a.secret == "secret-a");
  CHECK(contains(a.secret_source, "a.secret"));
  CHECK(a.headers == std::vector<std::string>{"X-Team: blue", "X-Gateway: only-a"});  // same name: replaced
  CHECK(b.secret == "global-secret");
  CHECK(b.headers == std::vector<std::string>{"X-Gateway: global", "X-Team: blue"});
  CHECK(r.config->forwards[1].listen.host == "::1");
  // The values of every header are kept out of the trace.
  CHECK(std::find(a.http.sensitive_headers.begin(), a.http.sensitive_headers.end(), "X-Gateway") !=
        a.http.sensitive_headers.end());
}

TEST_CASE("a [[forward]] table's own proxy wins over --proxy and the environment, for it alone") {
  ConfigDir dir;
  const std::string path = dir.write("c.toml",
                                     "[[forward]]\n"
                                     "listen = 8001\n"
                                     "url = \"https://a.example\"\n"
                                     "proxy = \"http://bob:hunter22@squid.corp:3128\"\n"
                                     "[[forward]]\n"
                                     "listen = 8002\n"
                                     "url = \"https://b.example\"\n"
                                     "no-proxy = true\n"
                                     "[[forward]]\n"
                                     "listen = 8003\n"
                                     "url = \"https://c.example\"\n"
                                     "proxy = [\"first:3128\", \"http://second:8080\"]\n"
                                     "[[forward]]\n"
                                     "listen = 8004\n"
                                     "url = \"https://d.example\"\n");
  Run run;
  run.env["https_proxy"] = "http://env.proxy:3128";
  auto r = run({"--config", path});
  REQUIRE(r.config);
  const auto& f = r.config->forwards;
  REQUIRE(f.size() == 4);
  REQUIRE(f[0].proxy.hops.size() == 1);
  CHECK(f[0].proxy.hops[0].display == "squid.corp:3128");
  CHECK(f[0].proxy.hops[0].source == "[[forward]] at config file " + path + " line 1");
  CHECK(f[1].proxy.hops.empty());
  CHECK(contains(f[1].proxy.bypassed, "no-proxy in [[forward]] at config file " + path + " line 5"));
  REQUIRE(f[2].proxy.hops.size() == 2);  // a chain, in order
  CHECK(f[2].proxy.hops[0].display == "first:3128");
  CHECK(f[2].proxy.hops[1].display == "second:8080");
  REQUIRE(f[3].proxy.hops.size() == 1);  // no table of its own: the environment
  CHECK(f[3].proxy.hops[0].source == "https_proxy");

  // --proxy on the command line is for the forwards without a proxy of their own.
  r = run({"--config", path, "--proxy", "http://flag.proxy:3128"});
  REQUIRE(r.config);
  CHECK(r.config->forwards[0].proxy.hops[0].display == "squid.corp:3128");
  CHECK(r.config->forwards[1].proxy.hops.empty());
  CHECK(r.config->forwards[3].proxy.hops[0].display == "flag.proxy:3128");

  // --print-config says which path each forward takes and who chose it; the password stays out.
  r = run({"--config", path, "--print-config"});
  CHECK(contains(r.message, "# forward 1 (127.0.0.1:8001 -> https://a.example/.~~spring-boot!~/debug): proxy 1 "
                            "squid.corp:3128 (from [[forward]] at config file " + path + " line 1)"));
  CHECK(contains(r.message, "# forward 2 (127.0.0.1:8002 -> https://b.example/.~~spring-boot!~/debug): direct: "
                            "no-proxy in [[forward]]"));
  CHECK(contains(r.message, "then proxy 2 second:8080"));
  CHECK(contains(r.message, "# forward 4 (127.0.0.1:8004 -> https://d.example/.~~spring-boot!~/debug): proxy 1 "
                            "env.proxy:3128 (from https_proxy)"));
  CHECK(contains(r.message, "no-proxy = true"));
  CHECK_FALSE(contains(r.message, "hunter22"));

  // The file's global proxy, and TUNNEL_AGENT_PROXY, are named as such.
  const std::string global = dir.write("global.toml", "proxy = \"http://file.proxy:3128\"\nurl = \"https://e.example\"\n");
  r = run({"--config", global});
  REQUIRE(r.config);
  CHECK(r.config->forwards[0].proxy.hops[0].source == "proxy in the config file");
  run.env["TUNNEL_AGENT_PROXY"] = "http://var.proxy:3128";
  r = run({"--config", global});
  REQUIRE(r.config);
  CHECK(r.config->forwards[0].proxy.hops[0].source == "TUNNEL_AGENT_PROXY");
  run.env.erase("TUNNEL_AGENT_PROXY");

  // --pac: the script decides at start, for the forwards without a proxy of their own.
  r = run({"--config", path, "--pac", "/etc/proxy.pac", "--print-config"});
  CHECK(contains(r.message, "# forward 4 (127.0.0.1:8004 -> https://d.example/.~~spring-boot!~/debug): chosen at "
                            "start by the PAC script /etc/proxy.pac"));
  CHECK(contains(r.message, "# forward 1 (127.0.0.1:8001 -> https://a.example/.~~spring-boot!~/debug): proxy 1 "
                            "squid.corp:3128"));
  r = run({"--config", path, "--pac", "/etc/proxy.pac", "--proxy", "http://p:1"});
  CHECK(r.exit_code == 2);
  CHECK(contains(r.message, "--pac and --proxy contradict each other"));

  // A bad proxy in a table is named with the table.
  r = run({"--config", dir.write("bad.toml", "[[forward]]\nurl = \"http://h/x\"\nproxy = \"ftp://p:1\"\n")});
  CHECK(r.exit_code == 2);
  CHECK(contains(r.message, "unsupported proxy scheme 'ftp' from [[forward]] at config file"));
}

TEST_CASE("where the config file comes from") {
  ConfigDir dir;
  const std::string other = dir.write("other.toml", "retry-window = 3\n");
  dir.write_default("retry-window = 4\n");
  Run run;
  run.env["XDG_CONFIG_HOME"] = dir.root.string();
  CHECK(run({kUrl}).config->retry_window_ms == 4000);
  CHECK(run({"--config", other, kUrl}).config->retry_window_ms == 3000);
  run.env["TUNNEL_AGENT_CONFIG"] = other;
  CHECK(run({kUrl}).config->retry_window_ms == 3000);
  run.env.erase("TUNNEL_AGENT_CONFIG");
  run.env.erase("XDG_CONFIG_HOME");
  run.env["HOME"] = (dir.root / "nohome").string();  // no such file: no config, no error
  CHECK(run({kUrl}).config->retry_window_ms == 25000);
  auto r = run({"--config", (dir.root / "missing.toml").string(), kUrl});
  CHECK(r.exit_code == 2);
  CHECK(contains(r.message, "cannot read the config file"));
  r = run({"--config", dir.root.string(), kUrl});
  CHECK(r.exit_code == 2);
  CHECK(contains(r.message, "is a directory: give the path of a TOML file"));
}

TEST_CASE("errors name the file and line, or the variable") {
  ConfigDir dir;
  Run run;
  auto with_file = [&](const std::string& text) { return run({"--config", dir.write("c.toml", text), kUrl}); };
  struct Case {
    const char* text;
    const char* says;
  };
  for (const Case& c : {Case{"\n\nretry_window = 9\n", "line 3: unknown key 'retry_window'"},
                        Case{"retry-window = 9999\n", "line 1: --retry-window"},
                        Case{"insecure = \"yes\"\n", "line 1: insecure must be true or false"},
                        Case{"header = 5\n", "header must be a string or an array of strings"},
                        Case{"header = [\"no colon\"]\n", "bad header"},
                        Case{"retry-window = [\n", "line 1"},
                        Case{"[[forward]]\nlisten = 8001\n", "line 1: this [[forward]] table has no url"},
                        Case{"[[forward]]\nurl = \"http://h/x\"\nsecret = \"s\"\n", "line 3: a config file takes no secret"},
                        Case{"secret = \"s\"\n", "a config file takes no secret: put it in a file"},
                        Case{"[[forward]]\nurl = \"http://h/x\"\nproxy = 3\n", "line 3: proxy must be a proxy URL"},
                        Case{"[[forward]]\nurl = \"http://h/x\"\nproxy = \"p:1\"\nno-proxy = true\n",
                             "line 1: this [[forward]] table has both proxy and no-proxy"},
                        Case{"help = true\n", "unknown key 'help'"}}) {
    CAPTURE(c.text);
    auto r = with_file(c.text);
    CHECK_FALSE(r.config);
    CHECK(r.exit_code == 2);
    CHECK(contains(r.message, c.says));
    CHECK(std::count(r.message.begin(), r.message.end(), '\n') == 1);  // one line
  }
  run.env["TUNNEL_AGENT_ON_BUSY"] = "sometimes";
  auto r = run({kUrl});
  CHECK(contains(r.message, "TUNNEL_AGENT_ON_BUSY: --on-busy"));
  run.env.erase("TUNNEL_AGENT_ON_BUSY");
  run.env["TUNNEL_AGENT_QUIET"] = "maybe";
  r = run({kUrl});
  CHECK(contains(r.message, "TUNNEL_AGENT_QUIET: 'maybe' is not a yes or no"));
  // A value that CLI11 takes but the agent's own checks refuse still names where it came from.
  run.env = {{"TUNNEL_AGENT_FORWARD", "nonsense"}};
  r = run({});
  CHECK(contains(r.message, "TUNNEL_AGENT_FORWARD: bad forward 'nonsense'"));
  r = with_file("\n\nheader = \"X-A: 1\\nX-B: 2\"\n");
  CHECK(contains(r.message, "line 3: the -H X-A value contains a line break"));
  run.env = {{"TUNNEL_AGENT_SECRET", "a"}, {"TUNNEL_AGENT_SECRET_FILE", "/x"}};
  r = run({kUrl});
  CHECK(contains(r.message, "both TUNNEL_AGENT_SECRET and TUNNEL_AGENT_SECRET_FILE are set"));
}

TEST_CASE("check and --stdio take the one forward of a config file; an empty variable is unset") {
  ConfigDir dir;
  const std::string secret = dir.write("a.secret", "secret-a\n");
  dir.write_default("[[forward]]\nlisten = 8001\nurl = \"http://127.0.0.1:9/a\"\nsecret-file = \"" + secret + "\"\n");
  Run run;
  run.env["XDG_CONFIG_HOME"] = dir.root.string();
  run.env["TUNNEL_AGENT_URL"] = "";
  for (const char* mode : {"check", "--stdio"}) {
    CAPTURE(mode);
    auto r = run({mode});
    REQUIRE(r.config);
    REQUIRE(r.config->forwards.size() == 1);
    CHECK(session_settings(*r.config, r.config->forwards[0]).secret == "secret-a");
  }
  dir.write_default("forward = [\"8001=http://127.0.0.1:9/a\", \"8002=http://127.0.0.1:9/b\"]\n");
  auto r = run({"check"});
  CHECK(r.exit_code == 2);
  CHECK(contains(r.message, "check looks at one endpoint: tunnel-agent check URL [OPTIONS] (there are 2)"));
}

TEST_CASE("the secret: --secret-file > TUNNEL_AGENT_SECRET > the file's secret-file") {
  ConfigDir dir;
  const std::string from_file = dir.write("file.secret", "from-config\n");
  const std::string from_flag = dir.write("flag.secret", "from-flag\n");
  dir.write_default("secret-file = \"" + from_file + "\"\n");
  Run run;
  run.env["XDG_CONFIG_HOME"] = dir.root.string();
  CHECK(run({kUrl}).config->secret == "from-config");
  run.env["TUNNEL_AGENT_SECRET"] = "from-env";
  CHECK(run({kUrl}).config->secret == "from-env");
  CHECK(run({"--secret-file", from_flag, kUrl}).config->secret == "from-flag");
}

TEST_CASE("--print-config shows each setting's source and masks secrets") {
  ConfigDir dir;
  const std::string secret = dir.write("s", "top-secret-value\n");
  dir.write_default(
      "retry-window = 20\n"
      "proxy = \"http://alice:pw-4711@proxy.example:3128\"\n"
      "header = \"Authorization: Bearer header-token\"\n"
      "secret-file = \"" + secret + "\"\n");
  Run run;
  run.env["XDG_CONFIG_HOME"] = dir.root.string();
  run.env["TUNNEL_AGENT_REQUEST_TIMEOUT"] = "40";
  auto r = run({"--print-config", "--connect-timeout", "7", kUrl});
  CHECK_FALSE(r.config);
  CHECK(r.exit_code == 0);
  const std::string& out = r.message;
  CHECK(line_with(out, "connect-timeout = 7", "# command line"));
  CHECK(line_with(out, "request-timeout = 40", "# TUNNEL_AGENT_REQUEST_TIMEOUT"));
  CHECK(line_with(out, "retry-window = 20", "# config file line 1"));
  CHECK(line_with(out, "on-busy = \"wait\"", "# default"));
  CHECK_FALSE(line_with(out, "retry-window = 20", "# default"));  // the matcher tells lines apart
  CHECK(contains(out, "Authorization: ***"));
  CHECK(contains(out, "alice:***@proxy.example"));
  for (const std::string& secret_text : std::vector<std::string>{"top-secret-value", "header-token", "pw-4711"}) {
    CAPTURE(secret_text);
    CHECK_MESSAGE(!contains(out, secret_text), out);
  }
  // What it prints is a config file the agent reads back to the same settings.
  ConfigDir again;
  again.write_default(out);
  Run reread;
  reread.env["XDG_CONFIG_HOME"] = again.root.string();
  auto back = reread({});
  REQUIRE(back.config);
  CHECK(back.config->connect_timeout_ms == 7000);
  CHECK(back.config->request_timeout_ms == 40000);
  CHECK(back.config->retry_window_ms == 20000);
  CHECK(back.config->forwards.at(0).url == kUrl);
}

TEST_CASE("cloudflared's TUNNEL_* variables are never read: the prefix is TUNNEL_AGENT_") {
  Run run;
  run.env["TUNNEL_URL"] = "http://127.0.0.1:9/cloudflared";   // cloudflared's origin
  run.env["TUNNEL_SECRET"] = "not-ours";
  run.env["TUNNEL_RETRY_WINDOW"] = "3";
  auto r = run({});
  CHECK_FALSE(r.config);  // no URL: TUNNEL_URL is not ours
  r = run({kUrl});
  REQUIRE(r.config);
  CHECK_FALSE(r.config->secret);
  CHECK(r.config->retry_window_ms == 25000);
  run.env["TUNNEL_AGENT_URL"] = kUrl;
  run.env["TUNNEL_AGENT_SECRET"] = "ours";
  r = run({});
  REQUIRE(r.config);
  CHECK(r.config->forwards.at(0).url == kUrl);
  CHECK(r.config->secret == "ours");
}

#include "agent/config.hpp"
#include "tests/agent/parse_run.hpp"

#include <curl/curl.h>
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

using namespace tunnel;
using tunnel::test::kUrl;
using tunnel::test::Run;

namespace {


}  // namespace

TEST_CASE("defaults: loopback port 8000, X-AUTH-TOKEN, wait when busy") {
  auto r = Run{}({kUrl});
  REQUIRE(r.config);
  CHECK(r.config->forwards[0].listen.host == "127.0.0.1");
  CHECK(r.config->forwards[0].listen.port == 8000);
  CHECK(r.config->forwards[0].url == kUrl);
  CHECK(r.config->secret_header == "X-AUTH-TOKEN");
  CHECK_FALSE(r.config->secret.has_value());
  CHECK(r.config->on_busy == BusyPolicy::wait);
  CHECK(r.config->log_level == log::Level::info);
}

TEST_CASE("listen addresses") {
  std::string error;
  CHECK(parse_listen_address("9000", error)->port == 9000);
  CHECK(parse_listen_address("9000", error)->host == "127.0.0.1");
  CHECK(parse_listen_address("0.0.0.0:0", error)->host == "0.0.0.0");
  CHECK(parse_listen_address("localhost:7", error)->host == "127.0.0.1");
  auto v6 = parse_listen_address("[::1]:8000", error);
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->port == 8000);
  for (const char* bad : {"", "x", "65536", "-1", "host.example:80", "::1:80", "[::1]", "[::1]80", "1.2.3.4:"}) {
    CAPTURE(bad);
    error.clear();
    CHECK_FALSE(parse_listen_address(bad, error).has_value());
    CHECK_FALSE(error.empty());
  }
}

TEST_CASE("endpoint URLs are checked with libcurl's parser") {
  std::string error, warning;
  CHECK(resolve_endpoint_url("https://host.example/.~~spring-boot!~/debug", error, warning));
  CHECK_FALSE(resolve_endpoint_url("ftp://host/x", error, warning));
  CHECK(error.find("http or https") != std::string::npos);
  CHECK_FALSE(resolve_endpoint_url("not a url", error, warning));
  CHECK_FALSE(resolve_endpoint_url("https://user:pw@host/x", error, warning));
  CHECK(error.find("--secret-file") != std::string::npos);
  CHECK_FALSE(resolve_endpoint_url("https://", error, warning));
}

TEST_CASE("an endpoint needs no '!' typed: the endpoint path is added to a host or a context path") {
  std::string error, warning;
  auto resolved = [&](const char* text) { return resolve_endpoint_url(text, error, warning).value_or("invalid: " + error); };
  // A full URL is kept.
  CHECK(resolved("https://host.example/.~~spring-boot!~/debug") == "https://host.example/.~~spring-boot!~/debug");
  CHECK(resolved("http://[::1]:8080/app/.~~spring-boot!~/debug") == "http://[::1]:8080/app/.~~spring-boot!~/debug");
  CHECK(warning.empty());
  // No path, a bare "/", a context path (with or without its slash): the endpoint goes under it.
  CHECK(resolved("https://host.example") == "https://host.example/.~~spring-boot!~/debug");
  CHECK(resolved("https://host.example/") == "https://host.example/.~~spring-boot!~/debug");
  CHECK(resolved("https://host.example:8443/app") == "https://host.example:8443/app/.~~spring-boot!~/debug");
  CHECK(resolved("http://host.example/shop/app/") == "http://host.example/shop/app/.~~spring-boot!~/debug");
  CHECK(warning.empty());
  // No scheme: https, unless the port says otherwise or the host is this machine.
  CHECK(resolved("host.example") == "https://host.example/.~~spring-boot!~/debug");
  CHECK(resolved("host.example:443/app") == "https://host.example:443/app/.~~spring-boot!~/debug");
  CHECK(resolved("host.example:8080") == "http://host.example:8080/.~~spring-boot!~/debug");
  CHECK(resolved("localhost") == "http://localhost/.~~spring-boot!~/debug");
  CHECK(resolved("127.0.0.1:9000") == "http://127.0.0.1:9000/.~~spring-boot!~/debug");
  // A path the shell mangled (the '!' eaten) is used as given, with a warning that says what to do.
  CHECK(resolved("https://host.example/.~~spring-boot~/debug") == "https://host.example/.~~spring-boot~/debug");
  CHECK(warning.find("does not end in /.~~spring-boot!~/debug") != std::string::npos);
  CHECK(warning.find("single quotes") != std::string::npos);
}

TEST_CASE("a forward's URL is resolved the same way") {
  std::string error;
  auto forward = parse_forward("8001=host.example/app", error);
  REQUIRE(forward);
  CHECK(forward->url == "https://host.example/app/.~~spring-boot!~/debug");
  CHECK(forward->url_warning.empty());
}

TEST_CASE("the secret comes from --secret-file or TUNNEL_AGENT_SECRET, never the command line") {
  Run run;
  run.env["TUNNEL_AGENT_SECRET"] = "from-env";
  auto r = run({kUrl});
  REQUIRE(r.config);
  CHECK(r.config->secret == "from-env");
  CHECK(r.config->secret_source == "TUNNEL_AGENT_SECRET");

  char path[] = "/tmp/tunnel-secret-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, "from-file\n", 10) == 10);
  close(fd);
  r = run({"--secret-file", path, kUrl});
  REQUIRE(r.config);
  CHECK(r.config->secret == "from-file");  // the file wins over the environment
  CHECK(r.config->warnings.empty());       // mkstemp made it 0600

  // Readable by others: a warning, as ssh gives for a key; it still works.
  REQUIRE(chmod(path, 0644) == 0);
  r = run({"--secret-file", path, kUrl});
  REQUIRE(r.config);
  REQUIRE(r.config->warnings.size() == 1);
  CHECK(r.config->warnings[0] == fmt::format("the secret file {} can be read by other users (mode 0644): chmod 600 {}",
                                             path, path));

  // A device that never ends is no secret file: refused after 64 KiB, not read for ever.
  r = Run{}({"--secret-file", "/dev/zero", kUrl});
  CHECK_FALSE(r.config);
  CHECK(r.message.find("the secret file /dev/zero holds more than 64 KiB") != std::string::npos);

  r = Run{}({"--secret-file", "/nonexistent/secret", kUrl});
  CHECK_FALSE(r.config);
  CHECK(r.exit_code == 2);
  CHECK(r.message.find("cannot read the secret file /nonexistent/secret") != std::string::npos);

  r = Run{}({"--secret", "x", kUrl});
  CHECK_FALSE(r.config);
  CHECK(r.exit_code == 2);
  std::remove(path);
}

TEST_CASE("options and their errors") {
  auto r = Run{}({"--on-busy=refuse", "-l", "0", "-v", kUrl});
  REQUIRE(r.config);
  CHECK(r.config->on_busy == BusyPolicy::refuse);
  CHECK(r.config->forwards[0].listen.port == 0);
  CHECK(r.config->log_level == log::Level::debug);
  CHECK_FALSE(r.config->curl_trace);
  CHECK(Run{}({"-vv", kUrl}).config->curl_trace);
  CHECK(Run{}({"-q", kUrl}).config->log_level == log::Level::error);

  r = Run{}({"--on-busy=maybe", kUrl});
  CHECK(r.exit_code == 2);
  CHECK(r.message.find("--help") != std::string::npos);
  r = Run{}({});
  CHECK(r.exit_code == 2);
  CHECK(r.message.find("URL") != std::string::npos);
  r = Run{}({"-q", "-v", kUrl});
  CHECK(r.exit_code == 2);

  r = Run{}({"--help"});
  CHECK(r.exit_code == 0);
  CHECK_FALSE(r.config);
  CHECK(r.message.find("--listen") != std::string::npos);
  CHECK(r.message.find("TUNNEL_AGENT_SECRET") != std::string::npos);
  r = Run{}({"--version"});
  CHECK(r.exit_code == 0);
  CHECK(r.message.find("tunnel-agent " TUNNEL_AGENT_VERSION) == 0);
}

TEST_CASE("every number of seconds must be finite: nan turned a timeout off") {
  for (const char* option : {"--connect-timeout", "--request-timeout", "--stall-warning", "--retry-window",
                             "--stdio-linger", "--stats-interval"}) {
    for (const char* value : {"nan", "NaN", "inf", "-inf"}) {
      CAPTURE(option);
      CAPTURE(value);
      auto r = Run{}({option, value, kUrl});
      CHECK_FALSE(r.config);
      CHECK(r.exit_code == 2);
      CHECK(r.message.find(option) != std::string::npos);
    }
  }
  // From the environment too.
  auto r = Run{{{"TUNNEL_AGENT_REQUEST_TIMEOUT", "nan"}}}({kUrl});
  CHECK_FALSE(r.config);
  CHECK(r.message.find("finite") != std::string::npos);
  CHECK(Run{}({"--request-timeout", "2.5", kUrl}).config->request_timeout_ms == 2500);
}

TEST_CASE("proxies: --proxy, else the environment as curl reads it, unless --no-proxy") {
  auto r = Run{}({"--proxy", "http://u:p%40ss@proxy.example:3128", kUrl});
  REQUIRE(r.config);
  REQUIRE(r.config->proxy.hops.size() == 1);
  CHECK(r.config->proxy.hops[0].display == "proxy.example:3128");
  CHECK(r.config->proxy.hops[0].source == "--proxy");
  CHECK(r.config->proxy.hops[0].port == 3128);

  CHECK(Run{}({"--proxy", "proxy.example", kUrl}).config->proxy.hops[0].port == 1080);  // curl's default

  Run env;
  env.env = {{"http_proxy", "http://h:1"}, {"https_proxy", "http://s:2"}, {"all_proxy", "http://a:3"},
             {"HTTP_PROXY", "http://upper:4"}, {"no_proxy", "internal.example"}};
  r = env({kUrl});  // an http:// endpoint: http_proxy
  REQUIRE(r.config->proxy.hops.size() == 1);
  CHECK(r.config->proxy.hops[0].display == "h:1");
  CHECK(r.config->proxy.hops[0].source == "http_proxy");
  CHECK(r.config->proxy.no_proxy == "internal.example");
  r = env({"https://x.example/.~~spring-boot!~/debug"});  // https://: https_proxy
  CHECK(r.config->proxy.hops[0].display == "s:2");
  env.env.erase("http_proxy");
  r = env({kUrl});  // HTTP_PROXY (upper case) is never read, as in curl: all_proxy
  CHECK(r.config->proxy.hops[0].source == "all_proxy");
  CHECK(env({"--no-proxy", kUrl}).config->proxy.hops.empty());
  CHECK(env({"--proxy", "http://explicit:9", kUrl}).config->proxy.hops[0].source == "--proxy");
  CHECK(Run{}({kUrl}).config->proxy.hops.empty());
}

TEST_CASE("a proxy whose no_proxy covers the endpoint's host is dropped, and the config says why") {
  Run env;
  env.env = {{"https_proxy", "http://dead.example:9"}, {"no_proxy", "localhost,.corp.example"}};
  auto r = env({"https://app.corp.example/.~~spring-boot!~/debug"});
  REQUIRE(r.config);
  CHECK(r.config->forwards.front().proxy.hops.empty());
  CHECK(r.config->forwards.front().proxy.bypassed ==
        "https_proxy (dead.example:9) is not used: app.corp.example is in no_proxy (localhost,.corp.example)");
  r = env({"https://app.elsewhere.example/.~~spring-boot!~/debug"});
  CHECK(r.config->forwards.front().proxy.hops.size() == 1);
  CHECK(r.config->forwards.front().proxy.bypassed.empty());
}

TEST_CASE("proxy errors") {
  auto r = Run{}({"--proxy", "socks5://p:1", kUrl});
  CHECK(r.exit_code == 2);
  CHECK(r.message.find("unsupported proxy scheme 'socks5'") != std::string::npos);
  r = Run{}({"--proxy", "http://p:1", "--no-proxy", kUrl});
  CHECK(r.exit_code == 2);
  r = Run{}({"--proxy", "http://a:1", "--proxy", "https://b:2", kUrl});
  CHECK(r.exit_code == 2);
  CHECK(r.message.find("proxy 2 (b:2) is an https:// proxy: in a chain every proxy must be http://") !=
        std::string::npos);
  CHECK(Run{}({"--proxy", "http://a:1", "--proxy", "http://b:2", "--proxy", "http://c:3", kUrl}).config->proxy.hops.size() ==
        3);
  Run with_password;
  with_password.env["TUNNEL_AGENT_PROXY_PASSWORD"] = "pw";
  r = with_password({"--proxy", "http://a:1", kUrl});
  CHECK(r.exit_code == 2);
  CHECK(r.message.find("no --proxy-user") != std::string::npos);
  r = with_password({"--proxy", "http://a:1", "--proxy-user", "me", "--proxy-auth", "ntlm", kUrl});
  REQUIRE(r.config);
  CHECK(r.config->proxy.password == "pw");
  CHECK(r.config->proxy.auth == static_cast<long>(CURLAUTH_NTLM));
  r = Run{}({"--key", "/etc/hostname", kUrl});
  CHECK(r.exit_code == 2);
  CHECK(r.message.find("--key needs --cert") != std::string::npos);
  r = Run{}({"--cacert", "/nonexistent/ca.pem", kUrl});
  CHECK(r.exit_code == 2);
}

TEST_CASE("forwards: the URL with --listen, and every -L [HOST:]PORT=URL") {
  auto r = Run{}({"-L", "9001=https://a.example/x", "-L", "[::1]:9002=http://b.example/y", kUrl});
  REQUIRE(r.config);
  REQUIRE(r.config->forwards.size() == 3);
  CHECK(r.config->forwards[0].url == kUrl);
  CHECK(r.config->forwards[0].listen.port == 8000);
  CHECK(r.config->forwards[1].listen.host == "127.0.0.1");
  CHECK(r.config->forwards[1].listen.port == 9001);
  CHECK(r.config->forwards[1].url == "https://a.example/x/.~~spring-boot!~/debug");
  CHECK(r.config->forwards[2].listen.host == "::1");
  CHECK(r.config->forwards[2].url == "http://b.example/y/.~~spring-boot!~/debug");
  // Without the URL argument, -L alone.
  r = Run{}({"-L", "0.0.0.0:9001=https://a.example/x"});
  REQUIRE(r.config);
  CHECK(r.config->forwards.size() == 1);
  CHECK(r.config->forwards[0].listen.host == "0.0.0.0");
  // Proxies from the environment follow each endpoint's scheme.
  r = Run{{{"https_proxy", "http://sec:1"}, {"http_proxy", "http://plain:2"}}}(
      {"-L", "9001=https://a.example/x", "-L", "9002=http://b.example/y"});
  REQUIRE(r.config);
  CHECK(r.config->forwards[0].proxy.hops.at(0).display == "sec:1");
  CHECK(r.config->forwards[1].proxy.hops.at(0).display == "plain:2");

  for (const auto& [args, says] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"-L", "9001"}, "write -L [HOST:]PORT=URL"},
           {{"-L", "9001=ftp://x/y"}, "the scheme must be http or https"},
           {{"-L", "host.example:9001=http://x/y"}, "the host must be an IP address"},
           {{"-L", "9001=http://x/y", "-L", "9001=http://z/y"}, "two forwards listen on 127.0.0.1:9001"},
           {{"-l", "9001", kUrl, "-L", "9001=http://z/y"}, "two forwards listen on 127.0.0.1:9001"},
       }) {
    CAPTURE(says);
    r = Run{}(args);
    CHECK_FALSE(r.config);
    CHECK(r.exit_code == 2);
    CHECK(r.message.find(says) != std::string::npos);
  }
}

TEST_CASE("extra headers: -H \"Name: value\", checked, repeatable") {
  auto r = Run{}({"-H", "Authorization: Bearer abc", "-H", "X-Team:  blue", kUrl});
  REQUIRE(r.config);
  CHECK(r.config->headers == std::vector<std::string>{"Authorization: Bearer abc", "X-Team:  blue"});
  for (const auto& [header, says] : std::vector<std::pair<std::string, std::string>>{
           {"NoColon", "write -H \"Name: value\""},
           {"Bad Name: x", "plain header name"},
           {": x", "plain header name"},
           {"x-seq: 5", "-H cannot set x-seq"},
           {"Content-Type: text/plain", "-H cannot set Content-Type"},
           {"X-A: one\ntwo", "contains a line break"},
       }) {
    CAPTURE(header);
    r = Run{}({"-H", header, kUrl});
    CHECK_FALSE(r.config);
    CHECK(r.message.find(says) != std::string::npos);
  }
  std::vector<std::string> many;
  for (size_t i = 0; i <= kMaxHeaders; ++i) many.insert(many.end(), {"-H", "X-N: " + std::to_string(i)});
  many.push_back(kUrl);
  CHECK(Run{}(many).message.find("at most 8 -H headers") != std::string::npos);
}

TEST_CASE("-H @FILE reads headers out of sight of ps; a credential on the command line is warned about") {
  char path[] = "/tmp/tunnel-headers-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  const std::string text = "# the gateway's token\r\nAuthorization: Bearer from-file\r\n\n  X-Team: orders\n";
  REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  close(fd);
  auto r = Run{}({"-H", std::string("@") + path, "-H", "X-Trace: abc", kUrl});
  REQUIRE(r.config);
  CHECK(r.config->headers == std::vector<std::string>{"Authorization: Bearer from-file", "X-Team: orders", "X-Trace: abc"});
  CHECK(r.config->warnings.empty());  // from a 0600 file, and X-Trace is no credential

  r = Run{}({"-H", "Authorization: Bearer on-the-line", "-H", "X-Api-Key: k", "-H", "X-Trace: abc", kUrl});
  REQUIRE(r.config);
  REQUIRE(r.config->warnings.size() == 2);
  CHECK(r.config->warnings[0] == "-H Authorization: ***: its value is visible to every user of this machine (ps, /proc); "
                                 "put the header in a file and give -H @FILE, or in the config file");
  CHECK(r.config->warnings[1].rfind("-H X-Api-Key: ***:", 0) == 0);
  for (const auto& w : r.config->warnings) CHECK(w.find("on-the-line") == std::string::npos);

  r = Run{}({"--proxy", "http://bob:pw@proxy.example:3128", kUrl});
  REQUIRE(r.config);
  REQUIRE(r.config->warnings.size() == 1);
  CHECK(r.config->warnings[0] == "--proxy proxy.example:3128: the password in its URL is visible to every user of this "
                                 "machine (ps, /proc); give it with --proxy-password-file or TUNNEL_AGENT_PROXY_PASSWORD (and "
                                 "the user with --proxy-user)");
  CHECK(Run{}({"--proxy", "http://bob@proxy.example:3128", kUrl}).config->warnings.empty());

  REQUIRE(chmod(path, 0644) == 0);
  r = Run{}({"-H", std::string("@") + path, kUrl});
  REQUIRE(r.config);
  REQUIRE(r.config->warnings.size() == 1);
  CHECK(r.config->warnings[0].find("can be read by other users (mode 0644)") != std::string::npos);
  unlink(path);

  r = Run{}({"-H", "@/nonexistent/headers", kUrl});
  CHECK_FALSE(r.config);
  CHECK(r.message.find("cannot read the header file /nonexistent/headers") != std::string::npos);
  CHECK(Run{}({"-H", "@/dev/zero", kUrl}).message.find("holds more than 64 KiB") != std::string::npos);
  const auto empty = Run{}({"-H", "@/dev/null", kUrl});
  CHECK_MESSAGE(empty.message.find("holds no header") != std::string::npos, empty.message);
}

namespace {
// The one line a usage error prints (its first line), or "" when the command line was taken.
std::string usage_error(std::vector<std::string> args) {
  auto r = tunnel::test::Run{{{"XDG_CONFIG_HOME", "/nonexistent"}}}(std::move(args));
  if (r.exit_code != 2) return "";
  return r.message.substr(0, r.message.find('\n'));
}
}  // namespace

TEST_CASE("usage errors say what is wrong, not what CLI11 did not expect") {
  using tunnel::test::kUrl;
  // A secret never goes on the command line: say where it goes instead.
  CHECK(usage_error({"--secret", "mysecret", kUrl}).find("there is no --secret") != std::string::npos);
  CHECK(usage_error({"--secret", "mysecret", kUrl}).find("--secret-file FILE") != std::string::npos);
  CHECK(usage_error({"--secret", "mysecret", kUrl}).find("mysecret") == std::string::npos);
  CHECK(usage_error({"--proxy-password=pw", kUrl}).find("--proxy-password-file") != std::string::npos);
  // A misspelling gets the option meant; something far from every option is named alone.
  CHECK(usage_error({"--listn", "8000", kUrl}) == "tunnel-agent: unknown option --listn: did you mean --listen?");
  CHECK(usage_error({"--retry-windw=3", kUrl}) == "tunnel-agent: unknown option --retry-windw: did you mean --retry-window?");
  CHECK(usage_error({"--frobnicate", kUrl}) == "tunnel-agent: unknown option --frobnicate");
  CHECK(usage_error({"--noproxy", "*", kUrl}).find("no_proxy variable") != std::string::npos);
  // Numbers of seconds, in words.
  CHECK(usage_error({"--retry-window", "abc", kUrl}) ==
        "tunnel-agent: --retry-window: 'abc' is not a number of seconds (write e.g. 20 or 0.5)");
  CHECK(usage_error({"--request-timeout", "nan", kUrl}).find("not a finite number") != std::string::npos);
  CHECK(usage_error({"--retry-window", "5000", kUrl}) == "tunnel-agent: --retry-window: 5000 is out of range: give 0 to 3600 seconds");
  // One URL; more go with -L.
  CHECK(usage_error({kUrl, "http://other.example"}).find("unexpected argument 'http://other.example'") != std::string::npos);
}

TEST_CASE("commands stand where the first argument is: options may come before check, and help is a command") {
  using tunnel::test::kUrl;
  tunnel::test::Run run;
  auto r = run({"--no-config", "check", kUrl});
  REQUIRE(r.config);
  CHECK(r.config->check);
  r = run({"--no-config", "--listen", "9000", "check", kUrl, "-v"});
  REQUIRE(r.config);
  CHECK(r.config->check);
  r = run({"--no-config", "--listen", "check"});  // "check" is --listen's value here, not the command
  CHECK(r.exit_code == 2);
  r = run({"help"});
  CHECK(r.exit_code == 0);
  CHECK(r.message.find("Usage: tunnel-agent") != std::string::npos);
  r = run({"check", "--help"});
  CHECK(r.exit_code == 0);
  CHECK(r.message.rfind("Usage: tunnel-agent check", 0) == 0);
  CHECK(run({"help", "check"}).message == r.message);
  r = run({"-V"});
  CHECK(r.message.rfind("tunnel-agent ", 0) == 0);
}

TEST_CASE("curl's spellings work where the meaning is the same, and -U USER:PASSWORD is split") {
  using tunnel::test::kUrl;
  tunnel::test::Run run;
  auto r = run({"--no-config", "--pinnedpubkey", "sha256//AAAA", "--proxy-ntlm", kUrl});
  REQUIRE(r.config);
  CHECK(r.config->tls.pinned_pubkey == "sha256//AAAA");
  CHECK(r.config->proxy.auth == CURLAUTH_NTLM);
  r = run({"--no-config", "-x", "http://proxy.example:3128", "-U", "jdoe:s3cret", kUrl});
  REQUIRE(r.config);
  CHECK(r.config->proxy.user == "jdoe");
  CHECK(r.config->proxy.password == "s3cret");
  REQUIRE(r.config->warnings.size() == 1);
  CHECK(r.config->warnings[0].find("--proxy-password-file") != std::string::npos);
  CHECK(r.config->warnings[0].find("s3cret") == std::string::npos);
  r = run({"--no-config", "-x", "http://proxy.example:3128", "--proxy-user", "jdoe:s3cret", kUrl, "--print-config"});
  CHECK(r.message.find("s3cret") == std::string::npos);
  CHECK(r.message.find("proxy-user = \"jdoe\"") != std::string::npos);
}

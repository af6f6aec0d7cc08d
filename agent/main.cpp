// tunnel-agent: local TCP listener -> HttpTunnelServer endpoint. Single thread, one libuv loop.
#include "agent/config.hpp"
#include "agent/proxy_auto.hpp"
#include "agent/listener.hpp"
#include "agent/check.hpp"
#include "agent/session_marker.hpp"
#include "agent/settings.hpp"
#include "agent/status_display.hpp"
#include "common/curl_uv_driver.hpp"
#include "common/log.hpp"
#include "common/platform.hpp"
#include "common/url.hpp"
#include "common/uv_handle.hpp"

#include <curl/curl.h>
#include <uv.h>


#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace {

struct App {
  std::vector<std::unique_ptr<tunnel::Listener>>* listeners = nullptr;
  tunnel::TunnelSession* stdio_session = nullptr;  // --stdio
  size_t running = 0;  // listeners not yet stopped
  tunnel::CurlUvDriver* driver = nullptr;
  tunnel::StatusDisplay* status = nullptr;
  tunnel::UvHandle<uv_signal_t> sigint;
  tunnel::UvHandle<uv_signal_t> sigterm;
  bool stopping = false;
};

// Called by libuv on SIGINT or the platform's other stop signal (SIGTERM, Ctrl-Break).
void on_uv_signal(uv_signal_t* handle, int signum) noexcept {
  auto* app = static_cast<App*>(handle->data);
  if (app->stopping) {
    tunnel::log::warn("second {}: exiting at once", signum == SIGINT ? "Ctrl-C" : tunnel::platform::stop_signal_name());
    std::_Exit(130);
  }
  app->stopping = true;
  app->status->close();  // the live lines go first: what follows is the log of the shutdown
  tunnel::log::info("stopping ({}): closing the listener and ending live sessions",
                    signum == SIGINT ? "Ctrl-C" : tunnel::platform::stop_signal_name());
  if (app->stdio_session != nullptr) app->stdio_session->stop();  // its end closes the rest
  for (auto& listener : *app->listeners) {
    listener->stop([app] {
      if (--app->running > 0) return;
      app->driver->close();
      app->sigint.close();
      app->sigterm.close();
    });
  }
}

// Each session takes a local socket and one or two HTTP connections: the soft limit on file
// descriptors (often 1024) goes up to the hard one, which an unprivileged process may do.
void raise_descriptor_limit() {
  if (const auto raised = tunnel::platform::raise_descriptor_limit()) {
    tunnel::log::debug("file descriptors: soft limit raised {}", *raised);
  }
}

}  // namespace

int main(int argc, char** argv) {
  tunnel::ParseResult parsed = tunnel::parse_command_line(argc, argv, [](const char* name) { return std::getenv(name); });
  if (!parsed.config) {
    std::fputs(parsed.message.c_str(), parsed.exit_code == 0 ? stdout : stderr);
    return parsed.exit_code;
  }
  tunnel::Config& config = *parsed.config;
  tunnel::log::set_level(config.log_level);
  tunnel::log::set_format(config.log_format);
  for (const auto& warning : config.warnings) tunnel::log::warn("{}", warning);
  tunnel::platform::ignore_broken_pipes();
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    tunnel::log::error("cannot initialise libcurl");
    return 1;
  }

  // --pac, --proxy-auto: the script picks each forward's proxy, once, before anything connects.
  const tunnel::AutoProxyResult automatic = tunnel::resolve_auto_proxies(config, [](const char* name) -> std::optional<std::string> {
    const char* value = std::getenv(name);
    return value ? std::optional<std::string>(value) : std::nullopt;
  });
  for (const auto& warning : automatic.warnings) tunnel::log::warn("{}", warning);
  if (!automatic.error.empty()) {
    tunnel::log::error("{}", automatic.error);
    curl_global_cleanup();
    return 1;
  }

  if (config.check) {
    const int code = tunnel::run_check(config);
    curl_global_cleanup();
    return code;
  }

  for (const auto& forward : config.forwards) {
    if ((config.secret || forward.secret) && forward.url.rfind("http://", 0) == 0) {
      tunnel::log::warn("the secret travels unencrypted over http:// to {}: anyone on the path can read it; use "
                        "https:// where the server offers it",
                        forward.url);
    }
    if (!forward.proxy.bypassed.empty()) tunnel::log::info("direct to {}: {}", forward.url, forward.proxy.bypassed);
    for (size_t i = 0; i < forward.proxy.hops.size(); ++i) {
      const auto& hop = forward.proxy.hops[i];
      tunnel::log::info("proxy {}: {}{} (from {}{}){}", i + 1, hop.url.rfind("https://", 0) == 0 ? "https://" : "",
                        hop.display, hop.source,
                        i == 0 && !forward.proxy.user.empty() ? ", user " + forward.proxy.user : "",
                        forward.proxy.no_proxy.empty() ? "" : "; not for the hosts in no_proxy: " + forward.proxy.no_proxy);
    }
  }
  for (const auto& forward : config.forwards) {
    if (config.secret || forward.secret) continue;
    tunnel::log::info("no secret given (--secret-file or TUNNEL_AGENT_SECRET): requests{} carry no {} header",
                      config.forwards.size() > 1 ? " to " + forward.url : "", config.secret_header);
  }
  if (config.tls.insecure) {
    tunnel::log::warn("--insecure: the endpoint's TLS certificate is NOT checked; anyone on the path can pose as "
                      "the server and read the secret and the debugger's traffic");
  }
  if (config.tls.proxy_insecure) tunnel::log::warn("--proxy-insecure: the proxy's TLS certificate is NOT checked");

  raise_descriptor_limit();

  uv_loop_t loop;
  uv_loop_init(&loop);
  int exit_code = 0;
  {
    tunnel::CurlUvDriver driver(&loop);
    tunnel::EndpointLocks endpoint_locks;  // forwards to one endpoint take turns
    std::vector<std::unique_ptr<tunnel::Listener>> listeners;
    for (const auto& forward : config.forwards) {
      if (config.stdio) break;
      listeners.push_back(std::make_unique<tunnel::Listener>(&loop, driver, endpoint_locks, forward.listen,
                                                             config.on_busy, tunnel::session_settings(config, forward)));
      if (config.forwards.size() > 1) listeners.back()->name_sessions_by_port();
    }
    App app;
    app.listeners = &listeners;
    app.driver = &driver;
    // Signals first: once "listening on" is printed, Ctrl-C must already be handled.
    app.sigint.init(&loop, uv_signal_init);
    app.sigint.get()->data = &app;
    uv_signal_start(app.sigint.get(), &on_uv_signal, SIGINT);
    app.sigterm.init(&loop, uv_signal_init);
    app.sigterm.get()->data = &app;
    uv_signal_start(app.sigterm.get(), &on_uv_signal, tunnel::platform::stop_signal());
    // The live status line only where a person watches: a terminal, text logs, not --stdio (whose
    // stderr is often the terminal of the ssh session it carries).
    const bool live_line = config.status_line && !config.stdio && config.log_format == tunnel::log::Format::text &&
                           tunnel::StatusDisplay::stderr_is_terminal();
    std::unique_ptr<tunnel::TunnelSession> session;
    tunnel::StatusDisplay status(
        &loop,
        [&] {
          std::vector<tunnel::ForwardStatus> out;
          for (const auto& listener : listeners) out.push_back(listener->status());
          if (config.stdio) {
            tunnel::ForwardStatus stdio;
            stdio.listen = "stdio";
            stdio.endpoint = tunnel::host_port(config.forwards.front().url);
            if (app.stdio_session != nullptr) stdio.session = app.stdio_session->status();
            out.push_back(std::move(stdio));
          }
          return out;
        },
        live_line, static_cast<uint64_t>(config.stats_interval_ms));
    app.status = &status;
    std::string error;
    std::unique_ptr<tunnel::ProxyChain> chain;
    tunnel::SessionSettings stdio_settings;
    std::unique_ptr<tunnel::SessionMarker> stdio_marker;  // for as long as the process runs
    if (config.stdio) {
      // One session over standard input and output; the agent exits when it ends.
      stdio_settings = tunnel::session_settings(config, config.forwards.front());
      stdio_settings.output_outlives_input = true;
      stdio_settings.linger_ms = static_cast<uint64_t>(config.stdio_linger_ms);
      if (stdio_settings.http.proxy.hops.size() > 1) {
        chain = std::make_unique<tunnel::ProxyChain>(&loop, driver, stdio_settings.http);
        chain->start(error);
      }
      tunnel::LocalEnd end;
      if (error.empty() && end.open_stdio(&loop, error)) {
        session = std::make_unique<tunnel::TunnelSession>(
            &loop, driver, stdio_settings, chain.get(), std::move(end), "1", "stdio", [&](tunnel::TunnelSession& s) {
              exit_code = s.failed() ? 1 : 0;
              app.stdio_session = nullptr;
              status.close();
              if (chain) chain->close();
              driver.close();
              app.sigint.close();
              app.sigterm.close();
            });
        app.stdio_session = session.get();
        stdio_marker = std::make_unique<tunnel::SessionMarker>(stdio_settings.http.url);
        session->start();
      }
    } else {
      for (auto& listener : listeners) {
        if (!listener->start(error)) break;
        ++app.running;
      }
    }
    if (!error.empty()) {
      tunnel::log::error("{}", error);
      exit_code = 1;
      listeners.clear();  // nothing was accepted yet: no session to end
      status.close();
      driver.close();
      app.sigint.close();
      app.sigterm.close();
    } else {
      uv_run(&loop, UV_RUN_DEFAULT);
      if (!config.stdio) tunnel::log::info("stopped");
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // run the close callbacks of everything released above
  if (uv_loop_close(&loop) != 0) {
    tunnel::log::error("internal error: handles were left open at exit");
    exit_code = 70;
  }
  curl_global_cleanup();
  return exit_code;
}

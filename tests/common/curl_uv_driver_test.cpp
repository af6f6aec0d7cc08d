// The curl-libuv glue against a tiny in-process HTTP responder on 127.0.0.1, port 0.
#include "common/curl_uv_driver.hpp"
#include "common/http_exchange.hpp"
#include "common/uv_handle.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <functional>
#include <string>
#include <vector>

using namespace tunnel;

namespace {

// Accepts connections and answers every request on them with `response`, once it has seen the
// end of the request headers. Answers nothing when `response` is empty (a server that hangs).
struct Responder {
  uv_loop_t* loop;
  std::string response;
  UvHandle<uv_tcp_t> server;
  std::vector<std::unique_ptr<UvHandle<uv_tcp_t>>> clients;
  std::vector<std::string> requests;
  int port = 0;

  Responder(uv_loop_t* l, std::string r) : loop(l), response(std::move(r)) {
    REQUIRE(server.init(loop, uv_tcp_init) == 0);
    server.get()->data = this;
    sockaddr_in addr{};
    uv_ip4_addr("127.0.0.1", 0, &addr);
    REQUIRE(uv_tcp_bind(server.get(), reinterpret_cast<sockaddr*>(&addr), 0) == 0);
    REQUIRE(uv_listen(server.as_stream(), 8, &on_connection) == 0);
    sockaddr_in bound{};
    int len = sizeof bound;
    uv_tcp_getsockname(server.get(), reinterpret_cast<sockaddr*>(&bound), &len);
    port = ntohs(bound.sin_port);
  }

  static void on_connection(uv_stream_t* s, int) noexcept {
    auto* self = static_cast<Responder*>(s->data);
    auto client = std::make_unique<UvHandle<uv_tcp_t>>();
    client->init(self->loop, uv_tcp_init);
    uv_accept(s, client->as_stream());
    client->get()->data = self;
    self->requests.emplace_back();
    uv_read_start(
        client->as_stream(),
        [](uv_handle_t*, size_t, uv_buf_t* buf) {
          static char storage[4096];
          *buf = uv_buf_init(storage, sizeof storage);
        },
        [](uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
          auto* self = static_cast<Responder*>(stream->data);
          if (n <= 0) return;
          self->requests.back().append(buf->base, static_cast<size_t>(n));
          if (self->requests.back().find("\r\n\r\n") != std::string::npos && !self->response.empty()) {
            auto* req = new uv_write_t;
            uv_buf_t out = uv_buf_init(self->response.data(), static_cast<unsigned>(self->response.size()));
            uv_write(req, stream, &out, 1, [](uv_write_t* r, int) { delete r; });
          }
        });
    self->clients.push_back(std::move(client));
  }
};

struct Done final : Transfer {
  int calls = 0;
  CURLcode result = CURLE_OK;
  std::function<void()> then;
  void on_transfer_done(CURLcode r) noexcept override {
    ++calls;
    result = r;
    if (then) then();
  }
};

// A GET of `path` on 127.0.0.1:`port`, started on `driver`; `done` hears how it ended.
struct Get {
  Get(CurlUvDriver& driver, int port, const char* path)
      : options{make_options(port, path)}, exchange(options), started(false) {
    exchange.prepare_get(nullptr);
    started = driver.start(exchange.easy(), &done) == CURLM_OK;
  }
  static HttpOptions make_options(int port, const char* path) {
    HttpOptions o;
    o.url = fmt::format("http://127.0.0.1:{}{}", port, path);
    return o;
  }
  HttpOptions options;  // outlives the exchange, as it must
  HttpExchange exchange;
  Done done;
  bool started;
};

bool run_until(uv_loop_t* loop, const std::function<bool()>& done, uint64_t deadline_ms = 5000) {
  uint64_t end = uv_now(loop) + deadline_ms;
  while (!done() && uv_now(loop) < end) uv_run(loop, UV_RUN_ONCE);
  return done();
}

void close_all(uv_loop_t* loop) {
  uv_walk(loop, [](uv_handle_t* h, void*) { CHECK_MESSAGE(uv_is_closing(h), "a handle was left open"); }, nullptr);
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(loop) == 0);
}

}  // namespace

TEST_CASE("a GET through the driver returns status, watched header and body; nothing is left open") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    Responder responder(&loop, "HTTP/1.1 200 OK\r\nx-seq: 7\r\nContent-Length: 5\r\n\r\nhello");
    CurlUvDriver driver(&loop);
    HttpOptions options;
    options.url = fmt::format("http://127.0.0.1:{}/x", responder.port);
    HttpExchange exchange(options);
    exchange.watch_header("x-seq");
    CurlSlist headers(curl_slist_append(nullptr, "X-Test: 1"));
    exchange.prepare_get(headers.get());
    Done done;
    // A second request started from inside the completion callback reuses the same easy handle.
    done.then = [&] {
      if (done.calls == 1) {
        CHECK(std::string(exchange.body().begin(), exchange.body().end()) == "hello");
        exchange.prepare_get(headers.get());
        CHECK(driver.start(exchange.easy(), &done) == CURLM_OK);
      }
    };
    REQUIRE(driver.start(exchange.easy(), &done) == CURLM_OK);
    REQUIRE(run_until(&loop, [&] { return done.calls == 2; }));
    CHECK(done.result == CURLE_OK);
    CHECK(exchange.status() == 200);
    CHECK(exchange.has_header_value());
    CHECK(exchange.header_value() == "7");
    CHECK(std::string(exchange.body().begin(), exchange.body().end()) == "hello");
    REQUIRE(responder.requests.size() == 1);  // keep-alive: both requests on one connection
    CHECK(responder.requests[0].find("X-Test: 1\r\n") != std::string::npos);
    driver.close();
  }
  close_all(&loop);
}

TEST_CASE("a cancelled transfer is never reported, and the driver closes cleanly") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    Responder silent(&loop, "");
    CurlUvDriver driver(&loop);
    Get held(driver, silent.port, "/held");
    REQUIRE(held.started);
    REQUIRE(run_until(&loop, [&] { return !silent.requests.empty() && !silent.requests[0].empty(); }));
    driver.cancel(held.exchange.easy());
    // A late report would come from a later round of the loop: run a second transfer to its end,
    // which gives libcurl and libuv every chance to report the first one.
    Responder answering(&loop, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    Get other(driver, answering.port, "/other");
    REQUIRE(other.started);
    REQUIRE(run_until(&loop, [&] { return other.done.calls == 1; }));
    CHECK(other.done.result == CURLE_OK);
    CHECK(held.done.calls == 0);
    driver.close();
  }
  close_all(&loop);
}

TEST_CASE("a refused connection is reported as CURLE_COULDNT_CONNECT") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    int port = 0;
    {
      Responder gone(&loop, "");
      port = gone.port;
    }  // closed again: nothing listens on `port` any more
    uv_run(&loop, UV_RUN_NOWAIT);
    CurlUvDriver driver(&loop);
    Get refused(driver, port, "/");
    REQUIRE(refused.started);
    REQUIRE(run_until(&loop, [&] { return refused.done.calls == 1; }));
    CHECK(refused.done.result == CURLE_COULDNT_CONNECT);
    CHECK(describe_curl_error(refused.done.result, refused.exchange.error_detail()).find("connect") != std::string::npos);
    driver.close();
  }
  close_all(&loop);
}

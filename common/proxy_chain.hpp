// Chains of HTTP proxies: proxy 1, asked with CONNECT to reach proxy 2, ... the last one asked to
// reach the endpoint (docs/PROXIES.md).
//  - Hop 1 is a libcurl CONNECT_ONLY transfer through proxy 1, so every login scheme libcurl knows
//    works there; hops 2..N are CONNECTs the agent writes on that tunnel (Basic login from the
//    proxy's URL, or with none there, Negotiate from the user's Kerberos ticket when the proxy asks
//    for it). Everything runs on the event loop.
//  - The endpoint's requests reach the finished chain through a relay: CURLOPT_CONNECT_TO sends
//    libcurl's connections to a listener of the chain's own on 127.0.0.1, which splices each one to
//    a new chain. (libcurl 7.88 cannot take an already-connected socket: curl issue #10626.) The
//    relay accepts only the sockets libcurl opened through this chain.
#pragma once

#include "common/curl_uv_driver.hpp"
#include "common/http_options.hpp"
#include "common/uv_handle.hpp"

#include <curl/curl.h>
#include <uv.h>

#include <list>
#include <memory>
#include <set>
#include <string>

namespace tunnel {

class ProxyChain {
 public:
  ProxyChain(uv_loop_t* loop, CurlUvDriver& driver, const HttpOptions& options);
  ~ProxyChain();
  ProxyChain(const ProxyChain&) = delete;
  ProxyChain& operator=(const ProxyChain&) = delete;

  // Opens the relay listener. False with a message if it cannot.
  bool start(std::string& error);
  // Makes `easy` (a request to the endpoint) go through the chain.
  void attach(CURL* easy);
  // The last hop failure, if recent: it explains a request that failed.
  std::string recent_error() const;
  // Closes the relay and every link.
  void close();

 private:
  struct Link;
  struct Hop;

  static curl_socket_t on_curl_opensocket(void* clientp, curlsocktype purpose, curl_sockaddr* address) noexcept;
  static void on_uv_connection(uv_stream_t* server, int status) noexcept;
  static void on_uv_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) noexcept;
  static void on_uv_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void on_uv_write(uv_write_t* req, int status) noexcept;
  static void on_link_handle_closed(void* data) noexcept;

  void accept_link();
  void hop_done(Link& link, CURLcode result);
  void send_connect(Link& link);
  void on_connect_answer(Link& link, const char* data, size_t size);
  void splice(Link& link, std::string early_bytes);
  void fail(Link& link, std::string why);
  void drop(Link& link);
  bool write_to(Link& link, uv_stream_t* to, const char* data, size_t size);

  uv_loop_t* loop_;
  CurlUvDriver& driver_;
  const HttpOptions& options_;
  std::string endpoint_;  // host:port the last hop is asked to reach
  UvHandle<uv_tcp_t> relay_;
  std::string connect_to_;  // "::127.0.0.1:PORT"
  curl_slist* connect_to_list_ = nullptr;
  std::set<int> expected_ports_;  // local ports of the sockets libcurl opened towards the relay
  std::list<Link*> links_;        // live links; a dropped link deletes itself once its handles closed
  std::set<size_t> kerberos_hops_;  // hops 2..N that asked for Kerberos: later CONNECTs send the ticket at once
  std::string last_error_;
  uint64_t last_error_ns_ = 0;
};

}  // namespace tunnel

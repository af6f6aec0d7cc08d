// The platform seam on Windows: see platform.hpp. Built with Debian's mingw-w64 (scripts/build
// --windows) and tested under Wine.
#include "common/platform.hpp"

#include <fmt/format.h>

#include <winsock2.h>
#include <windows.h>

#include <csignal>
#include <iomanip>
#include <sstream>
#include <memory>

namespace tunnel::platform {

// Windows 10 has SIO_TCP_INFO (BytesInFlight), but not what is still queued in the send buffer,
// and Wine has neither: the agent goes by libcurl's hand-over (docs/PROTOCOL-NOTES.md).
std::optional<long> unacknowledged_bytes(curl_socket_t) { return std::nullopt; }

curl_socket_t open_socket(int family, int type, int protocol) {
  const SOCKET s = WSASocketW(family, type, protocol, nullptr, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  return s == INVALID_SOCKET ? CURL_SOCKET_BAD : s;
}

void close_socket(curl_socket_t sock) { closesocket(sock); }

curl_socket_t open_loopback_socket(int family, int type, int protocol, unsigned& port) {
  const curl_socket_t fd = open_socket(family, type, protocol);
  if (fd == CURL_SOCKET_BAD) return fd;
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int len = sizeof local;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
    close_socket(fd);
    return CURL_SOCKET_BAD;
  }
  port = ntohs(local.sin_port);
  return fd;
}

curl_socket_t duplicate_socket(curl_socket_t sock) {
  WSAPROTOCOL_INFOW info{};
  if (WSADuplicateSocketW(sock, GetCurrentProcessId(), &info) != 0) return CURL_SOCKET_BAD;
  const SOCKET s = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &info, 0,
                              WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  return s == INVALID_SOCKET ? CURL_SOCKET_BAD : s;
}

int open_socket_stream(uv_loop_t* loop, UvHandle<uv_any_handle>& handle, uv_os_sock_t sock) {
  int rc = handle.init(loop, [](uv_loop_t* l, uv_any_handle* h) { return uv_tcp_init(l, &h->tcp); });
  if (rc == 0) rc = uv_tcp_open(&handle.get()->tcp, sock);
  return rc;
}

std::string tcp_probe(const std::string& host_port, long timeout_ms) {
  // libcurl connects and stops there: its resolver and its words for what failed.
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> easy(curl_easy_init(), &curl_easy_cleanup);
  if (!easy) return "out of memory";
  char error[CURL_ERROR_SIZE] = {};
  const std::string url = "http://" + host_port + "/";
  curl_easy_setopt(easy.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy.get(), CURLOPT_PROXY, "");
  curl_easy_setopt(easy.get(), CURLOPT_CONNECT_ONLY, 1L);
  curl_easy_setopt(easy.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy.get(), CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(easy.get(), CURLOPT_ERRORBUFFER, error);
  const CURLcode rc = curl_easy_perform(easy.get());
  if (rc == CURLE_OK) return "";
  return error[0] != '\0' ? error : curl_easy_strerror(rc);
}

std::tm local_time(std::time_t t) {
  std::tm out{};
  localtime_s(&out, &t);
  return out;
}

std::tm utc_time(std::time_t t) {
  std::tm out{};
  gmtime_s(&out, &t);
  return out;
}

std::optional<std::time_t> parse_utc(const std::string& text, const char* format) {
  std::tm when{};
  std::istringstream in(text);
  in >> std::get_time(&when, format);
  if (in.fail()) return std::nullopt;
  return _mkgmtime(&when);
}

// Windows guards a file with its ACL, which a user's profile folder keeps private: not checked.
std::string readable_by_others(const std::string&) { return ""; }
std::string make_private_command(const std::string& path) { return "icacls " + path + " /inheritance:r /grant:r %USERNAME%:R"; }

bool file_exists(const std::string& path) { return GetFileAttributesA(path.c_str()) != INVALID_FILE_ATTRIBUTES; }

std::optional<std::string> default_config_path(const std::function<const char*(const char*)>& getenv) {
  const char* appdata = getenv("APPDATA");
  if (appdata != nullptr && appdata[0] != '\0') return std::string(appdata) + "\\tunnel-agent\\config.toml";
  return std::nullopt;
}

std::optional<std::string> raise_descriptor_limit() { return std::nullopt; }
std::optional<long long> descriptor_limit() { return std::nullopt; }
std::optional<long long> descriptor_number(const uv_handle_t*) { return std::nullopt; }
void ignore_broken_pipes() {}  // Windows has no SIGPIPE: a write to a closed socket fails

int stop_signal() { return SIGBREAK; }
const char* stop_signal_name() { return "Ctrl-Break"; }
std::optional<int> status_signal() { return std::nullopt; }

size_t terminal_columns() {
  CONSOLE_SCREEN_BUFFER_INFO info{};
  if (GetConsoleScreenBufferInfo(GetStdHandle(STD_ERROR_HANDLE), &info) != 0) {
    const int columns = info.srWindow.Right - info.srWindow.Left + 1;
    if (columns > 0) return static_cast<size_t>(columns);
  }
  return 80;
}

}  // namespace tunnel::platform

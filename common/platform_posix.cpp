// The platform seam on Linux (and any POSIX system libuv runs on): see platform.hpp.
#include "common/platform.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/sockios.h>
#endif

#include <cerrno>
#include <csignal>
#include <cstring>

namespace tunnel::platform {

std::optional<long> unacknowledged_bytes(curl_socket_t sock) {
#ifdef SIOCOUTQ
  int unacked = 0;
  if (ioctl(sock, SIOCOUTQ, &unacked) != 0) return std::nullopt;
  return unacked;
#else
  (void)sock;
  return std::nullopt;  // macOS would need TCP_INFO's tcpi_snd_una
#endif
}

curl_socket_t open_socket(int family, int type, int protocol) {
  const int fd = ::socket(family, type | SOCK_CLOEXEC, protocol);
  return fd < 0 ? CURL_SOCKET_BAD : fd;
}

void close_socket(curl_socket_t sock) { ::close(sock); }

curl_socket_t open_loopback_socket(int family, int type, int protocol, unsigned& port) {
  const curl_socket_t fd = open_socket(family, type, protocol);
  if (fd == CURL_SOCKET_BAD) return fd;
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof local;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
    close_socket(fd);
    return CURL_SOCKET_BAD;
  }
  port = ntohs(local.sin_port);
  return fd;
}

curl_socket_t duplicate_socket(curl_socket_t sock) {
  const int fd = ::fcntl(sock, F_DUPFD_CLOEXEC, 0);
  return fd < 0 ? CURL_SOCKET_BAD : fd;
}

int open_socket_stream(uv_loop_t* loop, UvHandle<uv_any_handle>& handle, uv_os_sock_t sock) {
  int rc = handle.init(loop, [](uv_loop_t* l, uv_any_handle* h) { return uv_pipe_init(l, &h->pipe, 0); });
  if (rc == 0) rc = uv_pipe_open(&handle.get()->pipe, sock);
  return rc;
}

std::string tcp_probe(const std::string& host_port, long timeout_ms) {
  const size_t colon = host_port.rfind(':');
  std::string host = colon == std::string::npos ? host_port : host_port.substr(0, colon);
  const std::string port = colon == std::string::npos ? "80" : host_port.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return fmt::format("cannot resolve {}: {}", host, gai_strerror(rc));
  }
  std::string why = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int rc = connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = poll(&p, 1, static_cast<int>(timeout_ms));
      int err = 0;
      socklen_t len = sizeof err;
      if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
        rc = 0;
      } else {
        why = rc == 0 ? fmt::format("no answer within {} ms", timeout_ms) : std::strerror(err != 0 ? err : errno);
        rc = -1;
      }
    } else if (rc != 0) {
      why = std::strerror(errno);
    }
    ::close(fd);
    if (rc == 0) {
      freeaddrinfo(found);
      return "";
    }
  }
  freeaddrinfo(found);
  return why;
}

std::tm local_time(std::time_t t) {
  std::tm out{};
  localtime_r(&t, &out);
  return out;
}

std::tm utc_time(std::time_t t) {
  std::tm out{};
  gmtime_r(&t, &out);
  return out;
}

std::optional<std::time_t> parse_utc(const std::string& text, const char* format) {
  std::tm when{};
  if (strptime(text.c_str(), format, &when) == nullptr) return std::nullopt;
  return timegm(&when);
}

std::string readable_by_others(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return fmt::format("mode {:04o}", st.st_mode & 07777);
  }
  return "";
}

std::string make_private_command(const std::string& path) { return "chmod 600 " + path; }

bool file_exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

std::optional<std::string> default_config_path(const std::function<const char*(const char*)>& getenv) {
  const char* xdg = getenv("XDG_CONFIG_HOME");
  if (xdg != nullptr && xdg[0] == '/') return std::string(xdg) + "/tunnel-agent/config.toml";
  const char* home = getenv("HOME");
  if (home != nullptr && home[0] != '\0') return std::string(home) + "/.config/tunnel-agent/config.toml";
  return std::nullopt;
}

std::optional<std::string> raise_descriptor_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return std::nullopt;
  const rlim_t before = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) return std::nullopt;
  return fmt::format("from {} to {}", static_cast<unsigned long long>(before),
                     limit.rlim_max == RLIM_INFINITY ? std::string("unlimited")
                                                     : std::to_string(static_cast<unsigned long long>(limit.rlim_max)));
}

std::optional<long long> descriptor_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return std::nullopt;
  return static_cast<long long>(limit.rlim_cur);
}

std::optional<long long> descriptor_number(const uv_handle_t* handle) {
  uv_os_fd_t fd = -1;
  if (uv_fileno(handle, &fd) != 0) return std::nullopt;
  return fd;
}

void ignore_broken_pipes() { std::signal(SIGPIPE, SIG_IGN); }

int stop_signal() { return SIGTERM; }
const char* stop_signal_name() { return "SIGTERM"; }
std::optional<int> status_signal() { return SIGUSR1; }

size_t terminal_columns() {
  winsize size{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

}  // namespace tunnel::platform

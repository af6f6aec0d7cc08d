// What differs between Linux (POSIX) and Windows, in one small seam: the rest of the tree uses only
// libuv, libcurl and standard C++. platform_posix.cpp and platform_windows.cpp implement it; CMake
// builds the one for the target. A macOS build would take the POSIX file as it is (see README).
#pragma once

#include "common/uv_handle.hpp"

#include <curl/curl.h>

#include <cstddef>
#include <ctime>
#include <functional>
#include <optional>
#include <string>

namespace tunnel::platform {

// ---- sockets --------------------------------------------------------------------------------

// Bytes written to `sock` that the peer has not acknowledged yet (Linux: SIOCOUTQ), or nullopt
// when this system cannot tell (Windows): the caller then takes "handed to the kernel" for "read".
std::optional<long> unacknowledged_bytes(curl_socket_t sock);

// A stream socket that child processes do not inherit; CURL_SOCKET_BAD on failure.
curl_socket_t open_socket(int family, int type, int protocol);
void close_socket(curl_socket_t sock);
// A socket of that kind bound to 127.0.0.1 on a port the system picks, written to `port`.
curl_socket_t open_loopback_socket(int family, int type, int protocol, unsigned& port);
// A second descriptor of `sock`, ours to close, while libcurl closes its own; CURL_SOCKET_BAD on failure.
curl_socket_t duplicate_socket(curl_socket_t sock);

// Opens the connected socket `sock` (one end of uv_socketpair) as a libuv stream in `handle`: a pipe
// handle on POSIX, a TCP handle on Windows (whose socket pairs are loopback TCP). libuv status.
int open_socket_stream(uv_loop_t* loop, UvHandle<uv_any_handle>& handle, uv_os_sock_t sock);

// "" when something accepts a TCP connection at host:port within the timeout, else why not.
std::string tcp_probe(const std::string& host_port, long timeout_ms);

// ---- time -----------------------------------------------------------------------------------

std::tm local_time(std::time_t t);
std::tm utc_time(std::time_t t);
// `text` read as a UTC time in strptime's `format` ("%b %d %H:%M:%S %Y"), or nullopt.
std::optional<std::time_t> parse_utc(const std::string& text, const char* format);

// ---- files and places -----------------------------------------------------------------------

// How `path` (a regular file holding a secret) can be read by other users ("mode 0644"), or ""
// when it cannot or this system's permissions are not modes (Windows ACLs: not checked).
std::string readable_by_others(const std::string& path);
// The command that makes `path` private to its owner, for a warning ("chmod 600 PATH").
std::string make_private_command(const std::string& path);
bool file_exists(const std::string& path);

// The user's config file: $XDG_CONFIG_HOME or ~/.config on POSIX, %APPDATA% on Windows, each with
// tunnel-agent/config.toml; nullopt when the environment names no such place.
std::optional<std::string> default_config_path(const std::function<const char*(const char*)>& getenv);

// ---- process --------------------------------------------------------------------------------

// Raises the soft limit on open descriptors to the hard one; what it was and became, for a log
// line, or nullopt when there was nothing to raise (Windows has no such limit).
std::optional<std::string> raise_descriptor_limit();
// The limit on open descriptors, or nullopt for none known; and the number of the one `handle`
// holds, or nullopt (Windows handles are no small numbers).
std::optional<long long> descriptor_limit();
std::optional<long long> descriptor_number(const uv_handle_t* handle);
// A write to a closed socket must fail with an error, not kill the process (POSIX's SIGPIPE).
void ignore_broken_pipes();

// The second signal that asks the agent to stop, beside SIGINT (Ctrl-C): SIGTERM on POSIX,
// SIGBREAK (Ctrl-Break) on Windows; and its name for messages.
int stop_signal();
const char* stop_signal_name();
// The signal that asks for a status report (SIGUSR1), or nullopt where there is none (Windows).
std::optional<int> status_signal();

// Columns of the terminal on standard error (80 when it cannot be known).
size_t terminal_columns();

}  // namespace tunnel::platform

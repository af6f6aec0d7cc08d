// SessionMarker on Windows (see session_marker.hpp): the same mark, as a shared byte-range lock
// (LockFileEx) on a file per endpoint in %LOCALAPPDATA%\tunnel-agent, which holds the pid. Windows
// drops a process's locks when it ends, however. The lock sits on a byte far past the pid, since a
// Windows lock keeps others from reading the bytes it covers.
#include "agent/session_marker.hpp"

#include <windows.h>

#include <fcntl.h>
#include <io.h>
#include <share.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace tunnel {
namespace {

constexpr DWORD kLockOffset = 1u << 30;

uint64_t fnv1a(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

int open_lock(const std::string& url) {
  const std::string path = SessionMarker::path_for(url);
  if (path.empty()) return -1;
  int fd = -1;
  if (_sopen_s(&fd, path.c_str(), _O_RDWR | _O_CREAT | _O_BINARY | _O_NOINHERIT, _SH_DENYNO, _S_IREAD | _S_IWRITE) != 0) {
    return -1;
  }
  return fd;
}

bool lock(int fd, DWORD flags) {
  OVERLAPPED at{};
  at.Offset = kLockOffset;
  return LockFileEx(reinterpret_cast<HANDLE>(_get_osfhandle(fd)), flags | LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &at) != 0;
}

}  // namespace

std::string SessionMarker::path_for(const std::string& url) {
  const char* local = std::getenv("LOCALAPPDATA");
  if (local == nullptr || *local == '\0') return "";
  const std::string dir = std::string(local) + "\\tunnel-agent";
  if (CreateDirectoryA(dir.c_str(), nullptr) == 0 && GetLastError() != ERROR_ALREADY_EXISTS) return "";
  char name[40];
  std::snprintf(name, sizeof name, "\\endpoint-%016llx.lock", static_cast<unsigned long long>(fnv1a(url)));
  return dir + name;
}

SessionMarker::SessionMarker(const std::string& url) {
  fd_ = open_lock(url);
  if (fd_ < 0) return;
  if (!lock(fd_, 0)) {  // shared; a check probing it this instant: no mark, no wait
    _close(fd_);
    fd_ = -1;
    return;
  }
  const std::string pid = std::to_string(static_cast<long>(GetCurrentProcessId())) + "\n";
  if (_chsize_s(fd_, 0) == 0 && _lseek(fd_, 0, SEEK_SET) == 0) {
    [[maybe_unused]] const int n = _write(fd_, pid.data(), static_cast<unsigned>(pid.size()));
  }
}

SessionMarker::~SessionMarker() {
  if (fd_ >= 0) _close(fd_);  // drops the lock
}

long SessionMarker::live_session(const std::string& url) {
  const int fd = open_lock(url);
  if (fd < 0) return 0;
  long pid = 0;
  if (!lock(fd, LOCKFILE_EXCLUSIVE_LOCK)) {
    char text[32] = {};
    const int n = _read(fd, text, sizeof text - 1);
    pid = n > 0 ? std::strtol(text, nullptr, 10) : 0;
    if (pid <= 0) pid = -1;
  }
  _close(fd);  // drops the lock, if taken
  return pid;
}

}  // namespace tunnel

#include "agent/session_marker.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace tunnel {
namespace {

// A private directory: made 0700 if missing, and used only if it is ours and no one else's to write.
std::string private_dir() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  const std::string dir = runtime != nullptr && *runtime != '\0'
                              ? std::string(runtime) + "/tunnel-agent"
                              : "/tmp/tunnel-agent-" + std::to_string(static_cast<unsigned long>(getuid()));
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return "";
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
      (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return "";
  }
  return dir;
}

// FNV-1a: the same name for the same URL in every build and process.
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
  return ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
}

}  // namespace

std::string SessionMarker::path_for(const std::string& url) {
  const std::string dir = private_dir();
  if (dir.empty()) return "";
  char name[40];
  std::snprintf(name, sizeof name, "/endpoint-%016llx.lock", static_cast<unsigned long long>(fnv1a(url)));
  return dir + name;
}

SessionMarker::SessionMarker(const std::string& url) {
  fd_ = open_lock(url);
  if (fd_ < 0) return;
  if (::flock(fd_, LOCK_SH | LOCK_NB) != 0) {  // a check probing it this instant: no mark, no wait
    ::close(fd_);
    fd_ = -1;
    return;
  }
  const std::string pid = std::to_string(static_cast<long>(getpid())) + "\n";
  if (::ftruncate(fd_, 0) == 0) {
    [[maybe_unused]] const ssize_t n = ::pwrite(fd_, pid.data(), pid.size(), 0);
  }
}

SessionMarker::~SessionMarker() {
  if (fd_ >= 0) ::close(fd_);  // drops the lock
}

long SessionMarker::live_session(const std::string& url) {
  const int fd = open_lock(url);
  if (fd < 0) return 0;
  long pid = 0;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char text[32] = {};
    const ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
    pid = n > 0 ? std::strtol(text, nullptr, 10) : 0;
    if (pid <= 0) pid = -1;
  }
  ::close(fd);  // drops the lock, if taken
  return pid;
}

}  // namespace tunnel

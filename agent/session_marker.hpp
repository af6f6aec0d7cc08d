// A live session's mark on its endpoint, visible to the user's other processes: `tunnel-agent
// check` refuses to probe an endpoint a session runs on, since its probe would end that session.
// The mark is a shared flock on a file per endpoint in $XDG_RUNTIME_DIR/tunnel-agent (else
// /tmp/tunnel-agent-UID), holding the pid; the kernel drops it when the process ends, however.
#pragma once

#include <string>

namespace tunnel {

class SessionMarker {
 public:
  // Marks `url` for as long as this object lives; does nothing when the file cannot be had.
  explicit SessionMarker(const std::string& url);
  ~SessionMarker();
  SessionMarker(const SessionMarker&) = delete;
  SessionMarker& operator=(const SessionMarker&) = delete;

  // A process with a live session on `url`: its pid (-1 when it cannot be read), or 0 for none.
  static long live_session(const std::string& url);
  // The lock file for `url` ("" when no private directory can be had).
  static std::string path_for(const std::string& url);

 private:
  int fd_ = -1;
};

}  // namespace tunnel

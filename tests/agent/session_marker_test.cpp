#include "agent/session_marker.hpp"

#include <doctest/doctest.h>

#include <uv.h>

#include <filesystem>

using tunnel::SessionMarker;

TEST_CASE("a session's mark is seen by others for as long as it lives, per endpoint") {
  const std::string url = "http://127.0.0.1:1/marker-test-" + std::to_string(uv_os_getpid());
  CHECK(SessionMarker::live_session(url) == 0);
  {
    SessionMarker mark(url);
    CHECK(SessionMarker::live_session(url) == uv_os_getpid());
    CHECK(SessionMarker::live_session(url + "-other") == 0);
    SessionMarker second(url);  // two sessions (two forwards) share the mark
    CHECK(SessionMarker::live_session(url) == uv_os_getpid());
  }
  CHECK(SessionMarker::live_session(url) == 0);
  const std::string path = SessionMarker::path_for(url);
  CHECK(path.find("endpoint-") != std::string::npos);
  CHECK(path == SessionMarker::path_for(url));  // stable: another process finds the same file
  std::filesystem::remove(path);
}

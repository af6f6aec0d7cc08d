// One endpoint carries one session at a time, process-wide: the server behind it has one target
// connection, so two sessions (two forwards to the same URL) would mix their clients' bytes into one
// target stream. A forward takes the endpoint's lock before it starts a session; one that finds it
// taken waits in line (or refuses, by its --on-busy policy) and is called when its turn comes.
// Pure bookkeeping, unit-tested in tests/agent.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <string>
#include <utility>

namespace tunnel {

class EndpointLocks {
 public:
  using Owner = const void*;

  // The same endpoint however it is written: scheme, host (lower case), port (the scheme's default
  // when absent) and path.
  static std::string key(const std::string& url);

  // True if `owner` holds the lock of `endpoint` now (it was free, or already its own).
  bool acquire(const std::string& endpoint, Owner owner);
  // `owner` waits for the lock (once in line however often asked); `on_turn` runs when it is handed
  // the lock, from inside release().
  void wait(const std::string& endpoint, Owner owner, std::function<void()> on_turn);
  // `owner` lets go; the first in line gets the lock and its callback runs.
  void release(const std::string& endpoint, Owner owner);
  // `owner` leaves: out of every line, and any lock it holds is released.
  void forget(Owner owner);
  Owner holder(const std::string& endpoint) const;
  // How to name an owner in a message ("the forward on 127.0.0.1:8000").
  void label(Owner owner, std::string text) { labels_[owner] = std::move(text); }
  std::string label_of(Owner owner) const;

 private:
  struct Line {
    Owner holder = nullptr;
    std::deque<std::pair<Owner, std::function<void()>>> waiting;
  };
  std::map<std::string, Line> lines_;
  std::map<Owner, std::string> labels_;
};

}  // namespace tunnel

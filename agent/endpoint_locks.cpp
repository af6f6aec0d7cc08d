#include "agent/endpoint_locks.hpp"

#include "common/url.hpp"

#include <algorithm>
#include <cctype>

namespace tunnel {

std::string EndpointLocks::key(const std::string& url) {
  std::string host = url_part(url, CURLUPART_HOST);
  if (host.empty()) return url;
  std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
  return url_part(url, CURLUPART_SCHEME) + "://" + host + ":" + url_part(url, CURLUPART_PORT, CURLU_DEFAULT_PORT) +
         url_part(url, CURLUPART_PATH);
}

bool EndpointLocks::acquire(const std::string& endpoint, Owner owner) {
  Line& line = lines_[endpoint];
  if (line.holder == nullptr && line.waiting.empty()) line.holder = owner;  // no queue-jumping
  return line.holder == owner;
}

void EndpointLocks::wait(const std::string& endpoint, Owner owner, std::function<void()> on_turn) {
  Line& line = lines_[endpoint];
  if (line.holder == owner) return;
  for (const auto& [who, _] : line.waiting) {
    if (who == owner) return;
  }
  line.waiting.emplace_back(owner, std::move(on_turn));
}

void EndpointLocks::release(const std::string& endpoint, Owner owner) {
  auto it = lines_.find(endpoint);
  if (it == lines_.end() || it->second.holder != owner) return;
  Line& line = it->second;
  line.holder = nullptr;
  if (line.waiting.empty()) return;
  auto [next, on_turn] = std::move(line.waiting.front());
  line.waiting.pop_front();
  line.holder = next;
  on_turn();  // may release again (nothing left to start), handing it on
}

void EndpointLocks::forget(Owner owner) {
  for (auto& [endpoint, line] : lines_) {
    auto& w = line.waiting;
    w.erase(std::remove_if(w.begin(), w.end(), [&](const auto& entry) { return entry.first == owner; }), w.end());
  }
  for (auto& [endpoint, line] : lines_) {
    if (line.holder == owner) release(endpoint, owner);
  }
  labels_.erase(owner);
}

EndpointLocks::Owner EndpointLocks::holder(const std::string& endpoint) const {
  auto it = lines_.find(endpoint);
  return it == lines_.end() ? nullptr : it->second.holder;
}

std::string EndpointLocks::label_of(Owner owner) const {
  auto it = labels_.find(owner);
  return it == labels_.end() ? std::string("another forward") : it->second;
}

}  // namespace tunnel

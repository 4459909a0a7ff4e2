#include "broker/failure_detector.h"

#include <algorithm>
#include <set>

namespace kv {

void FailureDetector::OnRing(const std::vector<NodeAddress>& members, TimePoint now) {
  std::set<std::string> keys;
  for (const auto& address : members) {
    std::string key = address.ToString();
    keys.insert(key);
    auto it = members_.find(key);
    if (it == members_.end()) {
      members_.emplace(key, Member{address, now, std::nullopt});
    } else {
      it->second.address = address;  // keep the newest peer port
    }
  }
  std::erase_if(members_, [&](const auto& entry) { return keys.count(entry.first) == 0; });
}

std::optional<std::chrono::milliseconds> FailureDetector::OnHeartbeat(const std::string& key,
                                                                      TimePoint now) {
  auto it = members_.find(key);
  if (it == members_.end()) return std::nullopt;
  auto silent =
      std::chrono::duration_cast<std::chrono::milliseconds>(now - it->second.last_heard);
  if (it->second.reported_at) return silent;  // being removed: no way back
  it->second.last_heard = std::max(it->second.last_heard, now);
  return silent;
}

FailureDetector::TimePoint FailureDetector::DueAt(const Member& m) const {
  TimePoint due = m.last_heard + timeout_;
  if (m.reported_at) due = std::max(due, *m.reported_at + timeout_);
  return due;
}

std::vector<NodeAddress> FailureDetector::TakeDue(TimePoint now) {
  std::vector<NodeAddress> due;
  if (!enabled()) return due;
  for (auto& [key, m] : members_) {
    if (now < DueAt(m)) continue;
    m.reported_at = now;
    due.push_back(m.address);
  }
  return due;
}

std::optional<FailureDetector::TimePoint> FailureDetector::NextDeadline() const {
  if (!enabled()) return std::nullopt;
  std::optional<TimePoint> next;
  for (const auto& [key, m] : members_) {
    TimePoint due = DueAt(m);
    if (!next || due < *next) next = due;
  }
  return next;
}

}  // namespace kv

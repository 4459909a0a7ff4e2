// The broker's failure detector: when each ring member was last heard from
// (its heartbeats), and which members have been silent for the failure
// timeout and are due to be reported to the ECS as nodeFailed. Pure logic, no
// sockets and no clock: every time comes in as an argument.
//
// Rules:
// - Only members of the newest ring are tracked. A member's clock starts when
//   it first appears in a ring the broker caches, so a new member, and every
//   member after a broker restart, gets a full timeout of grace before its
//   first heartbeat must have arrived. A member missing from a newer ring is
//   forgotten (a later ring that adds it again starts it afresh).
// - Heartbeats from addresses that are not members are ignored.
// - A member silent for >= timeout is due; once reported it is due again only
//   after another full timeout (the report, or the ECS's work on it, may have
//   been lost), until a heartbeat arrives or a ring without it does.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "schema/ring.h"

namespace kv {

// Not thread-safe; owned by the broker's event loop.
class FailureDetector {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // timeout <= 0 disables detection: nothing is ever due.
  explicit FailureDetector(std::chrono::milliseconds timeout) : timeout_(timeout) {}

  bool enabled() const { return timeout_.count() > 0; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // The members of a newly cached ring, received at now.
  void OnRing(const std::vector<NodeAddress>& members, TimePoint now);
  // A heartbeat from "host:port" at now. Returns how long the member had been
  // silent before it (nullopt for a non-member), for logging. A member already
  // reported failed stays reported: the ECS is removing it, and it must not
  // get its lease back before it has seen the ring without it.
  std::optional<std::chrono::milliseconds> OnHeartbeat(const std::string& key, TimePoint now);

  // Members due for a nodeFailed report at now, each marked reported at now.
  std::vector<NodeAddress> TakeDue(TimePoint now);
  // The earliest time a member may become due; nullopt when none can be.
  std::optional<TimePoint> NextDeadline() const;

  size_t members() const { return members_.size(); }
  bool IsMember(const std::string& key) const { return members_.count(key) != 0; }
  // A member reported as failed and not yet gone from the ring.
  bool IsReported(const std::string& key) const {
    auto it = members_.find(key);
    return it != members_.end() && it->second.reported_at.has_value();
  }

 private:
  struct Member {
    NodeAddress address;
    TimePoint last_heard;                 // heartbeat, or first sight in a ring
    std::optional<TimePoint> reported_at;  // last nodeFailed report
  };
  TimePoint DueAt(const Member& m) const;

  std::chrono::milliseconds timeout_;
  std::map<std::string, Member> members_;  // by "host:port"
};

}  // namespace kv

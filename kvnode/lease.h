// The node's lease: how long it may keep serving on the strength of the
// heartbeats the broker has answered. A heartbeat sent at time t and answered
// ok extends the lease to t + length. Counting from the SEND time (not from
// the answer) keeps the lease ending before the broker's failure timeout,
// which it counts from when it RECEIVED that heartbeat (later than t), as long
// as length < the broker's --failure-timeout-ms. Pure logic: times come in as
// arguments, so tests drive it with any clock.
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>

namespace kv {

// Value type; not thread-safe. Owned by the node's ClusterLink.
class Lease {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  explicit Lease(std::chrono::milliseconds length) : length_(length) {}

  // A heartbeat sent at `sent` was answered ok. Answers may arrive out of
  // order; an older one never shortens the lease.
  void OnAnswered(TimePoint sent) {
    last_answered_sent_ = last_answered_sent_ ? std::max(*last_answered_sent_, sent) : sent;
  }

  // True iff some heartbeat sent at t was answered ok and now < t + length.
  bool Valid(TimePoint now) const { return expiry().has_value() && now < *expiry(); }

  // When the lease ends (the first instant it is no longer valid); nullopt
  // before any heartbeat was answered.
  std::optional<TimePoint> expiry() const {
    if (!last_answered_sent_) return std::nullopt;
    return *last_answered_sent_ + length_;
  }

  std::chrono::milliseconds length() const { return length_; }

 private:
  std::chrono::milliseconds length_;
  std::optional<TimePoint> last_answered_sent_;  // send time of the newest answered heartbeat
};

}  // namespace kv

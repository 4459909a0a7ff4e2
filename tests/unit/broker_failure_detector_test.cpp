// The broker's failure detector as pure logic: times are made-up steady_clock
// points, so every case runs instantly and exactly.
#include <catch2/catch.hpp>

#include "broker/failure_detector.h"

using kv::FailureDetector;
using kv::NodeAddress;
using namespace std::chrono_literals;

namespace {

const NodeAddress kA{"10.0.0.1", 5001, 6001};
const NodeAddress kB{"10.0.0.2", 5002, 6002};
const FailureDetector::TimePoint kT0{std::chrono::hours(1)};

std::vector<std::string> Keys(const std::vector<NodeAddress>& nodes) {
  std::vector<std::string> keys;
  for (const auto& n : nodes) keys.push_back(n.ToString());
  return keys;
}

}  // namespace

TEST_CASE("a member that never sends a heartbeat is due one full timeout after its first ring",
          "[broker][failure]") {
  FailureDetector d(1500ms);
  d.OnRing({kA, kB}, kT0);
  CHECK(d.TakeDue(kT0 + 1499ms).empty());
  CHECK(d.NextDeadline() == kT0 + 1500ms);
  auto due = d.TakeDue(kT0 + 1500ms);
  CHECK(Keys(due) == Keys({kA, kB}));
  CHECK(due[0].peer_port == 6001);  // the report names the node as the ring does
}

TEST_CASE("heartbeats keep a member from being reported", "[broker][failure]") {
  FailureDetector d(1500ms);
  d.OnRing({kA, kB}, kT0);
  for (auto t = kT0; t < kT0 + 6s; t += 200ms) {
    d.OnHeartbeat(kA.ToString(), t);
    auto due = d.TakeDue(t);
    CHECK((due.empty() || Keys(due) == Keys({kB})));
  }
  CHECK(d.OnHeartbeat(kA.ToString(), kT0 + 6s) == std::optional(200ms));
}

TEST_CASE("a reported member is reported again only after another full timeout",
          "[broker][failure]") {
  FailureDetector d(1000ms);
  d.OnRing({kA}, kT0);
  CHECK(d.TakeDue(kT0 + 1000ms).size() == 1);
  CHECK(d.TakeDue(kT0 + 1001ms).empty());
  CHECK(d.TakeDue(kT0 + 1999ms).empty());
  CHECK(d.NextDeadline() == kT0 + 2000ms);
  CHECK(d.TakeDue(kT0 + 2000ms).size() == 1);
}

TEST_CASE("a reported member stays reported when heard from again until a ring drops it",
          "[broker][failure]") {
  FailureDetector d(1000ms);
  d.OnRing({kA}, kT0);
  REQUIRE(d.TakeDue(kT0 + 1000ms).size() == 1);
  CHECK(d.IsReported(kA.ToString()));
  // A paused node that resumes must not get its lease back while the ECS
  // removes it: the heartbeat does not clear the report.
  CHECK(d.OnHeartbeat(kA.ToString(), kT0 + 1500ms) == std::optional(1500ms));
  CHECK(d.IsReported(kA.ToString()));
  CHECK(d.TakeDue(kT0 + 2000ms).size() == 1);  // reported again: the first may be lost
  d.OnRing({}, kT0 + 2100ms);
  CHECK_FALSE(d.IsReported(kA.ToString()));
}

TEST_CASE("a ring without the member forgets it and a later ring starts it afresh",
          "[broker][failure]") {
  FailureDetector d(1000ms);
  d.OnRing({kA, kB}, kT0);
  d.OnRing({kB}, kT0 + 500ms);
  CHECK_FALSE(d.IsMember(kA.ToString()));
  CHECK(Keys(d.TakeDue(kT0 + 5s)) == Keys({kB}));
  d.OnRing({}, kT0 + 9s);  // B, reported, is dropped too
  d.OnRing({kA, kB}, kT0 + 10s);
  CHECK(d.TakeDue(kT0 + 10s + 999ms).empty());
  CHECK(Keys(d.TakeDue(kT0 + 11s)) == Keys({kA, kB}));
}

TEST_CASE("a newer ring keeps the clocks of members it still has", "[broker][failure]") {
  FailureDetector d(1000ms);
  d.OnRing({kA}, kT0);
  d.OnRing({kA, kB}, kT0 + 900ms);  // B is new: its clock starts here, A's does not
  CHECK(Keys(d.TakeDue(kT0 + 1000ms)) == Keys({kA}));
  CHECK(Keys(d.TakeDue(kT0 + 1900ms)) == Keys({kB}));
}

TEST_CASE("heartbeats from addresses outside the ring are ignored", "[broker][failure]") {
  FailureDetector d(1000ms);
  CHECK_FALSE(d.OnHeartbeat(kA.ToString(), kT0).has_value());
  CHECK(d.members() == 0);
  CHECK_FALSE(d.NextDeadline().has_value());
  d.OnRing({kB}, kT0);
  CHECK_FALSE(d.OnHeartbeat(kA.ToString(), kT0).has_value());
  CHECK(d.members() == 1);
}

TEST_CASE("a timeout of zero turns detection off", "[broker][failure]") {
  FailureDetector d(0ms);
  d.OnRing({kA}, kT0);
  CHECK_FALSE(d.enabled());
  CHECK(d.TakeDue(kT0 + 1h).empty());
  CHECK_FALSE(d.NextDeadline().has_value());
}

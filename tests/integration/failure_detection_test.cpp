// Failure detection across real processes on 127.0.0.1: kvbroker (default
// --failure-timeout-ms 1500), kvecs and kvnodes (default --heartbeat-ms 200)
// from tests/support/cluster.h. Only membership is checked: with replication
// factor 1 the keys of a killed node are lost by design.
#include <catch2/catch.hpp>
#include <string>

#include "tests/support/cluster.h"

using kvtest::Cluster;
using kvtest::TempDir;
using namespace std::chrono_literals;

namespace {

constexpr auto kFailureTimeout = 1500ms;  // kvbroker's default

bool HasPort(const std::vector<kv::KeyrangeEntry>& ring, uint16_t port) {
  for (const auto& e : ring) {
    if (e.port == port) return true;
  }
  return false;
}

// True when the ring the live nodes report changes (size or ranges) within
// `window`: used to show that nothing happens for a while.
bool RingChangesWithin(Cluster& cluster, const std::vector<kv::KeyrangeEntry>& ring,
                       std::chrono::milliseconds window) {
  return kvtest::WaitFor([&] { return cluster.Keyrange() != ring; }, window);
}

}  // namespace

TEST_CASE("a node killed with kill -9 is reported by the broker and leaves the ring",
          "[failure][cluster]") {
  TempDir work;
  Cluster cluster(work.path(), {"--replication-factor", "1"});
  REQUIRE(cluster.started());
  for (int i = 0; i < 3; ++i) cluster.StartNode();
  REQUIRE(cluster.WaitForRingSize(3));
  const uint16_t victim = cluster.node(1).port();
  REQUIRE(HasPort(cluster.Keyrange(), victim));

  cluster.node(1).process().Kill9();
  // Failure timeout, the ECS's 100 ms batch window and a transition with
  // nothing to stream (the dead node's ranges have no other holder at
  // factor 1): a few seconds; the bound leaves room for a slow machine.
  REQUIRE(cluster.WaitForRingSize(2, 20s));
  auto ring = cluster.Keyrange();
  CHECK_FALSE(HasPort(ring, victim));
  CHECK(kv::CoversWholeRingExactly(ring));
  CHECK(cluster.versions_only_grew());
  CHECK(cluster.ecs().running());
}

TEST_CASE("nodes that keep sending heartbeats stay in the ring, also across a broker restart",
          "[failure][cluster]") {
  TempDir work;
  Cluster cluster(work.path(), {"--replication-factor", "1"});
  REQUIRE(cluster.started());
  for (int i = 0; i < 2; ++i) cluster.StartNode();
  REQUIRE(cluster.WaitForRingSize(2));
  const auto ring = cluster.Keyrange();
  REQUIRE(ring.size() == 2);

  CHECK_FALSE(RingChangesWithin(cluster, ring, 3 * kFailureTimeout));

  // A restarted broker knows no heartbeat times: every member of the first
  // ring it caches gets a full timeout before it must have heard from it.
  cluster.RestartBroker();
  CHECK_FALSE(RingChangesWithin(cluster, ring, 3 * kFailureTimeout));
  CHECK(cluster.LivePorts().size() == 2);
}

// kvecs as a real process between a real kvbroker and fake nodes
// (tests/integration/ecs_fakes.h), when a node is reported failed: the ring
// without it is published at once and repair TransferStarts go to the new
// primaries, also after the ECS is killed mid-repair.
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tests/integration/ecs_fakes.h"

using namespace ecsfake;  // the shared test helpers
using kv::wire::ControlStatus;
using kvtest::TempDir;
using namespace std::chrono_literals;

namespace {

// A kvbroker and a kvecs (replication factor 3, its default) with four fake
// nodes joined one by one; c is the one the tests report failed.
class FourNodes {
 public:
  explicit FourNodes(const TempDir& work) : work_(work) {
    broker_ = StartBroker(work, "broker", &ports);
    ecs = StartEcs(work, ports, work / "ecs-data", "ecs.log", {"--repair-report-ms", "100"});
    watcher = std::make_unique<RingWatcher>(ctx, ports.pub);
    uint64_t id = 1;
    for (FakeNode* n : all) {
      n->AttachBroker(ports.control);
      n->SendJoin(id);
      REQUIRE(Pump([&] { return n->ReplyTo(id).has_value(); }));
      REQUIRE(n->ReplyTo(id)->status == ControlStatus::OK);
      ++id;
    }
    REQUIRE(Pump([&] { return watcher->Latest() && watcher->Latest()->size() == 4; }));
    version = watcher->Latest()->version();
    for (FakeNode* n : all) n->events.clear();
  }

  bool Pump(const std::function<bool()>& cond) { return PumpUntil(all, watcher.get(), cond); }
  bool Logged(const std::string& log_name, const std::string& text) const {
    return kvtest::ReadFile(work_ / log_name).find(text) != std::string::npos;
  }
  // TransferStarts with the repair flag the fake nodes have seen.
  size_t RepairStarts() const {
    size_t count = 0;
    for (const FakeNode* n : all) {
      for (const auto& e : n->events) count += e.start && e.repair ? 1 : 0;
    }
    return count;
  }

  Ports ports;
  std::unique_ptr<Process> ecs;
  zmq::context_t ctx{1};
  std::unique_ptr<RingWatcher> watcher;
  FakeNode a{ctx}, b{ctx}, c{ctx}, d{ctx};
  std::vector<FakeNode*> all{&a, &b, &c, &d};
  uint64_t version = 0;  // of the ring with all four

 private:
  const TempDir& work_;
  std::unique_ptr<Process> broker_;
};

}  // namespace

TEST_CASE("a node reported failed through the broker leaves the ring at once and is re-replicated",
          "[ecs][integration]") {
  TempDir work;
  FourNodes cluster(work);
  const uint64_t failed = cluster.version + 1;
  auto reported = std::chrono::steady_clock::now();
  cluster.a.SendNodeFailed(100, cluster.c.address());
  REQUIRE(cluster.Pump([&] { return cluster.a.ReplyTo(100).has_value(); }));
  auto answered = std::chrono::steady_clock::now();
  CHECK(cluster.a.ReplyTo(100)->status == ControlStatus::OK);
  CHECK(cluster.a.ReplyTo(100)->ring_version == failed);
  CHECK(cluster.a.ReplyTo(100)->ring_nodes == 3);
  // No batch window and no transfer before the ring is committed.
  CHECK(answered - reported < 2s);
  REQUIRE(cluster.Pump([&] { return cluster.watcher->Latest()->version() == failed; }));
  std::shared_ptr<const kv::Ring> after = cluster.watcher->Latest();
  CHECK_FALSE(after->Contains(cluster.c.address()));

  // Every new copy comes from the range's primary in the ring in force.
  REQUIRE(cluster.Pump([&] {
    return cluster.Logged("ecs.log",
                          "re-replication of ring version " + std::to_string(failed) + " finished");
  }));
  for (FakeNode* source : cluster.all) {
    for (const auto& e : source->events) {
      if (!e.start) continue;
      CHECK(e.repair);
      CHECK(e.prepares_version == failed);
      CHECK_FALSE(source == &cluster.c);
      for (const auto& r : e.ranges) CHECK(after->Primary(r.to)->address == source->address());
    }
  }
  CHECK(cluster.RepairStarts() > 0);
  CHECK(cluster.Logged("ecs.log", "fail-over: ring version " + std::to_string(failed)));
  CHECK(cluster.Logged("ecs.log", "re-replicating"));
}

TEST_CASE("an ECS killed during a repair aborts its transfers and sends them again on restart",
          "[ecs][integration]") {
  TempDir work;
  FourNodes cluster(work);
  const uint64_t failed = cluster.version + 1;
  for (FakeNode* n : cluster.all) n->answer_transfers = false;  // the repair stays in flight
  cluster.a.SendNodeFailed(100, cluster.c.address());
  REQUIRE(cluster.Pump([&] { return cluster.RepairStarts() > 0; }));
  std::vector<std::pair<FakeNode*, uint64_t>> first;  // (source, transfer id)
  for (FakeNode* n : cluster.all) {
    for (const auto& e : n->events) {
      if (e.start) first.emplace_back(n, e.transfer_id);
    }
  }
  cluster.ecs->Kill9();
  for (FakeNode* n : cluster.all) {
    n->events.clear();
    n->answer_transfers = true;
  }

  auto restarted = StartEcs(work, cluster.ports, work / "ecs-data", "ecs2.log");
  REQUIRE(cluster.Pump([&] {
    for (const auto& [source, id] : first) {
      bool aborted = false;
      for (const auto& e : source->events) aborted |= !e.start && e.transfer_id == id;
      if (!aborted) return false;
    }
    return cluster.RepairStarts() >= first.size();
  }));
  for (FakeNode* n : cluster.all) {
    for (const auto& e : n->events) {
      if (!e.start) continue;
      CHECK(e.prepares_version == failed);
      for (const auto& [source, id] : first) CHECK(e.transfer_id != id);
    }
  }
  REQUIRE(cluster.Pump([&] {
    return cluster.Logged("ecs2.log",
                          "re-replication of ring version " + std::to_string(failed) + " finished");
  }));
  CHECK(cluster.watcher->Latest()->version() == failed);
}

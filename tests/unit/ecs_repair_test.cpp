// The ECS's repair when things go wrong during it: another failure re-plans
// it, a restart resumes it, a failing transfer is retried and given up.
// A Coordinator on a temporary store with a fake clock.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "tests/support/process.h"
#include "tests/unit/ecs_test_util.h"

using namespace ecstest;  // the shared test helpers
using kv::AbortTransfer;
using kv::Hash128;
using kv::NodeAddress;
using kv::PublishRing;
using kv::RequestKind;
using kv::Ring;
using kv::StartTransfer;
using kv::Transfer;
using namespace std::chrono_literals;

namespace {

bool Covers(const std::vector<StartTransfer>& starts, const NodeAddress& target,
            const Hash128& pos) {
  return std::any_of(starts.begin(), starts.end(), [&](const StartTransfer& s) {
    return s.transfer.target == target &&
           std::any_of(s.transfer.ranges.begin(), s.transfer.ranges.end(),
                       [&](const kv::HashRange& r) { return r.Contains(pos); });
  });
}

}  // namespace

TEST_CASE("a failure during a repair re-plans it with the unfinished pieces re-sourced",
          "[ecs][failover]") {
  kvtest::TempDir dir;
  Ecs ecs(dir.path(), Config(3));
  ecs.Bootstrap(7);
  std::shared_ptr<const Ring> v1 = ecs->ring();
  ecs.FailNode(3, 1);
  std::shared_ptr<const Ring> v2 = ecs->ring();
  auto first = All<StartTransfer>(ecs.out);
  REQUIRE(first.size() >= 2);
  ecs.Done(first[0].transfer.transfer_id);  // one finishes, the rest are in flight
  std::vector<StartTransfer> finished{first[0]};
  std::vector<StartTransfer> unfinished(first.begin() + 1, first.end());
  ecs.out.clear();

  ecs.FailNode(6, 2);
  std::shared_ptr<const Ring> v3 = ecs->ring();
  REQUIRE(v3->version() == 3);
  auto aborts = All<AbortTransfer>(ecs.out);
  std::set<uint64_t> aborted;
  for (const auto& a : aborts) aborted.insert(a.transfer_id);
  for (const auto& u : unfinished) CHECK(aborted.count(u.transfer.transfer_id) == 1);
  CHECK(aborted.count(first[0].transfer.transfer_id) == 0);
  CHECK(FirstIndex<AbortTransfer>(ecs.out) < FirstIndex<PublishRing>(ecs.out));
  CHECK(FirstIndex<PublishRing>(ecs.out) < FirstIndex<StartTransfer>(ecs.out));

  auto starts = All<StartTransfer>(ecs.out);
  REQUIRE_FALSE(starts.empty());
  for (const auto& s : starts) {
    CHECK(s.transfer.repair);
    CHECK(s.prepares_version == 3);
    for (const auto& r : s.transfer.ranges) {
      CHECK(s.transfer.source == v3->Primary(r.to)->address);
      CHECK(Has(v3->Replicas(r.to), s.transfer.target));
    }
  }
  // Every holder in v3 of every position either has a complete copy (it held
  // the position in v1, or received it in a repair transfer that finished) or
  // gets it now.
  auto complete = [&](const NodeAddress& n, const Hash128& pos) {
    if (Has(v1->Replicas(pos), n)) return true;
    return Covers(finished, n, pos);
  };
  std::vector<Hash128> positions;
  for (const auto* ring : {v1.get(), v3.get()}) {
    for (const auto& n : ring->nodes()) {
      positions.push_back(n.position);
      positions.push_back(n.position.Next());
    }
  }
  for (const auto& pos : positions) {
    for (const auto& holder : v3->Replicas(pos)) {
      INFO("position " << pos.ToHex() << " on " << holder.ToString());
      CHECK((complete(holder, pos) || Covers(starts, holder, pos)));
    }
  }
  auto record = ecs.store().LoadRepair();
  REQUIRE(record.ok());
  REQUIRE(record->has_value());
  CHECK((*record)->target->version() == 3);
  CHECK((*record)->transfers.size() == starts.size());
}

TEST_CASE("an ECS restarted mid-repair aborts the old transfers and resumes with new ids",
          "[ecs][failover]") {
  kvtest::TempDir dir;
  std::vector<StartTransfer> first;
  {
    Ecs ecs(dir.path(), Config(3));
    ecs.Bootstrap(5);
    ecs.FailNode(2, 1);
    first = All<StartTransfer>(ecs.out);
    REQUIRE(first.size() >= 2);
    ecs.Done(first[0].transfer.transfer_id);
  }  // killed -9: no Stop
  std::vector<StartTransfer> unfinished(first.begin() + 1, first.end());

  Ecs restarted(dir.path(), Config(3));
  CHECK(restarted->ring()->version() == 2);
  CHECK(restarted->repairing());
  auto aborts = All<AbortTransfer>(restarted.out);
  REQUIRE(aborts.size() == unfinished.size());
  for (size_t i = 0; i < aborts.size(); ++i) {
    CHECK(aborts[i].transfer_id == unfinished[i].transfer.transfer_id);
    CHECK(aborts[i].source == unfinished[i].transfer.source);
  }
  CHECK(FirstIndex<AbortTransfer>(restarted.out) < FirstIndex<PublishRing>(restarted.out));
  CHECK(FirstIndex<PublishRing>(restarted.out) < FirstIndex<StartTransfer>(restarted.out));
  auto again = All<StartTransfer>(restarted.out);
  REQUIRE(again.size() == unfinished.size());
  for (size_t i = 0; i < again.size(); ++i) {
    CHECK(again[i].transfer.repair);
    CHECK(again[i].prepares_version == 2);
    CHECK(again[i].transfer.source == unfinished[i].transfer.source);
    CHECK(again[i].transfer.target == unfinished[i].transfer.target);
    CHECK(again[i].transfer.ranges == unfinished[i].transfer.ranges);
    for (const auto& old : first) CHECK(again[i].transfer.transfer_id != old.transfer.transfer_id);
  }

  restarted.out.clear();
  restarted.Submit(RequestKind::kJoin, 9, 7);
  restarted.Advance(200ms);
  CHECK(All<StartTransfer>(restarted.out).empty());  // joins wait for the repair
  for (const auto& s : again) restarted.Done(s.transfer.transfer_id);
  CHECK_FALSE(restarted->repairing());
  auto record = restarted.store().LoadRepair();
  REQUIRE(record.ok());
  CHECK_FALSE(record->has_value());
  restarted.Advance(0ms);
  CHECK_FALSE(All<StartTransfer>(restarted.out).empty());
}

TEST_CASE("a failing repair transfer is retried with back-off, then given up", "[ecs][failover]") {
  kvtest::TempDir dir;
  Ecs ecs(dir.path(), Config(3));  // 3 attempts, back-off 100 ms doubling, 1000 ms timeout
  ecs.Bootstrap(5);
  ecs.FailNode(4, 1);
  auto starts = All<StartTransfer>(ecs.out);
  REQUIRE_FALSE(starts.empty());
  const Transfer failing = starts[0].transfer;
  for (size_t i = 1; i < starts.size(); ++i) ecs.Done(starts[i].transfer.transfer_id);
  ecs.out.clear();

  ecs.Done(failing.transfer_id, false, "target disk full");
  auto aborts = All<AbortTransfer>(ecs.out);
  REQUIRE(aborts.size() == 1);
  CHECK(aborts[0].transfer_id == failing.transfer_id);
  ecs.out.clear();
  ecs.Advance(99ms);
  CHECK(All<StartTransfer>(ecs.out).empty());
  ecs.Advance(1ms);
  auto second = All<StartTransfer>(ecs.out);
  REQUIRE(second.size() == 1);
  CHECK(second[0].transfer.transfer_id != failing.transfer_id);
  CHECK(second[0].transfer.source == failing.source);
  CHECK(second[0].transfer.target == failing.target);
  CHECK(second[0].transfer.ranges == failing.ranges);
  CHECK(second[0].transfer.repair);
  auto record = ecs.store().LoadRepair();
  REQUIRE(record.ok());
  REQUIRE(record->has_value());
  REQUIRE((*record)->transfers.size() == 1);
  CHECK((*record)->transfers[0].transfer_id == second[0].transfer.transfer_id);

  ecs.out.clear();
  ecs.Advance(1000ms);  // the second attempt times out
  REQUIRE(All<AbortTransfer>(ecs.out).size() == 1);
  CHECK(All<AbortTransfer>(ecs.out)[0].transfer_id == second[0].transfer.transfer_id);
  ecs.out.clear();
  ecs.Advance(199ms);
  CHECK(All<StartTransfer>(ecs.out).empty());
  ecs.Advance(1ms);  // 200 ms: the back-off doubled
  auto third = All<StartTransfer>(ecs.out);
  REQUIRE(third.size() == 1);
  CHECK(ecs->repairing());

  ecs.Done(third[0].transfer.transfer_id, false, "target disk full");
  CHECK_FALSE(ecs->repairing());  // given up after the last attempt
  record = ecs.store().LoadRepair();
  REQUIRE(record.ok());
  CHECK_FALSE(record->has_value());
}

// The ECS's fail-over and repair without sockets: a failed node leaves the
// ring at once, the ranges it leaves short are re-replicated from their new
// primaries, and what runs meanwhile (joins, more failures, restarts) waits,
// aborts or re-plans. A Coordinator on a temporary store with a fake clock.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "tests/support/process.h"
#include "tests/unit/ecs_test_util.h"

using namespace ecstest;  // the shared test helpers
using kv::AbortTransfer;
using kv::ForgetNode;
using kv::Hash128;
using kv::NodeAddress;
using kv::PublishRing;
using kv::ReplyTo;
using kv::RequestKind;
using kv::Ring;
using kv::StartTransfer;
using kv::wire::ControlStatus;
using namespace std::chrono_literals;

namespace {

// Every repair transfer copies from the primary of each of its ranges in the
// ring in force, to a node that holds the range there.
void CheckSourcedFromPrimaries(const std::vector<StartTransfer>& starts, const Ring& ring) {
  REQUIRE_FALSE(starts.empty());
  for (const auto& s : starts) {
    CHECK(s.transfer.repair);
    CHECK(s.prepares_version == ring.version());
    for (const auto& r : s.transfer.ranges) {
      CHECK(s.transfer.source == ring.Primary(r.to)->address);
      CHECK(Has(ring.Replicas(r.to), s.transfer.target));
    }
  }
}

}  // namespace

TEST_CASE("the failure of a primary publishes the ring without it at once, transfers after",
          "[ecs][failover]") {
  kvtest::TempDir dir;
  Ecs ecs(dir.path(), Config(3));
  ecs.Bootstrap(5);
  std::shared_ptr<const Ring> before = ecs->ring();
  ecs.Submit(RequestKind::kNodeFailed, 3, 40);
  CHECK(ecs->NextDeadline().has_value());  // handled on the very next tick
  ecs.Advance(0ms);  // no batch window

  auto published = All<PublishRing>(ecs.out);
  REQUIRE(published.size() == 1);
  CHECK(published[0].ring->version() == 2);
  CHECK_FALSE(published[0].ring->Contains(Node(3)));
  CHECK(published[0].ring->size() == 4);
  CHECK(FirstIndex<PublishRing>(ecs.out) < FirstIndex<StartTransfer>(ecs.out));
  auto replies = All<ReplyTo>(ecs.out);
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].status == ControlStatus::OK);
  CHECK(replies[0].ring->version() == 2);
  REQUIRE(All<ForgetNode>(ecs.out).size() == 1);
  CHECK(All<ForgetNode>(ecs.out)[0].node == Node(3));
  CHECK(ecs->ring()->version() == 2);  // committed before any transfer reports
  CHECK(ecs->repairing());
  CHECK(ecs->held() == 0);

  auto starts = All<StartTransfer>(ecs.out);
  CheckSourcedFromPrimaries(starts, *ecs->ring());
  // The dead node's own range now has its successor as primary and source.
  const NodeAddress heir = before->Successor(Node(3))->address;
  const Hash128 dead_position = before->Find(Node(3))->position;
  bool found = false;
  for (const auto& s : starts) {
    CHECK_FALSE(s.transfer.source == Node(3));
    CHECK_FALSE(s.transfer.target == Node(3));
    for (const auto& r : s.transfer.ranges) {
      if (!r.Contains(dead_position)) continue;
      found = true;
      CHECK(s.transfer.source == heir);
    }
  }
  CHECK(found);
  auto stored = ecs.store().LoadRing();
  REQUIRE(stored.ok());
  CHECK((*stored)->version() == 2);
  auto repair = ecs.store().LoadRepair();
  REQUIRE(repair.ok());
  REQUIRE(repair->has_value());
  CHECK((*repair)->target->version() == 2);
  CHECK((*repair)->transfers.size() == starts.size());

  ecs.out.clear();
  for (const auto& s : starts) ecs.Done(s.transfer.transfer_id);
  CHECK(All<PublishRing>(ecs.out).empty());  // the ring was published already
  CHECK_FALSE(ecs->repairing());
  repair = ecs.store().LoadRepair();
  REQUIRE(repair.ok());
  CHECK_FALSE(repair->has_value());
}

TEST_CASE("the failure of a replica re-replicates from each range's unchanged primary",
          "[ecs][failover]") {
  kvtest::TempDir dir;
  Ecs ecs(dir.path(), Config(3));
  ecs.Bootstrap(6);
  std::shared_ptr<const Ring> before = ecs->ring();
  ecs.FailNode(4, 41);
  auto starts = All<StartTransfer>(ecs.out);
  CheckSourcedFromPrimaries(starts, *ecs->ring());
  for (const auto& s : starts) {
    for (const auto& r : s.transfer.ranges) {
      if (before->WriteRangeOf(Node(4))->Contains(r.to)) continue;
      CHECK(s.transfer.source == before->Primary(r.to)->address);
    }
  }
}

TEST_CASE("several failures handled in one tick are one new ring", "[ecs][failover]") {
  kvtest::TempDir dir;
  Ecs ecs(dir.path(), Config(3));
  ecs.Bootstrap(6);
  ecs.Submit(RequestKind::kNodeFailed, 2, 1);
  ecs.Submit(RequestKind::kNodeFailed, 5, 2);
  ecs.Submit(RequestKind::kNodeFailed, 2, 3);  // reported twice
  ecs.Submit(RequestKind::kNodeFailed, 9, 4);  // not a member
  ecs.Advance(0ms);
  auto published = All<PublishRing>(ecs.out);
  REQUIRE(published.size() == 1);
  CHECK(published[0].ring->version() == 2);
  CHECK(published[0].ring->size() == 4);
  auto replies = All<ReplyTo>(ecs.out);
  REQUIRE(replies.size() == 4);
  for (const auto& r : replies) CHECK(r.status == ControlStatus::OK);
  CheckSourcedFromPrimaries(All<StartTransfer>(ecs.out), *ecs->ring());
}

TEST_CASE("a failed node with replication factor 1 is removed though its ranges are lost",
          "[ecs][failover]") {
  kvtest::TempDir dir;
  Ecs ecs(dir.path());
  ecs.Bootstrap(3);
  ecs.FailNode(2, 4);
  CHECK(All<StartTransfer>(ecs.out).empty());  // nothing left to copy from
  auto published = All<PublishRing>(ecs.out);
  REQUIRE(published.size() == 1);
  CHECK(published[0].ring->version() == 2);
  CHECK(!published[0].ring->Contains(Node(2)));
  REQUIRE(All<ReplyTo>(ecs.out).size() == 1);
  CHECK(All<ReplyTo>(ecs.out)[0].status == ControlStatus::OK);
  CHECK_FALSE(ecs->repairing());
}

TEST_CASE("a nodeFailed is taken even when the ECS holds its limit of requests",
          "[ecs][failover]") {
  kvtest::TempDir dir;
  auto config = Config(3);
  config.max_held = 4;
  Ecs ecs(dir.path(), config);
  ecs.Bootstrap(4);
  for (int i = 7; i <= 10; ++i) ecs.Submit(RequestKind::kJoin, i, static_cast<uint64_t>(i));
  REQUIRE(ecs->held() == 4);
  ecs.Submit(RequestKind::kNodeFailed, 2, 2);
  CHECK(All<ReplyTo>(ecs.out).empty());
  ecs.Advance(0ms);
  CHECK(ecs->ring()->version() == 2);
}

TEST_CASE("a failure during a join transition aborts it and its joiner retries after the repair",
          "[ecs][failover]") {
  kvtest::TempDir dir;
  Ecs ecs(dir.path(), Config(3));
  ecs.Bootstrap(4);
  ecs.Submit(RequestKind::kJoin, 5, 50);
  ecs.Advance(100ms);
  auto join = All<StartTransfer>(ecs.out);
  REQUIRE_FALSE(join.empty());
  for (const auto& s : join) CHECK_FALSE(s.transfer.repair);
  ecs.out.clear();

  ecs.FailNode(2, 51);
  auto aborts = All<AbortTransfer>(ecs.out);
  REQUIRE(aborts.size() == join.size());
  for (size_t i = 0; i < join.size(); ++i) {
    CHECK(aborts[i].transfer_id == join[i].transfer.transfer_id);
  }
  auto replies = All<ReplyTo>(ecs.out);
  REQUIRE(replies.size() == 2);
  CHECK(replies[0].request_id == 50);
  CHECK(replies[0].status == ControlStatus::UNAVAILABLE);
  CHECK(replies[1].request_id == 51);
  CHECK(replies[1].status == ControlStatus::OK);
  auto published = All<PublishRing>(ecs.out);
  REQUIRE(published.size() == 1);
  CHECK(published[0].ring->version() == 2);
  CHECK_FALSE(published[0].ring->Contains(Node(5)));
  CHECK_FALSE(ecs->in_transition());
  auto transition = ecs.store().LoadTransition();
  REQUIRE(transition.ok());
  CHECK_FALSE(transition->has_value());
  auto repair = All<StartTransfer>(ecs.out);
  CheckSourcedFromPrimaries(repair, *ecs->ring());

  ecs.out.clear();
  ecs.Submit(RequestKind::kJoin, 5, 52);  // the joiner's retry
  ecs.Advance(500ms);
  CHECK(All<StartTransfer>(ecs.out).empty());  // not while the repair is unfinished
  for (const auto& s : repair) ecs.Done(s.transfer.transfer_id);
  CHECK_FALSE(ecs->repairing());
  ecs.Advance(0ms);
  auto retry = All<StartTransfer>(ecs.out);
  REQUIRE_FALSE(retry.empty());
  CHECK(retry[0].prepares_version == 3);
  CHECK_FALSE(retry[0].transfer.repair);
  ecs.AllDone();
  CHECK(ecs->ring()->version() == 3);
  CHECK(ecs->ring()->Contains(Node(5)));
}

TEST_CASE("leaves that would empty the ring are rejected after the failure of the third node",
          "[ecs][failover]") {
  kvtest::TempDir dir;
  Ecs ecs(dir.path(), Config(2));
  ecs.Bootstrap(3);
  ecs.Submit(RequestKind::kLeave, 1, 1);
  ecs.Submit(RequestKind::kLeave, 2, 2);
  ecs.Submit(RequestKind::kNodeFailed, 3, 3);
  ecs.Advance(100ms);
  CHECK(ecs->ring()->version() == 2);
  CHECK_FALSE(ecs->ring()->Contains(Node(3)));
  auto starts = All<StartTransfer>(ecs.out);
  for (const auto& s : starts) CHECK(!(s.transfer.source == Node(3)));
  ecs.AllDone();
  ecs.Advance(0ms);
  std::vector<ReplyTo> rejected;
  for (const auto& r : All<ReplyTo>(ecs.out)) {
    if (r.status == ControlStatus::REJECTED) rejected.push_back(r);
  }
  CHECK(rejected.size() == 2);
  CHECK(ecs->ring()->version() == 2);
  CHECK(ecs->ring()->size() == 2);
}

// The ECS's join/leave transitions without sockets: a Coordinator on a
// temporary LMDB store, driven by a fake clock, checked by the commands it
// produces. Failures and repair: ecs_failover_test.cpp.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.h"
#include "tests/unit/ecs_test_util.h"

using namespace ecstest;  // the shared test helpers
using kv::AbortTransfer;
using kv::CoordinatorConfig;
using kv::ForgetNode;
using kv::NodeAddress;
using kv::PublishRing;
using kv::ReplyTo;
using kv::RequestKind;
using kv::StartTransfer;
using kv::wire::ControlStatus;
using namespace std::chrono_literals;

TEST_CASE("the first join into an empty ring commits at once as version 1", "[ecs]") {
  kvtest::TempDir dir;
  Ecs ecs(dir.path());
  CHECK(ecs.out.empty());  // version 0 is not published
  ecs.Submit(RequestKind::kJoin, 1, 7);
  ecs.Advance(99ms);
  CHECK(ecs.out.empty());  // still inside the batch window

  ecs.Advance(1ms);
  CHECK(All<StartTransfer>(ecs.out).empty());
  auto published = All<PublishRing>(ecs.out);
  REQUIRE(published.size() == 1);
  CHECK(published[0].ring->version() == 1);
  CHECK(published[0].ring->Contains(Node(1)));
  auto replies = All<ReplyTo>(ecs.out);
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].client == "client-7");
  CHECK(replies[0].request_id == 7);
  CHECK(replies[0].status == ControlStatus::OK);
  CHECK(replies[0].ring->version() == 1);
  auto stored = ecs.store().LoadRing();
  REQUIRE(stored.ok());
  CHECK((*stored)->version() == 1);
}

TEST_CASE("a storm of 20 joins queued within the batch window becomes one transition", "[ecs]") {
  kvtest::TempDir dir;
  Ecs ecs(dir.path(), Config(3));
  ecs.Bootstrap(1);
  for (int i = 2; i <= 21; ++i) {
    ecs.Submit(RequestKind::kJoin, i, static_cast<uint64_t>(i));
    ecs.Advance(4ms);  // 20 requests over 80 ms
  }
  CHECK(All<StartTransfer>(ecs.out).empty());
  ecs.Advance(20ms);
  auto starts = All<StartTransfer>(ecs.out);
  REQUIRE(!starts.empty());
  for (const auto& s : starts) {
    CHECK(s.prepares_version == 2);
    CHECK(s.transfer.source == Node(1));  // the only node holding data
  }
  CHECK(ecs->held() == 20);

  ecs.AllDone();
  auto published = All<PublishRing>(ecs.out);
  REQUIRE(published.size() == 1);
  CHECK(published[0].ring->version() == 2);
  CHECK(published[0].ring->size() == 21);
  auto replies = All<ReplyTo>(ecs.out);
  CHECK(replies.size() == 20);
  CHECK(std::all_of(replies.begin(), replies.end(), [](const ReplyTo& r) {
    return r.status == ControlStatus::OK && r.ring->version() == 2;
  }));
  CHECK(ecs->held() == 0);
}

TEST_CASE("a leave produces transfers from the leaving node to its successor", "[ecs]") {
  kvtest::TempDir dir;
  Ecs ecs(dir.path());
  ecs.Bootstrap(3);
  const NodeAddress successor = ecs->ring()->Successor(Node(2))->address;
  ecs.Submit(RequestKind::kLeave, 2, 42);
  ecs.Advance(100ms);
  auto starts = All<StartTransfer>(ecs.out);
  REQUIRE(starts.size() == 1);
  CHECK(starts[0].transfer.source == Node(2));
  CHECK(starts[0].transfer.source.peer_port == Node(2).peer_port);
  CHECK(starts[0].transfer.target == successor);
  CHECK(starts[0].transfer.ranges.size() == 1);
  CHECK(starts[0].prepares_version == 2);
  auto record = ecs.store().LoadTransition();
  REQUIRE(record.ok());
  REQUIRE(record->has_value());
  CHECK((*record)->target->version() == 2);

  ecs.out.clear();
  ecs.Done(starts[0].transfer.transfer_id);
  auto published = All<PublishRing>(ecs.out);
  REQUIRE(published.size() == 1);
  CHECK(published[0].ring->version() == 2);
  CHECK(!published[0].ring->Contains(Node(2)));
  auto forgotten = All<ForgetNode>(ecs.out);
  REQUIRE(forgotten.size() == 1);
  CHECK(forgotten[0].node == Node(2));
  auto replies = All<ReplyTo>(ecs.out);
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].status == ControlStatus::OK);
  record = ecs.store().LoadTransition();
  REQUIRE(record.ok());
  CHECK(!record->has_value());
}

TEST_CASE("a failed transfer aborts the transition and answers unavailable", "[ecs]") {
  kvtest::TempDir dir;
  Ecs ecs(dir.path());
  ecs.Bootstrap(1);
  ecs.Submit(RequestKind::kJoin, 2, 9);
  ecs.Advance(100ms);
  auto starts = All<StartTransfer>(ecs.out);
  REQUIRE(starts.size() == 1);
  ecs.out.clear();

  ecs.Done(starts[0].transfer.transfer_id, false, "target refused the chunk");
  CHECK(All<PublishRing>(ecs.out).empty());
  auto aborts = All<AbortTransfer>(ecs.out);
  REQUIRE(aborts.size() == 1);
  CHECK(aborts[0].source == Node(1));
  CHECK(aborts[0].transfer_id == starts[0].transfer.transfer_id);
  auto replies = All<ReplyTo>(ecs.out);
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].status == ControlStatus::UNAVAILABLE);
  CHECK(replies[0].reason.find("target refused the chunk") != std::string::npos);
  CHECK(ecs->ring()->version() == 1);
  CHECK(!ecs->in_transition());
  auto record = ecs.store().LoadTransition();
  REQUIRE(record.ok());
  CHECK(!record->has_value());
}

TEST_CASE("a transition whose transfers do not finish in time aborts", "[ecs]") {
  kvtest::TempDir dir;
  Ecs ecs(dir.path());
  ecs.Bootstrap(2);
  ecs.Submit(RequestKind::kJoin, 3, 11);
  ecs.Advance(100ms);
  auto starts = All<StartTransfer>(ecs.out);
  REQUIRE(!starts.empty());
  ecs.out.clear();
  ecs.Advance(999ms);
  CHECK(ecs.out.empty());

  ecs.Advance(1ms);
  CHECK(All<AbortTransfer>(ecs.out).size() == starts.size());
  auto replies = All<ReplyTo>(ecs.out);
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].status == ControlStatus::UNAVAILABLE);
  CHECK(replies[0].reason.find("timed out") != std::string::npos);
  CHECK(ecs->ring()->version() == 1);

  SECTION("and a late TransferDone for it changes nothing") {
    ecs.out.clear();
    ecs.Done(starts[0].transfer.transfer_id);
    CHECK(ecs.out.empty());
    CHECK(ecs->ring()->version() == 1);
  }
}

TEST_CASE("a persisted transition is rolled back when the ECS restarts", "[ecs]") {
  kvtest::TempDir dir;
  std::vector<StartTransfer> starts;
  {
    Ecs ecs(dir.path());
    ecs.Bootstrap(2);
    ecs.Submit(RequestKind::kJoin, 3, 5);
    ecs.Advance(100ms);
    starts = All<StartTransfer>(ecs.out);
    REQUIRE(!starts.empty());
  }  // the process dies mid-transition

  Ecs restarted(dir.path());
  auto aborts = All<AbortTransfer>(restarted.out);
  REQUIRE(aborts.size() == starts.size());
  for (size_t i = 0; i < aborts.size(); ++i) {
    CHECK(aborts[i].transfer_id == starts[i].transfer.transfer_id);
    CHECK(aborts[i].source == starts[i].transfer.source);
    CHECK(aborts[i].source.peer_port == starts[i].transfer.source.peer_port);
  }
  auto published = All<PublishRing>(restarted.out);
  REQUIRE(published.size() == 1);
  CHECK(published[0].ring->version() == 1);
  CHECK(!published[0].ring->Contains(Node(3)));
  auto record = restarted.store().LoadTransition();
  REQUIRE(record.ok());
  CHECK(!record->has_value());

  SECTION("and the retried join gets fresh transfer ids and commits version 2") {
    restarted.out.clear();
    restarted.Submit(RequestKind::kJoin, 3, 6);
    restarted.Advance(100ms);
    auto retry = All<StartTransfer>(restarted.out);
    REQUIRE(!retry.empty());
    for (const auto& s : retry) {
      for (const auto& old : starts) CHECK(s.transfer.transfer_id != old.transfer.transfer_id);
    }
    restarted.AllDone();
    CHECK(restarted->ring()->version() == 2);
    CHECK(restarted->ring()->Contains(Node(3)));
  }
}

TEST_CASE("joins of members and leaves of non-members are answered ok without a new ring",
          "[ecs]") {
  kvtest::TempDir dir;
  Ecs ecs(dir.path());
  ecs.Bootstrap(2);
  ecs.Submit(RequestKind::kJoin, 1, 1);
  ecs.Submit(RequestKind::kLeave, 9, 2);
  ecs.Submit(RequestKind::kNodeFailed, 8, 3);
  ecs.Advance(100ms);
  CHECK(All<PublishRing>(ecs.out).empty());
  CHECK(All<StartTransfer>(ecs.out).empty());
  auto replies = All<ReplyTo>(ecs.out);
  REQUIRE(replies.size() == 3);
  for (const auto& r : replies) {
    CHECK(r.status == ControlStatus::OK);
    CHECK(r.ring->version() == 1);
  }
  CHECK(ecs->held() == 0);
}

TEST_CASE("requests queued during a transition form the next one after it ends", "[ecs]") {
  kvtest::TempDir dir;
  Ecs ecs(dir.path());
  ecs.Bootstrap(1);
  ecs.Submit(RequestKind::kJoin, 2, 1);
  ecs.Advance(100ms);
  auto first = All<StartTransfer>(ecs.out);
  REQUIRE(first.size() == 1);
  ecs.out.clear();
  ecs.Submit(RequestKind::kJoin, 3, 2);
  ecs.Advance(500ms);
  CHECK(All<StartTransfer>(ecs.out).empty());  // strictly one transition at a time

  ecs.Done(first[0].transfer.transfer_id);
  CHECK(ecs->ring()->version() == 2);
  ecs.Advance(0ms);  // the queued join's window has long passed
  auto second = All<StartTransfer>(ecs.out);
  REQUIRE(!second.empty());
  CHECK(second[0].prepares_version == 3);
}

TEST_CASE("a join and a leave of the same node in one batch go to separate transitions", "[ecs]") {
  kvtest::TempDir dir;
  Ecs ecs(dir.path());
  ecs.Bootstrap(1);
  ecs.Submit(RequestKind::kJoin, 2, 1);
  ecs.Submit(RequestKind::kLeave, 2, 2);
  ecs.Advance(100ms);
  CHECK(ecs->held() == 2);
  ecs.AllDone();
  CHECK(ecs->ring()->Contains(Node(2)));
  ecs.out.clear();
  ecs.Advance(0ms);
  auto leave = All<StartTransfer>(ecs.out);
  REQUIRE(leave.size() == 1);
  CHECK(leave[0].transfer.source == Node(2));
}

TEST_CASE("requests beyond the ECS's credit are answered overloaded", "[ecs]") {
  kvtest::TempDir dir;
  CoordinatorConfig config = Config();
  config.max_held = 2;
  Ecs ecs(dir.path(), config);
  ecs.Submit(RequestKind::kJoin, 1, 1);
  ecs.Submit(RequestKind::kJoin, 2, 2);
  ecs.Submit(RequestKind::kJoin, 3, 3);
  auto replies = All<ReplyTo>(ecs.out);
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].request_id == 3);
  CHECK(replies[0].status == ControlStatus::OVERLOADED);
  CHECK(ecs->held() == 2);
}

TEST_CASE("a join without a usable address is a bad request", "[ecs]") {
  kvtest::TempDir dir;
  Ecs ecs(dir.path());
  auto bad = Request(RequestKind::kJoin, 1, 1);
  bad.node.peer_port = 0;
  ecs->Submit(bad, &ecs.out);
  auto spaced = Request(RequestKind::kJoin, 2, 2);
  spaced.node.host = "bad host";
  ecs->Submit(spaced, &ecs.out);
  auto replies = All<ReplyTo>(ecs.out);
  REQUIRE(replies.size() == 2);
  CHECK(replies[0].status == ControlStatus::BAD_REQUEST);
  CHECK(replies[1].status == ControlStatus::BAD_REQUEST);
  CHECK(ecs->held() == 0);
}

TEST_CASE("stopping mid-transition aborts its transfers but keeps the record for restart",
          "[ecs]") {
  kvtest::TempDir dir;
  Ecs ecs(dir.path());
  ecs.Bootstrap(1);
  ecs.Submit(RequestKind::kJoin, 2, 1);
  ecs.Advance(100ms);
  ecs.Submit(RequestKind::kJoin, 3, 2);
  ecs.out.clear();
  ecs->Stop(&ecs.out);
  CHECK(All<AbortTransfer>(ecs.out).size() == 1);
  auto replies = All<ReplyTo>(ecs.out);
  REQUIRE(replies.size() == 2);
  for (const auto& r : replies) CHECK(r.status == ControlStatus::UNAVAILABLE);
  auto record = ecs.store().LoadTransition();
  REQUIRE(record.ok());
  CHECK(record->has_value());
}

TEST_CASE("the last node's leave is rejected and it stays in the ring", "[ecs]") {
  kvtest::TempDir dir;
  Ecs ecs(dir.path());
  ecs.Bootstrap(1);
  ecs.Submit(RequestKind::kLeave, 1, 3);
  ecs.Advance(100ms);
  CHECK(All<PublishRing>(ecs.out).empty());
  auto replies = All<ReplyTo>(ecs.out);
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].status == ControlStatus::REJECTED);
  CHECK(ecs->ring()->version() == 1);
  CHECK(ecs->ring()->Contains(Node(1)));
  CHECK(ecs->held() == 0);
}

// The ECS's LMDB state and the transition record's encoding.
#include <catch2/catch.hpp>
#include <string>

#include "ecs/ring_store.h"
#include "ecs/transition.h"
#include "tests/support/process.h"

using kv::NodeAddress;
using kv::Ring;
using kv::RingStore;
using kv::TransitionRecord;

namespace {

NodeAddress StoreNode(int i) {
  return NodeAddress{"10.1.0." + std::to_string(i), static_cast<uint16_t>(7000 + i),
                     static_cast<uint16_t>(8000 + i)};
}

TransitionRecord SampleRecord() {
  auto before = Ring::Make(4, 1, {StoreNode(1), StoreNode(2)});
  REQUIRE(before.ok());
  auto after = (*before)->WithNodes(5, {StoreNode(3)}, {});
  REQUIRE(after.ok());
  TransitionRecord record;
  record.target = *after;
  uint64_t next_id = 40;
  record.transfers = kv::GroupMoves(kv::PlanMoves(**before, **after), &next_id);
  record.requesters.push_back(
      kv::MembershipRequest{std::string("\0id\xff", 4), 17, kv::RequestKind::kJoin, StoreNode(3)});
  return record;
}

}  // namespace

TEST_CASE("a fresh ECS state has no ring, no transition and transfer ids from 1", "[ecs][store]") {
  kvtest::TempDir dir;
  auto store = RingStore::Open(dir / "state");
  REQUIRE(store.ok());
  auto ring = (*store)->LoadRing();
  REQUIRE(ring.ok());
  CHECK(*ring == nullptr);
  auto transition = (*store)->LoadTransition();
  REQUIRE(transition.ok());
  CHECK(!transition->has_value());
  auto next = (*store)->LoadNextTransferId();
  REQUIRE(next.ok());
  CHECK(*next == 1);
}

TEST_CASE("a transition record survives a reopen field for field", "[ecs][store]") {
  kvtest::TempDir dir;
  TransitionRecord record = SampleRecord();
  REQUIRE(!record.transfers.empty());
  {
    auto store = RingStore::Open(dir.path());
    REQUIRE(store.ok());
    REQUIRE((*store)->SaveTransition(record, 99).ok());
  }
  auto store = RingStore::Open(dir.path());
  REQUIRE(store.ok());
  auto loaded = (*store)->LoadTransition();
  REQUIRE(loaded.ok());
  REQUIRE(loaded->has_value());
  const TransitionRecord& got = **loaded;
  CHECK(got.target->version() == 5);
  CHECK(got.target->KeyrangeText() == record.target->KeyrangeText());
  REQUIRE(got.transfers.size() == record.transfers.size());
  for (size_t i = 0; i < got.transfers.size(); ++i) {
    CHECK(got.transfers[i].transfer_id == record.transfers[i].transfer_id);
    CHECK(got.transfers[i].source == record.transfers[i].source);
    CHECK(got.transfers[i].source.peer_port == record.transfers[i].source.peer_port);
    CHECK(got.transfers[i].target.peer_port == record.transfers[i].target.peer_port);
    CHECK(got.transfers[i].ranges == record.transfers[i].ranges);
  }
  REQUIRE(got.requesters.size() == 1);
  CHECK(got.requesters[0].client == std::string("\0id\xff", 4));
  CHECK(got.requesters[0].request_id == 17);
  CHECK(got.requesters[0].kind == kv::RequestKind::kJoin);
  CHECK(*(*store)->LoadNextTransferId() == 99);
}

TEST_CASE("committing a ring replaces the ring and deletes the transition", "[ecs][store]") {
  kvtest::TempDir dir;
  auto store = RingStore::Open(dir.path());
  REQUIRE(store.ok());
  TransitionRecord record = SampleRecord();
  REQUIRE((*store)->SaveTransition(record, 2).ok());
  REQUIRE((*store)->CommitRing(*record.target).ok());
  auto ring = (*store)->LoadRing();
  REQUIRE(ring.ok());
  REQUIRE(*ring != nullptr);
  CHECK((*ring)->version() == 5);
  CHECK((*ring)->size() == 3);
  auto transition = (*store)->LoadTransition();
  REQUIRE(transition.ok());
  CHECK(!transition->has_value());
}

TEST_CASE("a garbled transition record is reported as corruption", "[ecs][store]") {
  CHECK(kv::DecodeTransition("not a record").status().code() == kv::Status::Code::kCorruption);
  CHECK(kv::DecodeTransition(std::string(64, '\xff')).status().code() ==
        kv::Status::Code::kCorruption);
  std::string bytes = kv::EncodeTransition(SampleRecord());
  CHECK(kv::DecodeTransition(bytes).ok());
  CHECK(!kv::DecodeTransition(bytes.substr(0, bytes.size() - 8)).ok());
}

TEST_CASE("moves between the same source and target travel in one transfer", "[ecs]") {
  NodeAddress a = StoreNode(1), b = StoreNode(2), c = StoreNode(3);
  kv::HashRange r1{kv::Hash128::Min(), kv::Hash128::Max()};
  kv::HashRange r2{kv::Hash128::Max(), kv::Hash128::Min()};
  std::vector<kv::Move> moves = {{r1, a, b}, {r2, a, c}, {r2, a, b}};
  uint64_t next = 10;
  auto transfers = kv::GroupMoves(moves, &next);
  REQUIRE(transfers.size() == 2);
  CHECK(transfers[0].transfer_id == 10);
  CHECK(transfers[0].target == b);
  CHECK(transfers[0].ranges.size() == 2);
  CHECK(transfers[1].transfer_id == 11);
  CHECK(transfers[1].target == c);
  CHECK(next == 12);
}

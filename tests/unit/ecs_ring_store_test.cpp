// The ECS's LMDB state (ring, transition and repair records, layout
// versions) and the transition record's encoding.
#include <lmdb.h>

#include <catch2/catch.hpp>
#include <optional>
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

// Writes "format" = value into the LMDB environment in dir, as another
// kvecs would have.
void WriteFormat(const std::string& dir, const std::string& value) {
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  REQUIRE(mdb_env_open(env, dir.c_str(), MDB_NOTLS, 0644) == 0);
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
  MDB_dbi dbi = 0;
  REQUIRE(mdb_dbi_open(txn, nullptr, 0, &dbi) == 0);
  MDB_val k{6, const_cast<char*>("format")};
  MDB_val v{value.size(), const_cast<char*>(value.data())};
  REQUIRE(mdb_put(txn, dbi, &k, &v, 0) == 0);
  REQUIRE(mdb_txn_commit(txn) == 0);
  mdb_env_close(env);
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

TEST_CASE("a fail-over commits the ring and its repair record together", "[ecs][store]") {
  kvtest::TempDir dir;
  TransitionRecord join = SampleRecord();
  auto before = Ring::Make(5, 3, {StoreNode(1), StoreNode(2), StoreNode(3), StoreNode(4)});
  REQUIRE(before.ok());
  auto after = (*before)->WithNodes(6, {}, {StoreNode(2)});
  REQUIRE(after.ok());
  TransitionRecord repair;
  repair.target = *after;
  uint64_t next_id = 70;
  repair.transfers =
      kv::GroupMoves(kv::PlanMoves(**before, **after, {StoreNode(2)}), &next_id, true);
  REQUIRE(!repair.transfers.empty());
  {
    auto store = RingStore::Open(dir.path());
    REQUIRE(store.ok());
    REQUIRE((*store)->SaveTransition(join, 40).ok());
    REQUIRE((*store)->CommitFailover(**after, repair, next_id).ok());
  }
  auto store = RingStore::Open(dir.path());
  REQUIRE(store.ok());
  CHECK((*(*store)->LoadRing())->version() == 6);
  CHECK(!(*store)->LoadTransition()->has_value());  // the aborted join is gone
  CHECK(*(*store)->LoadNextTransferId() == next_id);
  auto loaded = (*store)->LoadRepair();
  REQUIRE(loaded.ok());
  REQUIRE(loaded->has_value());
  CHECK((*loaded)->target->version() == 6);
  REQUIRE((*loaded)->transfers.size() == repair.transfers.size());
  for (size_t i = 0; i < repair.transfers.size(); ++i) {
    CHECK((*loaded)->transfers[i].repair);
    CHECK((*loaded)->transfers[i].transfer_id == repair.transfers[i].transfer_id);
    CHECK((*loaded)->transfers[i].ranges == repair.transfers[i].ranges);
  }

  SECTION("a repair's progress replaces the record, and its end deletes it") {
    repair.transfers.resize(1);
    repair.transfers[0].transfer_id = 99;
    REQUIRE((*store)->SaveRepair(repair, 100).ok());
    loaded = (*store)->LoadRepair();
    REQUIRE((*loaded)->transfers.size() == 1);
    CHECK((*loaded)->transfers[0].transfer_id == 99);
    CHECK(*(*store)->LoadNextTransferId() == 100);
    REQUIRE((*store)->DropRepair().ok());
    CHECK(!(*store)->LoadRepair()->has_value());
  }
  SECTION("a fail-over with nothing to copy leaves no repair record") {
    auto smaller = (*after)->WithNodes(7, {}, {StoreNode(3)});
    REQUIRE(smaller.ok());
    REQUIRE((*store)->CommitFailover(**smaller, std::nullopt, next_id).ok());
    CHECK(!(*store)->LoadRepair()->has_value());
    CHECK((*(*store)->LoadRing())->version() == 7);
  }
}

TEST_CASE("a layout-1 state is upgraded on open and an unknown layout is refused",
          "[ecs][store]") {
  kvtest::TempDir dir;
  {
    auto store = RingStore::Open(dir.path());
    REQUIRE(store.ok());
    REQUIRE((*store)->CommitRing(*SampleRecord().target).ok());
  }
  WriteFormat(dir.path(), "1");
  {
    auto store = RingStore::Open(dir.path());
    REQUIRE(store.ok());
    CHECK((*(*store)->LoadRing())->version() == 5);
    CHECK(!(*store)->LoadRepair()->has_value());
  }
  WriteFormat(dir.path(), "3");
  auto refused = RingStore::Open(dir.path());
  CHECK(refused.status().code() == kv::Status::Code::kCorruption);
}

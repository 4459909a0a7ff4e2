#include "kvnode/storage.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "schema/hash.h"
#include "tests/support/process.h"

namespace {

std::unique_ptr<kv::Store> OpenStore(const std::string& dir, uint64_t memtable_bytes = 1 << 20) {
  kv::StoreOptions o;
  o.dir = dir;
  o.map_size_bytes = 64ull << 20;
  o.memtable_bytes = memtable_bytes;
  auto s = kv::Store::Open(o);
  REQUIRE(s.ok());
  return std::move(*s);
}

kv::Status Put(kv::Store& store, std::string_view key, std::string_view value,
               bool* existed = nullptr) {
  std::vector<bool> ex;
  kv::Status s = store.Write({kv::WriteOp{false, key, value}}, &ex);
  if (existed != nullptr && s.ok()) *existed = ex[0];
  return s;
}

std::string GetOr(kv::Store& store, std::string_view key, std::string fallback = "<missing>") {
  std::string v;
  return store.Get(key, &v).ok() ? v : fallback;
}

}  // namespace

TEST_CASE("stored keys are prefixed with the MD5 of the key", "[storage]") {
  std::string enc = kv::EncodeStorageKey("hello");
  REQUIRE(enc.size() == 16 + 5);
  CHECK(kv::Hash128::FromBytes(enc.substr(0, 16)) == kv::Md5("hello"));
  CHECK(kv::DecodeStorageKey(enc) == "hello");
}

TEST_CASE("a write batch applies in order and reports what existed before", "[storage]") {
  kvtest::TempDir dir;
  auto store = OpenStore(dir.path());
  std::vector<bool> existed;
  REQUIRE(store
              ->Write({{false, "k", "v1"}, {false, "k", "v2"}, {true, "k", ""}, {true, "k", ""},
                       {false, "other", "x"}},
                      &existed)
              .ok());
  CHECK(existed == std::vector<bool>{false, true, true, false, false});
  CHECK(GetOr(*store, "k") == "<missing>");
  CHECK(GetOr(*store, "other") == "x");
  CHECK(store->last_seq() == 4);  // the delete of an absent key wrote nothing
}

TEST_CASE("unchecked ops of a batch are logged without a lookup, the rest are checked",
          "[storage]") {
  kvtest::TempDir dir;
  auto store = OpenStore(dir.path());
  REQUIRE(Put(*store, "old", "o").ok());  // in the active MemTable
  const uint64_t before = store->last_seq();
  std::vector<bool> existed;
  std::vector<uint64_t> versions;
  // Two unchecked ops (a delete of an absent key is logged all the same; the
  // server's unchecked keys, a replica's, never meet its checked ones), then
  // checked ones: an update in place, a new key, a delete, a re-put.
  REQUIRE(store
              ->Write({{true, "absent", "", 0}, {false, "replicated", "r", 7},
                       {false, "old", "o2", 8}, {false, "new", "n", 9}, {true, "old", "", 10},
                       {false, "old", "o3", 11}},
                      &existed, &versions, 2)
              .ok());
  CHECK(existed == std::vector<bool>{false, false, true, false, true, false});
  CHECK(versions == std::vector<uint64_t>{0, 0, 0, 0, 8, 0});
  CHECK(store->last_seq() == before + 6);
  CHECK(GetOr(*store, "old") == "o3");
  CHECK(GetOr(*store, "new") == "n");
  CHECK(GetOr(*store, "replicated") == "r");
  CHECK(GetOr(*store, "absent") == "<missing>");
  // What was updated in place is what the log replays.
  store.reset();
  store = OpenStore(dir.path());
  CHECK(GetOr(*store, "old") == "o3");
  CHECK(GetOr(*store, "new") == "n");
  CHECK(GetOr(*store, "replicated") == "r");
}

TEST_CASE("writes survive reopening through the write-ahead log alone", "[storage]") {
  kvtest::TempDir dir;
  std::string binary("\0\x01\xff value with spaces ", 21);
  {
    auto store = OpenStore(dir.path());
    for (int i = 0; i < 100; ++i) {
      REQUIRE(Put(*store, "key" + std::to_string(i), binary + std::to_string(i)).ok());
    }
    std::vector<bool> ex;
    REQUIRE(store->Write({{true, "key7", ""}}, &ex).ok());
    REQUIRE(*store->Count() == 0);  // nothing flushed into LMDB yet
  }  // closed without a flush: only the WAL has the data
  auto store = OpenStore(dir.path());
  CHECK(store->last_seq() == 101);
  CHECK(*store->Count() == 99);  // recovery flushed the log into LMDB
  CHECK(GetOr(*store, "key42") == binary + "42");
  CHECK(GetOr(*store, "key7") == "<missing>");
  bool existed = true;
  REQUIRE(Put(*store, "fresh", "v", &existed).ok());
  CHECK_FALSE(existed);
  CHECK(store->last_seq() == 102);
}

TEST_CASE("background flushes move data into LMDB while reads keep working", "[storage]") {
  kvtest::TempDir dir;
  {
    auto store = OpenStore(dir.path(), /*memtable_bytes=*/16 * 1024);
    for (int i = 0; i < 3000; ++i) {
      REQUIRE(Put(*store, "key" + std::to_string(i), std::string(100, 'a' + i % 26)).ok());
      if (i % 500 == 0) {
        // Whatever is frozen, flushing or flushed, the latest value is visible.
        CHECK(GetOr(*store, "key" + std::to_string(i / 2)) == std::string(100, 'a' + (i / 2) % 26));
      }
    }
    REQUIRE(Put(*store, "key5", "updated").ok());
    CHECK(GetOr(*store, "key5") == "updated");
    REQUIRE(store->FlushAll().ok());
    CHECK(*store->Count() == 3000);
    CHECK(GetOr(*store, "key5") == "updated");
  }
  // Only the active (empty) segment is left after a full flush.
  auto segments = kv::ListWalSegments(dir.path());
  REQUIRE(segments.ok());
  CHECK(segments->size() <= 1);
  auto store = OpenStore(dir.path());
  CHECK(GetOr(*store, "key2999") == std::string(100, 'a' + 2999 % 26));
  CHECK(store->last_seq() == 3001);
}

TEST_CASE("a torn tail of the write-ahead log is cut and the rest recovered", "[storage]") {
  kvtest::TempDir dir;
  {
    auto store = OpenStore(dir.path());
    REQUIRE(Put(*store, "a", "1").ok());
    REQUIRE(Put(*store, "b", "2").ok());
  }
  auto segments = kv::ListWalSegments(dir.path());
  REQUIRE(segments.ok());
  REQUIRE_FALSE(segments->empty());
  {
    std::ofstream out(kv::WalSegmentPath(dir.path(), segments->back()),
                      std::ios::app | std::ios::binary);
    out << std::string("\x20\x00\x00\x00garbage that was never acknowledged", 40);
  }
  auto store = OpenStore(dir.path());
  CHECK(GetOr(*store, "a") == "1");
  CHECK(GetOr(*store, "b") == "2");
}

TEST_CASE("a data directory of another layout version is refused", "[storage]") {
  kvtest::TempDir dir;
  {
    auto store = OpenStore(dir.path());
  }
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  mdb_env_set_maxdbs(env, 4);
  REQUIRE(mdb_env_open(env, dir.path().c_str(), 0, 0644) == 0);
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
  MDB_dbi meta;
  REQUIRE(mdb_dbi_open(txn, "meta", 0, &meta) == 0);
  char v257[4] = {1, 1, 0, 0};  // 257: the low byte alone would read as 1
  MDB_val k{6, const_cast<char*>("format")}, v{4, v257};
  REQUIRE(mdb_put(txn, meta, &k, &v, 0) == 0);
  REQUIRE(mdb_txn_commit(txn) == 0);
  mdb_env_close(env);

  kv::StoreOptions o;
  o.dir = dir.path();
  o.map_size_bytes = 64ull << 20;
  auto reopened = kv::Store::Open(o);
  REQUIRE_FALSE(reopened.ok());
  CHECK(reopened.status().code() == kv::Status::Code::kCorruption);
}

TEST_CASE("a range snapshot returns exactly the keys whose positions lie in the ranges",
          "[storage][handoff]") {
  kvtest::TempDir dir;
  auto store = OpenStore(dir.path());
  std::vector<kv::WriteOp> ops;
  std::vector<std::string> keys;
  std::vector<std::string> values;
  for (int i = 0; i < 500; ++i) keys.push_back("key" + std::to_string(i));
  for (const auto& k : keys) values.push_back("v-" + k);
  for (size_t i = 0; i < keys.size(); ++i) ops.push_back({false, keys[i], values[i]});
  std::vector<bool> existed;
  REQUIRE(store->Write(ops, &existed).ok());

  auto a = *kv::Hash128::FromHex("C0000000000000000000000000000000");
  auto b = *kv::Hash128::FromHex("40000000000000000000000000000000");
  for (auto [from, to] : {std::pair{b, a}, std::pair{a, b} /* wraps */, std::pair{a, a} /* all */}) {
    auto snap = store->SnapshotRanges({{from, to}});
    REQUIRE(snap.ok());
    std::vector<std::pair<std::string, std::string>> got;
    bool done = false;
    for (int round = 0; round < 1000 && !done; ++round) {
      auto r = (*snap)->Next(512, &got);  // small pieces: many calls
      REQUIRE(r.ok());
      done = *r;
    }
    REQUIRE(done);
    size_t expected = 0;
    for (const auto& k : keys) expected += kv::InRange(kv::KeyPosition(k), from, to) ? 1 : 0;
    CHECK(got.size() == expected);
    for (const auto& [k, v] : got) {
      CHECK(kv::InRange(kv::KeyPosition(k), from, to));
      CHECK(v == "v-" + k);
    }
  }
}

TEST_CASE("deleting a range removes only the keys not kept", "[storage][handoff]") {
  kvtest::TempDir dir;
  auto store = OpenStore(dir.path());
  std::vector<bool> existed;
  std::vector<kv::WriteOp> ops;
  std::vector<std::string> keys;
  for (int i = 0; i < 200; ++i) keys.push_back("k" + std::to_string(i));
  for (const auto& k : keys) ops.push_back({false, k, "v"});
  REQUIRE(store->Write(ops, &existed).ok());
  auto mid = *kv::Hash128::FromHex("80000000000000000000000000000000");
  uint64_t deleted = 0;
  // Whole ring, keeping the lower half.
  REQUIRE(store->DeleteRanges({{mid, mid}}, [&](const kv::Hash128& p) { return p <= mid; },
                              &deleted)
              .ok());
  uint64_t upper = 0;
  for (const auto& k : keys) {
    bool is_upper = kv::KeyPosition(k) > mid;
    upper += is_upper ? 1 : 0;
    std::string v;
    CHECK(store->Get(k, &v).ok() == !is_upper);
  }
  CHECK(deleted == upper);
}

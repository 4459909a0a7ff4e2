// Entry versions in the store (kvnode/storage.h, layout format 2): kept with
// every value through the write-ahead log, LMDB and range snapshots, reported
// as the previous version of each write, and format 1 data still read.
#include <lmdb.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "kvnode/storage.h"
#include "kvnode/wal.h"
#include "tests/support/process.h"

namespace {

std::unique_ptr<kv::Store> Open(const std::string& dir) {
  kv::StoreOptions o;
  o.dir = dir;
  o.map_size_bytes = 64ull << 20;
  o.memtable_bytes = 1 << 20;
  auto s = kv::Store::Open(o);
  REQUIRE(s.ok());
  return std::move(*s);
}

uint64_t VersionOf(kv::Store& store, std::string_view key) {
  std::string value;
  uint64_t version = 999;
  REQUIRE(store.Get(key, &value, &version).ok());
  return version;
}

void PutLE(char* p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

}  // namespace

TEST_CASE("a write reports the version of the value it replaces also within one batch",
          "[storage][versions]") {
  kvtest::TempDir dir;
  auto store = Open(dir.path());
  std::vector<bool> existed;
  std::vector<uint64_t> prev;
  REQUIRE(store
              ->Write({{false, "k", "a", 10},
                       {false, "k", "b", 11},
                       {true, "k", "", 12},
                       {false, "k", "c", 13},
                       {true, "gone", "", 14}},
                      &existed, &prev)
              .ok());
  CHECK(existed == std::vector<bool>{false, true, true, false, false});
  CHECK(prev == std::vector<uint64_t>{0, 10, 11, 0, 0});
  CHECK(VersionOf(*store, "k") == 13);
  REQUIRE(store->Write({{false, "k", "d", 20}}, &existed, &prev).ok());
  CHECK(prev == std::vector<uint64_t>{13});
}

TEST_CASE("versions survive the write-ahead log and the flush into LMDB and a range snapshot",
          "[storage][versions]") {
  kvtest::TempDir dir;
  {
    auto store = Open(dir.path());
    REQUIRE(
        store->Write({{false, "x", "1", (3ull << 40) | 7}, {false, "y", "2", 5}}, nullptr).ok());
  }                               // not flushed: the next open replays the log
  auto store = Open(dir.path());  // replays, then flushes into LMDB
  CHECK(VersionOf(*store, "x") == ((3ull << 40) | 7));
  CHECK(VersionOf(*store, "y") == 5);
  auto snap = store->SnapshotRanges({{kv::Hash128::Min(), kv::Hash128::Min()}});  // whole ring
  REQUIRE(snap.ok());
  std::vector<std::pair<std::string, std::string>> entries;
  std::vector<uint64_t> versions;
  auto done = (*snap)->Next(1 << 20, &entries, &versions);
  REQUIRE(done.ok());
  REQUIRE(entries.size() == 2);
  REQUIRE(versions.size() == 2);
  for (size_t i = 0; i < entries.size(); ++i) {
    CHECK(versions[i] == (entries[i].first == "x" ? ((3ull << 40) | 7) : 5u));
  }
}

TEST_CASE("a format 1 data directory and write-ahead log are read with version 0",
          "[storage][versions]") {
  kvtest::TempDir dir;
  {
    // LMDB as a format 1 node left it: meta.format 1, values [1][0][seq][bytes].
    MDB_env* env = nullptr;
    REQUIRE(mdb_env_create(&env) == 0);
    mdb_env_set_maxdbs(env, 4);
    REQUIRE(mdb_env_open(env, dir.path().c_str(), 0, 0644) == 0);
    MDB_txn* txn = nullptr;
    REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
    MDB_dbi data, meta;
    REQUIRE(mdb_dbi_open(txn, "data", MDB_CREATE, &data) == 0);
    REQUIRE(mdb_dbi_open(txn, "meta", MDB_CREATE, &meta) == 0);
    char format[4];
    PutLE(format, 1, 4);
    MDB_val fk{6, const_cast<char*>("format")}, fv{4, format};
    REQUIRE(mdb_put(txn, meta, &fk, &fv, 0) == 0);
    std::string skey = kv::EncodeStorageKey("old");
    std::string value(10, '\0');
    value[0] = 1;
    PutLE(value.data() + 2, 1, 8);
    value += "legacy";
    MDB_val k{skey.size(), skey.data()}, v{value.size(), value.data()};
    REQUIRE(mdb_put(txn, data, &k, &v, 0) == 0);
    char seq[8];
    PutLE(seq, 1, 8);
    MDB_val sk{8, const_cast<char*>("last_seq")}, sv{8, seq};
    REQUIRE(mdb_put(txn, meta, &sk, &sv, 0) == 0);
    REQUIRE(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
  }
  {
    // A format 1 log record (type 1: no version field), as an old node wrote it.
    std::string payload;
    payload.push_back(1);
    std::string seq(8, '\0');
    PutLE(seq.data(), 2, 8);
    payload += seq;
    payload.push_back(3);
    payload.push_back(0);
    payload += "walv1";
    std::string record(8, '\0');
    PutLE(record.data() + 4, payload.size(), 4);
    record += payload;
    uint32_t crc = kv::Crc32c(record.data() + 4, payload.size() + 4);
    PutLE(record.data(), crc, 4);
    // The key is "wal" (3 bytes) and the value "v1".
    std::ofstream(kv::WalSegmentPath(dir.path(), 1), std::ios::binary) << record;
  }
  auto store = Open(dir.path());
  std::string value;
  uint64_t version = 999;
  REQUIRE(store->Get("old", &value, &version).ok());
  CHECK(value == "legacy");
  CHECK(version == 0);
  REQUIRE(store->Get("wal", &value, &version).ok());
  CHECK(value == "v1");
  CHECK(version == 0);
  std::vector<bool> existed;
  std::vector<uint64_t> prev;
  REQUIRE(store->Write({{false, "old", "new", 77}}, &existed, &prev).ok());
  CHECK(prev == std::vector<uint64_t>{0});
  REQUIRE(store->FlushAll().ok());
  CHECK(VersionOf(*store, "old") == 77);
  store.reset();
  auto again = Open(dir.path());  // now marked format 2
  CHECK(VersionOf(*again, "old") == 77);
}

#include "kvnode/storage.h"

#include <catch2/catch.hpp>

#include "schema/hash.h"
#include "tests/support/process.h"

namespace {

std::unique_ptr<kv::Store> OpenStore(const std::string& dir) {
  kv::StoreOptions o;
  o.dir = dir;
  o.map_size_bytes = 64ull << 20;
  auto s = kv::Store::Open(o);
  REQUIRE(s.ok());
  return std::move(*s);
}

}  // namespace

TEST_CASE("stored keys are prefixed with the MD5 of the key", "[storage]") {
  std::string enc = kv::EncodeStorageKey("hello");
  REQUIRE(enc.size() == 16 + 5);
  CHECK(kv::Hash128::FromBytes(enc.substr(0, 16)) == kv::Md5("hello"));
  CHECK(kv::DecodeStorageKey(enc) == "hello");
}

TEST_CASE("a committed write is readable and reports whether it was an update", "[storage]") {
  kvtest::TempDir dir;
  auto store = OpenStore(dir.path());
  {
    auto txn = store->BeginWrite();
    REQUIRE(txn.ok());
    bool existed = true;
    REQUIRE(txn->Put("k", "v1", &existed).ok());
    CHECK_FALSE(existed);
    REQUIRE(txn->Put("k", "v2", &existed).ok());
    CHECK(existed);
    std::string v;
    REQUIRE(txn->Get("k", &v).ok());
    CHECK(v == "v2");
    REQUIRE(txn->Commit().ok());
  }
  std::string v;
  REQUIRE(store->Get("k", &v).ok());
  CHECK(v == "v2");
  CHECK(store->last_seq() == 2);
  CHECK(store->Get("missing", &v).IsNotFound());
}

TEST_CASE("an uncommitted transaction leaves nothing behind", "[storage]") {
  kvtest::TempDir dir;
  auto store = OpenStore(dir.path());
  {
    auto txn = store->BeginWrite();
    REQUIRE(txn.ok());
    bool existed = false;
    REQUIRE(txn->Put("k", "v", &existed).ok());
  }  // aborted
  std::string v;
  CHECK(store->Get("k", &v).IsNotFound());
  CHECK(store->last_seq() == 0);
}

TEST_CASE("deletes remove keys and report missing ones", "[storage]") {
  kvtest::TempDir dir;
  auto store = OpenStore(dir.path());
  auto txn = store->BeginWrite();
  REQUIRE(txn.ok());
  bool existed = false;
  REQUIRE(txn->Put("k", "v", &existed).ok());
  REQUIRE(txn->Delete("k").ok());
  CHECK(txn->Delete("k").IsNotFound());
  REQUIRE(txn->Commit().ok());
  std::string v;
  CHECK(store->Get("k", &v).IsNotFound());
}

TEST_CASE("data, binary values and the sequence number survive reopening", "[storage]") {
  kvtest::TempDir dir;
  std::string binary("\0\x01\xff value with spaces ", 21);
  {
    auto store = OpenStore(dir.path());
    auto txn = store->BeginWrite();
    REQUIRE(txn.ok());
    bool existed = false;
    for (int i = 0; i < 100; ++i) {
      REQUIRE(txn->Put("key" + std::to_string(i), binary + std::to_string(i), &existed).ok());
    }
    REQUIRE(txn->Commit().ok());
  }
  auto store = OpenStore(dir.path());
  CHECK(store->last_seq() == 100);
  CHECK(*store->Count() == 100);
  std::string v;
  REQUIRE(store->Get("key42", &v).ok());
  CHECK(v == binary + "42");
}

TEST_CASE("a data directory of another layout version is refused", "[storage]") {
  kvtest::TempDir dir;
  {
    auto store = OpenStore(dir.path());
  }
  // Rewrite the format marker through LMDB directly.
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  mdb_env_set_maxdbs(env, 4);
  REQUIRE(mdb_env_open(env, dir.path().c_str(), 0, 0644) == 0);
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
  MDB_dbi meta;
  REQUIRE(mdb_dbi_open(txn, "meta", 0, &meta) == 0);
  char nine[4] = {9, 0, 0, 0};
  MDB_val k{6, const_cast<char*>("format")}, v{4, nine};
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

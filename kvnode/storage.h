// LMDB-backed storage for one kvnode. Owns the on-disk layout (format 1):
//
//   environment <data-dir>/ (data.mdb, lock.mdb), two named databases:
//   "data": key   = [16-byte MD5(user key)][user key bytes]
//           value = [u8 format = 1][u8 flags = 0][u64 little-endian seq][value bytes]
//   "meta": "format"   -> u32 little-endian layout version (1)
//           "last_seq" -> u64 little-endian, the highest seq ever written
//
// Prefixing with the MD5 makes every hash range of the ring one contiguous
// cursor range. seq grows by one with every write and is the version that
// replication (and subscriptions) will order changes by.
// Thread-compatible: one thread (the node's event loop) uses a Store.
#pragma once

#include <lmdb.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "schema/status.h"

namespace kv {

struct StoreOptions {
  std::string dir;                 // created if missing
  bool sync = true;                // fsync every commit; false = MDB_NOSYNC (fast, not durable)
  uint64_t map_size_bytes = 64ull << 30;  // upper bound on database size (address space only)
};

// Encodes "[MD5(key)][key]".
std::string EncodeStorageKey(std::string_view key);
// The user key inside an encoded storage key (no copy).
std::string_view DecodeStorageKey(std::string_view stored);

constexpr size_t kValueHeaderBytes = 10;

class Store;

// One LMDB write transaction: a group of writes committed with one fsync.
// Aborted on destruction unless committed. Not thread-safe.
class WriteTxn {
 public:
  WriteTxn(WriteTxn&& other) noexcept;
  WriteTxn& operator=(WriteTxn&&) = delete;
  ~WriteTxn();

  // *existed tells whether the key held a value before.
  Status Put(std::string_view key, std::string_view value, bool* existed);
  // NotFound if the key was not there.
  Status Delete(std::string_view key);
  // Reads within the transaction (sees its own writes). NotFound if absent.
  Status Get(std::string_view key, std::string* value);
  Status Commit();

 private:
  friend class Store;
  WriteTxn(Store* store, MDB_txn* txn) : store_(store), txn_(txn) {}
  Store* store_;
  MDB_txn* txn_;
  uint64_t seq_ = 0;  // last seq assigned in this transaction (0 = none)
};

class Store {
 public:
  static Result<std::unique_ptr<Store>> Open(const StoreOptions& options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Committed value of key; NotFound if absent.
  Status Get(std::string_view key, std::string* value);
  Result<WriteTxn> BeginWrite();
  uint64_t last_seq() const { return last_seq_; }
  // Number of keys stored (for logs and tests).
  Result<uint64_t> Count();

 private:
  friend class WriteTxn;
  Store() = default;
  Status Init(const StoreOptions& options);

  MDB_env* env_ = nullptr;
  MDB_dbi data_ = 0;
  MDB_dbi meta_ = 0;
  MDB_txn* read_txn_ = nullptr;  // reset between reads, renewed for the next
  uint64_t last_seq_ = 0;
};

}  // namespace kv

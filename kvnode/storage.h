// Storage for one kvnode: a write-ahead log in front of LMDB.
//
// Write path: a batch of writes is appended to the WAL with one write() and
// one fdatasync() (group commit), then applied to the in-memory MemTable; the
// caller acknowledges after Write() returns. When the MemTable passes
// memtable_bytes it is frozen and a flusher thread writes it into LMDB in one
// synced transaction, in key order; then the WAL segments it covered are
// deleted. LMDB is therefore always a consistent, fully synced snapshot, and
// WAL + LMDB together hold every acknowledged write. Open() replays the WAL.
//
// LMDB layout (format 2), two named databases:
//   "data": key   = [16-byte MD5(user key)][user key bytes]
//           value = [u8 format = 2][u8 flags = 0][u64 LE seq][u64 LE version][value bytes]
//   "meta": "format"   -> u32 little-endian layout version (2)
//           "last_seq" -> u64 little-endian, highest seq flushed into "data"
// The MD5 prefix makes every hash range of the ring one contiguous cursor
// range (two when it wraps). seq grows by one with every write; version is
// the write's entry version (kvnode/replication.h), which replication and
// hand-off carry, so a key has the same version on every node holding it (0
// = unknown). Format 1 (value format 1 = [1][0][u64 seq][value], no version)
// is still read, as version 0; opening a format 1 directory marks it format 2.
// WAL layout: kvnode/wal.h.
//
// Thread-compatible: the owner's event loop calls every method; the flusher
// thread only reads a frozen MemTable and talks to the Store over inproc.
#pragma once

#include <lmdb.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "kvnode/key_index.h"
#include "kvnode/memtable.h"
#include "kvnode/wal.h"
#include "schema/hash.h"
#include "schema/status.h"

namespace kv {

struct StoreOptions {
  std::string dir;                          // created if missing
  bool sync = true;                         // fdatasync the WAL before a write returns
  uint64_t map_size_bytes = 64ull << 30;    // LMDB map size: upper bound on data size
  uint64_t memtable_bytes = 64ull << 20;    // freeze and flush the MemTable past this
};

// Encodes "[MD5(key)][key]".
std::string EncodeStorageKey(std::string_view key);
// The user key inside an encoded storage key (no copy).
std::string_view DecodeStorageKey(std::string_view stored);

constexpr size_t kValueHeaderBytes = 18;    // format 2
constexpr size_t kValueHeaderBytesV1 = 10;  // format 1

struct WriteOp {
  bool is_delete = false;
  std::string_view key;
  std::string_view value;
  uint64_t version = 0;  // entry version stored with the write; 0 = none
};

struct PositionInterval {  // [lo, hi] on the ring, inclusive, lo <= hi
  Hash128 lo, hi;
};
// Splits the ring interval (from, to] (whole ring when from == to) into at
// most two non-wrapping intervals.
std::vector<PositionInterval> SplitRange(const Hash128& from_exclusive, const Hash128& to_inclusive);

// A consistent view of the LMDB data in some hash ranges, read in bounded
// pieces across event-loop turns (a hand-off source streams from it). Holds a
// read transaction; owned by the event loop.
class RangeSnapshot {
 public:
  ~RangeSnapshot();
  // Appends entries until about max_bytes of keys and values are added;
  // returns true when the snapshot is exhausted. versions, when given, gets
  // each appended entry's version.
  Result<bool> Next(size_t max_bytes, std::vector<std::pair<std::string, std::string>>* out,
                    std::vector<uint64_t>* versions = nullptr);

 private:
  friend class Store;
  RangeSnapshot() = default;
  MDB_txn* txn_ = nullptr;
  MDB_cursor* cursor_ = nullptr;
  std::vector<PositionInterval> intervals_;
  size_t interval_ = 0;
  bool positioned_ = false;
};

class Store {
 public:
  static Result<std::unique_ptr<Store>> Open(const StoreOptions& options);
  // Waits for a running flush; leaves unflushed writes in the WAL.
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Latest value of key; NotFound if absent or deleted. version, when given,
  // gets the value's entry version (0 = unknown).
  Status Get(std::string_view key, std::string* value, uint64_t* version = nullptr);

  // What the write-ahead log's in-memory tables (not yet in LMDB) know of key,
  // without copying: kValue with *value viewing the value (valid until the
  // next Write or flush event), kDeleted for a tombstone, kUnknown when only
  // LMDB can tell (then Get).
  enum class Recent { kUnknown, kValue, kDeleted };
  Recent FindRecent(std::string_view key, std::string_view* value) const;

  // Applies ops in order, durably (per options.sync) before returning.
  // (*existed)[i] tells whether ops[i]'s key held a value just before it; a
  // delete of an absent key changes nothing. existed may be null when the
  // caller does not need it (saves a lookup per op). (*prev_versions)[i], when
  // given (with existed), is the entry version of that value (0 when absent).
  // The first `unchecked` ops are taken as without existed (no lookup, always
  // logged; their existed entries say false): a replica's writes that share
  // a client batch's commit. After an I/O error the store refuses all further
  // writes (the outcome of the failed batch is unknown).
  Status Write(const std::vector<WriteOp>& ops, std::vector<bool>* existed,
               std::vector<uint64_t>* prev_versions = nullptr, size_t unchecked = 0);

  // Readable when a background flush has finished; the owner polls it and
  // then calls OnFlushEvent().
  zmq::socket_t& flush_events() { return main_pair_; }
  void OnFlushEvent();

  // Writes everything into LMDB now and deletes the WAL segments (blocking;
  // the flushing itself runs on the flusher thread).
  Status FlushAll();

  // Called every 100 ms or so while a call blocks on long work (a flush, the
  // batches of DeleteRanges), so that the owner can keep its heartbeats going.
  void SetBusyHook(std::function<void()> hook) { busy_hook_ = std::move(hook); }

  // Flushes, then opens a snapshot of the entries whose key position lies in
  // one of the ring ranges (from, to].
  Result<std::unique_ptr<RangeSnapshot>> SnapshotRanges(
      const std::vector<std::pair<Hash128, Hash128>>& ranges);
  // Deletes (durably, through the WAL) every key whose position lies in one of
  // the ranges and for which keep(position) is false; *deleted counts them.
  Status DeleteRanges(const std::vector<std::pair<Hash128, Hash128>>& ranges,
                      const std::function<bool(const Hash128&)>& keep, uint64_t* deleted);

  uint64_t last_seq() const { return next_seq_ - 1; }
  // Keys in LMDB (exact after FlushAll).
  Result<uint64_t> Count();

 private:
  Store() = default;
  Status Init(const StoreOptions& options);
  Status Recover();
  Status RotateWal();
  Status Freeze();
  void WaitForFlush();
  void DropFrozen();  // deletes the WAL segments frozen_ covered, then frozen_
  Status ApplyToLmdb(const MemTable& table);
  // The entry version of key's value; nullopt when it has none.
  Result<std::optional<uint64_t>> Lookup(std::string_view key);
  Status LmdbGet(std::string_view key, std::string* value, uint64_t* version);
  void FlusherLoop();

  StoreOptions options_;
  std::function<void()> busy_hook_;
  MDB_env* env_ = nullptr;
  MDB_dbi data_ = 0;
  MDB_dbi meta_ = 0;
  MDB_txn* read_txn_ = nullptr;  // reset between reads, renewed for the next

  std::unique_ptr<WalWriter> wal_;
  uint64_t wal_number_ = 0;       // number of the active segment
  uint64_t oldest_wal_ = 1;       // lowest segment number that may still exist
  std::unique_ptr<MemTable> active_ = std::make_unique<MemTable>();
  KeyIndex batch_keys_;  // Write()'s keys seen so far in its batch, kept for its memory
  std::unique_ptr<const MemTable> frozen_;  // being flushed, or failed to flush
  uint64_t frozen_last_segment_ = 0;        // WAL segments <= this are in frozen_
  bool flush_running_ = false;
  Status write_error_;                      // sticky after a WAL failure
  uint64_t next_seq_ = 1;

  zmq::context_t ctx_{0};         // inproc only: no I/O threads
  zmq::socket_t main_pair_;
  zmq::socket_t flusher_pair_;
  std::thread flusher_;
};

}  // namespace kv

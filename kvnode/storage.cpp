#include "kvnode/storage.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <unordered_map>

#include "schema/hash.h"

namespace kv {
namespace {

constexpr uint8_t kValueFormat = 2;
constexpr uint8_t kValueFormatV1 = 1;  // no version field; still read
constexpr uint32_t kLayoutVersion = 2;
constexpr uint32_t kLayoutVersionV1 = 1;  // opened and marked format 2
constexpr char kFlusherEndpoint[] = "inproc://kvnode-flusher";
constexpr char kStopMessage[] = "stop";

Status LmdbError(const std::string& what, int rc) {
  std::string msg = what + ": " + mdb_strerror(rc);
  if (rc == MDB_MAP_FULL) msg += " (database full; raise --map-size-mb)";
  return Status::IOError(msg);
}

MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }

void PutLE(char* p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

uint64_t GetLE(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

// Splits a stored "data" value of format 1 or 2 into its bytes and version;
// false for an unknown header.
bool ParseStoredValue(const MDB_val& v, std::string_view* value, uint64_t* version) {
  const char* p = static_cast<const char*>(v.mv_data);
  if (v.mv_size >= kValueHeaderBytes && static_cast<uint8_t>(p[0]) == kValueFormat) {
    *version = GetLE(p + 10, 8);
    *value = std::string_view(p + kValueHeaderBytes, v.mv_size - kValueHeaderBytes);
    return true;
  }
  if (v.mv_size >= kValueHeaderBytesV1 && static_cast<uint8_t>(p[0]) == kValueFormatV1) {
    *version = 0;
    *value = std::string_view(p + kValueHeaderBytesV1, v.mv_size - kValueHeaderBytesV1);
    return true;
  }
  return false;
}

}  // namespace

std::string EncodeStorageKey(std::string_view key) {
  std::string out(KeyPosition(key).AsBytes());
  out.append(key);
  return out;
}

std::string_view DecodeStorageKey(std::string_view stored) {
  return stored.size() < 16 ? std::string_view() : stored.substr(16);
}

Result<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  std::unique_ptr<Store> store(new Store());
  Status s = store->Init(options);
  if (!s.ok()) return s;
  return store;
}

Status Store::Init(const StoreOptions& options) {
  options_ = options;
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) return Status::IOError("cannot create data directory " + options.dir + ": " + ec.message());
  int rc = mdb_env_create(&env_);
  if (rc != 0) return LmdbError("mdb_env_create", rc);
  mdb_env_set_maxdbs(env_, 4);
  rc = mdb_env_set_mapsize(env_, options.map_size_bytes);
  if (rc != 0) return LmdbError("mdb_env_set_mapsize", rc);
  // LMDB commits are always synced: they happen once per flush, so LMDB on
  // disk is always a consistent snapshot; --sync only governs the WAL.
  rc = mdb_env_open(env_, options.dir.c_str(), MDB_NOTLS | MDB_NORDAHEAD, 0644);
  if (rc != 0) return LmdbError("cannot open database in " + options.dir, rc);

  MDB_txn* txn = nullptr;
  rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != 0) return LmdbError("begin", rc);
  rc = mdb_dbi_open(txn, "data", MDB_CREATE, &data_);
  if (rc == 0) rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &meta_);
  if (rc != 0) {
    mdb_txn_abort(txn);
    return LmdbError("open databases", rc);
  }
  MDB_val k = Val("format"), v;
  rc = mdb_get(txn, meta_, &k, &v);
  uint64_t version = 0;
  if (rc == 0) version = v.mv_size == 4 ? GetLE(static_cast<const char*>(v.mv_data), 4) : 0;
  if (rc == MDB_NOTFOUND || (rc == 0 && version == kLayoutVersionV1)) {
    // New, or format 1: its values are read as they are, new ones are written
    // in format 2, so an older kvnode must not open it again.
    if (rc == 0) spdlog::info("data directory {}: layout format 1, now format 2", options.dir);
    char buf[4];
    PutLE(buf, kLayoutVersion, 4);
    MDB_val nv{4, buf};
    rc = mdb_put(txn, meta_, &k, &nv, 0);
  } else if (rc == 0) {
    if (version != kLayoutVersion) {
      mdb_txn_abort(txn);
      return Status::Corruption("data directory " + options.dir + " has layout version " +
                                std::to_string(version) + ", this kvnode reads " +
                                std::to_string(kLayoutVersion));
    }
  }
  if (rc != 0) {
    mdb_txn_abort(txn);
    return LmdbError("read format", rc);
  }
  k = Val("last_seq");
  if (mdb_get(txn, meta_, &k, &v) == 0 && v.mv_size == 8) {
    next_seq_ = GetLE(static_cast<const char*>(v.mv_data), 8) + 1;
  }
  rc = mdb_txn_commit(txn);
  if (rc != 0) return LmdbError("commit", rc);

  main_pair_ = zmq::socket_t(ctx_, zmq::socket_type::pair);
  flusher_pair_ = zmq::socket_t(ctx_, zmq::socket_type::pair);
  main_pair_.set(zmq::sockopt::linger, 0);
  flusher_pair_.set(zmq::sockopt::linger, 0);
  main_pair_.bind(kFlusherEndpoint);
  flusher_pair_.connect(kFlusherEndpoint);
  flusher_ = std::thread([this] { FlusherLoop(); });

  return Recover();
}

Store::~Store() {
  busy_hook_ = nullptr;  // the owner may be half destroyed
  if (flusher_.joinable()) {
    WaitForFlush();
    zmq::message_t stop(kStopMessage, sizeof(kStopMessage));
    (void)main_pair_.send(stop, zmq::send_flags::none);
    flusher_.join();
  }
  if (read_txn_ != nullptr) mdb_txn_abort(read_txn_);
  if (env_ != nullptr) mdb_env_close(env_);
}

Status Store::Recover() {
  auto segments = ListWalSegments(options_.dir);
  if (!segments.ok()) return segments.status();
  uint64_t records = 0;
  for (uint64_t number : *segments) {
    std::string path = WalSegmentPath(options_.dir, number);
    bool zero_tail = false;
    auto intact = ReadWalSegment(path, [&](const WalRecord& r) {
      if (r.is_delete) {
        active_->Delete(r.key, r.seq, r.version);
      } else {
        active_->Put(r.key, r.value, r.seq, r.version);
      }
      ++records;
    }, &zero_tail);
    if (!intact.ok()) return intact.status();
    auto size = std::filesystem::file_size(path);
    if (*intact != size && !zero_tail) {  // zeros: preallocated, never written
      spdlog::warn("write-ahead log {}: cut {} bytes of torn tail (never acknowledged)", path,
                   size - *intact);
    }
  }
  if (!active_->empty()) {
    next_seq_ = std::max(next_seq_, active_->max_seq() + 1);
  }
  wal_number_ = segments->empty() ? 0 : segments->back();
  oldest_wal_ = segments->empty() ? 1 : segments->front();
  if (records > 0) {
    spdlog::info("recovered {} write-ahead log records from {} segment(s)", records,
                 segments->size());
  }
  Status s = RotateWal();  // new active segment after the recovered ones
  if (!s.ok()) return s;
  return FlushAll();
}

Status Store::RotateWal() {
  auto wal = WalWriter::Create(WalSegmentPath(options_.dir, wal_number_ + 1), options_.sync);
  if (!wal.ok()) return wal.status();
  wal_ = std::move(*wal);
  ++wal_number_;
  return Status::Ok();
}

Status Store::Freeze() {
  // The new segment must exist before the table is frozen: writes must never
  // land in a segment that the frozen table's flush will delete.
  auto wal = WalWriter::Create(WalSegmentPath(options_.dir, wal_number_ + 1), options_.sync);
  if (!wal.ok()) return wal.status();
  frozen_ = std::move(active_);
  active_ = std::make_unique<MemTable>();
  frozen_last_segment_ = wal_number_;
  wal_ = std::move(*wal);
  ++wal_number_;
  return Status::Ok();
}

void Store::WaitForFlush() {
  while (flush_running_) {
    zmq::pollitem_t item{static_cast<void*>(main_pair_), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(100));
    if ((item.revents & ZMQ_POLLIN) != 0) {
      OnFlushEvent();
    } else if (busy_hook_) {
      busy_hook_();
    }
  }
}

void Store::OnFlushEvent() {
  zmq::message_t reply;
  if (!main_pair_.recv(reply, zmq::recv_flags::dontwait)) return;
  flush_running_ = false;
  if (reply.size() != 0) {
    // Keep frozen_: its writes are still in the WAL and readable; retry later.
    spdlog::error("flush into LMDB failed, will retry: {}", reply.to_string());
    return;
  }
  DropFrozen();
}

Status Store::ApplyToLmdb(const MemTable& table) {
  std::vector<std::pair<std::string, const MemEntry*>> sorted;
  sorted.reserve(table.size());
  table.ForEach([&sorted](std::string_view key, const MemEntry& entry) {
    sorted.emplace_back(EncodeStorageKey(key), &entry);
  });
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != 0) return LmdbError("begin flush", rc);
  for (const auto& [skey, e] : sorted) {
    MDB_val k = Val(skey);
    if (e->deleted) {
      rc = mdb_del(txn, data_, &k, nullptr);
      if (rc == MDB_NOTFOUND) rc = 0;
    } else {
      MDB_val v{kValueHeaderBytes + e->value.size(), nullptr};
      rc = mdb_put(txn, data_, &k, &v, MDB_RESERVE);
      if (rc == 0) {
        char* p = static_cast<char*>(v.mv_data);
        p[0] = static_cast<char>(kValueFormat);
        p[1] = 0;
        PutLE(p + 2, e->seq, 8);
        PutLE(p + 10, e->version, 8);
        if (!e->value.empty()) std::memcpy(p + kValueHeaderBytes, e->value.data(), e->value.size());
      }
    }
    if (rc != 0) {
      mdb_txn_abort(txn);
      return LmdbError("flush write", rc);
    }
  }
  char buf[8];
  PutLE(buf, table.max_seq(), 8);
  MDB_val k = Val("last_seq"), v{8, buf};
  rc = mdb_put(txn, meta_, &k, &v, 0);
  if (rc == 0) {
    rc = mdb_txn_commit(txn);
  } else {
    mdb_txn_abort(txn);
  }
  if (rc != 0) return LmdbError("flush commit", rc);
  return Status::Ok();
}

void Store::FlusherLoop() {
  for (;;) {
    zmq::message_t msg;
    if (!flusher_pair_.recv(msg, zmq::recv_flags::none)) continue;
    if (msg.size() == sizeof(kStopMessage)) return;
    const MemTable* table = nullptr;
    std::memcpy(&table, msg.data(), sizeof(table));
    Status s = ApplyToLmdb(*table);
    std::string text = s.ok() ? "" : s.ToString();
    zmq::message_t reply(text.data(), text.size());
    (void)flusher_pair_.send(reply, zmq::send_flags::none);
  }
}

Status Store::FlushAll() {
  WaitForFlush();
  for (int round = 0; round < 2; ++round) {
    if (frozen_) {
      // On the flusher thread, so that the wait can call busy_hook_: a large
      // MemTable takes seconds, longer than a node's lease.
      const MemTable* table = frozen_.get();
      zmq::message_t msg(&table, sizeof(table));
      (void)main_pair_.send(msg, zmq::send_flags::none);
      flush_running_ = true;
      WaitForFlush();  // OnFlushEvent drops frozen_ once it is in LMDB
      if (frozen_) return Status::IOError("flushing into LMDB failed (see the log)");
    }
    if (active_->empty()) break;
    Status s = Freeze();
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

void Store::DropFrozen() {
  for (uint64_t n = oldest_wal_; n <= frozen_last_segment_; ++n) {
    std::error_code ec;
    std::filesystem::remove(WalSegmentPath(options_.dir, n), ec);
  }
  oldest_wal_ = frozen_last_segment_ + 1;
  frozen_.reset();
}

Status Store::LmdbGet(std::string_view key, std::string* value, uint64_t* version) {
  int rc = read_txn_ == nullptr ? mdb_txn_begin(env_, nullptr, MDB_RDONLY, &read_txn_)
                                : mdb_txn_renew(read_txn_);
  if (rc != 0) return LmdbError("begin read", rc);
  std::string skey = EncodeStorageKey(key);
  MDB_val k = Val(skey), v;
  rc = mdb_get(read_txn_, data_, &k, &v);
  Status s;
  std::string_view bytes;
  uint64_t stored_version = 0;
  if (rc == MDB_NOTFOUND) {
    s = Status::NotFound("key not found");
  } else if (rc != 0) {
    s = LmdbError("get", rc);
  } else if (!ParseStoredValue(v, &bytes, &stored_version)) {
    s = Status::Corruption("stored value has an unknown header");
  } else {
    if (value != nullptr) value->assign(bytes);
    if (version != nullptr) *version = stored_version;
  }
  mdb_txn_reset(read_txn_);
  return s;
}

Status Store::Get(std::string_view key, std::string* value, uint64_t* version) {
  for (const MemTable* t : {static_cast<const MemTable*>(active_.get()), frozen_.get()}) {
    if (t == nullptr) continue;
    if (const MemEntry* e = t->Find(key)) {
      if (e->deleted) return Status::NotFound("key not found");
      value->assign(e->value);
      if (version != nullptr) *version = e->version;
      return Status::Ok();
    }
  }
  return LmdbGet(key, value, version);
}

Store::Recent Store::FindRecent(std::string_view key, std::string_view* value) const {
  for (const MemTable* t : {static_cast<const MemTable*>(active_.get()), frozen_.get()}) {
    if (t == nullptr) continue;
    if (const MemEntry* e = t->Find(key)) {
      if (e->deleted) return Recent::kDeleted;
      *value = e->value;
      return Recent::kValue;
    }
  }
  return Recent::kUnknown;
}

Result<std::optional<uint64_t>> Store::Lookup(std::string_view key) {
  for (const MemTable* t : {static_cast<const MemTable*>(active_.get()), frozen_.get()}) {
    if (t == nullptr) continue;
    if (const MemEntry* e = t->Find(key)) {
      return e->deleted ? std::nullopt : std::optional<uint64_t>(e->version);
    }
  }
  uint64_t version = 0;
  Status s = LmdbGet(key, nullptr, &version);
  if (s.ok()) return std::optional<uint64_t>(version);
  if (s.IsNotFound()) return std::optional<uint64_t>();
  return s;
}

Status Store::Write(const std::vector<WriteOp>& ops, std::vector<bool>* existed,
                    std::vector<uint64_t>* prev_versions, size_t unchecked) {
  if (!write_error_.ok()) return write_error_;
  if (active_->approximate_bytes() >= options_.memtable_bytes) {
    if (flush_running_ && active_->approximate_bytes() >= 2 * options_.memtable_bytes) {
      spdlog::warn("write stall: waiting for the flush into LMDB to finish");
      WaitForFlush();
    }
    if (!flush_running_ && !frozen_) {
      Status s = Freeze();
      if (!s.ok()) return s;
    }
    if (!flush_running_ && frozen_) {  // a new flush, or a retry of a failed one
      const MemTable* table = frozen_.get();
      zmq::message_t msg(&table, sizeof(table));
      (void)main_pair_.send(msg, zmq::send_flags::none);
      flush_running_ = true;
    }
    if (active_->approximate_bytes() >= 4 * options_.memtable_bytes) {
      WaitForFlush();  // bounded memory: wait for the retry rather than grow
      if (frozen_) {
        return Status::IOError("flushing into LMDB keeps failing (see the log); refusing writes");
      }
    }
  }
  // Without `existed` the caller does not care what was there: skip the
  // lookups (hand-off applies whole ranges this way).
  if (existed != nullptr) existed->assign(ops.size(), false);
  if (prev_versions != nullptr) prev_versions->assign(ops.size(), 0);
  // key -> the batch's last earlier op of it, whose value's version (or a
  // delete: absent) is what the key holds at this point of the batch.
  batch_keys_.Clear();
  const auto key_of = [&ops](size_t i) { return ops[i].key; };
  std::vector<uint64_t> seqs(ops.size(), 0);
  // The active MemTable's entry of ops[i]'s key when the lookup found it
  // there: applied in place below, without a second lookup.
  std::vector<MemEntry*> found(ops.size(), nullptr);
  uint64_t seq = next_seq_;
  for (size_t i = 0; i < ops.size(); ++i) {
    const WriteOp& op = ops[i];
    if (existed != nullptr && i >= unchecked) {
      std::optional<uint64_t> before;
      if (auto last = batch_keys_.Find(op.key, key_of)) {
        if (!ops[*last].is_delete) before = ops[*last].version;
      } else if (MemEntry* e = active_->FindMutable(op.key)) {
        found[i] = e;
        if (!e->deleted) before = e->version;
      } else {
        auto r = Lookup(op.key);
        if (!r.ok()) return r.status();
        before = *r;
      }
      (*existed)[i] = before.has_value();
      if (prev_versions != nullptr) (*prev_versions)[i] = before.value_or(0);
      batch_keys_.Set(op.key, i, key_of);
      if (op.is_delete && !before) continue;  // nothing to delete, nothing to log
    }
    seqs[i] = seq;
    wal_->Add(WalRecord{op.is_delete, seq, op.key, op.value, op.version});
    ++seq;
  }
  Status s = wal_->Commit();
  if (!s.ok()) {
    write_error_ = Status::IOError("write-ahead log failed, refusing writes until restart: " +
                                   s.message());
    spdlog::critical("{}", write_error_.message());
    return s;
  }
  next_seq_ = seq;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (seqs[i] == 0) continue;
    if (found[i] != nullptr) {
      active_->Overwrite(found[i], ops[i].value, ops[i].is_delete, seqs[i], ops[i].version);
    } else if (ops[i].is_delete) {
      active_->Delete(ops[i].key, seqs[i], ops[i].version);
    } else {
      active_->Put(ops[i].key, ops[i].value, seqs[i], ops[i].version);
    }
  }
  return Status::Ok();
}

std::vector<PositionInterval> SplitRange(const Hash128& from, const Hash128& to) {
  std::vector<PositionInterval> out;
  if (from < to) {
    out.push_back({from.Next(), to});
    return out;
  }
  // Wraps (or whole ring when from == to): (from, MAX] then [MIN, to].
  if (from != Hash128::Max()) out.push_back({from.Next(), Hash128::Max()});
  out.push_back({Hash128::Min(), to});
  return out;
}

RangeSnapshot::~RangeSnapshot() {
  if (cursor_ != nullptr) mdb_cursor_close(cursor_);
  if (txn_ != nullptr) mdb_txn_abort(txn_);
}

Result<bool> RangeSnapshot::Next(size_t max_bytes,
                                 std::vector<std::pair<std::string, std::string>>* out,
                                 std::vector<uint64_t>* versions) {
  size_t added = 0;
  while (interval_ < intervals_.size()) {
    const PositionInterval& iv = intervals_[interval_];
    MDB_val k, v;
    int rc;
    if (!positioned_) {
      std::string start(iv.lo.AsBytes());
      k = Val(start);
      rc = mdb_cursor_get(cursor_, &k, &v, MDB_SET_RANGE);
      positioned_ = true;
    } else {
      rc = mdb_cursor_get(cursor_, &k, &v, MDB_NEXT);
    }
    if (rc == MDB_NOTFOUND) {
      ++interval_;
      positioned_ = false;
      continue;
    }
    if (rc != 0) return LmdbError("range read", rc);
    std::string_view skey(static_cast<const char*>(k.mv_data), k.mv_size);
    if (skey.size() < 16 || Hash128::FromBytes(skey.substr(0, 16)) > iv.hi) {
      ++interval_;
      positioned_ = false;
      continue;
    }
    std::string_view bytes;
    uint64_t version = 0;
    if (!ParseStoredValue(v, &bytes, &version)) {
      return Status::Corruption("stored value has an unknown header");
    }
    out->emplace_back(std::string(DecodeStorageKey(skey)), std::string(bytes));
    if (versions != nullptr) versions->push_back(version);
    added += out->back().first.size() + out->back().second.size();
    if (added >= max_bytes) return false;
  }
  return true;
}

Result<std::unique_ptr<RangeSnapshot>> Store::SnapshotRanges(
    const std::vector<std::pair<Hash128, Hash128>>& ranges) {
  Status s = FlushAll();
  if (!s.ok()) return s;
  std::unique_ptr<RangeSnapshot> snap(new RangeSnapshot());
  for (const auto& [from, to] : ranges) {
    for (const auto& iv : SplitRange(from, to)) snap->intervals_.push_back(iv);
  }
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &snap->txn_);
  if (rc != 0) return LmdbError("begin snapshot", rc);
  rc = mdb_cursor_open(snap->txn_, data_, &snap->cursor_);
  if (rc != 0) return LmdbError("open cursor", rc);
  return snap;
}

Status Store::DeleteRanges(const std::vector<std::pair<Hash128, Hash128>>& ranges,
                           const std::function<bool(const Hash128&)>& keep, uint64_t* deleted) {
  *deleted = 0;
  auto snap = SnapshotRanges(ranges);
  if (!snap.ok()) return snap.status();
  for (;;) {
    std::vector<std::pair<std::string, std::string>> entries;
    auto done = (*snap)->Next(1 << 20, &entries);
    if (!done.ok()) return done.status();
    std::vector<WriteOp> ops;
    for (const auto& [key, value] : entries) {
      if (!keep(KeyPosition(key))) ops.push_back(WriteOp{true, key, {}});
    }
    if (!ops.empty()) {
      Status s = Write(ops, nullptr);  // the snapshot just saw these keys
      if (!s.ok()) return s;
      *deleted += ops.size();
    }
    if (busy_hook_) busy_hook_();
    if (*done) return Status::Ok();
  }
}

Result<uint64_t> Store::Count() {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc != 0) return LmdbError("begin read", rc);
  MDB_stat st;
  rc = mdb_stat(txn, data_, &st);
  mdb_txn_abort(txn);
  if (rc != 0) return LmdbError("stat", rc);
  return static_cast<uint64_t>(st.ms_entries);
}

}  // namespace kv

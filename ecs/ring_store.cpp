#include "ecs/ring_store.h"

#include <filesystem>
#include <functional>
#include <string_view>

namespace kv {

namespace {

constexpr const char* kFormat = "2";
constexpr const char* kFormatWithoutRepair = "1";  // upgraded on open: it only lacks "repair"
constexpr size_t kMapSizeBytes = 64u << 20;  // a ring of ~100k nodes, twice over

Status LmdbError(const std::string& what, int rc) {
  return Status::IOError(what + ": " + mdb_strerror(rc));
}

MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }

std::string EncodeU64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[static_cast<size_t>(i)] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

// Runs fn in one write transaction and commits it; aborts on any error.
Status WriteTxn(MDB_env* env, const std::function<int(MDB_txn*)>& fn, const char* what) {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env, nullptr, 0, &txn);
  if (rc != 0) return LmdbError(std::string(what) + ": begin", rc);
  rc = fn(txn);
  if (rc != 0) {
    mdb_txn_abort(txn);
    return LmdbError(what, rc);
  }
  rc = mdb_txn_commit(txn);
  if (rc != 0) return LmdbError(std::string(what) + ": commit", rc);
  return Status::Ok();
}

int Put(MDB_txn* txn, MDB_dbi dbi, const std::string& key, const std::string& value) {
  MDB_val k = Val(key), v = Val(value);
  return mdb_put(txn, dbi, &k, &v, 0);
}

int Delete(MDB_txn* txn, MDB_dbi dbi, const std::string& key) {
  MDB_val k = Val(key);
  int rc = mdb_del(txn, dbi, &k, nullptr);
  return rc == MDB_NOTFOUND ? 0 : rc;
}

}  // namespace

Result<std::unique_ptr<RingStore>> RingStore::Open(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IOError("cannot create " + dir + ": " + ec.message());
  MDB_env* env = nullptr;
  int rc = mdb_env_create(&env);
  if (rc != 0) return LmdbError("mdb_env_create", rc);
  rc = mdb_env_set_mapsize(env, kMapSizeBytes);
  if (rc == 0) rc = mdb_env_open(env, dir.c_str(), MDB_NOTLS, 0644);
  if (rc != 0) {
    mdb_env_close(env);
    return LmdbError("cannot open the ECS state in " + dir, rc);
  }
  MDB_dbi dbi = 0;
  std::optional<std::string> found_format;
  Status s = WriteTxn(
      env,
      [&](MDB_txn* txn) {
        int r = mdb_dbi_open(txn, nullptr, 0, &dbi);
        if (r != 0) return r;
        MDB_val k = Val("format"), v;
        r = mdb_get(txn, dbi, &k, &v);
        if (r == MDB_NOTFOUND) return Put(txn, dbi, "format", kFormat);
        if (r != 0) return r;
        found_format = std::string(static_cast<const char*>(v.mv_data), v.mv_size);
        if (*found_format != kFormatWithoutRepair) return 0;
        found_format = kFormat;
        return Put(txn, dbi, "format", kFormat);
      },
      "opening the ECS state");
  if (s.ok() && found_format && *found_format != kFormat) {
    s = Status::Corruption("ECS state in " + dir + " has layout version '" + *found_format +
                           "', this kvecs reads '" + kFormat + "'");
  }
  if (!s.ok()) {
    mdb_env_close(env);
    return s;
  }
  return std::unique_ptr<RingStore>(new RingStore(env, dbi));
}

RingStore::~RingStore() { mdb_env_close(env_); }

Result<std::optional<std::string>> RingStore::Get(const std::string& key) {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc != 0) return LmdbError("read " + key, rc);
  MDB_val k = Val(key), v;
  rc = mdb_get(txn, dbi_, &k, &v);
  std::optional<std::string> out;
  if (rc == 0) out = std::string(static_cast<const char*>(v.mv_data), v.mv_size);
  mdb_txn_abort(txn);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("read " + key, rc);
  return out;
}

Result<std::shared_ptr<const Ring>> RingStore::LoadRing() {
  auto bytes = Get("ring");
  if (!bytes.ok()) return bytes.status();
  if (!*bytes) return std::shared_ptr<const Ring>();
  zmq::message_t frame((*bytes)->data(), (*bytes)->size());
  auto ring = Ring::DecodeRing(frame);
  if (!ring.ok()) return Status::Corruption("stored ring: " + ring.status().message());
  return *ring;
}

Result<std::optional<TransitionRecord>> RingStore::LoadRecord(const std::string& key) {
  auto bytes = Get(key);
  if (!bytes.ok()) return bytes.status();
  if (!*bytes) return std::optional<TransitionRecord>();
  auto record = DecodeTransition(**bytes);
  if (!record.ok()) return Status::Corruption("stored " + key + ": " + record.status().message());
  return std::optional<TransitionRecord>(std::move(*record));
}

Result<std::optional<TransitionRecord>> RingStore::LoadTransition() {
  return LoadRecord("transition");
}

Result<std::optional<TransitionRecord>> RingStore::LoadRepair() { return LoadRecord("repair"); }

Result<uint64_t> RingStore::LoadNextTransferId() {
  auto bytes = Get("next_transfer_id");
  if (!bytes.ok()) return bytes.status();
  if (!*bytes) return uint64_t{1};
  if ((*bytes)->size() != 8) return Status::Corruption("next_transfer_id is not 8 bytes");
  uint64_t v = 0;
  for (char c : **bytes) v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

Status RingStore::SaveRecord(const std::string& key, const TransitionRecord& record,
                             uint64_t next_transfer_id) {
  std::string bytes = EncodeTransition(record);
  std::string next = EncodeU64(next_transfer_id);
  return WriteTxn(
      env_,
      [&](MDB_txn* txn) {
        int rc = Put(txn, dbi_, key, bytes);
        return rc != 0 ? rc : Put(txn, dbi_, "next_transfer_id", next);
      },
      ("saving the " + key).c_str());
}

Status RingStore::DropRecord(const std::string& key) {
  return WriteTxn(
      env_, [&](MDB_txn* txn) { return Delete(txn, dbi_, key); }, ("dropping the " + key).c_str());
}

Status RingStore::SaveTransition(const TransitionRecord& record, uint64_t next_transfer_id) {
  return SaveRecord("transition", record, next_transfer_id);
}

Status RingStore::CommitRing(const Ring& ring) {
  zmq::message_t frame = ring.EncodeRing();
  std::string bytes(frame.data<char>(), frame.size());
  return WriteTxn(
      env_,
      [&](MDB_txn* txn) {
        int rc = Put(txn, dbi_, "ring", bytes);
        return rc != 0 ? rc : Delete(txn, dbi_, "transition");
      },
      "committing the ring");
}

Status RingStore::DropTransition() { return DropRecord("transition"); }

Status RingStore::CommitFailover(const Ring& ring, const std::optional<TransitionRecord>& repair,
                                 uint64_t next_transfer_id) {
  zmq::message_t frame = ring.EncodeRing();
  std::string bytes(frame.data<char>(), frame.size());
  std::string record = repair ? EncodeTransition(*repair) : std::string();
  std::string next = EncodeU64(next_transfer_id);
  return WriteTxn(
      env_,
      [&](MDB_txn* txn) {
        int rc = Put(txn, dbi_, "ring", bytes);
        if (rc == 0) rc = Delete(txn, dbi_, "transition");
        if (rc == 0) rc = repair ? Put(txn, dbi_, "repair", record) : Delete(txn, dbi_, "repair");
        return rc != 0 ? rc : Put(txn, dbi_, "next_transfer_id", next);
      },
      "committing the fail-over");
}

Status RingStore::SaveRepair(const TransitionRecord& record, uint64_t next_transfer_id) {
  return SaveRecord("repair", record, next_transfer_id);
}

Status RingStore::DropRepair() { return DropRecord("repair"); }

}  // namespace kv

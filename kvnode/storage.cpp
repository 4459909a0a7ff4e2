#include "kvnode/storage.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <filesystem>

#include "schema/hash.h"

namespace kv {
namespace {

constexpr uint8_t kValueFormat = 1;
constexpr uint32_t kLayoutVersion = 1;

Status LmdbError(const char* what, int rc) {
  std::string msg = std::string(what) + ": " + mdb_strerror(rc);
  if (rc == MDB_MAP_FULL) msg += " (database full; raise --map-size-mb)";
  return Status::IOError(msg);
}

MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }

void PutU64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

Status DecodeValue(const MDB_val& v, std::string* out) {
  if (v.mv_size < kValueHeaderBytes || static_cast<const uint8_t*>(v.mv_data)[0] != kValueFormat) {
    return Status::Corruption("stored value has an unknown header");
  }
  out->assign(static_cast<const char*>(v.mv_data) + kValueHeaderBytes,
              v.mv_size - kValueHeaderBytes);
  return Status::Ok();
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

// ---- WriteTxn ----

WriteTxn::WriteTxn(WriteTxn&& other) noexcept
    : store_(other.store_), txn_(other.txn_), seq_(other.seq_) {
  other.txn_ = nullptr;
}

WriteTxn::~WriteTxn() {
  if (txn_ != nullptr) mdb_txn_abort(txn_);
}

Status WriteTxn::Put(std::string_view key, std::string_view value, bool* existed) {
  std::string skey = EncodeStorageKey(key);
  MDB_val k = Val(skey), old;
  int rc = mdb_get(txn_, store_->data_, &k, &old);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("read before put", rc);
  *existed = rc == 0;
  uint64_t seq = (seq_ ? seq_ : store_->last_seq_) + 1;
  // Reserve the value in place and write header and bytes straight into the map.
  MDB_val v{kValueHeaderBytes + value.size(), nullptr};
  rc = mdb_put(txn_, store_->data_, &k, &v, MDB_RESERVE);
  if (rc != 0) return LmdbError("put", rc);
  char* p = static_cast<char*>(v.mv_data);
  p[0] = static_cast<char>(kValueFormat);
  p[1] = 0;
  PutU64(p + 2, seq);
  if (!value.empty()) std::memcpy(p + kValueHeaderBytes, value.data(), value.size());
  seq_ = seq;
  return Status::Ok();
}

Status WriteTxn::Delete(std::string_view key) {
  std::string skey = EncodeStorageKey(key);
  MDB_val k = Val(skey);
  int rc = mdb_del(txn_, store_->data_, &k, nullptr);
  if (rc == MDB_NOTFOUND) return Status::NotFound("key not found");
  if (rc != 0) return LmdbError("delete", rc);
  seq_ = (seq_ ? seq_ : store_->last_seq_) + 1;
  return Status::Ok();
}

Status WriteTxn::Get(std::string_view key, std::string* value) {
  std::string skey = EncodeStorageKey(key);
  MDB_val k = Val(skey), v;
  int rc = mdb_get(txn_, store_->data_, &k, &v);
  if (rc == MDB_NOTFOUND) return Status::NotFound("key not found");
  if (rc != 0) return LmdbError("get", rc);
  return DecodeValue(v, value);
}

Status WriteTxn::Commit() {
  if (seq_ != 0) {
    char buf[8];
    PutU64(buf, seq_);
    MDB_val k = Val("last_seq"), v{8, buf};
    int rc = mdb_put(txn_, store_->meta_, &k, &v, 0);
    if (rc != 0) return LmdbError("write last_seq", rc);
  }
  int rc = mdb_txn_commit(txn_);
  txn_ = nullptr;  // committed or freed by LMDB either way
  if (rc != 0) return LmdbError("commit", rc);
  if (seq_ != 0) store_->last_seq_ = seq_;
  return Status::Ok();
}

// ---- Store ----

Result<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  std::unique_ptr<Store> store(new Store());
  Status s = store->Init(options);
  if (!s.ok()) return s;
  return store;
}

Status Store::Init(const StoreOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) return Status::IOError("cannot create data directory " + options.dir + ": " + ec.message());
  int rc = mdb_env_create(&env_);
  if (rc != 0) return LmdbError("mdb_env_create", rc);
  mdb_env_set_maxdbs(env_, 4);
  rc = mdb_env_set_mapsize(env_, options.map_size_bytes);
  if (rc != 0) return LmdbError("mdb_env_set_mapsize", rc);
  unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
  if (!options.sync) flags |= MDB_NOSYNC;
  rc = mdb_env_open(env_, options.dir.c_str(), flags, 0644);
  if (rc != 0) return LmdbError(("cannot open database in " + options.dir).c_str(), rc);

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
  if (rc == MDB_NOTFOUND) {
    char buf[4] = {static_cast<char>(kLayoutVersion), 0, 0, 0};
    MDB_val nv{4, buf};
    rc = mdb_put(txn, meta_, &k, &nv, 0);
  } else if (rc == 0) {
    uint32_t version = v.mv_size == 4 ? static_cast<uint8_t>(static_cast<char*>(v.mv_data)[0]) : 0;
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
    last_seq_ = GetU64(static_cast<const char*>(v.mv_data));
  }
  rc = mdb_txn_commit(txn);
  if (rc != 0) return LmdbError("commit", rc);
  return Status::Ok();
}

Store::~Store() {
  if (read_txn_ != nullptr) mdb_txn_abort(read_txn_);
  if (env_ != nullptr) mdb_env_close(env_);
}

Status Store::Get(std::string_view key, std::string* value) {
  int rc = read_txn_ == nullptr ? mdb_txn_begin(env_, nullptr, MDB_RDONLY, &read_txn_)
                                : mdb_txn_renew(read_txn_);
  if (rc != 0) return LmdbError("begin read", rc);
  std::string skey = EncodeStorageKey(key);
  MDB_val k = Val(skey), v;
  rc = mdb_get(read_txn_, data_, &k, &v);
  Status s;
  if (rc == MDB_NOTFOUND) {
    s = Status::NotFound("key not found");
  } else if (rc != 0) {
    s = LmdbError("get", rc);
  } else {
    s = DecodeValue(v, value);
  }
  mdb_txn_reset(read_txn_);
  return s;
}

Result<WriteTxn> Store::BeginWrite() {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != 0) return LmdbError("begin write", rc);
  return WriteTxn(this, txn);
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

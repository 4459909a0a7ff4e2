// MemTable: the writes that are in the write-ahead log but not yet in LMDB,
// keyed by user key. Tombstones record deletes. Once frozen it is immutable
// and may be read by the flusher thread and the event loop at the same time;
// until then only the event loop touches it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace kv {

struct MemEntry {
  std::string value;
  bool deleted = false;
  uint64_t seq = 0;
  uint64_t version = 0;  // entry version (replication.h); 0 = none
};

class MemTable {
 public:
  // nullptr when the memtable knows nothing about key.
  const MemEntry* Find(std::string_view key) const {
    auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : &it->second;
  }
  // The entry of key for an in-place update (Overwrite), or nullptr. Entries
  // never move, so the pointer stays valid while other keys are inserted.
  MemEntry* FindMutable(std::string_view key) {
    auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : &it->second;
  }
  // Updates an entry FindMutable returned, as Put or Delete of its key would.
  void Overwrite(MemEntry* e, std::string_view value, bool deleted, uint64_t seq,
                 uint64_t version) {
    if (seq > max_seq_) max_seq_ = seq;
    bytes_ -= e->value.size();
    Assign(e, deleted ? std::string_view() : value, deleted, seq, version);
  }
  void Put(std::string_view key, std::string_view value, uint64_t seq, uint64_t version = 0) {
    Set(key, value, false, seq, version);
  }
  void Delete(std::string_view key, uint64_t seq, uint64_t version = 0) {
    Set(key, {}, true, seq, version);
  }

  // Transparent: a lookup by string_view builds no std::string.
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view key) const { return std::hash<std::string_view>{}(key); }
  };
  using Map = std::unordered_map<std::string, MemEntry, KeyHash, std::equal_to<>>;
  const Map& entries() const { return entries_; }
  size_t approximate_bytes() const { return bytes_; }
  uint64_t max_seq() const { return max_seq_; }
  bool empty() const { return entries_.empty(); }

 private:
  static constexpr size_t kEntryOverhead = 64;
  // Overwrites in place: an update of a key already here reuses its entry
  // (and the value's buffer when it fits), so it allocates nothing.
  void Set(std::string_view key, std::string_view value, bool deleted, uint64_t seq,
           uint64_t version) {
    if (seq > max_seq_) max_seq_ = seq;
    auto it = entries_.find(key);
    if (it == entries_.end()) {
      it = entries_.emplace(std::string(key), MemEntry{}).first;
      bytes_ += key.size() + kEntryOverhead;
    } else {
      bytes_ -= it->second.value.size();
    }
    Assign(&it->second, value, deleted, seq, version);
  }
  void Assign(MemEntry* e, std::string_view value, bool deleted, uint64_t seq, uint64_t version) {
    e->value.assign(value);
    e->deleted = deleted;
    e->seq = seq;
    e->version = version;
    bytes_ += value.size();
  }
  Map entries_;
  size_t bytes_ = 0;
  uint64_t max_seq_ = 0;
};

}  // namespace kv

// MemTable: the writes that are in the write-ahead log but not yet in LMDB,
// keyed by user key. Tombstones record deletes. Once frozen it is immutable
// and may be read by the flusher thread and the event loop at the same time;
// until then only the event loop touches it.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <new>
#include <string>
#include <string_view>
#include <vector>

namespace kv {

struct MemEntry {
  std::string value;
  bool deleted = false;
  uint64_t seq = 0;
  uint64_t version = 0;  // entry version (replication.h); 0 = none
};

class MemTable {
 public:
  MemTable() = default;
  MemTable(const MemTable&) = delete;
  MemTable& operator=(const MemTable&) = delete;
  ~MemTable() {
    for (const Slot& s : slots_) {
      if (s.node != nullptr) Node::Free(s.node);
    }
  }

  // nullptr when the memtable knows nothing about key.
  const MemEntry* Find(std::string_view key) const {
    const Slot* s = Probe(key, Hash(key));
    return s->node == nullptr ? nullptr : &s->node->entry;
  }
  // The entry of key for an in-place update (Overwrite), or nullptr. Entries
  // never move, so the pointer stays valid while other keys are inserted.
  MemEntry* FindMutable(std::string_view key) {
    const Slot* s = Probe(key, Hash(key));
    return s->node == nullptr ? nullptr : &s->node->entry;
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

  // Calls fn(key, entry) for every key, in no particular order.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (const Slot& s : slots_) {
      if (s.node != nullptr) fn(s.node->key(), static_cast<const MemEntry&>(s.node->entry));
    }
  }
  size_t size() const { return size_; }
  size_t approximate_bytes() const { return bytes_; }
  uint64_t max_seq() const { return max_seq_; }
  bool empty() const { return size_ == 0; }

 private:
  // Open addressing with linear probing over {hash, node} slots: a lookup
  // reads one slot (neighbours share its cache line) and, on a full hash
  // match, one node holding the entry and the key's bytes. Keys are never
  // removed (a delete is a tombstone entry), so probing needs no markers.
  struct Node {
    MemEntry entry;
    uint32_t key_size = 0;
    std::string_view key() const {
      return {reinterpret_cast<const char*>(this + 1), key_size};
    }
    static Node* New(std::string_view key) {
      void* mem = ::operator new(sizeof(Node) + key.size());
      Node* n = new (mem) Node();
      n->key_size = static_cast<uint32_t>(key.size());
      if (!key.empty()) std::memcpy(reinterpret_cast<char*>(n + 1), key.data(), key.size());
      return n;
    }
    static void Free(Node* n) {
      n->~Node();
      ::operator delete(static_cast<void*>(n));
    }
  };
  struct Slot {
    uint64_t hash = 0;
    Node* node = nullptr;
  };
  static constexpr size_t kEntryOverhead = 64;
  static constexpr size_t kInitialSlots = 1024;  // a power of two

  static uint64_t Hash(std::string_view key) { return std::hash<std::string_view>{}(key); }
  // The slot holding key, or the empty slot where it would go.
  const Slot* Probe(std::string_view key, uint64_t hash) const {
    static const Slot kEmpty;  // the answer of a table with no slots yet
    if (slots_.empty()) return &kEmpty;
    const size_t mask = slots_.size() - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.node == nullptr) return &s;
      if (s.hash == hash && s.node->key() == key) return &s;
    }
  }
  // At most 3/4 full, so a probe ends at an empty slot.
  void Grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? kInitialSlots : old.size() * 2, Slot{});
    const size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.node == nullptr) continue;
      size_t i = s.hash & mask;
      while (slots_[i].node != nullptr) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }
  // Overwrites in place: an update of a key already here reuses its entry
  // (and the value's buffer when it fits), so it allocates nothing.
  void Set(std::string_view key, std::string_view value, bool deleted, uint64_t seq,
           uint64_t version) {
    if (seq > max_seq_) max_seq_ = seq;
    const uint64_t hash = Hash(key);
    if ((size_ + 1) * 4 > slots_.size() * 3) Grow();
    Slot* s = const_cast<Slot*>(Probe(key, hash));
    if (s->node == nullptr) {
      s->hash = hash;
      s->node = Node::New(key);
      ++size_;
      bytes_ += key.size() + kEntryOverhead;
    } else {
      bytes_ -= s->node->entry.value.size();
    }
    Assign(&s->node->entry, value, deleted, seq, version);
  }
  void Assign(MemEntry* e, std::string_view value, bool deleted, uint64_t seq, uint64_t version) {
    e->value.assign(value);
    e->deleted = deleted;
    e->seq = seq;
    e->version = version;
    bytes_ += value.size();
  }
  std::vector<Slot> slots_;
  size_t size_ = 0;
  size_t bytes_ = 0;
  uint64_t max_seq_ = 0;
};

}  // namespace kv

// KeyIndex: for one batch, the position of the last item of each key in the
// caller's own array of items, so a batch can ask "was this key written
// earlier in it, and by which item?" without copying keys or allocating per
// item. The keys stay in the caller's items; the index holds a hash and a
// position per key and reads the key back through the caller's key_of(pos)
// to compare. Clear() forgets everything and keeps the memory for the next
// batch, so a steady stream of batches allocates nothing here.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

namespace kv {

class KeyIndex {
 public:
  // The position last Set for key, or nullopt. key_of(pos) returns the key of
  // the caller's item at pos.
  template <typename KeyOf>
  std::optional<size_t> Find(std::string_view key, const KeyOf& key_of) const {
    if (used_.empty()) return std::nullopt;
    const Slot& s = slots_[Probe(key, Hash(key), key_of)];
    if (s.pos == kEmpty) return std::nullopt;
    return s.pos;
  }
  // Records pos as the last item of key (which must be key_of(pos)).
  template <typename KeyOf>
  void Set(std::string_view key, size_t pos, const KeyOf& key_of) {
    if ((used_.size() + 1) * 2 > slots_.size()) Grow();
    const uint64_t hash = Hash(key);
    const size_t i = Probe(key, hash, key_of);
    if (slots_[i].pos == kEmpty) used_.push_back(i);
    slots_[i] = Slot{hash, pos};
  }
  bool empty() const { return used_.empty(); }
  size_t size() const { return used_.size(); }
  // Forgets every key; the slots stay allocated.
  void Clear() {
    for (size_t i : used_) slots_[i].pos = kEmpty;
    used_.clear();
  }

 private:
  static constexpr size_t kEmpty = SIZE_MAX;
  struct Slot {
    uint64_t hash = 0;
    size_t pos = kEmpty;
  };
  static uint64_t Hash(std::string_view key) { return std::hash<std::string_view>{}(key); }
  // Linear probing; at most half full, so a probe ends at an empty slot.
  template <typename KeyOf>
  size_t Probe(std::string_view key, uint64_t hash, const KeyOf& key_of) const {
    const size_t mask = slots_.size() - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.pos == kEmpty) return i;
      if (s.hash == hash && std::string_view(key_of(s.pos)) == key) return i;
    }
  }
  // Slots carry their hash: moving them reads no key.
  void Grow() {
    std::vector<Slot> old;
    old.reserve(used_.size());
    for (size_t i : used_) old.push_back(slots_[i]);
    slots_.assign(slots_.empty() ? 64 : slots_.size() * 2, Slot{});
    used_.clear();
    const size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
      size_t i = s.hash & mask;
      while (slots_[i].pos != kEmpty) i = (i + 1) & mask;
      slots_[i] = s;
      used_.push_back(i);
    }
  }
  std::vector<Slot> slots_;
  std::vector<size_t> used_;  // occupied slots, so Clear() touches only them
};

}  // namespace kv

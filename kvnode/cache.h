// In-process cache of committed values in front of LMDB, with FIFO, LRU or
// LFU eviction and a capacity in entries (0 disables it). The node keeps it
// exact: every committed put updates it and every committed delete erases,
// so it never returns a stale value. Values larger than kMaxCachedValueBytes
// are not cached. Not thread-safe: owned by the node's event loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "schema/status.h"

namespace kv {

enum class CacheStrategy { kFifo, kLru, kLfu };

Result<CacheStrategy> ParseCacheStrategy(std::string_view name);  // FIFO|LRU|LFU, any case
const char* CacheStrategyName(CacheStrategy s);

constexpr size_t kMaxCachedValueBytes = 64 * 1024;

class ValueCache {
 public:
  ValueCache(size_t capacity, CacheStrategy strategy);

  // The cached value, or nullptr. Counts as a use for LRU and LFU. The pointer
  // is valid until the next non-const call.
  const std::string* Get(std::string_view key);
  // Inserts or replaces; may evict one entry. Oversize values erase the key.
  void Put(std::string_view key, std::string_view value);
  // Replaces the value if key is cached (a write), else does nothing: writes
  // keep the cache exact without inserting, so a write-heavy load does not
  // churn it; reads insert on a miss.
  void Update(std::string_view key, std::string_view value);
  void Erase(std::string_view key);

  size_t size() const { return entries_.size(); }
  size_t capacity() const { return capacity_; }
  CacheStrategy strategy() const { return strategy_; }
  bool Contains(std::string_view key) const { return entries_.find(key) != entries_.end(); }

 private:
  struct Entry {
    std::string value;
    uint64_t freq = 1;                       // LFU use count
    std::list<const std::string*>::iterator pos;  // place in order_ (FIFO/LRU) or buckets_[freq] (LFU)
  };
  void Touch(const std::string& key, Entry& e);
  void EvictOne();
  void Unlink(const std::string& key, Entry& e);

  size_t capacity_;
  CacheStrategy strategy_;
  // Transparent: lookups by string_view build no std::string (a heap
  // allocation for keys over 15 bytes) on the read path.
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view key) const { return std::hash<std::string_view>{}(key); }
  };
  std::unordered_map<std::string, Entry, KeyHash, std::equal_to<>> entries_;
  // The lists point at the keys in entries_ (its elements never move), so a
  // miss that evicts copies no key.
  // FIFO: insertion order; LRU: recency order. Front = next to evict.
  std::list<const std::string*> order_;
  // LFU: per use count, keys in recency order (front = least recent).
  std::unordered_map<uint64_t, std::list<const std::string*>> buckets_;
  uint64_t min_freq_ = 0;
};

}  // namespace kv

#include "kvnode/cache.h"

#include <algorithm>
#include <cctype>

namespace kv {

Result<CacheStrategy> ParseCacheStrategy(std::string_view name) {
  std::string n(name);
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::toupper(c); });
  if (n == "FIFO") return CacheStrategy::kFifo;
  if (n == "LRU") return CacheStrategy::kLru;
  if (n == "LFU") return CacheStrategy::kLfu;
  return Status::InvalidArgument("unknown cache strategy '" + std::string(name) +
                                 "' (use FIFO, LRU or LFU)");
}

const char* CacheStrategyName(CacheStrategy s) {
  switch (s) {
    case CacheStrategy::kFifo: return "FIFO";
    case CacheStrategy::kLru: return "LRU";
    case CacheStrategy::kLfu: return "LFU";
  }
  return "?";
}

ValueCache::ValueCache(size_t capacity, CacheStrategy strategy)
    : capacity_(capacity), strategy_(strategy) {}

const std::string* ValueCache::Get(std::string_view key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  Touch(it->first, it->second);
  return &it->second.value;
}

void ValueCache::Touch(const std::string& key, Entry& e) {
  switch (strategy_) {
    case CacheStrategy::kFifo: break;  // insertion order only
    case CacheStrategy::kLru: order_.splice(order_.end(), order_, e.pos); break;
    case CacheStrategy::kLfu: {
      auto& from = buckets_[e.freq];
      from.erase(e.pos);
      if (from.empty()) {
        buckets_.erase(e.freq);
        if (min_freq_ == e.freq) ++min_freq_;
      }
      ++e.freq;
      auto& to = buckets_[e.freq];
      e.pos = to.insert(to.end(), &key);
      break;
    }
  }
}

void ValueCache::Unlink(const std::string& key, Entry& e) {
  (void)key;
  if (strategy_ == CacheStrategy::kLfu) {
    auto bucket = buckets_.find(e.freq);
    bucket->second.erase(e.pos);
    if (bucket->second.empty()) buckets_.erase(bucket);
  } else {
    order_.erase(e.pos);
  }
}

void ValueCache::EvictOne() {
  const std::string* victim = nullptr;
  if (strategy_ == CacheStrategy::kLfu) {
    auto bucket = buckets_.find(min_freq_);
    if (bucket == buckets_.end()) {
      // min_freq_ can lag after erases; find the true minimum.
      uint64_t best = UINT64_MAX;
      for (const auto& [f, keys] : buckets_) best = std::min(best, f);
      bucket = buckets_.find(best);
      if (bucket == buckets_.end()) return;
    }
    victim = bucket->second.front();
  } else {
    if (order_.empty()) return;
    victim = order_.front();
  }
  Erase(*victim);  // the view dies with the entry, after the lookup
}

void ValueCache::Put(std::string_view key, std::string_view value) {
  if (capacity_ == 0) return;
  if (value.size() > kMaxCachedValueBytes) {
    Erase(key);
    return;
  }
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    it->second.value.assign(value);
    Touch(it->first, it->second);
    return;
  }
  if (entries_.size() >= capacity_) EvictOne();
  auto [pos, inserted] = entries_.emplace(std::string(key), Entry{std::string(value), 1, {}});
  (void)inserted;
  if (strategy_ == CacheStrategy::kLfu) {
    auto& bucket = buckets_[1];
    pos->second.pos = bucket.insert(bucket.end(), &pos->first);
    min_freq_ = 1;
  } else {
    pos->second.pos = order_.insert(order_.end(), &pos->first);
  }
}

void ValueCache::Update(std::string_view key, std::string_view value) {
  if (entries_.empty() || !Contains(key)) return;
  Put(key, value);
}

void ValueCache::Erase(std::string_view key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  Unlink(it->first, it->second);
  entries_.erase(it);
}

}  // namespace kv

#include "kvnode/cache.h"

#include <catch2/catch.hpp>

using kv::CacheStrategy;
using kv::ValueCache;

TEST_CASE("FIFO evicts in insertion order, whatever was read", "[cache]") {
  ValueCache c(2, CacheStrategy::kFifo);
  c.Put("a", "1");
  c.Put("b", "2");
  REQUIRE(c.Get("a") != nullptr);  // reading does not save a from eviction
  c.Put("a", "1b");                // neither does updating
  c.Put("c", "3");
  CHECK_FALSE(c.Contains("a"));
  CHECK(c.Contains("b"));
  CHECK(c.Contains("c"));
}

TEST_CASE("LRU evicts the least recently used entry", "[cache]") {
  ValueCache c(2, CacheStrategy::kLru);
  c.Put("a", "1");
  c.Put("b", "2");
  REQUIRE(c.Get("a") != nullptr);
  c.Put("c", "3");
  CHECK(c.Contains("a"));
  CHECK_FALSE(c.Contains("b"));
  CHECK(c.Contains("c"));
}

TEST_CASE("LFU evicts the least frequently used, oldest first on ties", "[cache]") {
  ValueCache c(3, CacheStrategy::kLfu);
  c.Put("a", "1");
  c.Put("b", "2");
  c.Put("c", "3");
  c.Get("a");
  c.Get("a");
  c.Get("c");
  c.Put("d", "4");  // b used once: evicted
  CHECK_FALSE(c.Contains("b"));
  c.Put("e", "5");  // d (1 use) is the least frequent now
  CHECK_FALSE(c.Contains("d"));
  CHECK(c.Contains("a"));
  CHECK(c.Contains("c"));
  CHECK(c.Contains("e"));
  c.Get("e");        // e: 2 uses, c: 2 uses, e more recent
  c.Put("f", "6");  // tie between c and e: c is older
  CHECK_FALSE(c.Contains("c"));
  CHECK(c.Contains("e"));
}

TEST_CASE("the cache never returns a stale value", "[cache]") {
  for (auto s : {CacheStrategy::kFifo, CacheStrategy::kLru, CacheStrategy::kLfu}) {
    ValueCache c(4, s);
    c.Put("k", "old");
    c.Put("k", "new");
    REQUIRE(c.Get("k") != nullptr);
    CHECK(*c.Get("k") == "new");
    c.Erase("k");
    CHECK(c.Get("k") == nullptr);
    CHECK(c.size() == 0);
  }
}

TEST_CASE("a zero capacity disables the cache and big values are not cached", "[cache]") {
  ValueCache off(0, CacheStrategy::kLru);
  off.Put("k", "v");
  CHECK(off.Get("k") == nullptr);
  ValueCache c(4, CacheStrategy::kLru);
  c.Put("k", "small");
  c.Put("k", std::string(kv::kMaxCachedValueBytes + 1, 'x'));
  CHECK(c.Get("k") == nullptr);  // the old small value must not linger
}

TEST_CASE("the cache holds at most its capacity under churn", "[cache]") {
  for (auto s : {CacheStrategy::kFifo, CacheStrategy::kLru, CacheStrategy::kLfu}) {
    ValueCache c(10, s);
    for (int i = 0; i < 1000; ++i) {
      c.Put("k" + std::to_string(i % 37), "v");
      c.Get("k" + std::to_string(i % 7));
      if (i % 11 == 0) c.Erase("k" + std::to_string(i % 13));
      REQUIRE(c.size() <= 10);
    }
  }
}

TEST_CASE("cache strategies parse case-insensitively", "[cache]") {
  CHECK(*kv::ParseCacheStrategy("lfu") == CacheStrategy::kLfu);
  CHECK(*kv::ParseCacheStrategy("FIFO") == CacheStrategy::kFifo);
  CHECK_FALSE(kv::ParseCacheStrategy("MRU").ok());
}

TEST_CASE("a write updates a cached key but never inserts one", "[cache]") {
  ValueCache c(4, CacheStrategy::kLru);
  c.Update("k", "v");
  CHECK_FALSE(c.Contains("k"));
  c.Put("k", "old");
  c.Update("k", "new");
  REQUIRE(c.Get("k") != nullptr);
  CHECK(*c.Get("k") == "new");
}

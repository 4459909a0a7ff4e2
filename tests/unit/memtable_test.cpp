#include "kvnode/memtable.h"

#include <catch2/catch.hpp>
#include <map>
#include <unordered_map>
#include <vector>
#include <string>

namespace {

// Built by append: GCC 12 warns falsely (-Wrestrict) about "literal" + std::string.
std::string Prefixed(const char* prefix, long long n) {
  std::string s(prefix);
  s += std::to_string(n);
  return s;
}
std::string KeyOf(int i) { return Prefixed("user", 1000000000000LL + i); }

}  // namespace

TEST_CASE("memtable finds every key it was given across many growths", "[memtable]") {
  kv::MemTable t;
  CHECK(t.empty());
  CHECK(t.Find("absent") == nullptr);  // before the first slot exists
  const int n = 50000;  // from 1024 slots, grows 7 times
  for (int i = 0; i < n; ++i) t.Put(KeyOf(i), Prefixed("v", i), i + 1, 100 + i);
  REQUIRE(t.size() == n);
  CHECK(t.max_seq() == n);
  for (int i = 0; i < n; ++i) {
    const kv::MemEntry* e = t.Find(KeyOf(i));
    REQUIRE(e != nullptr);
    CHECK(e->value == Prefixed("v", i));
    CHECK(e->seq == static_cast<uint64_t>(i + 1));
    CHECK(e->version == static_cast<uint64_t>(100 + i));
    CHECK_FALSE(e->deleted);
  }
  CHECK(t.Find(KeyOf(n)) == nullptr);
  CHECK(t.Find("user") == nullptr);  // a prefix of every key is not a key
}

TEST_CASE("memtable entries stay put while the table grows", "[memtable]") {
  kv::MemTable t;
  t.Put("first", Prefixed("", 1), 1);
  kv::MemEntry* e = t.FindMutable("first");
  REQUIRE(e != nullptr);
  for (int i = 0; i < 20000; ++i) t.Put(KeyOf(i), Prefixed("x", i), i + 2);
  CHECK(t.FindMutable("first") == e);
  t.Overwrite(e, "updated", false, 30000, 7);
  const kv::MemEntry* again = t.Find("first");
  REQUIRE(again != nullptr);
  CHECK(again->value == "updated");
  CHECK(again->version == 7);
  CHECK(t.max_seq() == 30000);
}

TEST_CASE("memtable keeps tombstones, binary keys and byte counts", "[memtable]") {
  kv::MemTable t;
  const std::string with_nul("a\0b", 3), other("a\0c", 3);
  t.Put(with_nul, "one", 1);
  t.Put(other, "two", 2);
  REQUIRE(t.Find(with_nul) != nullptr);
  CHECK(t.Find(with_nul)->value == "one");
  CHECK(t.Find(other)->value == "two");
  CHECK(t.Find(std::string("a\0d", 3)) == nullptr);

  const size_t before = t.approximate_bytes();
  t.Put(with_nul, "a much longer value", 3);  // an update adds only the value's growth
  CHECK(t.approximate_bytes() == before - 3 + 19);
  t.Delete(with_nul, 4);
  const kv::MemEntry* gone = t.Find(with_nul);
  REQUIRE(gone != nullptr);  // a tombstone, not an absence
  CHECK(gone->deleted);
  CHECK(gone->value.empty());
  CHECK(t.size() == 2);
}

TEST_CASE("memtable visits each key once, with its latest entry", "[memtable]") {
  kv::MemTable t;
  std::map<std::string, std::string> want;
  for (int i = 0; i < 3000; ++i) {
    t.Put(KeyOf(i % 1000), std::to_string(i), i + 1);
    want[KeyOf(i % 1000)] = std::to_string(i);
  }
  std::map<std::string, std::string> seen;
  t.ForEach([&seen](std::string_view key, const kv::MemEntry& e) {
    CHECK(seen.emplace(std::string(key), e.value).second);
  });
  CHECK(seen == want);
}

// Not part of the suite (hidden tag): `unit_tests "[memtable-bench]"`. The same
// 100,000 keys of kvbench's shape ("user" + 12 digits) looked up in random
// order in the MemTable and in the std::unordered_map it replaced.
TEST_CASE("memtable lookups against std::unordered_map", "[.][memtable-bench]") {
  const int n = 100000;
  std::vector<std::string> keys;
  for (int i = 0; i < n; ++i) keys.push_back(KeyOf(static_cast<int>((i * 2654435761ULL) % n)));
  kv::MemTable table;
  std::unordered_map<std::string, kv::MemEntry> map;
  const std::string value(100, 'v');
  for (int i = 0; i < n; ++i) {
    table.Put(keys[i], value, i + 1);
    map[keys[i]].value = value;
  }
  std::vector<uint32_t> order(1 << 16);
  uint64_t x = 88172645463325252ULL;  // xorshift: the same order for both
  for (auto& o : order) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    o = static_cast<uint32_t>(x % n);
  }
  BENCHMARK("MemTable::Find, 65,536 random keys") {
    size_t found = 0;
    for (uint32_t o : order) found += table.Find(keys[o]) != nullptr;
    return found;
  };
  BENCHMARK("std::unordered_map::find, the same keys") {
    size_t found = 0;
    for (uint32_t o : order) found += map.find(keys[o]) != map.end();
    return found;
  };
}

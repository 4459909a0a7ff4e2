#include "kvnode/key_index.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace {

std::string Key(int i) {
  std::string k("key");
  k += std::to_string(i);
  return k;
}

}  // namespace

TEST_CASE("key index finds each key's last position across growths and clears", "[key_index]") {
  kv::KeyIndex index;
  std::vector<std::string> items;
  auto key_of = [&items](size_t i) { return std::string_view(items[i]); };
  CHECK(index.empty());
  CHECK_FALSE(index.Find("nothing", key_of));  // before any slot exists

  for (int round = 0; round < 3; ++round) {  // Clear() and reuse keep working
    items.clear();
    index.Clear();
    // 3000 items over 1000 keys: each key's last item is its third.
    for (int i = 0; i < 3000; ++i) {
      items.push_back(Key(i % 1000));
      index.Set(items.back(), items.size() - 1, key_of);
    }
    CHECK(index.size() == 1000);
    for (int k = 0; k < 1000; ++k) {
      auto pos = index.Find(Key(k), key_of);
      REQUIRE(pos);
      CHECK(*pos == static_cast<size_t>(2000 + k));
    }
    CHECK_FALSE(index.Find(Key(1000), key_of));
    CHECK_FALSE(index.Find("key", key_of));  // a prefix of every key is not a key
  }
  index.Clear();
  CHECK(index.empty());
  CHECK_FALSE(index.Find(Key(5), key_of));
}

TEST_CASE("key index tells apart keys that differ in one byte or contain NUL", "[key_index]") {
  kv::KeyIndex index;
  std::vector<std::string> items = {std::string("a\0b", 3), std::string("a\0c", 3), "a"};
  auto key_of = [&items](size_t i) { return std::string_view(items[i]); };
  for (size_t i = 0; i < items.size(); ++i) index.Set(items[i], i, key_of);
  CHECK(*index.Find(std::string("a\0b", 3), key_of) == 0);
  CHECK(*index.Find(std::string("a\0c", 3), key_of) == 1);
  CHECK(*index.Find("a", key_of) == 2);
  CHECK_FALSE(index.Find(std::string("a\0", 2), key_of));
}

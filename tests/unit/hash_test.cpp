#include "schema/hash.h"

#include <catch2/catch.hpp>

using kv::Hash128;

TEST_CASE("node positions match the seed system's MD5 test vectors", "[hash]") {
  CHECK(kv::NodePosition("127.0.0.1", 6969).ToHex() == "9049BBA9507A48D46D346AF2C9DC9FBB");
  CHECK(kv::NodePosition("127.0.0.2", 6870).ToHex() == "411900A46428D02426F4951156382B7D");
  CHECK(kv::Md5("127.0.0.1:6969") == kv::NodePosition("127.0.0.1", 6969));
}

TEST_CASE("hex round trips and rejects what is not 32 hex digits", "[hash]") {
  Hash128 h = kv::Md5("some key");
  auto back = Hash128::FromHex(h.ToHex());
  REQUIRE(back.has_value());
  CHECK(*back == h);
  CHECK(Hash128::FromHex("9049bba9507a48d46d346af2c9dc9fbb")->ToHex() ==
        "9049BBA9507A48D46D346AF2C9DC9FBB");
  CHECK_FALSE(Hash128::FromHex("9049BBA9").has_value());
  CHECK_FALSE(Hash128::FromHex("9049BBA9507A48D46D346AF2C9DC9FBG").has_value());
}

TEST_CASE("positions compare as 128-bit numbers and wrap at the top", "[hash]") {
  Hash128 low = *Hash128::FromHex("00000000000000000000000000000001");
  Hash128 high = *Hash128::FromHex("F0000000000000000000000000000000");
  CHECK(low < high);
  CHECK(Hash128::Max().Next() == Hash128::Min());
  CHECK(Hash128::FromHex("000000000000000000000000000000FF")->Next().ToHex() ==
        "00000000000000000000000000000100");
}

TEST_CASE("ranges exclude their start, include their end and wrap around the top of the hash space", "[hash]") {
  Hash128 a = *Hash128::FromHex("40000000000000000000000000000000");
  Hash128 b = *Hash128::FromHex("80000000000000000000000000000000");
  CHECK(kv::InRange(b, a, b));  // a key equal to a node's position belongs to it
  CHECK_FALSE(kv::InRange(a, a, b));
  CHECK(kv::InRange(a.Next(), a, b));
  // Wrapping range (b, a]: everything above b and everything up to a.
  CHECK(kv::InRange(Hash128::Max(), b, a));
  CHECK(kv::InRange(Hash128::Min(), b, a));
  CHECK(kv::InRange(a, b, a));
  CHECK_FALSE(kv::InRange(b, b, a));
  // (x, x] is the whole ring.
  CHECK(kv::InRange(a, b, b));
  CHECK(kv::InRange(b, b, b));
}

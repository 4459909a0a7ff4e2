#include "kvnode/wal.h"

#include <catch2/catch.hpp>
#include <fstream>

#include "tests/support/process.h"

TEST_CASE("crc32c matches the standard check value", "[wal]") {
  CHECK(kv::Crc32c("123456789", 9) == 0xE3069283u);
}

TEST_CASE("write-ahead log records read back in order, puts and deletes", "[wal]") {
  kvtest::TempDir dir;
  std::string path = kv::WalSegmentPath(dir.path(), 1);
  {
    auto w = kv::WalWriter::Create(path, /*sync=*/true);
    REQUIRE(w.ok());
    (*w)->Add({false, 1, "k1", std::string("v\0 1", 4)});
    (*w)->Add({true, 2, "k1", ""});
    REQUIRE((*w)->Commit().ok());
    (*w)->Add({false, 3, std::string(250, 'k'), std::string(70000, 'v')});
    REQUIRE((*w)->Commit().ok());
  }
  std::vector<std::tuple<bool, uint64_t, std::string, std::string>> got;
  auto intact = kv::ReadWalSegment(path, [&](const kv::WalRecord& r) {
    got.emplace_back(r.is_delete, r.seq, std::string(r.key), std::string(r.value));
  });
  REQUIRE(intact.ok());
  REQUIRE(got.size() == 3);
  CHECK(got[0] == std::make_tuple(false, 1ull, std::string("k1"), std::string("v\0 1", 4)));
  CHECK(std::get<0>(got[1]));
  CHECK(std::get<3>(got[2]).size() == 70000);
}

TEST_CASE("a corrupted record ends the readable log", "[wal]") {
  kvtest::TempDir dir;
  std::string path = kv::WalSegmentPath(dir.path(), 7);
  {
    auto w = kv::WalWriter::Create(path, false);
    REQUIRE(w.ok());
    (*w)->Add({false, 1, "a", "1"});
    (*w)->Add({false, 2, "b", "2"});
    REQUIRE((*w)->Commit().ok());
  }
  std::string bytes = kvtest::ReadFile(path);
  bytes[bytes.size() - 1] ^= 0x40;  // flip a bit in the last record's value
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  int count = 0;
  auto intact = kv::ReadWalSegment(path, [&](const kv::WalRecord&) { ++count; });
  REQUIRE(intact.ok());
  CHECK(count == 1);
  CHECK(*intact < bytes.size());
  auto listed = kv::ListWalSegments(dir.path());
  REQUIRE(listed.ok());
  CHECK(*listed == std::vector<uint64_t>{7});
}

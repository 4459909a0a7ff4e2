#include "kvnode/wal.h"

#include <catch2/catch.hpp>
#include <filesystem>
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

TEST_CASE("with sync on, a segment is zero-filled ahead of its records and the zeros end the log",
          "[wal]") {
  kvtest::TempDir dir;
  std::string path = kv::WalSegmentPath(dir.path(), 3);
  const uint64_t ahead = kv::WalWriter::kPreallocateBytes;
  auto w = kv::WalWriter::Create(path, /*sync=*/true);
  REQUIRE(w.ok());
  (*w)->Add({false, 1, "k", "v"});
  REQUIRE((*w)->Commit().ok());
  const uint64_t first = (*w)->bytes_written();
  CHECK((*w)->preallocated() == first + ahead);
  CHECK(std::filesystem::file_size(path) == first + ahead);
  bool zero_tail = false;
  auto intact = kv::ReadWalSegment(path, [](const kv::WalRecord&) {}, &zero_tail);
  REQUIRE(intact.ok());
  CHECK(*intact == first);
  CHECK(zero_tail);

  // Past the zero-filled end: the file is filled further, records stay in place.
  const std::string big(300 * 1024, 'b');
  for (uint64_t seq = 2; seq <= 6; ++seq) {
    (*w)->Add({false, seq, "big" + std::to_string(seq), big});
    REQUIRE((*w)->Commit().ok());
  }
  CHECK((*w)->bytes_written() > first + ahead);
  CHECK((*w)->preallocated() >= (*w)->bytes_written());
  CHECK(std::filesystem::file_size(path) == (*w)->preallocated());
  std::vector<uint64_t> seqs;
  intact = kv::ReadWalSegment(path, [&](const kv::WalRecord& r) {
    seqs.push_back(r.seq);
    if (r.seq > 1) CHECK(r.value == big);
  }, &zero_tail);
  REQUIRE(intact.ok());
  CHECK(seqs == std::vector<uint64_t>{1, 2, 3, 4, 5, 6});
  CHECK(*intact == (*w)->bytes_written());
  CHECK(zero_tail);

  // A torn record in the zeros is not mistaken for preallocation.
  {
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>((*w)->bytes_written() + 10));
    f.put('x');
  }
  intact = kv::ReadWalSegment(path, [](const kv::WalRecord&) {}, &zero_tail);
  REQUIRE(intact.ok());
  CHECK(*intact == (*w)->bytes_written());
  CHECK_FALSE(zero_tail);
}

TEST_CASE("with sync off, a segment holds only its records", "[wal]") {
  kvtest::TempDir dir;
  std::string path = kv::WalSegmentPath(dir.path(), 4);
  auto w = kv::WalWriter::Create(path, /*sync=*/false);
  REQUIRE(w.ok());
  (*w)->Add({false, 1, "k", "v"});
  REQUIRE((*w)->Commit().ok());
  CHECK((*w)->preallocated() == 0);
  CHECK(std::filesystem::file_size(path) == (*w)->bytes_written());
}

// Write-ahead log: the node's durability. A batch of writes is appended as
// records to the active segment with one write() and, with sync on, one
// fdatasync(), before any of them is acknowledged. Segments are files
// "wal-<number>.log" in the data directory; a segment is deleted once every
// record in it has been flushed into LMDB.
//
// Record layout (format 2), little-endian:
//   [u32 crc32c of everything after this field][u32 payload length]
//   payload = [u8 type: 3 put, 4 delete][u64 seq][u64 version][u16 key length]
//             [key][value]
// version is the write's entry version (kvnode/replication.h; 0 = none).
// Format 1 records (type 1 put, 2 delete: no version field) are still read,
// with version 0; only format 2 is written.
// Recovery reads records until the first short or corrupt one: that tail was
// never acknowledged (its fdatasync had not returned), so it is cut off.
// With sync on, the writer keeps the file zero-filled kPreallocateBytes ahead
// of its records: an fdatasync after overwriting zeros in place flushes only
// data, while one after an append must also commit the new file size and
// blocks to the file system's journal (on this project's ext4 test disk
// 160-200 µs against 250-280 µs per 4 KiB sync). A zero header reads as a
// short record, so the zeros end the log like a clean tail. Each segment is
// new (recovery never appends to an old one), so no record follows zeros.
// Not thread-safe; owned by the Store.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "schema/status.h"

namespace kv {

uint32_t Crc32c(const void* data, size_t n, uint32_t crc = 0);

struct WalRecord {
  bool is_delete = false;
  uint64_t seq = 0;
  std::string_view key;
  std::string_view value;
  uint64_t version = 0;  // entry version; 0 in format 1 records
};

// Appends records to one segment file.
class WalWriter {
 public:
  static Result<std::unique_ptr<WalWriter>> Create(const std::string& path, bool sync);
  ~WalWriter();
  // Encodes into an internal buffer; nothing reaches the file until Commit.
  void Add(const WalRecord& record);
  // One write() and (with sync) one fdatasync() for everything added.
  Status Commit();
  uint64_t bytes_written() const { return bytes_written_; }
  // Bytes of the file zero-filled so far (records included); 0 with sync off.
  uint64_t preallocated() const { return preallocated_; }
  const std::string& path() const { return path_; }

  // How far ahead of the records the file is zero-filled, at most: a refill
  // costs one write of this much, flushed by the next group commit.
  static constexpr uint64_t kPreallocateBytes = 1 << 20;

 private:
  WalWriter(std::string path, int fd, bool sync) : path_(std::move(path)), fd_(fd), sync_(sync) {}
  // Zero-fills the file through end + kPreallocateBytes when end is past
  // what is filled; stops quietly on an error (records are then appended).
  void Preallocate(uint64_t end);
  std::string path_;
  int fd_;
  bool sync_;
  std::string buffer_;
  uint64_t bytes_written_ = 0;
  uint64_t preallocated_ = 0;
};

// Calls fn for each intact record of a segment, in order. Returns the number
// of bytes of intact records (the rest is a torn tail, or preallocated zeros:
// zero_tail, when given, says whether everything after them is zero).
Result<uint64_t> ReadWalSegment(const std::string& path,
                                const std::function<void(const WalRecord&)>& fn,
                                bool* zero_tail = nullptr);

// Segment numbers present in dir, ascending.
Result<std::vector<uint64_t>> ListWalSegments(const std::string& dir);
std::string WalSegmentPath(const std::string& dir, uint64_t number);

}  // namespace kv

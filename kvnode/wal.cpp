#include "kvnode/wal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

namespace kv {
namespace {

constexpr uint8_t kPutV1 = 1;  // format 1: no version field (read only)
constexpr uint8_t kDeleteV1 = 2;
constexpr uint8_t kPut = 3;  // format 2
constexpr uint8_t kDelete = 4;
constexpr size_t kHeaderBytes = 8;                    // crc + length
constexpr size_t kPayloadFixedBytesV1 = 1 + 8 + 2;    // type + seq + key length
constexpr size_t kPayloadFixedBytes = 1 + 8 + 8 + 2;  // type + seq + version + key length
constexpr uint32_t kMaxPayload = 512u << 20;       // sanity bound when reading

std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}

void PutU16(std::string& s, uint16_t v) {
  s.push_back(static_cast<char>(v & 0xFF));
  s.push_back(static_cast<char>(v >> 8));
}
void PutU32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}
void PutU64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
uint64_t GetLE(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

Status Errno(const std::string& what) { return Status::IOError(what + ": " + strerror(errno)); }

}  // namespace

#if defined(__x86_64__)
// The SSE4.2 crc32 instruction computes CRC-32C eight bytes at a time.
__attribute__((target("sse4.2"))) static uint32_t Crc32cHardware(const uint8_t* p, size_t n,
                                                                 uint32_t crc) {
  uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  for (; n > 0; --n, ++p) c32 = __builtin_ia32_crc32qi(c32, *p);
  return c32;
}
#endif

uint32_t Crc32c(const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
#if defined(__x86_64__)
  static const bool hardware = __builtin_cpu_supports("sse4.2");
  if (hardware) return ~Crc32cHardware(p, n, crc);
#endif
  static const std::array<uint32_t, 256> table = MakeCrcTable();
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

std::string WalSegmentPath(const std::string& dir, uint64_t number) {
  char name[32];
  snprintf(name, sizeof(name), "wal-%012llu.log", static_cast<unsigned long long>(number));
  return dir + "/" + name;
}

Result<std::vector<uint64_t>> ListWalSegments(const std::string& dir) {
  std::vector<uint64_t> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.size() == 20 && name.rfind("wal-", 0) == 0 && name.substr(16) == ".log") {
      try {
        out.push_back(std::stoull(name.substr(4, 12)));
      } catch (const std::exception&) {
      }
    }
  }
  if (ec) return Status::IOError("cannot list " + dir + ": " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::unique_ptr<WalWriter>> WalWriter::Create(const std::string& path, bool sync) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot create " + path);
  // Make the new file's directory entry durable, so recovery finds it.
  std::string dir = std::filesystem::path(path).parent_path().string();
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    if (sync) fsync(dfd);
    close(dfd);
  }
  return std::unique_ptr<WalWriter>(new WalWriter(path, fd, sync));
}

WalWriter::~WalWriter() {
  if (fd_ >= 0) close(fd_);
}

void WalWriter::Add(const WalRecord& r) {
  size_t start = buffer_.size();
  buffer_.append(kHeaderBytes, '\0');
  buffer_.push_back(static_cast<char>(r.is_delete ? kDelete : kPut));
  PutU64(buffer_, r.seq);
  PutU64(buffer_, r.version);
  PutU16(buffer_, static_cast<uint16_t>(r.key.size()));
  buffer_.append(r.key);
  if (!r.is_delete) buffer_.append(r.value);
  size_t payload = buffer_.size() - start - kHeaderBytes;
  PutU32(buffer_.data() + start + 4, static_cast<uint32_t>(payload));
  uint32_t crc = Crc32c(buffer_.data() + start + 4, payload + 4);
  PutU32(buffer_.data() + start, crc);
}

Status WalWriter::Commit() {
  if (buffer_.empty()) return Status::Ok();
  if (sync_) Preallocate(bytes_written_ + buffer_.size());
  const char* p = buffer_.data();
  size_t left = buffer_.size();
  while (left > 0) {
    ssize_t n = write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      buffer_.clear();
      return Errno("write-ahead log write to " + path_);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  bytes_written_ += buffer_.size();
  buffer_.clear();
  if (sync_ && fdatasync(fd_) != 0) return Errno("write-ahead log fdatasync of " + path_);
  return Status::Ok();
}

void WalWriter::Preallocate(uint64_t end) {
  if (end <= preallocated_) return;
  // Zeros, not fallocate: on ext4 an fallocated extent is "unwritten", and
  // the first write into it changes metadata just like an append does.
  static const std::array<char, 64 * 1024> kZeros{};
  const uint64_t target = end + kPreallocateBytes;
  uint64_t at = std::max(preallocated_, bytes_written_);
  while (at < target) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kZeros.size(), target - at));
    ssize_t w = pwrite(fd_, kZeros.data(), n, static_cast<off_t>(at));
    if (w < 0 && errno == EINTR) continue;
    // Not an error: the records are then appended as they would be without
    // preallocation, and a real shortage of space fails their write.
    if (w <= 0) break;
    at += static_cast<uint64_t>(w);
  }
  preallocated_ = at;
}

Result<uint64_t> ReadWalSegment(const std::string& path,
                                const std::function<void(const WalRecord&)>& fn,
                                bool* zero_tail) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open " + path);
  std::string data;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      close(fd);
      return Errno("cannot read " + path);
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  size_t pos = 0;
  while (data.size() - pos >= kHeaderBytes) {
    uint32_t crc = static_cast<uint32_t>(GetLE(data.data() + pos, 4));
    uint32_t len = static_cast<uint32_t>(GetLE(data.data() + pos + 4, 4));
    if (len < kPayloadFixedBytesV1 || len > kMaxPayload || data.size() - pos - kHeaderBytes < len)
      break;
    if (Crc32c(data.data() + pos + 4, len + 4) != crc) break;
    const char* p = data.data() + pos + kHeaderBytes;
    uint8_t type = static_cast<uint8_t>(p[0]);
    const bool v1 = type == kPutV1 || type == kDeleteV1;
    if (!v1 && type != kPut && type != kDelete) break;
    const size_t fixed = v1 ? kPayloadFixedBytesV1 : kPayloadFixedBytes;
    if (len < fixed) break;
    uint16_t key_len = static_cast<uint16_t>(GetLE(p + fixed - 2, 2));
    if (fixed + key_len > len) break;
    WalRecord r;
    r.is_delete = type == kDelete || type == kDeleteV1;
    r.seq = GetLE(p + 1, 8);
    r.version = v1 ? 0 : GetLE(p + 9, 8);
    r.key = std::string_view(p + fixed, key_len);
    r.value = std::string_view(p + fixed + key_len, len - fixed - key_len);
    fn(r);
    pos += kHeaderBytes + len;
  }
  if (zero_tail != nullptr) {
    *zero_tail = std::all_of(data.begin() + static_cast<std::ptrdiff_t>(pos), data.end(),
                             [](char c) { return c == 0; });
  }
  return static_cast<uint64_t>(pos);
}

}  // namespace kv

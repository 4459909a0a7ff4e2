// Key hashing and placement: MD5 positions on the 128-bit ring. A position is
// 16 bytes in big-endian order, so byte-wise comparison is numeric order and
// matches the seed system's 32-digit uppercase hex ("9049BBA9...").
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kv {

// A position on the ring: a 128-bit unsigned number, most significant byte first.
// Value type, thread-compatible.
struct Hash128 {
  std::array<uint8_t, 16> bytes{};

  auto operator<=>(const Hash128&) const = default;
  bool operator==(const Hash128&) const = default;

  // 32 uppercase hex digits.
  std::string ToHex() const;
  // Accepts 32 hex digits in either case; nullopt on anything else.
  static std::optional<Hash128> FromHex(std::string_view hex);
  // The raw 16 bytes as a string (used as the prefix of stored keys).
  std::string_view AsBytes() const {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
  }
  static Hash128 FromBytes(std::string_view raw16);  // raw16.size() must be 16

  // This position plus one, wrapping from 2^128-1 to 0.
  Hash128 Next() const;
  static Hash128 Min() { return Hash128{}; }
  static Hash128 Max();
};

// MD5 of arbitrary bytes.
Hash128 Md5(std::string_view data);

// Position of a key on the ring.
inline Hash128 KeyPosition(std::string_view key) { return Md5(key); }

// Position of a node on the ring: MD5 of "<host>:<port>", as in the seed system.
Hash128 NodePosition(std::string_view host, uint16_t port);

// True if pos lies in the ring interval (from, to], which wraps around the top
// of the hash space when from >= to. (x, x] is the whole ring: a single node
// owns every key.
bool InRange(const Hash128& pos, const Hash128& from_exclusive, const Hash128& to_inclusive);

}  // namespace kv

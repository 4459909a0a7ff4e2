#include "schema/hash.h"

#define OPENSSL_SUPPRESS_DEPRECATED  // MD5(): see Md5()
#include <openssl/md5.h>

#include <cstring>
#include <stdexcept>

namespace kv {

std::string Hash128::ToHex() const {
  static const char kDigits[] = "0123456789ABCDEF";
  std::string out(32, '0');
  for (size_t i = 0; i < 16; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xF];
  }
  return out;
}

static int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<Hash128> Hash128::FromHex(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  Hash128 h;
  for (size_t i = 0; i < 16; ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    h.bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return h;
}

Hash128 Hash128::FromBytes(std::string_view raw16) {
  if (raw16.size() != 16) throw std::logic_error("Hash128::FromBytes needs 16 bytes");
  Hash128 h;
  std::memcpy(h.bytes.data(), raw16.data(), 16);
  return h;
}

Hash128 Hash128::Next() const {
  Hash128 h = *this;
  for (int i = 15; i >= 0; --i) {
    if (++h.bytes[i] != 0) break;
  }
  return h;
}

Hash128 Hash128::Max() {
  Hash128 h;
  h.bytes.fill(0xFF);
  return h;
}

Hash128 Md5(std::string_view data) {
  // The one-shot MD5() is deprecated in OpenSSL 3 in favour of EVP, but EVP
  // costs half again as much per short key (provider dispatch), and MD5 runs
  // on every request; MD5 here is placement, not security.
  Hash128 h;
  MD5(reinterpret_cast<const unsigned char*>(data.data()), data.size(), h.bytes.data());
  return h;
}

Hash128 NodePosition(std::string_view host, uint16_t port) {
  std::string s(host);
  s += ':';
  s += std::to_string(port);
  return Md5(s);
}

bool InRange(const Hash128& pos, const Hash128& from, const Hash128& to) {
  if (from < to) return from < pos && pos <= to;
  // Wrapping interval (or the whole ring when from == to).
  return pos > from || pos <= to;
}

}  // namespace kv

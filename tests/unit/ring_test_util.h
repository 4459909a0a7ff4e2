// Helpers shared by the ring tests (ring_test.cpp, ring_moves_test.cpp):
// addresses, rings, and sample positions that touch every elementary
// interval of two rings.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "schema/ring.h"

namespace ringtest {

using RingPtr = std::shared_ptr<const kv::Ring>;

inline kv::NodeAddress Addr(const std::string& host, uint16_t port) {
  return kv::NodeAddress{host, port, static_cast<uint16_t>(port + 1000)};
}

inline std::vector<kv::NodeAddress> Local(int count, uint16_t first_port = 5000) {
  std::vector<kv::NodeAddress> out;
  for (int i = 0; i < count; ++i) out.push_back(Addr("127.0.0.1", first_port + i));
  return out;
}

inline RingPtr MakeRing(uint64_t version, int rf, std::vector<kv::NodeAddress> nodes) {
  auto ring = kv::Ring::Make(version, rf, std::move(nodes));
  REQUIRE(ring.ok());
  return *ring;
}

inline bool Has(const std::vector<kv::NodeAddress>& list, const kv::NodeAddress& a) {
  return std::find(list.begin(), list.end(), a) != list.end();
}

// Every node position of both rings, the positions right after them and
// `random_count` random positions: enough to touch every elementary interval
// at both of its ends.
inline std::vector<kv::Hash128> Samples(const kv::Ring& a, const kv::Ring& b, int random_count) {
  std::vector<kv::Hash128> out{kv::Hash128::Min(), kv::Hash128::Max()};
  for (const kv::Ring* r : {&a, &b}) {
    for (const auto& n : r->nodes()) {
      out.push_back(n.position);
      out.push_back(n.position.Next());
    }
  }
  std::mt19937_64 rng(12345);
  for (int i = 0; i < random_count; ++i) {
    kv::Hash128 h;
    for (auto& byte : h.bytes) byte = static_cast<uint8_t>(rng());
    out.push_back(h);
  }
  return out;
}

}  // namespace ringtest

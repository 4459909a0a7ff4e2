// The client's routing table, from rings made with fake addresses: no sockets.
#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "kvclient/routing_table.h"
#include "schema/hash.h"
#include "schema/ring.h"

using kv::Hash128;
using kv::NodeAddress;
using kv::Ring;
using kv::client::RoutingTable;

namespace {

std::shared_ptr<const Ring> MakeRing(uint64_t version, std::vector<uint16_t> ports, int rf = 1) {
  std::vector<NodeAddress> nodes;
  for (uint16_t p : ports)
    nodes.push_back(NodeAddress{"10.0.0.1", p, static_cast<uint16_t>(p + 1)});
  auto ring = Ring::Make(version, rf, std::move(nodes));
  REQUIRE(ring.ok());
  return *ring;
}

std::string PrimaryOf(const Ring& ring, const Hash128& pos) {
  return ring.Primary(pos)->address.ToString();
}

}  // namespace

TEST_CASE("a key goes to the first node at or after its position, as Ring::Primary says",
          "[client][routing]") {
  auto ring = MakeRing(3, {5001, 5002, 5003, 5004, 5005});
  RoutingTable table = RoutingTable::FromRing(ring);
  CHECK(table.version() == 3);
  CHECK(table.size() == 5);
  for (int i = 0; i < 2000; ++i) {
    std::string key = "key" + std::to_string(i);
    const auto* route = table.LookupKey(key);
    REQUIRE(route != nullptr);
    INFO(key);
    CHECK(route->address == PrimaryOf(*ring, kv::KeyPosition(key)));
  }
}

TEST_CASE("positions past the last node wrap around to the first", "[client][routing]") {
  auto ring = MakeRing(1, {5001, 5002, 5003});
  RoutingTable table = RoutingTable::FromRing(ring);
  const auto& first = ring->nodes().front();
  const auto& last = ring->nodes().back();
  REQUIRE(last.position < Hash128::Max());
  CHECK(table.Lookup(last.position.Next())->address == first.address.ToString());
  CHECK(table.Lookup(Hash128::Max())->address == first.address.ToString());
  CHECK(table.Lookup(Hash128::Min())->address == first.address.ToString());
  // The first node's range wraps: from just after the last node to its own.
  const auto* route = table.Lookup(first.position);
  CHECK(route->from_inclusive == last.position.Next());
  CHECK(route->to_inclusive == first.position);
  CHECK(route->from_inclusive > route->to_inclusive);
}

TEST_CASE("a key whose position equals a node's position belongs to that node",
          "[client][routing]") {
  auto ring = MakeRing(1, {5001, 5002, 5003});
  RoutingTable table = RoutingTable::FromRing(ring);
  for (size_t i = 0; i < ring->size(); ++i) {
    const auto& node = ring->nodes()[i];
    // A node's position is MD5("host:port"), so that string is such a key.
    std::string key = node.address.ToString();
    REQUIRE(kv::KeyPosition(key) == node.position);
    CHECK(table.LookupKey(key)->address == key);
    // One past it is the next node's.
    const auto& next = ring->nodes()[(i + 1) % ring->size()];
    CHECK(table.Lookup(node.position.Next())->address == next.address.ToString());
  }
}

TEST_CASE("a single node serves every position", "[client][routing]") {
  auto ring = MakeRing(1, {5001});
  RoutingTable table = RoutingTable::FromRing(ring);
  for (const Hash128& pos : {Hash128::Min(), Hash128::Max(), ring->nodes()[0].position,
                             ring->nodes()[0].position.Next()}) {
    REQUIRE(table.Lookup(pos) != nullptr);
    CHECK(table.Lookup(pos)->address == "10.0.0.1:5001");
  }
}

TEST_CASE("a table from keyrange text routes like the ring that printed it", "[client][routing]") {
  for (auto ports : {std::vector<uint16_t>{5001}, std::vector<uint16_t>{5001, 5002, 5003, 5004}}) {
    auto ring = MakeRing(9, ports);
    auto entries = Ring::ParseKeyrange(ring->KeyrangeText());
    REQUIRE(entries.ok());
    RoutingTable from_text = RoutingTable::FromKeyrange(*entries, 9);
    RoutingTable from_ring = RoutingTable::FromRing(ring);
    CHECK(from_text.ring() == nullptr);
    CHECK(from_ring.ring() == ring);
    for (int i = 0; i < 1000; ++i) {
      std::string key = "k";  // appended, not "k" + ...: GCC 12 misreports that as -Wrestrict
      key += std::to_string(i);
      REQUIRE(from_text.LookupKey(key) != nullptr);
      CHECK(from_text.LookupKey(key)->address == from_ring.LookupKey(key)->address);
    }
  }
}

TEST_CASE("a refresh with a newer ring replaces the table, an older or equal one does not",
          "[client][routing]") {
  auto v1 = MakeRing(1, {5001, 5002, 5003});
  auto v2 = MakeRing(2, {5001, 5002});  // 10.0.0.1:5003 left
  RoutingTable table = RoutingTable::FromRing(v1);
  RoutingTable newer = RoutingTable::FromRing(v2);

  CHECK(RoutingTable().IsReplacedBy(table));
  CHECK(table.IsReplacedBy(newer));
  CHECK_FALSE(newer.IsReplacedBy(table));
  CHECK_FALSE(table.IsReplacedBy(RoutingTable::FromRing(MakeRing(1, {5001}))));
  CHECK_FALSE(table.IsReplacedBy(RoutingTable()));
  // A newer ring with no nodes left still replaces: nothing to route to.
  CHECK(newer.IsReplacedBy(RoutingTable::FromRing(MakeRing(3, {}))));
  // Unversioned text (a standalone node) replaces unversioned text.
  auto standalone = Ring::ParseKeyrange(MakeRing(0, {5009})->KeyrangeText());
  REQUIRE(standalone.ok());
  CHECK(RoutingTable::FromKeyrange(*standalone, 0)
            .IsReplacedBy(RoutingTable::FromKeyrange(*standalone, 0)));

  // After the replacement the keys of the node that left go to its successor.
  table = newer;
  CHECK(table.version() == 2);
  CHECK_FALSE(table.HasNode("10.0.0.1:5003"));
  const std::string gone = "10.0.0.1:5003";
  int moved = 0;
  for (int i = 0; i < 1000; ++i) {
    std::string key = "key" + std::to_string(i);
    if (PrimaryOf(*v1, kv::KeyPosition(key)) != gone) continue;
    ++moved;
    CHECK(table.LookupKey(key)->address == PrimaryOf(*v2, kv::KeyPosition(key)));
  }
  CHECK(moved > 0);
}

TEST_CASE("an empty table routes nothing", "[client][routing]") {
  RoutingTable table;
  CHECK(table.empty());
  CHECK(table.version() == 0);
  CHECK(table.LookupKey("k") == nullptr);
}

TEST_CASE("the readers of a key are its primary and the replicas the ring places it on",
          "[client][reads]") {
  auto ring = MakeRing(4, {5001, 5002, 5003, 5004, 5005}, 3);
  RoutingTable table = RoutingTable::FromRing(ring);
  REQUIRE(table.has_read_ranges());
  for (int i = 0; i < 500; ++i) {
    std::string key = "key" + std::to_string(i);
    std::vector<std::string> expected, readers;
    for (const auto& a : ring->Replicas(kv::KeyPosition(key))) expected.push_back(a.ToString());
    for (const auto* r : table.ReadersOfKey(key)) readers.push_back(r->address);
    std::sort(expected.begin(), expected.end());
    std::sort(readers.begin(), readers.end());
    CHECK(readers == expected);
  }
}

TEST_CASE("keyrange_read text gives the same readers as the ring it was printed from",
          "[client][reads]") {
  auto ring = MakeRing(2, {5001, 5002, 5003, 5004}, 2);
  auto write = Ring::ParseKeyrange(ring->KeyrangeText());
  auto read = Ring::ParseKeyrange(ring->KeyrangeReadText());
  REQUIRE(write.ok());
  REQUIRE(read.ok());
  RoutingTable from_text = RoutingTable::FromKeyrange(*write, 2);
  CHECK_FALSE(from_text.has_read_ranges());
  CHECK(from_text.ReadersOfKey("k").empty());
  RoutingTable with_reads = from_text.WithReadRanges(*read);
  RoutingTable from_ring = RoutingTable::FromRing(ring);
  for (int i = 0; i < 300; ++i) {
    std::string key = "key" + std::to_string(i);
    std::vector<std::string> a, b;
    for (const auto* r : with_reads.ReadersOfKey(key)) a.push_back(r->address);
    for (const auto* r : from_ring.ReadersOfKey(key)) b.push_back(r->address);
    CHECK(a == b);
    CHECK(a.size() == 2);
  }
}

TEST_CASE("the least loaded replica is chosen and ties are shared out", "[client][reads]") {
  CHECK(kv::client::PickLeastLoaded({3, 1, 2}, 0) == 1);
  CHECK(kv::client::PickLeastLoaded({3, 1, 2}, 12345) == 1);
  CHECK(kv::client::PickLeastLoaded({7}, 99) == 0);
  std::vector<int> picked(3);
  for (uint64_t r = 0; r < 30; ++r) ++picked[kv::client::PickLeastLoaded({0, 0, 0}, r)];
  CHECK(picked == std::vector<int>{10, 10, 10});
  // Only the tied minimum shares: index 1 (load 4) is never picked.
  for (uint64_t r = 0; r < 10; ++r) CHECK(kv::client::PickLeastLoaded({2, 4, 2}, r) != 1);
}

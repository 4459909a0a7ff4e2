// The ring: placement, ranges, keyrange text and the wire form. Move
// planning is in ring_moves_test.cpp.
#include "schema/ring.h"

#include <capnp/message.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "tests/unit/ring_test_util.h"

using kv::Hash128;
using kv::HashRange;
using kv::NodeAddress;
using kv::Ring;
using namespace ringtest;  // the shared test helpers

namespace {

Hash128 Hex(const char* hex) { return *Hash128::FromHex(hex); }

}  // namespace

TEST_CASE("a key belongs to the first node at or after its position, wrapping at the top",
          "[ring]") {
  RingPtr ring = MakeRing(1, 1, Local(3));
  const auto& nodes = ring->nodes();
  REQUIRE(nodes.size() == 3);
  CHECK(nodes[0].position < nodes[1].position);
  CHECK(nodes[1].position < nodes[2].position);
  for (size_t i = 0; i < 3; ++i) {
    // A key equal to a node's position belongs to that node.
    CHECK(ring->Primary(nodes[i].position)->address == nodes[i].address);
    CHECK(ring->Primary(nodes[(i + 2) % 3].position.Next())->address == nodes[i].address);
  }
  // Above the last node the ring wraps to the first.
  CHECK(ring->Primary(Hash128::Max())->address == nodes[0].address);
  CHECK(ring->Primary(Hash128::Min())->address == nodes[0].address);
  CHECK(ring->Primary(kv::KeyPosition("some key")) != nullptr);

  RingPtr empty = MakeRing(1, 1, {});
  CHECK(empty->empty());
  CHECK(empty->Primary(Hash128::Min()) == nullptr);
  CHECK(empty->Replicas(Hash128::Min()).empty());
}

TEST_CASE("a ring sorts its nodes and refuses duplicates, empty hosts, port 0 and RF below 1",
          "[ring]") {
  RingPtr ring = MakeRing(7, 2, {Addr("127.0.0.1", 6969), Addr("127.0.0.2", 6870)});
  CHECK(ring->version() == 7);
  CHECK(ring->replication_factor() == 2);
  CHECK(ring->size() == 2);
  CHECK(ring->nodes()[0].address.ToString() == "127.0.0.2:6870");
  CHECK(ring->nodes()[1].position.ToHex() == "9049BBA9507A48D46D346AF2C9DC9FBB");
  CHECK(ring->Contains(Addr("127.0.0.1", 6969)));
  CHECK(ring->Find(NodeAddress{"127.0.0.1", 6969, 1})->address.peer_port == 7969);
  CHECK_FALSE(ring->Contains(Addr("127.0.0.1", 6970)));
  CHECK(ring->Find(Addr("127.0.0.3", 6969)) == nullptr);

  auto dup = Ring::Make(1, 1, {Addr("h", 1), NodeAddress{"h", 1, 99}});
  CHECK(dup.status().IsInvalidArgument());
  CHECK(Ring::Make(1, 1, {Addr("", 1)}).status().IsInvalidArgument());
  CHECK(Ring::Make(1, 1, {NodeAddress{"h", 0, 1}}).status().IsInvalidArgument());
  CHECK(Ring::Make(1, 1, {Addr("a,b", 1)}).status().IsInvalidArgument());
  CHECK(Ring::Make(1, 0, {Addr("h", 1)}).status().IsInvalidArgument());
  CHECK(Ring::Make(1, 256, {Addr("h", 1)}).status().IsInvalidArgument());
}

TEST_CASE("successor and predecessor wrap around the ring", "[ring]") {
  RingPtr ring = MakeRing(1, 1, Local(4));
  const auto& nodes = ring->nodes();
  for (size_t i = 0; i < 4; ++i) {
    CHECK(ring->Successor(nodes[i].address) == &nodes[(i + 1) % 4]);
    CHECK(ring->Predecessor(nodes[i].address) == &nodes[(i + 3) % 4]);
  }
  CHECK(ring->Successor(Addr("10.0.0.1", 1)) == nullptr);
  RingPtr single = MakeRing(1, 1, Local(1));
  CHECK(single->Successor(single->nodes()[0].address) == &single->nodes()[0]);
  CHECK(single->Predecessor(single->nodes()[0].address) == &single->nodes()[0]);
}

TEST_CASE("with fewer nodes than the replication factor every node holds every range", "[ring]") {
  RingPtr ring = MakeRing(1, 3, Local(2));
  for (const Hash128& pos : Samples(*ring, *ring, 100)) {
    auto replicas = ring->Replicas(pos);
    REQUIRE(replicas.size() == 2);
    CHECK(replicas[0] == ring->Primary(pos)->address);
    CHECK_FALSE(replicas[0] == replicas[1]);
  }
  for (const auto& n : ring->nodes()) {
    CHECK(ring->ReadRangeOf(n.address)->from == n.position);  // (own, own]: everything
    CHECK(ring->ReadRangeOf(n.address)->to == n.position);
  }
}

TEST_CASE("with more nodes than the replication factor a range lives on N consecutive nodes",
          "[ring]") {
  RingPtr ring = MakeRing(1, 3, Local(6));
  const auto& nodes = ring->nodes();
  // The top of the hash space belongs to nodes 0, 1, 2; the last node's
  // position to nodes 5, 0, 1.
  auto top = ring->Replicas(Hash128::Max());
  REQUIRE(top.size() == 3);
  CHECK(top[0] == nodes[0].address);
  CHECK(top[1] == nodes[1].address);
  CHECK(top[2] == nodes[2].address);
  auto last = ring->Replicas(nodes[5].position);
  CHECK(last == std::vector<NodeAddress>{nodes[5].address, nodes[0].address, nodes[1].address});
}

TEST_CASE("a node writes from its predecessor to itself and reads from its N-th predecessor",
          "[ring]") {
  RingPtr ring = MakeRing(1, 2, Local(5));
  const auto& nodes = ring->nodes();
  auto write = ring->WriteRangeOf(nodes[0].address);
  REQUIRE(write.ok());
  CHECK(*write == HashRange{nodes[4].position, nodes[0].position});
  CHECK(*ring->ReadRangeOf(nodes[0].address) == HashRange{nodes[3].position, nodes[0].position});
  CHECK(*ring->ReadRangeOf(nodes[3].address) == HashRange{nodes[1].position, nodes[3].position});
  // The ranges agree with placement everywhere.
  for (const Hash128& pos : Samples(*ring, *ring, 500)) {
    auto replicas = ring->Replicas(pos);
    for (const auto& n : nodes) {
      CHECK(ring->WriteRangeOf(n.address)->Contains(pos) ==
            (ring->Primary(pos)->address == n.address));
      CHECK(ring->ReadRangeOf(n.address)->Contains(pos) == Has(replicas, n.address));
    }
  }
  CHECK(ring->WriteRangeOf(Addr("10.0.0.1", 1)).status().IsNotFound());
  CHECK(ring->ReadRangeOf(Addr("10.0.0.1", 1)).status().IsNotFound());

  RingPtr single = MakeRing(1, 1, Local(1));
  const auto& own = single->nodes()[0].position;
  CHECK(*single->WriteRangeOf(single->nodes()[0].address) == HashRange{own, own});
  CHECK(single->WriteRangeOf(single->nodes()[0].address)->Contains(Hash128::Max()));
}

TEST_CASE("keyrange text matches the seed system's format and vectors", "[ring]") {
  RingPtr one = MakeRing(1, 1, {Addr("127.0.0.1", 6969)});
  CHECK(one->KeyrangeText() ==
        "9049BBA9507A48D46D346AF2C9DC9FBC,9049BBA9507A48D46D346AF2C9DC9FBB,127.0.0.1:6969;");
  RingPtr two = MakeRing(2, 1, {Addr("127.0.0.1", 6969), Addr("127.0.0.2", 6870)});
  CHECK(two->KeyrangeText() ==
        "9049BBA9507A48D46D346AF2C9DC9FBC,411900A46428D02426F4951156382B7D,127.0.0.2:6870;"
        "411900A46428D02426F4951156382B7E,9049BBA9507A48D46D346AF2C9DC9FBB,127.0.0.1:6969;");
  // With RF 2 both nodes read everything.
  RingPtr two_rf2 = MakeRing(2, 2, {Addr("127.0.0.1", 6969), Addr("127.0.0.2", 6870)});
  CHECK(two_rf2->KeyrangeReadText() ==
        "411900A46428D02426F4951156382B7E,411900A46428D02426F4951156382B7D,127.0.0.2:6870;"
        "9049BBA9507A48D46D346AF2C9DC9FBC,9049BBA9507A48D46D346AF2C9DC9FBB,127.0.0.1:6969;");
  CHECK(MakeRing(1, 1, {})->KeyrangeText().empty());
}

TEST_CASE("keyrange text round trips through the parser and covers the ring exactly", "[ring]") {
  for (int count : {1, 2, 7}) {
    RingPtr ring = MakeRing(3, 3, Local(count));
    auto entries = Ring::ParseKeyrange(ring->KeyrangeText());
    REQUIRE(entries.ok());
    REQUIRE(entries->size() == ring->size());
    for (size_t i = 0; i < ring->size(); ++i) {
      const auto& node = ring->nodes()[i];
      const auto& e = (*entries)[i];
      CHECK(e.host == node.address.host);
      CHECK(e.port == node.address.port);
      CHECK(e.to_inclusive == node.position);
      CHECK(e.from_inclusive == ring->WriteRangeOf(node.address)->from.Next());
    }
    CHECK(kv::CoversWholeRingExactly(*entries));

    auto reads = Ring::ParseKeyrange(ring->KeyrangeReadText());
    REQUIRE(reads.ok());
    REQUIRE(reads->size() == ring->size());
    for (size_t i = 0; i < ring->size(); ++i) {
      auto rr = ring->ReadRangeOf(ring->nodes()[i].address);
      CHECK((*reads)[i].from_inclusive == rr->from.Next());
      CHECK((*reads)[i].to_inclusive == rr->to);
    }
    // Read ranges overlap as soon as there are two nodes.
    CHECK(kv::CoversWholeRingExactly(*reads) == (count == 1));
  }
}

TEST_CASE("whole-ring coverage detects a gap and an overlap", "[ring]") {
  Hash128 a = Hex("40000000000000000000000000000000");
  Hash128 b = Hex("80000000000000000000000000000000");
  Hash128 c = Hex("C0000000000000000000000000000000");
  using E = kv::KeyrangeEntry;
  std::vector<E> exact{{a.Next(), b, "h", 1}, {b.Next(), c, "h", 2}, {c.Next(), a, "h", 3}};
  CHECK(kv::CoversWholeRingExactly(exact));
  std::reverse(exact.begin(), exact.end());  // order does not matter
  CHECK(kv::CoversWholeRingExactly(exact));

  std::vector<E> gap{{a.Next(), b, "h", 1}, {b.Next().Next(), c, "h", 2}, {c.Next(), a, "h", 3}};
  CHECK_FALSE(kv::CoversWholeRingExactly(gap));
  std::vector<E> overlap{{a.Next(), b, "h", 1}, {b, c, "h", 2}, {c.Next(), a, "h", 3}};
  CHECK_FALSE(kv::CoversWholeRingExactly(overlap));
  // Two whole-ring entries cover everything twice.
  std::vector<E> twice{{a.Next(), a, "h", 1}, {a.Next(), a, "h", 2}};
  CHECK_FALSE(kv::CoversWholeRingExactly(twice));
  std::vector<E> wound{{a.Next(), b, "h", 1}, {b.Next(), a, "h", 2}, {a.Next(), a, "h", 3}};
  CHECK_FALSE(kv::CoversWholeRingExactly(wound));
  CHECK(kv::CoversWholeRingExactly({{Hash128::Min(), Hash128::Max(), "h", 1}}));
  CHECK_FALSE(kv::CoversWholeRingExactly({}));
}

TEST_CASE("the keyrange parser is strict about hex, fields and ports", "[ring]") {
  const std::string from = "9049BBA9507A48D46D346AF2C9DC9FBC";
  const std::string to = "9049bba9507a48d46d346af2c9dc9fbb";
  auto ok = Ring::ParseKeyrange(from + "," + to + ",127.0.0.1:6969");  // no trailing ';'
  REQUIRE(ok.ok());
  REQUIRE(ok->size() == 1);
  CHECK((*ok)[0].to_inclusive == kv::NodePosition("127.0.0.1", 6969));
  CHECK((*ok)[0].host == "127.0.0.1");
  CHECK((*ok)[0].port == 6969);
  auto v6 = Ring::ParseKeyrange(from + "," + to + ",::1:80;");
  REQUIRE(v6.ok());
  CHECK((*v6)[0].host == "::1");
  CHECK(Ring::ParseKeyrange("")->empty());

  for (const std::string& bad : {
           from + "," + to + ",127.0.0.1:6969;;",                // empty entry
           from + "," + to + ";",                                // missing address
           from + "," + to + ",127.0.0.1;",                      // missing port
           from + "," + to + ",:6969;",                          // missing host
           from + "," + to + ",127.0.0.1:0;",                    // port 0
           from + "," + to + ",127.0.0.1:65536;",                // port too large
           from + "," + to + ",127.0.0.1:69x;",                  // port not a number
           from + "," + to + ",127.0.0.1:+69;",                  // sign
           from + "," + to + ",127.0.0.1:6969,extra;",           // extra field
           from.substr(1) + "," + to + ",127.0.0.1:6969;",       // 31 digits
           from.substr(0, 31) + "G," + to + ",127.0.0.1:6969;",  // not hex
           " " + from + "," + to + ",127.0.0.1:6969;",
           std::string(";"),
       }) {
    INFO(bad);
    CHECK(Ring::ParseKeyrange(bad).status().IsInvalidArgument());
  }
}

TEST_CASE("a ring survives Cap'n Proto and frame encoding unchanged", "[ring]") {
  RingPtr ring = MakeRing(42, 3, Local(5));
  auto decoded = Ring::DecodeRing(ring->EncodeRing());
  REQUIRE(decoded.ok());
  const Ring& back = **decoded;
  CHECK(back.version() == 42);
  CHECK(back.replication_factor() == 3);
  REQUIRE(back.size() == 5);
  for (size_t i = 0; i < 5; ++i) {
    CHECK(back.nodes()[i].address == ring->nodes()[i].address);
    CHECK(back.nodes()[i].address.peer_port == ring->nodes()[i].address.peer_port);
    CHECK(back.nodes()[i].position == ring->nodes()[i].position);
  }
  CHECK(back.KeyrangeText() == ring->KeyrangeText());

  RingPtr empty = MakeRing(1, 1, {});
  auto empty_back = Ring::DecodeRing(empty->EncodeRing());
  REQUIRE(empty_back.ok());
  CHECK((*empty_back)->empty());

  std::string junk = "definitely not a capnp message";
  CHECK(Ring::DecodeRing(zmq::message_t(junk.data(), junk.size())).status().IsInvalidArgument());
}

TEST_CASE("a ring from the wire is refused when positions, order or RF are wrong", "[ring]") {
  RingPtr ring = MakeRing(1, 2, Local(3));
  auto build = [&](auto&& tamper) {
    capnp::MallocMessageBuilder builder;
    auto root = builder.initRoot<kv::wire::Ring>();
    ring->ToCapnp(root);
    tamper(root);
    return Ring::FromCapnp(root.asReader());
  };
  CHECK(build([](kv::wire::Ring::Builder) {}).ok());

  auto mismatch = build([](kv::wire::Ring::Builder r) { r.getNodes()[0].getAddress().setPort(1); });
  CHECK(mismatch.status().IsInvalidArgument());

  auto unsorted = build([&](kv::wire::Ring::Builder r) {
    // Swap the first two nodes, keeping each position with its address.
    for (int i : {0, 1}) {
      const auto& src = ring->nodes()[1 - i];
      auto n = r.getNodes()[i];
      n.getAddress().setHost(src.address.host);
      n.getAddress().setPort(src.address.port);
      n.setPosition(kj::arrayPtr(src.position.bytes.data(), 16));
    }
  });
  CHECK(unsorted.status().IsInvalidArgument());

  auto duplicate = build([&](kv::wire::Ring::Builder r) {
    const auto& src = ring->nodes()[0];
    auto n = r.getNodes()[1];
    n.getAddress().setPort(src.address.port);
    n.setPosition(kj::arrayPtr(src.position.bytes.data(), 16));
  });
  CHECK(duplicate.status().IsInvalidArgument());

  auto short_position = build([&](kv::wire::Ring::Builder r) {
    r.getNodes()[2].setPosition(kj::arrayPtr(ring->nodes()[2].position.bytes.data(), 15));
  });
  CHECK(short_position.status().IsInvalidArgument());

  auto no_rf = build([](kv::wire::Ring::Builder r) { r.setReplicationFactor(0); });
  CHECK(no_rf.status().IsInvalidArgument());

  auto port_zero = build([](kv::wire::Ring::Builder r) {
    auto n = r.getNodes()[0];
    n.getAddress().setPort(0);
    kv::Hash128 pos = kv::NodePosition("127.0.0.1", 0);
    n.setPosition(kj::arrayPtr(pos.bytes.data(), 16));
  });
  CHECK(port_zero.status().IsInvalidArgument());
}

TEST_CASE("a new ring version adds and removes nodes and keeps the replication factor", "[ring]") {
  RingPtr ring = MakeRing(1, 2, Local(3));
  auto next = ring->WithNodes(2, {Addr("127.0.0.1", 6000)}, {Addr("127.0.0.1", 5001)});
  REQUIRE(next.ok());
  CHECK((*next)->version() == 2);
  CHECK((*next)->replication_factor() == 2);
  CHECK((*next)->size() == 3);
  CHECK((*next)->Contains(Addr("127.0.0.1", 6000)));
  CHECK_FALSE((*next)->Contains(Addr("127.0.0.1", 5001)));
  CHECK(ring->size() == 3);  // the old version is untouched
  CHECK(ring->WithNodes(2, {Addr("127.0.0.1", 5000)}, {}).status().IsInvalidArgument());
  CHECK(ring->WithNodes(2, {}, {Addr("127.0.0.1", 7000)}).status().IsInvalidArgument());
}

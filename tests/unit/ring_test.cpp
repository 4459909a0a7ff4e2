#include "schema/ring.h"

#include <capnp/message.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

using kv::Hash128;
using kv::HashRange;
using kv::Move;
using kv::NodeAddress;
using kv::Ring;
using RingPtr = std::shared_ptr<const Ring>;

namespace {

NodeAddress Addr(const std::string& host, uint16_t port) {
  return NodeAddress{host, port, static_cast<uint16_t>(port + 1000)};
}

std::vector<NodeAddress> Local(int count, uint16_t first_port = 5000) {
  std::vector<NodeAddress> out;
  for (int i = 0; i < count; ++i) out.push_back(Addr("127.0.0.1", first_port + i));
  return out;
}

RingPtr MakeRing(uint64_t version, int rf, std::vector<NodeAddress> nodes) {
  auto ring = Ring::Make(version, rf, std::move(nodes));
  REQUIRE(ring.ok());
  return *ring;
}

Hash128 Hex(const char* hex) { return *Hash128::FromHex(hex); }

unsigned __int128 Value(const Hash128& h) {
  unsigned __int128 v = 0;
  for (uint8_t b : h.bytes) v = v << 8 | b;
  return v;
}

// Clockwise distance from a to b, modulo 2^128.
unsigned __int128 Dist(const Hash128& a, const Hash128& b) { return Value(b) - Value(a); }

// True when inner (a non-empty (from, to] range) lies inside outer.
bool Within(const HashRange& inner, const HashRange& outer) {
  if (outer.from == outer.to) return true;
  if (inner.from == inner.to) return false;
  unsigned __int128 d_from = Dist(outer.from, inner.from), d_to = Dist(outer.from, inner.to);
  return d_from < d_to && d_to <= Dist(outer.from, outer.to);
}

bool Has(const std::vector<NodeAddress>& list, const NodeAddress& a) {
  return std::find(list.begin(), list.end(), a) != list.end();
}

// Every node position of both rings, the positions right after them and
// `random_count` random positions: enough to touch every elementary interval
// at both of its ends.
std::vector<Hash128> Samples(const Ring& a, const Ring& b, int random_count) {
  std::vector<Hash128> out{Hash128::Min(), Hash128::Max()};
  for (const Ring* r : {&a, &b}) {
    for (const auto& n : r->nodes()) {
      out.push_back(n.position);
      out.push_back(n.position.Next());
    }
  }
  std::mt19937_64 rng(12345);
  for (int i = 0; i < random_count; ++i) {
    Hash128 h;
    for (auto& byte : h.bytes) byte = static_cast<uint8_t>(rng());
    out.push_back(h);
  }
  return out;
}

// Brute-force cross-check of a plan: at every sampled position each node that
// holds it after the change either held it before or is the target of exactly
// one move covering it, whose source held it before and is alive; nothing
// else is moved, and positions whose holders all died are reported lost.
void VerifyPlan(const Ring& before, const Ring& after, const std::vector<NodeAddress>& dead,
                const std::vector<Move>& moves, const std::vector<HashRange>& lost) {
  for (const Hash128& pos : Samples(before, after, 3000)) {
    std::vector<NodeAddress> held = before.Replicas(pos);
    std::vector<NodeAddress> holds = after.Replicas(pos);
    bool all_dead =
        std::all_of(held.begin(), held.end(), [&](const NodeAddress& h) { return Has(dead, h); });
    bool reported_lost =
        std::any_of(lost.begin(), lost.end(), [&](const HashRange& r) { return r.Contains(pos); });
    INFO("position " << pos.ToHex());
    CHECK(reported_lost == all_dead);
    for (const auto& target : holds) {
      if (Has(held, target)) continue;
      int covering = 0;
      for (const auto& m : moves) {
        if (m.target == target && m.range.Contains(pos)) {
          ++covering;
          CHECK(Has(held, m.source));
          CHECK_FALSE(Has(dead, m.source));
        }
      }
      CHECK(covering == (all_dead ? 0 : 1));
    }
    for (const auto& m : moves) {
      if (!m.range.Contains(pos)) continue;
      CHECK(Has(holds, m.target));
      CHECK_FALSE(Has(held, m.target));
    }
  }
}

// The moves for target, which must chain into one run from `from` to `to`.
void CheckChain(const std::vector<Move>& moves, const NodeAddress& target,
                const HashRange& expected) {
  std::vector<Move> mine;
  for (const auto& m : moves) {
    if (m.target == target) mine.push_back(m);
  }
  REQUIRE_FALSE(mine.empty());
  // Start from the move that begins at expected.from, then follow the chain.
  auto it = std::find_if(mine.begin(), mine.end(),
                         [&](const Move& m) { return m.range.from == expected.from; });
  REQUIRE(it != mine.end());
  std::rotate(mine.begin(), it, mine.end());
  for (size_t i = 1; i < mine.size(); ++i) CHECK(mine[i].range.from == mine[i - 1].range.to);
  CHECK(mine.back().range.to == expected.to);
}

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

TEST_CASE("a node joining a one-node ring receives exactly its write range from the old node",
          "[ring]") {
  RingPtr before = MakeRing(1, 1, {Addr("127.0.0.1", 6969)});
  RingPtr after = *before->WithNodes(2, {Addr("127.0.0.2", 6870)}, {});
  auto moves = kv::PlanMoves(*before, *after);
  REQUIRE(moves.size() == 1);
  CHECK(moves[0].source == Addr("127.0.0.1", 6969));
  CHECK(moves[0].target == Addr("127.0.0.2", 6870));
  CHECK(moves[0].range == *after->WriteRangeOf(Addr("127.0.0.2", 6870)));
  VerifyPlan(*before, *after, {}, moves, {});
}

TEST_CASE("with RF 1 a join takes data only from the new node's successor", "[ring]") {
  RingPtr before = MakeRing(1, 1, Local(3));
  NodeAddress joiner = Addr("127.0.0.1", 6000);
  RingPtr after = *before->WithNodes(2, {joiner}, {});
  auto moves = kv::PlanMoves(*before, *after);
  REQUIRE(moves.size() == 1);
  CHECK(moves[0].source == after->Successor(joiner)->address);
  CHECK(moves[0].target == joiner);
  CHECK(moves[0].range == *after->WriteRangeOf(joiner));
  VerifyPlan(*before, *after, {}, moves, {});
}

TEST_CASE("a leaving node hands its range to its successor", "[ring]") {
  RingPtr before = MakeRing(1, 1, Local(4));
  NodeAddress leaver = before->nodes()[0].address;  // its range wraps over the top
  RingPtr after = *before->WithNodes(2, {}, {leaver});
  auto moves = kv::PlanMoves(*before, *after);
  REQUIRE(moves.size() == 1);
  CHECK(moves[0].source == leaver);
  CHECK(moves[0].target == before->Successor(leaver)->address);
  CHECK(moves[0].range == *before->WriteRangeOf(leaver));
  VerifyPlan(*before, *after, {}, moves, {});
}

TEST_CASE("five nodes joining at once receive exactly what changed, each range once", "[ring]") {
  for (int rf : {1, 3}) {
    INFO("replication factor " << rf);
    RingPtr before = MakeRing(1, rf, Local(4));
    std::vector<NodeAddress> joiners = Local(5, 7000);
    RingPtr after = *before->WithNodes(2, joiners, {});
    auto moves = kv::PlanMoves(*before, *after);
    REQUIRE_FALSE(moves.empty());
    for (const auto& m : moves) {
      CHECK(Has(joiners, m.target));
      CHECK(Within(m.range, *after->ReadRangeOf(m.target)));
    }
    // Per target, ranges are disjoint and in order of their start.
    for (size_t i = 1; i < moves.size(); ++i) {
      if (!(moves[i].target == moves[i - 1].target)) continue;
      CHECK(moves[i - 1].range.from < moves[i].range.from);
      CHECK_FALSE(moves[i - 1].range.Contains(moves[i].range.to));
      CHECK_FALSE(moves[i].range.Contains(moves[i - 1].range.to));
    }
    VerifyPlan(*before, *after, {}, moves, {});
    // The same input always gives the same plan.
    auto again = kv::PlanMoves(*before, *after);
    REQUIRE(again.size() == moves.size());
    for (size_t i = 0; i < moves.size(); ++i) {
      CHECK(again[i].range == moves[i].range);
      CHECK(again[i].target == moves[i].target);
      CHECK(again[i].source == moves[i].source);
    }
  }
}

TEST_CASE("with RF 3 a joining node receives its whole read range from nodes that stay", "[ring]") {
  RingPtr before = MakeRing(1, 3, Local(6));
  NodeAddress joiner = Addr("127.0.0.1", 6000);
  RingPtr after = *before->WithNodes(2, {joiner}, {});
  auto moves = kv::PlanMoves(*before, *after);
  for (const auto& m : moves) {
    CHECK(m.target == joiner);
    CHECK(after->Contains(m.source));
  }
  CheckChain(moves, joiner, *after->ReadRangeOf(joiner));
  VerifyPlan(*before, *after, {}, moves, {});
}

TEST_CASE("after a failure no range is copied from the dead node", "[ring]") {
  RingPtr before = MakeRing(1, 3, Local(6));
  NodeAddress dead = before->nodes()[2].address;
  RingPtr after = *before->WithNodes(2, {}, {dead});
  std::vector<HashRange> lost;
  auto moves = kv::PlanMoves(*before, *after, {dead}, &lost);
  REQUIRE_FALSE(moves.empty());
  for (const auto& m : moves) CHECK_FALSE(m.source == dead);
  CHECK(lost.empty());
  VerifyPlan(*before, *after, {dead}, moves, lost);
}

TEST_CASE("with RF 1 the range of a dead primary is reported lost, not moved", "[ring]") {
  RingPtr before = MakeRing(1, 1, Local(4));
  NodeAddress dead = before->nodes()[1].address;
  RingPtr after = *before->WithNodes(2, {}, {dead});
  std::vector<HashRange> lost;
  auto moves = kv::PlanMoves(*before, *after, {dead}, &lost);
  CHECK(moves.empty());
  REQUIRE(lost.size() == 1);
  CHECK(lost[0] == *before->WriteRangeOf(dead));
  VerifyPlan(*before, *after, {dead}, moves, lost);
}

TEST_CASE("an empty ring before the change needs no moves", "[ring]") {
  RingPtr before = MakeRing(1, 1, {});
  RingPtr after = MakeRing(2, 1, Local(3));
  CHECK(kv::PlanMoves(*before, *after).empty());
}

TEST_CASE("random membership changes always plan exactly the copies that are needed", "[ring]") {
  std::mt19937 rng(2024);
  std::vector<NodeAddress> pool = Local(16);
  for (int round = 0; round < 40; ++round) {
    int rf = 1 + static_cast<int>(rng() % 3);
    std::vector<NodeAddress> members, others;
    for (const auto& a : pool) (rng() % 2 ? members : others).push_back(a);
    if (members.empty()) {
      members.push_back(others.back());
      others.pop_back();
    }
    RingPtr before = MakeRing(1, rf, members);
    std::vector<NodeAddress> add, remove, dead;
    for (const auto& a : others) {
      if (rng() % 3 == 0) add.push_back(a);
    }
    for (const auto& a : members) {
      if (rng() % 4 == 0) {
        remove.push_back(a);
        if (rng() % 2) dead.push_back(a);
      }
    }
    RingPtr after = *before->WithNodes(2, add, remove);
    std::vector<HashRange> lost;
    auto moves = kv::PlanMoves(*before, *after, dead, &lost);
    INFO("round " << round << ", RF " << rf);
    VerifyPlan(*before, *after, dead, moves, lost);
  }
}

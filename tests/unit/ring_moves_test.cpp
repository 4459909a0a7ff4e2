// PlanMoves: which copies a ring change needs, and from which source.
#include <algorithm>
#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "schema/ring.h"
#include "tests/unit/ring_test_util.h"

using kv::Hash128;
using kv::HashRange;
using kv::Move;
using kv::NodeAddress;
using kv::Ring;
using namespace ringtest;  // the shared test helpers

namespace {

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

// The first holder in replica order that is not dead: the source PlanMoves
// must choose. nullptr when every holder is dead.
const NodeAddress* FirstAlive(const std::vector<NodeAddress>& holders,
                              const std::vector<NodeAddress>& dead) {
  for (const auto& h : holders) {
    if (!Has(dead, h)) return &h;
  }
  return nullptr;
}

// Brute-force cross-check of a plan: at every sampled position each node that
// holds it after the change either held it before or is the target of exactly
// one move covering it, whose source is the first live before-holder in
// replica order; nothing else is moved, and positions whose holders all died
// are reported lost.
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
          const NodeAddress* first = FirstAlive(held, dead);
          REQUIRE(first != nullptr);
          CHECK(m.source == *first);
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

// Each move's source, checked at the end of its range: every interval a
// merged move covers has the same source.
void CheckSources(const std::vector<Move>& moves, const Ring& ring) {
  for (const auto& m : moves) {
    INFO("move (" << m.range.from.ToHex() << ", " << m.range.to.ToHex() << "] to "
                  << m.target.ToString());
    CHECK(m.source == ring.Primary(m.range.to)->address);
  }
}

TEST_CASE("with RF 3 a join takes every interval from its primary before the change", "[ring]") {
  RingPtr before = MakeRing(1, 3, Local(5));
  NodeAddress joiner = Addr("127.0.0.1", 6001);
  RingPtr after = *before->WithNodes(2, {joiner}, {});
  auto moves = kv::PlanMoves(*before, *after);
  REQUIRE_FALSE(moves.empty());
  CheckSources(moves, *before);
  VerifyPlan(*before, *after, {}, moves, {});
}

TEST_CASE("with RF 3 a leaving primary is the source of its own ranges though replicas stay",
          "[ring]") {
  RingPtr before = MakeRing(1, 3, Local(5));
  NodeAddress leaver = before->nodes()[2].address;
  RingPtr after = *before->WithNodes(2, {}, {leaver});
  auto moves = kv::PlanMoves(*before, *after);
  REQUIRE_FALSE(moves.empty());
  CheckSources(moves, *before);
  // The leaver's write range gains a new third replica, fed by the leaver.
  HashRange own = *before->WriteRangeOf(leaver);
  CHECK(std::any_of(moves.begin(), moves.end(),
                    [&](const Move& m) { return m.source == leaver && m.range == own; }));
  VerifyPlan(*before, *after, {}, moves, {});
}

TEST_CASE("after the failure of a primary its ranges come from the replica that becomes primary",
          "[ring]") {
  RingPtr before = MakeRing(1, 3, Local(6));
  NodeAddress dead = before->nodes()[3].address;
  RingPtr after = *before->WithNodes(2, {}, {dead});
  std::vector<HashRange> lost;
  auto moves = kv::PlanMoves(*before, *after, {dead}, &lost);
  REQUIRE_FALSE(moves.empty());
  CHECK(lost.empty());
  CheckSources(moves, *after);  // the primary in the ring that is now in force
  NodeAddress heir = before->nodes()[4].address;
  HashRange own = *before->WriteRangeOf(dead);
  CHECK(std::any_of(moves.begin(), moves.end(),
                    [&](const Move& m) { return m.source == heir && m.range == own; }));
  VerifyPlan(*before, *after, {dead}, moves, lost);
}

TEST_CASE("after the failure of a replica each range's primary stays its source", "[ring]") {
  RingPtr before = MakeRing(1, 3, Local(6));
  NodeAddress dead = before->nodes()[1].address;
  RingPtr after = *before->WithNodes(2, {}, {dead});
  std::vector<HashRange> lost;
  auto moves = kv::PlanMoves(*before, *after, {dead}, &lost);
  REQUIRE_FALSE(moves.empty());
  CHECK(lost.empty());
  for (const auto& m : moves) {
    // Ranges the dead node only replicated keep their primary.
    if (!before->WriteRangeOf(dead)->Contains(m.range.to)) {
      CHECK(m.source == before->Primary(m.range.to)->address);
    }
  }
  CheckSources(moves, *after);
  VerifyPlan(*before, *after, {dead}, moves, lost);
}

TEST_CASE("with RF 3 and 2 to 6 nodes joins, leaves and failures copy from the first live holder",
          "[ring]") {
  for (int n = 2; n <= 6; ++n) {
    INFO(n << " nodes");
    RingPtr before = MakeRing(1, 3, Local(n));
    NodeAddress member = before->nodes()[static_cast<size_t>(n / 2)].address;

    RingPtr joined = *before->WithNodes(2, {Addr("127.0.0.1", 6001)}, {});
    auto join = kv::PlanMoves(*before, *joined);
    CheckSources(join, *before);
    VerifyPlan(*before, *joined, {}, join, {});

    RingPtr left = *before->WithNodes(2, {}, {member});
    auto leave = kv::PlanMoves(*before, *left);
    CheckSources(leave, *before);
    VerifyPlan(*before, *left, {}, leave, {});
    if (n <= 3) CHECK(leave.empty());  // the others already hold everything

    std::vector<HashRange> lost;
    auto fail = kv::PlanMoves(*before, *left, {member}, &lost);
    CHECK(lost.empty());
    CheckSources(fail, *left);
    VerifyPlan(*before, *left, {member}, fail, lost);
    if (n <= 3) CHECK(fail.empty());
  }
}

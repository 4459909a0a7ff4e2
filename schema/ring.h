// The versioned consistent-hashing ring: which node is responsible for which
// MD5 position, replica placement, the seed system's keyrange text
// ("<from>,<to>,<host>:<port>;" with inclusive 32-digit uppercase hex bounds),
// its Cap'n Proto form (wire::Ring in control.capnp) and the planning of the
// data moves a membership change needs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "control.capnp.h"
#include "schema/hash.h"
#include "schema/status.h"

namespace kv {

// How a node is reached. Its identity is host + port (its ring position is
// NodePosition(host, port)); peer_port is extra data carried along.
// Value type, thread-compatible.
struct NodeAddress {
  std::string host;
  uint16_t port = 0;       // client port
  uint16_t peer_port = 0;  // node-to-node and ECS-to-node port

  // "host:port", the string the position is the MD5 of.
  std::string ToString() const;
  bool operator==(const NodeAddress& other) const {
    return host == other.host && port == other.port;
  }
};

// A member of a ring.
struct RingNode {
  NodeAddress address;
  Hash128 position;
};

// The ring interval (from, to], wrapping around the top of the hash space when
// from >= to; (x, x] is the whole ring.
struct HashRange {
  Hash128 from;
  Hash128 to;

  bool Contains(const Hash128& pos) const { return InRange(pos, from, to); }
  bool operator==(const HashRange&) const = default;
};

// One line of keyrange text: [from_inclusive, to_inclusive] (wrapping when
// from_inclusive > to_inclusive) held by host:port.
struct KeyrangeEntry {
  Hash128 from_inclusive;
  Hash128 to_inclusive;
  std::string host;
  uint16_t port = 0;

  bool operator==(const KeyrangeEntry&) const = default;
};

// An immutable ring of nodes sorted by position. Built once by Make (or
// FromCapnp/DecodeRing), shared as std::shared_ptr<const Ring> and replaced by
// a newer version on every membership change. Thread-safe: every method is
// const and reads only.
//
// Placement: a position belongs to the first node whose position is >= it,
// wrapping to the first node; it is replicated on that node and the next
// replication_factor - 1 distinct nodes clockwise.
class Ring {
 public:
  // Computes positions and sorts. InvalidArgument on an empty host or one
  // containing ',', ';' or whitespace, port 0, a duplicate host:port, or a
  // replication factor outside 1..255.
  static Result<std::shared_ptr<const Ring>> Make(uint64_t version, int replication_factor,
                                                  std::vector<NodeAddress> nodes);

  // A new ring with the same replication factor: these nodes minus `remove`
  // plus `add`. InvalidArgument if a removed node is not in the ring or an
  // added one already is.
  Result<std::shared_ptr<const Ring>> WithNodes(uint64_t version,
                                                const std::vector<NodeAddress>& add,
                                                const std::vector<NodeAddress>& remove) const;

  uint64_t version() const { return version_; }
  int replication_factor() const { return replication_factor_; }
  const std::vector<RingNode>& nodes() const { return nodes_; }  // sorted by position
  size_t size() const { return nodes_.size(); }
  bool empty() const { return nodes_.empty(); }
  bool Contains(const NodeAddress& addr) const { return Find(addr) != nullptr; }
  // nullptr when addr is not in the ring. Pointers live as long as the ring.
  const RingNode* Find(const NodeAddress& addr) const;

  // The node responsible for pos (its write coordinator); nullptr if empty.
  const RingNode* Primary(const Hash128& pos) const;
  // The primary, then the next min(N, size) - 1 nodes clockwise.
  std::vector<NodeAddress> Replicas(const Hash128& pos) const;
  // Neighbours clockwise / counter-clockwise; a single node is its own.
  // nullptr when addr is not in the ring.
  const RingNode* Successor(const NodeAddress& addr) const;
  const RingNode* Predecessor(const NodeAddress& addr) const;

  // (predecessor position, own position]; the whole ring for a single node.
  // NotFound when addr is not in the ring.
  Result<HashRange> WriteRangeOf(const NodeAddress& addr) const;
  // (position of the N-th predecessor, own position]: every position the node
  // holds a copy of; the whole ring when size <= N. NotFound when not a member.
  Result<HashRange> ReadRangeOf(const NodeAddress& addr) const;

  // "<from>,<to>,<host>:<port>;" per node in position order, bounds inclusive:
  // from = predecessor.Next() (own.Next() for a single node), to = own.
  std::string KeyrangeText() const;
  // The same format with the read ranges.
  std::string KeyrangeReadText() const;
  // Strict parser for both texts; the trailing ';' is optional and "" is an
  // empty list. InvalidArgument on bad hex, missing fields or a bad port.
  static Result<std::vector<KeyrangeEntry>> ParseKeyrange(std::string_view text);

  void ToCapnp(wire::Ring::Builder out) const;
  // Validates as untrusted input: RF >= 1, every position 16 bytes and equal
  // to NodePosition(host, port), nodes strictly sorted. InvalidArgument else.
  static Result<std::shared_ptr<const Ring>> FromCapnp(wire::Ring::Reader in);
  // One frame whose root is wire::Ring.
  zmq::message_t EncodeRing() const;
  static Result<std::shared_ptr<const Ring>> DecodeRing(const zmq::message_t& frame);

 private:
  Ring(uint64_t version, int replication_factor, std::vector<RingNode> nodes)
      : version_(version), replication_factor_(replication_factor), nodes_(std::move(nodes)) {}
  // Index of addr in nodes_, or -1.
  ptrdiff_t IndexOf(const NodeAddress& addr) const;
  // Index of the node steps positions before index i (cyclic).
  size_t Back(size_t i, size_t steps) const;
  std::string RangeText(bool read) const;

  uint64_t version_;
  int replication_factor_;
  std::vector<RingNode> nodes_;
};

// True when the inclusive ranges cover every position exactly once: no gap,
// no overlap. False for an empty list.
bool CoversWholeRingExactly(const std::vector<KeyrangeEntry>& entries);

// One range of data to copy from source to target during a ring transition.
struct Move {
  HashRange range;
  NodeAddress source;
  NodeAddress target;
};

// The copies that take every node from what it holds in `before` to what it
// holds in `after`. The hash space is split at the positions of both rings;
// a node that holds an interval in `after` but not in `before` receives it
// from the first before-holder, in Replicas order, that is not in `dead`:
// the before-primary whenever it is alive, even when it is leaving (it takes
// the writes during the transfer and forwards them), else the next live
// replica (after a failure of the primary, the node that becomes primary).
// Intervals whose before-holders are all in `dead` have no source and are
// appended to *lost when given. Adjacent intervals with the same source and
// target are merged. Sorted by target position, then range start. An empty
// `before` needs no moves.
std::vector<Move> PlanMoves(const Ring& before, const Ring& after,
                            const std::vector<NodeAddress>& dead = {},
                            std::vector<HashRange>* lost = nullptr);

}  // namespace kv

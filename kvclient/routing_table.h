// The client's routing table: which node serves which ring position, built
// from a Ring (what a kvbroker hands out) or from keyrange text entries (what a
// kvnode answers to `keyrange`). Pure logic, no sockets. A key goes to the node
// whose inclusive range [from, to] holds KeyPosition(key), ranges wrapping
// around the top of the hash space; with a Ring that is Ring::Primary.
// Stale-OK reads use the read ranges instead (keyrange_read text, or
// Ring::KeyrangeReadText): any node whose read range holds the key's position
// has a copy (the primary and its replicas).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "schema/hash.h"
#include "schema/ring.h"

namespace kv::client {

// One node's write range as the client routes by it.
struct Route {
  Hash128 from_inclusive;
  Hash128 to_inclusive;  // the node's own position
  std::string host;
  uint16_t port = 0;
  std::string address;  // "host:port", the key of the node's connections

  // Inclusive, wrapping when from_inclusive > to_inclusive.
  bool Contains(const Hash128& pos) const;
};

// An immutable snapshot, replaced as a whole when a newer ring arrives (see
// IsReplacedBy). Value type; thread-compatible (all methods are const).
class RoutingTable {
 public:
  RoutingTable() = default;  // empty, version 0: nothing to route by

  // Ranges as in Ring::KeyrangeText, read ranges as in KeyrangeReadText.
  // `ring` must not be null.
  static RoutingTable FromRing(std::shared_ptr<const Ring> ring);
  // Entries as parsed by Ring::ParseKeyrange; `version` is the answering
  // node's ring version (Reply.ring_version; 0 for a standalone node).
  static RoutingTable FromKeyrange(const std::vector<KeyrangeEntry>& entries, uint64_t version);
  // This table with read ranges (keyrange_read entries of the same ring
  // version) in place of any it had.
  RoutingTable WithReadRanges(const std::vector<KeyrangeEntry>& read_entries) const;

  uint64_t version() const { return version_; }
  bool empty() const { return routes_.empty(); }
  size_t size() const { return routes_.size(); }
  // Sorted by to_inclusive (ring order).
  const std::vector<Route>& routes() const { return routes_; }
  // The Ring the table was built from; null when built from keyrange text.
  const std::shared_ptr<const Ring>& ring() const { return ring_; }

  // The route holding pos, or nullptr (empty table, or a gap in text from a
  // node whose view is inconsistent). Pointers live as long as the table.
  const Route* Lookup(const Hash128& pos) const;
  const Route* LookupKey(std::string_view key) const { return Lookup(KeyPosition(key)); }
  bool HasNode(std::string_view address) const;

  bool has_read_ranges() const { return !read_routes_.empty(); }
  // Every node whose read range holds pos, in ring order; empty without read
  // ranges. Pointers live as long as the table.
  std::vector<const Route*> Readers(const Hash128& pos) const;
  std::vector<const Route*> ReadersOfKey(std::string_view key) const {
    return Readers(KeyPosition(key));
  }

  // True when `next` should replace this table: it has a higher version (even
  // with no nodes left), or both are unversioned (0: a standalone node, or no
  // table yet) and next is not empty. An older or equal version is ignored:
  // rings are replaced by newer versions, never merged.
  bool IsReplacedBy(const RoutingTable& next) const;

 private:
  uint64_t version_ = 0;
  std::vector<Route> routes_;
  std::vector<Route> read_routes_;  // sorted like routes_; empty = unknown
  std::shared_ptr<const Ring> ring_;
};

// The index of the smallest of loads (requests in flight per candidate),
// ties broken by `random` so that equally loaded candidates share the work.
// Precondition: loads is not empty.
size_t PickLeastLoaded(const std::vector<size_t>& loads, uint64_t random);

}  // namespace kv::client

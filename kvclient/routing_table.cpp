#include "kvclient/routing_table.h"

#include <algorithm>

namespace kv::client {
namespace {

Route MakeRoute(const Hash128& from, const Hash128& to, const std::string& host, uint16_t port) {
  return Route{from, to, host, port, host + ":" + std::to_string(port)};
}

std::vector<Route> SortedRoutes(const std::vector<KeyrangeEntry>& entries) {
  std::vector<Route> routes;
  for (const auto& e : entries) {
    routes.push_back(MakeRoute(e.from_inclusive, e.to_inclusive, e.host, e.port));
  }
  std::sort(routes.begin(), routes.end(),
            [](const Route& a, const Route& b) { return a.to_inclusive < b.to_inclusive; });
  return routes;
}

}  // namespace

bool Route::Contains(const Hash128& pos) const {
  if (from_inclusive <= to_inclusive) return from_inclusive <= pos && pos <= to_inclusive;
  return pos >= from_inclusive || pos <= to_inclusive;
}

RoutingTable RoutingTable::FromRing(std::shared_ptr<const Ring> ring) {
  RoutingTable table;
  table.version_ = ring->version();
  const auto& nodes = ring->nodes();
  for (size_t i = 0; i < nodes.size(); ++i) {
    // (predecessor, own]; a single node is its own predecessor: the whole ring.
    const RingNode& pred = nodes[(i + nodes.size() - 1) % nodes.size()];
    table.routes_.push_back(MakeRoute(pred.position.Next(), nodes[i].position,
                                      nodes[i].address.host, nodes[i].address.port));
  }
  // The ring's own text is well formed by construction.
  auto read = Ring::ParseKeyrange(ring->KeyrangeReadText());
  if (read.ok()) table.read_routes_ = SortedRoutes(*read);
  table.ring_ = std::move(ring);
  return table;
}

RoutingTable RoutingTable::FromKeyrange(const std::vector<KeyrangeEntry>& entries,
                                        uint64_t version) {
  RoutingTable table;
  table.version_ = version;
  table.routes_ = SortedRoutes(entries);
  return table;
}

RoutingTable RoutingTable::WithReadRanges(const std::vector<KeyrangeEntry>& read_entries) const {
  RoutingTable table = *this;
  table.read_routes_ = SortedRoutes(read_entries);
  return table;
}

std::vector<const Route*> RoutingTable::Readers(const Hash128& pos) const {
  std::vector<const Route*> readers;
  for (const auto& r : read_routes_) {
    if (r.Contains(pos)) readers.push_back(&r);
  }
  return readers;
}

size_t PickLeastLoaded(const std::vector<size_t>& loads, uint64_t random) {
  size_t least = *std::min_element(loads.begin(), loads.end());
  size_t tied = static_cast<size_t>(std::count(loads.begin(), loads.end(), least));
  size_t skip = static_cast<size_t>(random % tied);
  for (size_t i = 0; i < loads.size(); ++i) {
    if (loads[i] == least && skip-- == 0) return i;
  }
  return 0;  // unreachable: skip < tied
}

const Route* RoutingTable::Lookup(const Hash128& pos) const {
  if (routes_.empty()) return nullptr;
  // The first node at or after pos, wrapping past the top to the first node.
  auto it = std::lower_bound(routes_.begin(), routes_.end(), pos,
                             [](const Route& r, const Hash128& p) { return r.to_inclusive < p; });
  const Route* candidate = it == routes_.end() ? &routes_.front() : &*it;
  if (candidate->Contains(pos)) return candidate;
  // Text from a node mid-transition may have gaps or overlaps: search it all.
  for (const auto& r : routes_) {
    if (r.Contains(pos)) return &r;
  }
  return nullptr;
}

bool RoutingTable::HasNode(std::string_view address) const {
  return std::any_of(routes_.begin(), routes_.end(),
                     [&](const Route& r) { return r.address == address; });
}

bool RoutingTable::IsReplacedBy(const RoutingTable& next) const {
  if (next.version_ != version_) return next.version_ > version_;
  // Unversioned (a standalone node's keyrange, or nothing yet): the latest
  // non-empty answer wins.
  return version_ == 0 && !next.empty();
}

}  // namespace kv::client

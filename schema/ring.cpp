#include "schema/ring.h"

#include <capnp/message.h>

#include <algorithm>
#include <map>
#include <optional>

#include "schema/wire.h"

namespace kv {

namespace {

bool ValidHostChar(char c) {
  auto u = static_cast<unsigned char>(c);
  // ',' and ';' separate keyrange fields and entries; whitespace and control
  // characters would make the text ambiguous to the seed system's parsers.
  return u > 0x20 && u != 0x7F && c != ',' && c != ';';
}

Status ValidateAddress(const NodeAddress& a) {
  if (a.host.empty()) return Status::InvalidArgument("node host is empty");
  if (!std::all_of(a.host.begin(), a.host.end(), ValidHostChar)) {
    return Status::InvalidArgument("node host has a forbidden character: '" + a.host + "'");
  }
  if (a.port == 0) return Status::InvalidArgument("node " + a.host + " has port 0");
  return Status::Ok();
}

bool IsIn(const std::vector<NodeAddress>& list, const NodeAddress& a) {
  return std::find(list.begin(), list.end(), a) != list.end();
}

// Parses 1..65535 written as plain decimal digits.
std::optional<uint16_t> ParsePort(std::string_view s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v == 0 || v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

// Appends r to out, extending the last range instead when it ends where r
// starts and same(last) says the two belong together.
template <typename T, typename RangeOf, typename Same>
void AppendMerged(std::vector<T>& out, T item, RangeOf range_of, Same same) {
  if (!out.empty() && range_of(out.back()).to == range_of(item).from && same(out.back(), item)) {
    range_of(out.back()).to = range_of(item).to;
    return;
  }
  out.push_back(std::move(item));
}

// Joins the last range onto the first when the pair closes the circle.
template <typename T, typename RangeOf, typename Same>
void MergeAcrossTop(std::vector<T>& v, RangeOf range_of, Same same) {
  if (v.size() < 2) return;
  if (range_of(v.back()).to == range_of(v.front()).from && same(v.back(), v.front())) {
    range_of(v.front()).from = range_of(v.back()).from;
    v.pop_back();
  }
}

}  // namespace

std::string NodeAddress::ToString() const { return host + ":" + std::to_string(port); }

Result<std::shared_ptr<const Ring>> Ring::Make(uint64_t version, int replication_factor,
                                               std::vector<NodeAddress> nodes) {
  // The wire carries the replication factor as a UInt8.
  if (replication_factor < 1 || replication_factor > 255) {
    return Status::InvalidArgument("replication factor must be 1..255, got " +
                                   std::to_string(replication_factor));
  }
  std::vector<RingNode> ring_nodes;
  ring_nodes.reserve(nodes.size());
  for (auto& a : nodes) {
    Status s = ValidateAddress(a);
    if (!s.ok()) return s;
    Hash128 pos = NodePosition(a.host, a.port);
    ring_nodes.push_back(RingNode{std::move(a), pos});
  }
  std::sort(ring_nodes.begin(), ring_nodes.end(),
            [](const RingNode& x, const RingNode& y) { return x.position < y.position; });
  for (size_t i = 1; i < ring_nodes.size(); ++i) {
    // Equal positions are the same host:port (an MD5 collision is not a case).
    if (ring_nodes[i].position == ring_nodes[i - 1].position) {
      return Status::InvalidArgument("duplicate node " + ring_nodes[i].address.ToString());
    }
  }
  return std::shared_ptr<const Ring>(new Ring(version, replication_factor, std::move(ring_nodes)));
}

Result<std::shared_ptr<const Ring>> Ring::WithNodes(uint64_t version,
                                                    const std::vector<NodeAddress>& add,
                                                    const std::vector<NodeAddress>& remove) const {
  for (const auto& r : remove) {
    if (!Contains(r)) return Status::InvalidArgument(r.ToString() + " is not in the ring");
  }
  std::vector<NodeAddress> next;
  for (const auto& n : nodes_) {
    if (!IsIn(remove, n.address)) next.push_back(n.address);
  }
  for (const auto& a : add) {
    if (Contains(a) && !IsIn(remove, a)) {
      return Status::InvalidArgument(a.ToString() + " is already in the ring");
    }
    next.push_back(a);
  }
  return Make(version, replication_factor_, std::move(next));
}

ptrdiff_t Ring::IndexOf(const NodeAddress& addr) const {
  Hash128 pos = NodePosition(addr.host, addr.port);
  auto it = std::lower_bound(nodes_.begin(), nodes_.end(), pos,
                             [](const RingNode& n, const Hash128& p) { return n.position < p; });
  if (it == nodes_.end() || it->position != pos || !(it->address == addr)) return -1;
  return it - nodes_.begin();
}

size_t Ring::Back(size_t i, size_t steps) const {
  size_t n = nodes_.size();
  return (i + n - steps % n) % n;
}

const RingNode* Ring::Find(const NodeAddress& addr) const {
  ptrdiff_t i = IndexOf(addr);
  return i < 0 ? nullptr : &nodes_[static_cast<size_t>(i)];
}

const RingNode* Ring::Primary(const Hash128& pos) const {
  if (nodes_.empty()) return nullptr;
  auto it = std::lower_bound(nodes_.begin(), nodes_.end(), pos,
                             [](const RingNode& n, const Hash128& p) { return n.position < p; });
  return it == nodes_.end() ? &nodes_.front() : &*it;
}

std::vector<NodeAddress> Ring::Replicas(const Hash128& pos) const {
  std::vector<NodeAddress> out;
  const RingNode* primary = Primary(pos);
  if (primary == nullptr) return out;
  size_t first = static_cast<size_t>(primary - nodes_.data());
  size_t count = std::min(static_cast<size_t>(replication_factor_), nodes_.size());
  out.reserve(count);
  for (size_t k = 0; k < count; ++k) out.push_back(nodes_[(first + k) % nodes_.size()].address);
  return out;
}

const RingNode* Ring::Successor(const NodeAddress& addr) const {
  ptrdiff_t i = IndexOf(addr);
  if (i < 0) return nullptr;
  return &nodes_[(static_cast<size_t>(i) + 1) % nodes_.size()];
}

const RingNode* Ring::Predecessor(const NodeAddress& addr) const {
  ptrdiff_t i = IndexOf(addr);
  if (i < 0) return nullptr;
  return &nodes_[Back(static_cast<size_t>(i), 1)];
}

Result<HashRange> Ring::WriteRangeOf(const NodeAddress& addr) const {
  ptrdiff_t i = IndexOf(addr);
  if (i < 0) return Status::NotFound(addr.ToString() + " is not in the ring");
  const auto& own = nodes_[static_cast<size_t>(i)].position;
  return HashRange{nodes_[Back(static_cast<size_t>(i), 1)].position, own};
}

Result<HashRange> Ring::ReadRangeOf(const NodeAddress& addr) const {
  ptrdiff_t i = IndexOf(addr);
  if (i < 0) return Status::NotFound(addr.ToString() + " is not in the ring");
  const auto& own = nodes_[static_cast<size_t>(i)].position;
  if (nodes_.size() <= static_cast<size_t>(replication_factor_)) return HashRange{own, own};
  return HashRange{nodes_[Back(static_cast<size_t>(i), replication_factor_)].position, own};
}

std::string Ring::RangeText(bool read) const {
  std::string out;
  size_t steps = 1;
  if (read) steps = std::min(static_cast<size_t>(replication_factor_), nodes_.size());
  for (size_t i = 0; i < nodes_.size(); ++i) {
    // Back(i, size) == i: a node covering the whole ring starts at own.Next().
    const Hash128& from = nodes_[Back(i, steps)].position;
    out += from.Next().ToHex();
    out += ',';
    out += nodes_[i].position.ToHex();
    out += ',';
    out += nodes_[i].address.ToString();
    out += ';';
  }
  return out;
}

std::string Ring::KeyrangeText() const { return RangeText(false); }
std::string Ring::KeyrangeReadText() const { return RangeText(true); }

Result<std::vector<KeyrangeEntry>> Ring::ParseKeyrange(std::string_view text) {
  std::vector<KeyrangeEntry> out;
  if (text.empty()) return out;
  if (text.back() == ';') text.remove_suffix(1);
  if (text.empty()) return Status::InvalidArgument("keyrange text is a lone ';'");
  while (true) {
    size_t end = text.find(';');
    std::string_view entry = text.substr(0, end);
    size_t c1 = entry.find(',');
    size_t c2 = c1 == std::string_view::npos ? c1 : entry.find(',', c1 + 1);
    if (c2 == std::string_view::npos || entry.find(',', c2 + 1) != std::string_view::npos) {
      return Status::InvalidArgument("keyrange entry needs from,to,host:port: '" +
                                     std::string(entry) + "'");
    }
    auto from = Hash128::FromHex(entry.substr(0, c1));
    auto to = Hash128::FromHex(entry.substr(c1 + 1, c2 - c1 - 1));
    if (!from || !to) {
      return Status::InvalidArgument("keyrange bound is not 32 hex digits: '" + std::string(entry) +
                                     "'");
    }
    std::string_view hostport = entry.substr(c2 + 1);
    size_t colon = hostport.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      return Status::InvalidArgument("keyrange address needs host:port: '" + std::string(hostport) +
                                     "'");
    }
    auto port = ParsePort(hostport.substr(colon + 1));
    if (!port) {
      return Status::InvalidArgument("keyrange port is not 1..65535: '" + std::string(hostport) +
                                     "'");
    }
    out.push_back(KeyrangeEntry{*from, *to, std::string(hostport.substr(0, colon)), *port});
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return out;
}

bool CoversWholeRingExactly(const std::vector<KeyrangeEntry>& entries) {
  if (entries.empty()) return false;
  std::vector<const KeyrangeEntry*> sorted;
  for (const auto& e : entries) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(), [](const KeyrangeEntry* a, const KeyrangeEntry* b) {
    return a->from_inclusive < b->from_inclusive;
  });
  // With distinct starts in order, each range ending right before the next
  // one's start (cyclically) adds up to exactly one turn of the ring.
  for (size_t i = 0; i < sorted.size(); ++i) {
    const KeyrangeEntry* next = sorted[(i + 1) % sorted.size()];
    if (i + 1 < sorted.size() && next->from_inclusive == sorted[i]->from_inclusive) return false;
    if (sorted[i]->to_inclusive.Next() != next->from_inclusive) return false;
  }
  return true;
}

void Ring::ToCapnp(wire::Ring::Builder out) const {
  out.setVersion(version_);
  out.setReplicationFactor(static_cast<uint8_t>(replication_factor_));
  auto list = out.initNodes(static_cast<unsigned>(nodes_.size()));
  for (size_t i = 0; i < nodes_.size(); ++i) {
    auto n = list[static_cast<unsigned>(i)];
    auto a = n.initAddress();
    a.setHost(nodes_[i].address.host);
    a.setPort(nodes_[i].address.port);
    a.setPeerPort(nodes_[i].address.peer_port);
    n.setPosition(kj::arrayPtr(nodes_[i].position.bytes.data(), nodes_[i].position.bytes.size()));
  }
}

Result<std::shared_ptr<const Ring>> Ring::FromCapnp(wire::Ring::Reader in) {
  std::optional<Result<std::shared_ptr<const Ring>>> ring;
  Status s = ReadUntrusted([&]() -> Status {
    uint8_t rf = in.getReplicationFactor();
    if (rf < 1) return Status::InvalidArgument("ring replication factor is 0");
    std::vector<NodeAddress> addrs;
    std::optional<Hash128> prev;
    for (auto n : in.getNodes()) {
      auto a = n.getAddress();
      auto host = a.getHost();
      NodeAddress addr{std::string(host.cStr(), host.size()), a.getPort(), a.getPeerPort()};
      auto raw = n.getPosition();
      if (raw.size() != 16) {
        return Status::InvalidArgument("ring position of " + addr.ToString() + " has " +
                                       std::to_string(raw.size()) + " bytes, not 16");
      }
      Hash128 pos = Hash128::FromBytes(
          std::string_view(reinterpret_cast<const char*>(raw.begin()), raw.size()));
      if (pos != NodePosition(addr.host, addr.port)) {
        return Status::InvalidArgument("ring position does not match " + addr.ToString());
      }
      if (prev && !(*prev < pos)) {
        return Status::InvalidArgument("ring nodes are not sorted without duplicates at " +
                                       addr.ToString());
      }
      prev = pos;
      addrs.push_back(std::move(addr));
    }
    ring = Make(in.getVersion(), rf, std::move(addrs));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return std::move(*ring);
}

zmq::message_t Ring::EncodeRing() const {
  capnp::MallocMessageBuilder builder;
  ToCapnp(builder.initRoot<wire::Ring>());
  return ToFrame(builder);
}

Result<std::shared_ptr<const Ring>> Ring::DecodeRing(const zmq::message_t& frame) {
  auto reader = FrameReader::Open(frame);
  if (!reader.ok()) return reader.status();
  std::optional<wire::Ring::Reader> root;
  Status s = ReadUntrusted([&] {
    root = (*reader)->Root<wire::Ring>();
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return FromCapnp(*root);
}

std::vector<Move> PlanMoves(const Ring& before, const Ring& after,
                            const std::vector<NodeAddress>& dead, std::vector<HashRange>* lost) {
  std::vector<Move> result;
  if (before.empty()) return result;
  std::vector<Hash128> cuts;
  for (const auto& n : before.nodes()) cuts.push_back(n.position);
  for (const auto& n : after.nodes()) cuts.push_back(n.position);
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());

  // Elementary intervals in order of their start, the one across the top last,
  // so merging adjacent ones only has to look at the previous entry.
  std::vector<HashRange> intervals;
  for (size_t i = 1; i < cuts.size(); ++i) intervals.push_back({cuts[i - 1], cuts[i]});
  intervals.push_back({cuts.back(), cuts.front()});

  auto move_range = [](Move& m) -> HashRange& { return m.range; };
  auto same_source = [](const Move& a, const Move& b) { return a.source == b.source; };
  auto self = [](HashRange& r) -> HashRange& { return r; };
  auto always = [](const HashRange&, const HashRange&) { return true; };

  std::map<Hash128, std::vector<Move>> by_target;  // keyed by target position
  std::vector<HashRange> lost_ranges;
  for (const HashRange& interval : intervals) {
    // No position of either ring lies inside (from, to), so the holders of
    // `to` hold the whole interval.
    std::vector<NodeAddress> held = before.Replicas(interval.to);
    std::vector<NodeAddress> holds = after.Replicas(interval.to);
    // The first live holder in replica order: the before-primary when it is
    // alive (it takes the writes while the data moves, leaving or not), else
    // the replica that the removal of the dead makes primary.
    const NodeAddress* source = nullptr;
    for (const auto& h : held) {
      if (!IsIn(dead, h)) {
        source = &h;
        break;
      }
    }
    if (source == nullptr) AppendMerged(lost_ranges, interval, self, always);
    for (const auto& target : holds) {
      if (IsIn(held, target) || source == nullptr) continue;
      AppendMerged(by_target[NodePosition(target.host, target.port)],
                   Move{interval, *source, target}, move_range, same_source);
    }
  }

  for (auto& [pos, moves] : by_target) {
    MergeAcrossTop(moves, move_range, same_source);
    std::sort(moves.begin(), moves.end(),
              [](const Move& a, const Move& b) { return a.range.from < b.range.from; });
    for (auto& m : moves) result.push_back(std::move(m));
  }
  if (lost != nullptr) {
    MergeAcrossTop(lost_ranges, self, always);
    std::sort(lost_ranges.begin(), lost_ranges.end(),
              [](const HashRange& a, const HashRange& b) { return a.from < b.from; });
    lost->insert(lost->end(), lost_ranges.begin(), lost_ranges.end());
  }
  return result;
}

}  // namespace kv

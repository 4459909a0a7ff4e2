#include "kvclient/router.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

namespace kv::client {
namespace {

struct Candidate {
  std::string address;
  std::string host;
  uint16_t port = 0;
};

}  // namespace

Router::Router(zmq::context_t& ctx, RouterOptions options)
    : ctx_(ctx), options_(options), rng_(std::random_device{}()) {
  options_.lanes = std::max<size_t>(options_.lanes, 1);
  if (options_.shared_socket) shared_ = std::make_unique<SharedSocket>(ctx_);
}

Router::~Router() { Disconnect(); }

void Router::Disconnect() {
  nodes_.clear();
  retired_.clear();
  broker_.reset();
  table_ = RoutingTable();
  connected_ = false;
  detected_ = false;
  kind_ = PeerKind::kUnknown;
  host_.clear();
  port_ = 0;
  address_.clear();
  read_ranges_asked_.reset();
}

Status Router::Connect(const std::string& host, uint16_t port) {
  Disconnect();
  if (host.empty()) return Status::InvalidArgument("empty host");
  if (port == 0) return Status::InvalidArgument("port 0 is not a node's or broker's port");
  auto probe = Probe(ctx_, host, port, options_.request_timeout);
  if (!probe.ok()) return probe.status();
  host_ = host;
  port_ = port;
  address_ = host + ":" + std::to_string(port);

  switch (probe->kind) {
    case PeerKind::kNode: {
      kind_ = PeerKind::kNode;
      detected_ = true;
      const auto& reply = probe->keyrange;
      if (reply && reply->status == WireStatus::KEYRANGE_SUCCESS) {
        auto entries = Ring::ParseKeyrange(reply->metadata);
        if (entries.ok()) {
          Apply(RoutingTable::FromKeyrange(*entries, reply->ring_version));
        } else {
          spdlog::warn("{} sent unreadable keyrange text: {}", address_,
                       entries.status().message());
        }
      } else if (reply) {
        spdlog::debug("{} is a node without a ring yet ({})", address_, StatusWord(reply->status));
      }
      break;
    }
    case PeerKind::kBroker: {
      int pub = options_.broker_pub_port;
      if (pub < 0) pub = port + 1;
      if (pub < 1 || pub > 65535) {
        return Status::InvalidArgument("no pub port for the broker at " + address_ +
                                       " (set the broker's pub port explicitly)");
      }
      auto link = std::make_unique<BrokerLink>(ctx_, host, port, static_cast<uint16_t>(pub));
      if (Status s = link->Open(); !s.ok()) return s;
      broker_ = std::move(link);
      kind_ = PeerKind::kBroker;
      detected_ = true;
      if (probe->ring_answer->ring) {
        Apply(RoutingTable::FromRing(probe->ring_answer->ring));
      } else {
        spdlog::info("the broker at {} has no ring yet ({})", address_, probe->ring_answer->reason);
      }
      break;
    }
    case PeerKind::kUnknown:
      kind_ = PeerKind::kNode;
      detected_ = false;
      spdlog::warn("{} answered neither keyrange nor getRing within {} ms; treating it as a node",
                   address_, options_.request_timeout.count());
      break;
  }
  connected_ = true;
  spdlog::debug("connected to {} ({}), ring version {} with {} nodes", address_,
                via_broker() ? "broker" : "node", table_.version(), table_.size());
  return Status::Ok();
}

void Router::set_request_timeout(std::chrono::milliseconds timeout) {
  options_.request_timeout = timeout;
  for (Connection* c : Connections()) c->set_request_timeout(timeout);
}

Result<Connection*> Router::Open(const std::string& address, const std::string& host, uint16_t port,
                                 size_t lane) {
  NodeConnections& node = nodes_[address];
  if (node.lanes.empty()) {
    node.host = host;
    node.port = port;
    node.lanes.resize(options_.lanes);
  }
  auto& slot = node.lanes[lane % node.lanes.size()];
  if (!slot) {
    auto connection =
        std::make_unique<Connection>(
            ctx_, host, port,
            ConnectionOptions{options_.request_timeout, options_.coalesce, options_.links,
                              shared_.get()});
    if (Status s = connection->Open(); !s.ok()) return s;
    slot = std::move(connection);
  }
  return slot.get();
}

Result<Connection*> Router::ConnectionFor(std::string_view key, size_t lane) {
  if (!connected_) return Status::Unavailable("not connected (use connect <host> <port>)");
  if (kind_ == PeerKind::kNode && (table_.empty() || Standalone())) return SeedConnection(lane);
  const Route* route = table_.LookupKey(key);
  if (route) return Open(route->address, route->host, route->port, lane);
  // The seed answers not_responsible if it is not the owner, which refreshes.
  if (kind_ == PeerKind::kNode) return SeedConnection(lane);
  if (table_.version() == 0) {
    return Status::Unavailable("the broker at " + address_ + " has no ring yet");
  }
  return Status::Unavailable("ring version " + std::to_string(table_.version()) +
                             " has no node for the key");
}

Result<Connection*> Router::ReplicaConnectionFor(std::string_view key, size_t lane) {
  if (!connected_) return Status::Unavailable("not connected (use connect <host> <port>)");
  if (kind_ == PeerKind::kNode && !table_.empty() && !Standalone()) FetchReadRanges();
  std::vector<const Route*> readers = table_.ReadersOfKey(key);
  if (readers.empty() || (kind_ == PeerKind::kNode && Standalone())) {
    return ConnectionFor(key, lane);
  }
  std::vector<size_t> loads;
  for (const Route* r : readers) {
    auto node = nodes_.find(r->address);
    size_t load = 0;
    if (node != nodes_.end() && !node->second.lanes.empty()) {
      const auto& c = node->second.lanes[lane % node->second.lanes.size()];
      if (c) load = c->in_flight();
    }
    loads.push_back(load);
  }
  const Route* chosen = readers[PickLeastLoaded(loads, rng_())];
  return Open(chosen->address, chosen->host, chosen->port, lane);
}

std::string Router::PrimaryAddress(std::string_view key) const {
  if (kind_ == PeerKind::kNode && (table_.empty() || Standalone())) return address_;
  const Route* route = table_.LookupKey(key);
  return route ? route->address : std::string();
}

void Router::FetchReadRanges() {
  if (table_.has_read_ranges() || read_ranges_asked_ == table_.version()) return;
  read_ranges_asked_ = table_.version();
  auto connection = KeylessConnection();
  if (!connection.ok()) return;
  auto id = (*connection)->Send(Op::kKeyrangeRead);
  if (!id.ok()) return;
  auto reply = (*connection)->Await(*id);
  if (!reply.ok() || reply->status != WireStatus::KEYRANGE_READ_SUCCESS) {
    spdlog::debug("no read ranges from {}: {}", (*connection)->address(),
                  reply.ok() ? std::string(StatusWord(reply->status)) : reply.status().ToString());
    return;
  }
  auto entries = Ring::ParseKeyrange(reply->metadata);
  if (!entries.ok() || reply->ring_version != table_.version()) {
    spdlog::debug("read ranges from {} not used (ring version {}, routing by {})",
                  (*connection)->address(), reply->ring_version, table_.version());
    return;
  }
  table_ = table_.WithReadRanges(*entries);
}

Result<Connection*> Router::KeylessConnection() {
  if (!connected_) return Status::Unavailable("not connected (use connect <host> <port>)");
  if (kind_ == PeerKind::kBroker) {
    return Status::InvalidArgument("keyless requests to a broker are answered from its ring");
  }
  if (table_.empty() || Standalone() || table_.HasNode(address_)) return SeedConnection(0);
  const Route& any = table_.routes().front();
  return Open(any.address, any.host, any.port, 0);
}

bool Router::Apply(RoutingTable next) {
  if (!table_.IsReplacedBy(next)) return false;
  spdlog::debug("routing by ring version {} ({} nodes), was version {} ({} nodes)", next.version(),
                next.size(), table_.version(), table_.size());
  table_ = std::move(next);
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    // In node mode the connected address stays: it is where keyless
    // requests and refreshes start.
    bool keep = table_.HasNode(it->first) || (kind_ == PeerKind::kNode && it->first == address_);
    if (keep) {
      ++it;
      continue;
    }
    spdlog::debug("closing the connections to {}: not in ring version {}", it->first,
                  table_.version());
    for (auto& c : it->second.lanes) {
      if (c && !c->idle()) retired_.push_back(std::move(c));
    }
    it = nodes_.erase(it);
  }
  return true;
}

Status Router::Refresh(const std::string& prefer, const std::string& avoid) {
  if (!connected_) return Status::Unavailable("not connected (use connect <host> <port>)");
  if (kind_ != PeerKind::kBroker) return RefreshFromNodes(prefer, avoid);
  PollUpdates();
  auto ring = broker_->GetRing(options_.request_timeout);
  if (!ring.ok()) return ring.status();
  Apply(RoutingTable::FromRing(*ring));
  return Status::Ok();
}

Status Router::RefreshFromNodes(const std::string& prefer, const std::string& avoid) {
  std::vector<Candidate> candidates;
  auto add = [&](const std::string& address, const std::string& host, uint16_t port) {
    for (const auto& c : candidates) {
      if (c.address == address) return;
    }
    candidates.push_back(Candidate{address, host, port});
  };
  auto add_known = [&](const std::string& address) {
    if (address.empty()) return;
    if (address == address_) return add(address_, host_, port_);
    for (const auto& r : table_.routes()) {
      if (r.address == address) return add(r.address, r.host, r.port);
    }
    auto it = nodes_.find(address);
    if (it != nodes_.end()) add(address, it->second.host, it->second.port);
  };
  add_known(prefer);
  add_known(address_);
  for (const auto& r : table_.routes()) add(r.address, r.host, r.port);
  if (candidates.size() > 1) {
    std::erase_if(candidates, [&](const Candidate& c) { return c.address == avoid; });
  }

  Status last = Status::Unavailable("no node to ask for the ring");
  for (const auto& c : candidates) {
    auto connection = Open(c.address, c.host, c.port, 0);
    if (!connection.ok()) {
      last = connection.status();
      continue;
    }
    auto id = (*connection)->Send(Op::kKeyrange);
    if (!id.ok()) {
      last = id.status();
      continue;
    }
    auto reply = (*connection)->Await(*id);
    if (!reply.ok()) {
      last = reply.status();
      continue;
    }
    if (reply->status != WireStatus::KEYRANGE_SUCCESS) {
      last = Status::Unavailable(std::string(StatusWord(reply->status)) + " from " + c.address);
      continue;
    }
    auto entries = Ring::ParseKeyrange(reply->metadata);
    if (!entries.ok() || entries->empty()) {
      last = Status::Corruption("unreadable keyrange text from " + c.address);
      continue;
    }
    Apply(RoutingTable::FromKeyrange(*entries, reply->ring_version));
    return Status::Ok();
  }
  return last;
}

bool Router::PollUpdates() {
  if (!broker_) return false;
  auto ring = broker_->TakeUpdates();
  return ring && Apply(RoutingTable::FromRing(ring));
}

bool Router::WaitForUpdate(std::chrono::milliseconds timeout) {
  if (!broker_) {
    std::this_thread::sleep_for(timeout);
    return false;
  }
  auto ring = broker_->TakeUpdates(timeout);
  return ring && Apply(RoutingTable::FromRing(ring));
}

void Router::NoteTimeout(const std::string& address) {
  if (!connected_) return;
  if (!detected_ && address == address_) {
    auto it = nodes_.find(address_);
    bool spoke_control = false;
    if (it != nodes_.end()) {
      for (const auto& c : it->second.lanes) {
        if (c && c->control_replies() > 0) spoke_control = true;
      }
    }
    if (spoke_control) {
      spdlog::info("{} answers in the control protocol; probing it again", address_);
      std::string host = host_;
      uint16_t port = port_;
      if (Status s = Connect(host, port); !s.ok()) spdlog::warn("{}", s.ToString());
    }
    return;
  }
  // The node may have died or left: a broker's ring drops it once the ECS
  // notices (usually published, but the subscription may be down); other
  // nodes know the ring too.
  if (kind_ == PeerKind::kBroker || table_.size() > 1) {
    if (Status s = Refresh({}, address); !s.ok()) {
      spdlog::debug("ring refresh after a timeout failed: {}", s.ToString());
    }
  }
}

std::vector<Connection*> Router::Connections() {
  std::vector<Connection*> out;
  for (auto& [address, node] : nodes_) {
    for (auto& c : node.lanes) {
      if (c) out.push_back(c.get());
    }
  }
  for (auto& c : retired_) out.push_back(c.get());
  return out;
}

std::optional<zmq::pollitem_t> Router::UpdatesPollItem() {
  if (!broker_) return std::nullopt;
  return broker_->UpdatesPollItem();
}

std::optional<zmq::pollitem_t> Router::SharedPollItem() {
  if (!shared_) return std::nullopt;
  return shared_->PollItem();
}

void Router::PumpShared() {
  if (shared_) shared_->Pump();
}

void Router::ReapRetired() {
  std::erase_if(retired_, [](const std::unique_ptr<Connection>& c) { return c->idle(); });
}

std::vector<std::string> Router::OpenAddresses() const {
  std::vector<std::string> out;
  for (const auto& [address, node] : nodes_) {
    if (std::any_of(node.lanes.begin(), node.lanes.end(),
                    [](const auto& c) { return c != nullptr; })) {
      out.push_back(address);
    }
  }
  return out;
}

}  // namespace kv::client

// Routing shared by every client (KvClient for the shell and one-shot
// commands, kvbench's engine): what the connected address is (node or broker,
// see Probe in discovery.h), the current RoutingTable, one Connection per node
// per lane opened on first use, and keeping the table current (refresh on
// demand, ring updates from a broker's event plane). No retry policy here: the
// callers decide when to refresh and when to resend.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "kvclient/connection.h"
#include "kvclient/discovery.h"
#include "kvclient/routing_table.h"
#include "schema/status.h"

namespace kv::client {

struct RouterOptions {
  // Per request, and for the probe, getRing and keyrange refreshes.
  std::chrono::milliseconds request_timeout{3000};
  // The broker's ring publisher (kvbroker --pub-port); -1 = its control port + 1.
  int broker_pub_port = -1;
  // Connections per node (kvbench --connections); requests name their lane.
  size_t lanes = 1;
  // Connections hold requests until flushed and pack them into one frame
  // (ConnectionOptions::coalesce); the caller flushes every Connections().
  bool coalesce = false;
  // TCP connections each Connection opens (ConnectionOptions::links).
  int links = 1;
  // Every Connection sends and receives through one SharedSocket owned by the
  // Router: a poll loop then polls and reads one socket whatever the number
  // of nodes (SharedPollItem, PumpShared).
  bool shared_socket = false;
};

// Not thread-safe: one thread owns a Router. The context must outlive it.
//
// Node mode (the address answered keyrange): the table comes from keyrange
// text and is refreshed by asking known nodes for keyrange. A standalone node
// (one route, ring version 0) and an address that answered nothing are served
// through the connection to the address as given, exactly as before routing.
// Broker mode: the table comes from the broker's ring (getRing at connect and
// on refresh, plus every newer ring its event plane publishes).
// When a new table drops a node, its connections close; those with requests
// still in flight are retired and closed by ReapRetired once idle.
class Router {
 public:
  Router(zmq::context_t& ctx, RouterOptions options);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Probes host:port and loads the first table. Fails only when the address
  // cannot be used at all; one where nothing answers is treated as a node
  // that is not up yet (ZeroMQ keeps connecting in the background).
  [[nodiscard]] Status Connect(const std::string& host, uint16_t port);
  void Disconnect();
  bool connected() const { return connected_; }
  // "host:port" as given to Connect; empty when not connected.
  const std::string& address() const { return address_; }
  bool via_broker() const { return kind_ == PeerKind::kBroker; }
  // False when nothing answered the probe (treated as a node meanwhile).
  bool detected() const { return detected_; }
  const RoutingTable& table() const { return table_; }
  uint64_t version() const { return table_.version(); }
  void set_request_timeout(std::chrono::milliseconds timeout);

  // The connection to the node responsible for key, on lane % lanes.
  // Unavailable when a broker has no ring (yet) or the ring has no nodes.
  Result<Connection*> ConnectionFor(std::string_view key, size_t lane = 0);
  // Stale-OK reads: the connection to one of the nodes whose read range holds
  // key (the primary or a replica), the one with the fewest requests in
  // flight on this lane, ties broken at random. In node mode the read ranges
  // are fetched once per ring version with keyrange_read from the node that
  // answers keyless requests. Without read ranges (a standalone node, or no
  // answer), the same as ConnectionFor.
  Result<Connection*> ReplicaConnectionFor(std::string_view key, size_t lane = 0);
  // "host:port" of the key's primary by the current table (the seed for a
  // standalone node); empty when nothing is known.
  std::string PrimaryAddress(std::string_view key) const;
  // Node mode: the node keyless requests (keyrange) go to: the connected
  // address while it is in the ring (or there is no ring), else any member.
  Result<Connection*> KeylessConnection();

  // Asks for the current ring and applies it if newer. Broker: getRing. Node
  // mode: keyrange from `prefer` first (the node that just redirected us knows
  // at least its own ring), then the connected address and the other known
  // nodes, skipping `avoid` (a node that just timed out) unless it is the
  // only one. Each attempt waits up to request_timeout.
  Status Refresh(const std::string& prefer = {}, const std::string& avoid = {});
  // Applies ring updates already received; never blocks. True if the table changed.
  bool PollUpdates();
  // Waits up to `timeout` for a ring update (broker mode; plain sleep
  // otherwise). True if the table changed.
  bool WaitForUpdate(std::chrono::milliseconds timeout);
  // A request to `address` timed out: if the address was never identified and
  // has since answered in the control protocol, probe it again (a broker that
  // came up late); else refresh (from the broker, or from the other nodes).
  void NoteTimeout(const std::string& address);

  // Every open connection, including retired ones still draining, for a poll
  // loop. Valid until the next call that may change the table or ReapRetired.
  std::vector<Connection*> Connections();
  // The broker subscription, for a poll loop; nullopt in node mode.
  std::optional<zmq::pollitem_t> UpdatesPollItem();
  // With shared_socket: the one socket to poll instead of each connection's,
  // and reading it into the connections (then Collect them without reading).
  std::optional<zmq::pollitem_t> SharedPollItem();
  void PumpShared();
  // Closes retired connections with nothing left in flight.
  void ReapRetired();
  // Addresses with open (not retired) connections, sorted.
  std::vector<std::string> OpenAddresses() const;

 private:
  struct NodeConnections {
    std::string host;
    uint16_t port = 0;
    std::vector<std::unique_ptr<Connection>> lanes;  // null until first used
  };
  Result<Connection*> Open(const std::string& address, const std::string& host, uint16_t port,
                           size_t lane);
  Result<Connection*> SeedConnection(size_t lane) { return Open(address_, host_, port_, lane); }
  // Replaces the table if `next` is newer; retires connections of nodes that left.
  bool Apply(RoutingTable next);
  Status RefreshFromNodes(const std::string& prefer, const std::string& avoid);
  // Node mode: asks for keyrange_read once per ring version and attaches the
  // read ranges to the table when they belong to the same version.
  void FetchReadRanges();
  // A standalone node answered keyrange: route everything to the seed.
  bool Standalone() const {
    return kind_ == PeerKind::kNode && table_.size() == 1 && table_.version() == 0;
  }

  zmq::context_t& ctx_;
  RouterOptions options_;
  std::unique_ptr<SharedSocket> shared_;  // with options_.shared_socket; outlives nodes_
  bool connected_ = false;
  bool detected_ = false;
  PeerKind kind_ = PeerKind::kUnknown;
  std::string host_;
  uint16_t port_ = 0;
  std::string address_;
  RoutingTable table_;
  std::unique_ptr<BrokerLink> broker_;
  std::map<std::string, NodeConnections> nodes_;  // by "host:port"
  std::vector<std::unique_ptr<Connection>> retired_;
  std::optional<uint64_t> read_ranges_asked_;  // ring version keyrange_read was asked at
  std::mt19937_64 rng_;                         // breaks ties between replicas
};

}  // namespace kv::client

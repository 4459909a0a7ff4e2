// kvecs's event loop: one zmq_poll over the broker connection, its monitor,
// one DEALER per source node and a stop pipe, plus the Coordinator's timers.
// It owns the sockets and carries out the Coordinator's Commands.
//
// Framing (every message is one Cap'n Proto frame):
//   control DEALER -> broker ROUTER (-bp)      ControlMessage (schema/control.capnp)
//     ecsReady(n)  credit for n more requests; sent at start, whenever held
//                  requests are answered, and again in full after every
//                  reconnection (a new connection is a new identity to the
//                  broker, which voids the old credit)
//     workDone{client, reply}          the answer to one work item
//   broker -> ECS  work{client, request{join | leave | nodeFailed}}
//                  (anything else is answered badRequest)
//   PUB --connect--> broker XSUB (--broker-sub-port)   [ "ring" ][ Ring ]
//                  on every commit and every --republish-ms
//   DEALER per source node --connect--> tcp://host:peerPort    PeerMessage
//     (schema/peer.capnp) transferStart (requestId = transferId; repair set
//     for re-replication after a fail-over) and transferAbort out;
//     transferDone back. Keyed "host:port", created on first use, closed
//     when the node leaves the ring.
// Malformed frames are logged and change nothing.
//
// Not thread-safe except RequestStop(), which is async-signal-safe.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "ecs/config.h"
#include "ecs/coordinator.h"
#include "ecs/ring_store.h"
#include "schema/status.h"

namespace kv {

class EcsServer {
 public:
  // config must have gone through ResolveConfig.
  explicit EcsServer(EcsConfig config, Coordinator::Clock clock = std::chrono::steady_clock::now);
  ~EcsServer();
  EcsServer(const EcsServer&) = delete;
  EcsServer& operator=(const EcsServer&) = delete;

  // Opens the state, rolls back a leftover transition, connects to the
  // broker and publishes the ring.
  Status Start();
  // Runs until RequestStop().
  Status Run();
  // Safe to call from a signal handler or another thread.
  void RequestStop();

 private:
  void ProcessControl();
  void HandleControl(const zmq::message_t& frame);
  void ProcessMonitor();
  void ProcessPeer(const std::string& key);
  void HandlePeer(const std::string& key, const zmq::message_t& frame);

  void Execute(Commands& commands);
  void SendTransferStart(const StartTransfer& start);
  void SendTransferAbort(const AbortTransfer& abort);
  void Publish(const Ring& ring);
  void SendReply(const ReplyTo& reply);
  void SendControl(zmq::message_t frame, const char* what);
  void SendPeer(const NodeAddress& node, zmq::message_t frame, const char* what);
  zmq::socket_t& PeerSocket(const NodeAddress& node);
  // Grants the broker credit up to config_.credit requests held or promised.
  void TopUpCredit();

  EcsConfig config_;
  Coordinator::Clock clock_;
  std::unique_ptr<RingStore> store_;
  std::unique_ptr<Coordinator> coordinator_;
  zmq::context_t ctx_{1};
  zmq::socket_t control_;                       // DEALER to the broker's control ROUTER
  zmq::socket_t monitor_;                       // PAIR receiving control_'s connection events
  zmq::socket_t pub_;                           // PUB to the broker's XSUB
  std::map<std::string, zmq::socket_t> peers_;  // DEALER per source node, "host:port"
  int stop_pipe_[2] = {-1, -1};

  int64_t promised_ = 0;  // credit granted on this connection not yet used by work
  int connections_ = 0;   // successful connections to the broker so far
  Commands pending_;      // produced while receiving, executed after
  std::chrono::steady_clock::time_point next_republish_;
  std::vector<zmq::message_t> frames_;  // reused receive buffer
};

}  // namespace kv

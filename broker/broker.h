// kvbroker: the control plane's front door and the event plane's relay, in one
// event loop (zmq_poll over three sockets and a stop pipe, woken at least
// every failure_check_ms) that owns the work queue, the ECS's credit, the last
// published ring and the failure detector (heartbeat times).
//
// Control plane, one ROUTER on --port. Every message is exactly
//   [identity][ControlMessage]            (schema/control.capnp, one frame)
//   node/client -> broker  request{join | leave | nodeFailed}  queued for the ECS
//                          request{getRing}    answered at once from the ring cache
//                          request{heartbeat}  answered at once, never queued: ok,
//                                              or rejected for a member reported
//                                              failed (until a ring drops it);
//                                              the failure detector notes it
//   broker -> node/client  reply{requestId, status, reason, ring}
//   ECS -> broker          ecsReady(n)  n more credit; marks the sender as the ECS
//                          (a new identity replaces the old ECS and voids its credit)
//                          workDone{client, reply}  routed to client as reply
//   broker -> ECS          work{client, request}    one queued request per credit
// Queued requests go to the ECS in arrival order. A full queue (--max-queue)
// answers overloaded at once; with no ECS or no credit the queue just waits.
// workDone carries no credit: the ECS sends ecsReady again when it wants more.
// Delivery is at most once: a request the ECS received but never answered
// (it died) is not re-delivered; the requester times out and retries, so
// join/leave/nodeFailed must be idempotent at the ECS. A request the broker
// could not hand to the ECS at all (its connection is gone) stays queued.
// Failure detection (broker/failure_detector.h): a member of the cached ring
// not heard from for --failure-timeout-ms is reported to the ECS as
// request{nodeFailed} through the same queue, as if from the synthetic client
// kFailureReporter (an identity no ZeroMQ peer can have); such reports are
// queued even past --max-queue, at most one per member at a time, again every
// timeout while the member stays in the ring, and the ECS's workDone for them
// is logged and dropped. A reported member stays reported until a ring without
// it arrives: its heartbeats are answered rejected meanwhile, so a node that
// was paused, not dead, cannot renew its lease while the ECS removes it. A node's lease (--lease-ms, counted from the SEND
// time of its last answered heartbeat) is shorter than the failure timeout
// (counted from the broker's RECEPTION of it), so a node has stopped serving
// before it is reported.
// Anything malformed (not a ControlMessage, wrong version, frames other than
// identity + 1, reply/work sent to the broker, workDone from a non-ECS) is
// logged and answered badRequest with the request id when one can be read.
//
// Event plane, the ZeroMQ guide's last-value cache:
//   ECS PUB --connect--> XSUB on --sub-port   publications [topic "ring"][Ring]
//   XPUB on --pub-port <--connect-- node/client SUB
// The broker forwards a ring only when its version is higher than the cached
// one (older, equal or malformed publications are logged and dropped) and
// sends the cached ring again whenever a subscription matching "ring" arrives
// (XPUB_VERBOSE), so a late subscriber gets it at once; existing subscribers
// see it again and ignore it by version. Subscriptions are forwarded upstream;
// the broker itself always subscribes to "ring" so the cache fills before any
// subscriber exists. An ECS that restarts should read getRing and continue
// numbering above it: lower versions are never forwarded.
//
// Not thread-safe except RequestStop(), which is async-signal-safe.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "broker/config.h"
#include "broker/failure_detector.h"
#include "broker/queue.h"
#include "schema/status.h"
#include "schema/wire.h"

namespace kv {

class Broker {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // config must have gone through ResolvePorts. clock times heartbeats and
  // failure reports; tests inject a fake one.
  explicit Broker(BrokerConfig config, Clock clock = std::chrono::steady_clock::now);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Binds the three sockets and writes the port file; after it the port
  // accessors return the bound ports.
  Status Start();
  // Runs until RequestStop().
  Status Run();
  // Safe to call from a signal handler or another thread.
  void RequestStop();

  uint16_t control_port() const { return control_port_; }
  uint16_t pub_port() const { return pub_port_; }
  uint16_t sub_port() const { return sub_port_; }

  // The requester identity of the broker's own nodeFailed reports. It starts
  // with a zero byte and is not 5 bytes long, so it is neither an identity
  // ZeroMQ generates (5 bytes, zero first) nor one a peer may set (never zero
  // first).
  static const std::string& FailureReporter();

 private:
  void ProcessControl();
  void HandleControl(std::vector<zmq::message_t>& frames, size_t total);
  Status HandleRequest(const std::string& identity, wire::ControlRequest::Reader request);
  Status HandleWorkDone(const std::string& identity, wire::RoutedReply::Reader done);
  void HandleEcsReady(const std::string& identity, uint32_t credit);
  void Enqueue(const std::string& identity, wire::ControlRequest::Reader request);
  void Dispatch();
  void LogDepthChange(size_t before, const char* what);
  // Queues a nodeFailed for every member the detector finds due.
  void ReportFailures();
  // The ECS answered one of the broker's own reports: logged, dropped.
  void LogFailureReportDone(wire::ControlReply::Reader reply);
  // How long the event loop may sleep before ReportFailures must run.
  std::chrono::milliseconds PollTimeout();

  void ProcessPublications();
  void HandlePublication(std::vector<zmq::message_t>& frames, size_t total);
  // Makes a validated ring the cached one, tells the failure detector and
  // sends it to the subscribers.
  void CacheRing(zmq::message_t frame, uint64_t version, const std::vector<NodeAddress>& members);
  // A ring in an ECS answer newer than the cached one is cached at once.
  void CacheRingFromReply(wire::ControlReply::Reader reply);
  void ProcessSubscriptions();
  void SendCachedRing();

  // Sends [identity][frame] on the control socket without blocking; false if
  // the peer is gone or its queue is full.
  bool SendTo(const std::string& identity, zmq::message_t frame);
  void Reply(const std::string& identity, uint64_t request_id, wire::ControlStatus status,
             const std::string& reason, bool with_ring = false);

  BrokerConfig config_;
  Clock clock_;
  zmq::context_t ctx_{1};
  zmq::socket_t control_;  // ROUTER
  zmq::socket_t pub_;      // XPUB, downstream
  zmq::socket_t sub_;      // XSUB, upstream
  uint16_t control_port_ = 0, pub_port_ = 0, sub_port_ = 0;
  int stop_pipe_[2] = {-1, -1};

  WorkQueue queue_;
  std::string ecs_;  // identity of the current ECS; empty = none yet

  zmq::message_t ring_frame_;  // last forwarded Ring (empty = none yet)
  uint64_t ring_version_ = 0;

  FailureDetector failures_;
  uint64_t next_report_id_ = 1;
  // Request id of the last failure report per member ("host:port"), to queue
  // no second one while the first still waits in the queue.
  std::unordered_map<std::string, uint64_t> reports_;

  std::vector<zmq::message_t> frames_;  // reused receive buffer
};

}  // namespace kv

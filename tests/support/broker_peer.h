// Test support for kvbroker: the real broker as a child process on 127.0.0.1
// with ephemeral ports, and fake peers speaking its protocol frame by frame
// (broker/broker.h): a control-plane DEALER that can play a node, a client or
// the ECS, a PUB playing the ECS's ring publisher and a SUB playing a node's
// ring subscriber. Not thread-safe; one test owns its peers.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "control.capnp.h"
#include "tests/support/process.h"

namespace kvtest {

using namespace std::chrono_literals;

// kvbroker -a 127.0.0.1 -p 0 --port-file F [extra flags]; ports read from F.
class BrokerProcess {
 public:
  BrokerProcess(const std::string& work_dir, std::vector<std::string> extra_flags = {});
  bool started() const { return control_port_ != 0; }
  uint16_t control_port() const { return control_port_; }
  uint16_t pub_port() const { return pub_port_; }
  uint16_t sub_port() const { return sub_port_; }
  const std::string& port_file_text() const { return port_file_text_; }
  Process& process() { return *process_; }
  // Waits until the broker's log contains text.
  bool LogContains(const std::string& text, std::chrono::milliseconds deadline = 10s);

 private:
  std::unique_ptr<Process> process_;
  uint16_t control_port_ = 0, pub_port_ = 0, sub_port_ = 0;
  std::string port_file_text_;
};

// One received control message with owned fields.
struct ControlMsg {
  kv::wire::ControlMessage::Which kind = kv::wire::ControlMessage::REQUEST;
  // reply
  uint64_t request_id = 0;
  kv::wire::ControlStatus status = kv::wire::ControlStatus::OK;
  std::string reason;
  uint64_t ring_version = 0;
  size_t ring_nodes = 0;
  // work
  std::string client;                 // requester identity at the broker
  kv::wire::ControlRequest::Which request_kind = kv::wire::ControlRequest::GET_RING;
  uint64_t work_request_id = 0;
  std::string host;                   // join/leave/nodeFailed address
  uint16_t port = 0;
};

// A ControlMessage{request: join/leave/nodeFailed/heartbeat} frame.
std::string AddressRequestFrame(kv::wire::ControlRequest::Which kind, uint64_t request_id,
                                const std::string& host, uint16_t port);
std::string GetRingFrame(uint64_t request_id, uint16_t version = kv::wire::CONTROL_VERSION);
// A Ring with `nodes` made-up nodes.
std::string RingFrame(uint64_t version, size_t nodes = 3);

// A DEALER on the broker's control port.
class ControlPeer {
 public:
  explicit ControlPeer(uint16_t control_port);
  void SendFrames(const std::vector<std::string>& frames);
  void Join(uint64_t request_id, const std::string& host, uint16_t port);
  void GetRing(uint64_t request_id);
  void Heartbeat(uint64_t request_id, const std::string& host, uint16_t port);
  // As the ECS.
  void EcsReady(uint32_t credit);
  void WorkDone(const std::string& client, uint64_t request_id, kv::wire::ControlStatus status,
                const std::string& reason);
  // Next message, or nullopt after the deadline. Undecodable frames fail the test.
  std::optional<ControlMsg> Receive(std::chrono::milliseconds deadline = 5s);
  // Request and reply: sends and waits for the reply to request_id.
  std::optional<ControlMsg> CallGetRing(uint64_t request_id);

 private:
  zmq::context_t ctx_{1};
  zmq::socket_t socket_;
};

// The ECS's PUB, connected to the broker's sub port.
class RingPublisher {
 public:
  explicit RingPublisher(uint16_t sub_port);
  void Publish(uint64_t version, size_t nodes = 3);
  void PublishFrames(const std::vector<std::string>& frames);

 private:
  zmq::context_t ctx_{1};
  zmq::socket_t socket_;
};

// A node's SUB on the broker's pub port, subscribed to "ring".
class RingSubscriber {
 public:
  explicit RingSubscriber(uint16_t pub_port);
  // Version of the next ring received, or nullopt after the deadline.
  std::optional<uint64_t> NextVersion(std::chrono::milliseconds deadline = 5s);

 private:
  zmq::context_t ctx_{1};
  zmq::socket_t socket_;
};

// Publishes `version` until getRing through `peer` reports it (the PUB's
// connection and the broker's subscription are asynchronous: the first
// publications may be dropped). True when the broker has it within deadline.
bool PublishUntilCached(RingPublisher& publisher, ControlPeer& peer, uint64_t version,
                        std::chrono::milliseconds deadline = 10s);

}  // namespace kvtest

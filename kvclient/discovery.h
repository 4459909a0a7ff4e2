// How the client learns the ring: Probe tells whether host:port is a kvnode or
// a kvbroker, and BrokerLink talks to a kvbroker as a client.
//
// Framing (schema/control.capnp; see broker/broker.h):
//   client DEALER -> broker control ROUTER:  [ControlMessage{version 101,
//                                              request{requestId, getRing}}]
//   broker -> client:                        [ControlMessage{reply{requestId,
//                                              status, reason, ring}}]
//   broker XPUB -> client SUB (topic "ring"): ["ring"][Ring]
// The broker answers getRing from its cache; its XPUB re-sends the cached ring
// to every new subscriber, and later rings as they are published.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "kvclient/connection.h"
#include "schema/ring.h"
#include "schema/status.h"

namespace kv::client {

// A control-plane reply as plain fields.
struct ControlAnswer {
  uint64_t request_id = 0;
  wire::ControlStatus status = wire::ControlStatus::BAD_REQUEST;
  std::string reason;
  std::shared_ptr<const Ring> ring;  // null when the reply carries none (version 0)
};

// ControlMessage{version = controlVersion, request{requestId, getRing}}.
zmq::message_t EncodeGetRing(uint64_t request_id);
// A ControlMessage reply of the current control version; InvalidArgument for
// anything else (another version, not a reply, a malformed ring).
Result<ControlAnswer> DecodeControlReply(const zmq::message_t& frame);

enum class PeerKind {
  kNode,     // answered the kv keyrange request (client protocol, version 1)
  kBroker,   // answered in the control protocol (version 101)
  kUnknown,  // answered neither within the timeout
};

struct ProbeResult {
  PeerKind kind = PeerKind::kUnknown;
  // kNode: the node's answer to keyrange (keyrange_success, or e.g.
  // server_stopped from a cluster node without a ring); nullopt when the node
  // only showed itself by answering the control request with bad_request.
  std::optional<KvReply> keyrange;
  // kBroker: the answer to getRing (ring null when the broker has none yet).
  std::optional<ControlAnswer> ring_answer;
};

// Detects what listens at host:port, on a DEALER of its own:
//  1. sends a kv keyrange request. A kv Reply (version 1) means a node.
//  2. a reply in the control protocol (version 101: the broker refusing a
//     non-control frame) or no reply within `timeout` means: send a control
//     getRing and wait up to `timeout` again. A control reply means a broker;
//     a late kv Reply still means a node; silence means kUnknown.
// So a node or broker that is up costs one round trip (two for a broker), and
// an address where nothing answers costs 2 x timeout.
// InvalidArgument only when the address cannot be connected to at all.
Result<ProbeResult> Probe(zmq::context_t& ctx, const std::string& host, uint16_t port,
                          std::chrono::milliseconds timeout);

// A kvbroker seen as a client: a DEALER to its control port for getRing and a
// SUB to its pub port for ring updates. Not thread-safe; owned by one Router.
// The context must outlive it.
class BrokerLink {
 public:
  BrokerLink(zmq::context_t& ctx, std::string host, uint16_t control_port, uint16_t pub_port);

  // Creates both sockets, connects and subscribes to "ring".
  [[nodiscard]] Status Open();
  // "host:port" of the control port.
  const std::string& address() const { return address_; }

  // Asks for the cached ring and waits up to `timeout` for the matching reply.
  // Unavailable when the broker has no ring yet, Overloaded when it says so,
  // Timeout when it does not answer.
  Result<std::shared_ptr<const Ring>> GetRing(std::chrono::milliseconds timeout);

  // The newest valid ring among the publications received so far (nullptr if
  // none), waiting up to `wait` for the first one. Malformed ones are logged.
  std::shared_ptr<const Ring> TakeUpdates(std::chrono::milliseconds wait = {});

  zmq::pollitem_t UpdatesPollItem();

 private:
  zmq::context_t& ctx_;
  std::string host_;
  uint16_t control_port_;
  uint16_t pub_port_;
  std::string address_;
  std::optional<zmq::socket_t> control_;  // DEALER
  std::optional<zmq::socket_t> sub_;      // SUB, topic "ring"
  uint64_t next_request_id_ = 1;
};

}  // namespace kv::client

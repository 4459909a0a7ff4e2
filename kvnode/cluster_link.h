// The node's link to the control plane: a DEALER to the broker's control
// ROUTER for join, leave and getRing (each re-sent until answered, since the
// broker or the ECS may restart and lose it) and a SUB to the broker's event
// plane for ring updates. Framing: one ControlMessage frame per message
// (schema/control.capnp); publications are [topic "ring"][Ring frame].
// Owned by the node's event loop; not thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "schema/ring.h"
#include "schema/status.h"

namespace kv {

struct ClusterLinkOptions {
  std::string broker_host;
  uint16_t broker_port = 0;       // control ROUTER
  uint16_t broker_pub_port = 0;   // XPUB (ring updates)
  NodeAddress self;               // what this node advertises
  std::chrono::milliseconds retry{1000};  // re-send an unanswered request after this
};

class ClusterLink {
 public:
  ClusterLink(zmq::context_t& ctx, ClusterLinkOptions options);

  void Start();          // connects, subscribes and asks for the ring
  void RequestJoin();    // until a join is answered ok
  void RequestLeave();   // until a leave is answered ok
  bool join_done() const { return join_done_; }
  bool leave_done() const { return leave_done_; }
  // The control plane refused the leave (e.g. this is the last node): the
  // reason, else empty.
  const std::string& leave_refusal() const { return leave_refusal_; }

  // Two poll items: control socket, then ring subscription.
  void AppendPollItems(std::vector<zmq::pollitem_t>* items);
  // Handles what the two items (starting at items[0]) report; returns the
  // newest ring received, if any.
  std::shared_ptr<const Ring> OnPoll(const zmq::pollitem_t* items);
  // Re-sends requests whose answer is overdue.
  void Tick(std::chrono::steady_clock::time_point now);

 private:
  enum class Kind { kJoin, kLeave, kGetRing };
  struct Outstanding {
    Kind kind;
    uint64_t request_id = 0;
    std::chrono::steady_clock::time_point sent;
  };
  void Send(Kind kind);
  std::shared_ptr<const Ring> HandleControl();
  std::shared_ptr<const Ring> HandleRing();

  ClusterLinkOptions options_;
  zmq::socket_t control_;
  zmq::socket_t ring_sub_;
  std::vector<Outstanding> outstanding_;
  uint64_t next_request_id_ = 1;
  bool join_done_ = false;
  bool leave_done_ = false;
  std::string leave_refusal_;
};

}  // namespace kv

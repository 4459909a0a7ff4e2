// The node's link to the control plane: a DEALER to the broker's control
// ROUTER for join, leave and getRing (each re-sent until answered, since the
// broker or the ECS may restart and lose it) and for heartbeats (one every
// heartbeat interval, each with its own request id, never re-sent), and a SUB
// to the broker's event plane for ring updates. The broker answers heartbeats
// at once, so they never wait behind queued joins and leaves; the answered
// ones keep the node's Lease (kvnode/lease.h) alive. Framing: one
// ControlMessage frame per message (schema/control.capnp); publications are
// [topic "ring"][Ring frame]. Owned by the node's event loop; not thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "kvnode/lease.h"
#include "schema/ring.h"
#include "schema/status.h"

namespace kv {

struct ClusterLinkOptions {
  std::string broker_host;
  uint16_t broker_port = 0;       // control ROUTER
  uint16_t broker_pub_port = 0;   // XPUB (ring updates)
  NodeAddress self;               // what this node advertises
  std::chrono::milliseconds retry{1000};  // re-send an unanswered request after this
  // Send a heartbeat this often (kvnode --heartbeat-ms). Tick must run at
  // least this often for it to hold.
  std::chrono::milliseconds heartbeat{200};
  // Serve only this long after the send time of the newest heartbeat the
  // broker answered ok (kvnode --lease-ms). Must stay below the broker's
  // --failure-timeout-ms: see kvnode/lease.h.
  std::chrono::milliseconds lease{1000};
  // Times join/leave/getRing re-sends; tests inject a fake one.
  std::function<std::chrono::steady_clock::time_point()> clock = std::chrono::steady_clock::now;
};

class ClusterLink {
 public:
  ClusterLink(zmq::context_t& ctx, ClusterLinkOptions options);

  void Start();          // connects, subscribes and asks for the ring
  // Until a join is answered ok. May be called again after a completed join
  // (to rejoin after finding this node removed from the ring): join_done()
  // turns false and a new join is sent and re-sent until answered ok.
  void RequestJoin();
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
  // Sends a heartbeat when one is due and re-sends requests whose answer is
  // overdue. Heartbeats are timed by `now` and never count as overdue.
  void Tick(std::chrono::steady_clock::time_point now);
  // Only sends a heartbeat if one is due: for the node's loop while it is
  // blocked on long work (answers are read once it is back), so that the
  // broker does not take a busy node for a dead one.
  void KeepAlive(std::chrono::steady_clock::time_point now);

  // True iff a heartbeat sent at some time t was answered ok by the broker
  // and now < t + lease. False before the first answer. A heartbeat sent
  // while the lease had lapsed counts only if the getRing sent just before
  // it was answered with a ring (handed out by OnPoll no later than the
  // lease resumes), so a node paused past its lease sees any newer ring
  // before it serves again.
  bool LeaseValid(std::chrono::steady_clock::time_point now) const { return lease_.Valid(now); }
  // When the lease ends; nullopt before the first answered heartbeat.
  std::optional<std::chrono::steady_clock::time_point> lease_expiry() const {
    return lease_.expiry();
  }

 private:
  enum class Kind { kJoin, kLeave, kGetRing };
  struct Outstanding {
    Kind kind;
    uint64_t request_id = 0;
    std::chrono::steady_clock::time_point sent;
  };
  void Send(Kind kind);
  void SendHeartbeat(std::chrono::steady_clock::time_point now);
  // Handles the broker's answer to a heartbeat or to its ring check (the
  // ring goes to *ring); false when the reply is for neither.
  bool HandleHeartbeatReply(wire::ControlReply::Reader reply, std::shared_ptr<const Ring>* ring);
  std::shared_ptr<const Ring> HandleControl();
  std::shared_ptr<const Ring> HandleRing();

  ClusterLinkOptions options_;
  zmq::socket_t control_;
  zmq::socket_t ring_sub_;
  std::vector<Outstanding> outstanding_;
  uint64_t next_request_id_ = 1;
  struct Heartbeat {
    std::chrono::steady_clock::time_point sent;
    uint64_t ring_check = 0;    // getRing sent just before it (lease lapsed); 0 = none
    bool ring_checked = false;  // that getRing was answered with a ring
  };
  // Heartbeats in flight by request id. Entries older than the lease are
  // dropped (their answers could no longer extend it).
  std::map<uint64_t, Heartbeat> heartbeats_;
  std::optional<std::chrono::steady_clock::time_point> last_heartbeat_;
  bool heartbeat_failing_ = false;  // the last heartbeat answer was not ok (logged once)
  Lease lease_;
  bool lease_was_valid_ = false;  // at the last Tick, to log when it expires
  bool join_done_ = false;
  bool leave_done_ = false;
  std::string leave_refusal_;
};

}  // namespace kv

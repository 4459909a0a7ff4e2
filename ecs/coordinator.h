// The ECS's decisions, kept apart from sockets: it queues membership requests,
// batches them into ring transitions run strictly one at a time, plans the
// hand-offs, persists the transition (ecs/ring_store.h), commits or aborts it,
// and rolls back a transition a crash left behind. Its output is a list of
// Commands the caller carries out in order (send a TransferStart, publish a
// ring, answer a requester, ...), so tests can drive it with a fake clock.
//
// A transition: when idle and the queue is non-empty, wait batch_window after
// the oldest queued request, then take every queued request. Joins of members
// and leaves of non-members are answered ok at once; a request about a node an
// earlier request of the batch already changes the other way waits for the
// next transition; leaves that would empty the ring are rejected (the data
// would have nowhere to go); the rest make ring v+1 = ring + joins -
// leaves/failed.
// Moves are PlanMoves(ring, ring v+1, failed nodes), one Transfer per (source,
// target); none (e.g. the first joins) commits at once. Otherwise the record is
// persisted, TransferStarts go out, and the transition commits when every
// transfer reports ok, or aborts on the first failure or after
// transfer_timeout: transferAbort to every source, requesters get unavailable.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "control.capnp.h"
#include "ecs/ring_store.h"
#include "ecs/transition.h"
#include "schema/ring.h"
#include "schema/status.h"

namespace kv {

struct CoordinatorConfig {
  int replication_factor = 1;  // copies of each range, stored in every ring (kvecs allows 1 for now)
  std::chrono::milliseconds batch_window{100};        // wait after the oldest queued request
  std::chrono::milliseconds transfer_timeout{30000};  // a transition longer than this aborts
  size_t max_held = 64;  // most requests held (queued + in the transition); more: overloaded
};

// Send transfer.source a TransferStart (transferId doubles as requestId).
struct StartTransfer {
  Transfer transfer;
  uint64_t prepares_version = 0;
};
// Send source a transferAbort(transfer_id); no reply is expected.
struct AbortTransfer {
  NodeAddress source;
  uint64_t transfer_id = 0;
};
// Publish ring on the event plane.
struct PublishRing {
  std::shared_ptr<const Ring> ring;
};
// Answer a requester through the broker (workDone).
struct ReplyTo {
  std::string client;
  uint64_t request_id = 0;
  wire::ControlStatus status = wire::ControlStatus::OK;
  std::string reason;
  std::shared_ptr<const Ring> ring;  // the current ring after the change (may be version 0)
};
// node has left the ring: close any connection to it.
struct ForgetNode {
  NodeAddress node;
};
using Command = std::variant<StartTransfer, AbortTransfer, PublishRing, ReplyTo, ForgetNode>;
using Commands = std::vector<Command>;

// A source's TransferDone.
struct TransferResult {
  uint64_t transfer_id = 0;
  bool ok = false;
  std::string reason;
  uint64_t entries = 0;
  uint64_t bytes = 0;
};

// Owned by the ECS's event loop; not thread-safe. Borrows the store, which
// must outlive it.
class Coordinator {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  Coordinator(CoordinatorConfig config, RingStore* store, Clock clock);

  // Loads the ring (none: empty, version 0). A persisted transition is rolled
  // back: transferAbort to each of its sources, record deleted, old ring
  // kept. Then publishes the ring when its version is above 0. Call once
  // before anything else; IOError/Corruption from the store are fatal.
  Status Recover(Commands* out);

  // Queues a request, or answers it at once: overloaded when max_held are
  // held, badRequest when the address is unusable.
  void Submit(MembershipRequest request, Commands* out);
  // A source's TransferDone; unknown or repeated ids are logged and ignored.
  void OnTransferDone(const TransferResult& result, Commands* out);
  // Starts a batch whose window has passed; aborts a transition past its deadline.
  void Tick(Commands* out);
  // The process is stopping: aborts the transfers of a transition in progress
  // and answers every held request unavailable. The record stays, so the
  // next start repeats the aborts (a lost transferAbort must not leave a
  // source forwarding for ever).
  void Stop(Commands* out);

  // When Tick next has something to do; nullopt = only on new input.
  std::optional<std::chrono::steady_clock::time_point> NextDeadline() const;

  const std::shared_ptr<const Ring>& ring() const { return ring_; }
  size_t held() const;
  size_t queued() const { return queue_.size(); }
  bool in_transition() const { return active_.has_value(); }

 private:
  struct Queued {
    MembershipRequest request;
    std::chrono::steady_clock::time_point at;
  };
  struct Active {
    TransitionRecord record;
    std::vector<bool> done;  // per record.transfers
    std::vector<NodeAddress> joins, removes;
    size_t failed = 0;  // removes that were nodeFailed
    size_t moves = 0;
    std::chrono::steady_clock::time_point first_request_at, started, deadline;
  };

  void StartTransition(Commands* out);
  // The batch would leave the ring with no node: its graceful leaves are
  // answered rejected (those nodes stop with their data and stay members)
  // and taken out of *a; failed nodes are removed regardless.
  void RefuseEmptyingLeaves(const std::vector<NodeAddress>& dead, Active* a, Commands* out) const;
  void Commit(Commands* out);
  void Abort(const std::string& reason, Commands* out);
  void Reply(const MembershipRequest& to, wire::ControlStatus status, std::string reason,
             Commands* out) const;

  CoordinatorConfig config_;
  RingStore* store_;
  Clock clock_;
  std::shared_ptr<const Ring> ring_;
  uint64_t next_transfer_id_ = 1;
  std::deque<Queued> queue_;
  std::optional<Active> active_;
};

}  // namespace kv

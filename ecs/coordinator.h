// The ECS's decisions, kept apart from sockets: it queues membership requests,
// batches joins and leaves into ring transitions run strictly one at a time,
// fails over at once when a node fails, re-replicates what the failure left
// under-replicated, persists what is in progress (ecs/ring_store.h), and
// resumes or rolls back what a crash left behind. Its output is a list of
// Commands (ecs/commands.h) the caller carries out in order, so tests can
// drive it with a fake clock.
//
// Joins and leaves: when idle (no transition, no repair) and the queue is
// non-empty, wait batch_window after the oldest queued request, then take
// every queued request. Joins of members and leaves of non-members are
// answered ok at once; a request about a node an earlier request of the batch
// already changes the other way waits for the next transition; leaves that
// would empty the ring are rejected (the data would have nowhere to go); the
// rest make ring v+1 = ring + joins - leaves. Moves are PlanMoves(ring, ring
// v+1), one Transfer per (source, target); none (e.g. the first joins)
// commits at once. Otherwise the record is persisted, TransferStarts go out,
// and the transition commits when every transfer reports ok, or aborts on
// the first failure or after transfer_timeout: transferAbort to every
// source, requesters get unavailable.
//
// Failures: nodeFailed requests are handled on the next Tick, all of those
// received by then together, without a batch window. A running join/leave
// transition is aborted (its requesters get unavailable and retry); ring v+1
// = ring - every failed member is committed and published at once, with no
// transfer first (each range's first surviving replica is its primary), and
// the requesters get ok. Then the repair: PlanMoves(ring, ring v+1, failed)
// as repair transfers to the ranges' new primaries (ecs/repair.h), persisted
// with the ring. Joins and leaves wait until it ends. A failure during a
// repair aborts its attempts in flight and re-plans: the new PlanMoves plus
// the previous repair's unfinished pieces (CarryOverMoves).
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

#include "ecs/commands.h"
#include "ecs/repair.h"
#include "ecs/ring_store.h"
#include "ecs/transition.h"
#include "schema/ring.h"
#include "schema/status.h"

namespace kv {

struct CoordinatorConfig {
  int replication_factor = 3;  // copies of each range (primary + N-1), stored in every new ring
  std::chrono::milliseconds batch_window{100};        // wait after the oldest queued request
  std::chrono::milliseconds transfer_timeout{30000};  // a join/leave transition longer aborts
  size_t max_held = 64;  // most joins/leaves held (queued + in the transition); more: overloaded
  RepairConfig repair;   // re-replication after a fail-over: timeouts, retries, reports
};

// Owned by the ECS's event loop; not thread-safe. Borrows the store, which
// must outlive it.
class Coordinator {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  Coordinator(CoordinatorConfig config, RingStore* store, Clock clock);

  // Loads the ring (none: empty, version 0). A persisted transition is rolled
  // back: transferAbort to each of its sources, record deleted, old ring
  // kept. Then publishes the ring when its version is above 0. A persisted
  // repair of that ring is resumed: transferAbort to its transfers, which
  // are started again with fresh ids. Call once before anything else;
  // IOError/Corruption from the store are fatal.
  Status Recover(Commands* out);

  // Queues a request, or answers it at once: overloaded when max_held are
  // held (never a nodeFailed), badRequest when the address is unusable.
  void Submit(MembershipRequest request, Commands* out);
  // A source's TransferDone; unknown or repeated ids are logged and ignored.
  void OnTransferDone(const TransferResult& result, Commands* out);
  // Fails over for the nodeFailed requests received; aborts a transition
  // past its deadline; times out and retries repair transfers; starts a
  // batch whose window has passed when no transition or repair runs.
  void Tick(Commands* out);
  // The process is stopping: aborts the transfers of a transition or repair
  // in progress and answers every held request unavailable. The records stay,
  // so the next start repeats the aborts (a lost transferAbort must not leave
  // a source forwarding for ever) and resumes the repair.
  void Stop(Commands* out);

  // When Tick next has something to do; nullopt = only on new input.
  std::optional<std::chrono::steady_clock::time_point> NextDeadline() const;

  const std::shared_ptr<const Ring>& ring() const { return ring_; }
  size_t held() const;
  size_t queued() const { return queue_.size(); }
  bool in_transition() const { return active_.has_value(); }
  bool repairing() const { return repair_.has_value(); }

 private:
  struct Queued {
    MembershipRequest request;
    std::chrono::steady_clock::time_point at;
  };
  struct Active {
    TransitionRecord record;
    std::vector<bool> done;  // per record.transfers
    std::vector<NodeAddress> joins, removes;
    size_t moves = 0;
    std::chrono::steady_clock::time_point first_request_at, started, deadline;
  };

  // Joins and leaves (ecs/transition_run.cpp).
  void StartTransition(Commands* out);
  // The batch would leave the ring with no node: its leaves are answered
  // rejected (those nodes stop with their data and stay members) and taken
  // out of *a.
  void RefuseEmptyingLeaves(Active* a, Commands* out) const;
  void Commit(Commands* out);
  void Abort(const std::string& reason, Commands* out);

  // Failures and repair (ecs/failover.cpp).
  void FailOver(Commands* out);
  // The repair's moves under next: PlanMoves plus the unfinished pieces of
  // the repair in progress, with the lost and incomplete ones logged.
  std::vector<Move> PlanRepair(const Ring& next, const std::vector<NodeAddress>& dead) const;
  // Aborts the transfers of a persisted repair and, when it repairs the ring
  // in force, sets it up again with fresh ids (Recover starts it).
  Status ResumeRepair(const TransitionRecord& record, Commands* out);
  // Persists the repair when it changed; ends it when finished.
  void AfterRepairProgress();

  void Reply(const MembershipRequest& to, wire::ControlStatus status, std::string reason,
             Commands* out) const;

  CoordinatorConfig config_;
  RingStore* store_;
  Clock clock_;
  std::shared_ptr<const Ring> ring_;
  uint64_t next_transfer_id_ = 1;
  std::deque<Queued> queue_;      // joins and leaves
  std::vector<Queued> failures_;  // nodeFailed requests not yet handled
  std::optional<Active> active_;
  std::optional<Repair> repair_;
};

}  // namespace kv

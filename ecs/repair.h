// Re-replication after a fail-over: the repair transfers that bring every
// range of the ring in force back to its replication factor, each retried
// with back-off when it fails or times out and given up after max_attempts;
// periodic reports of what is still under-replicated; and the pieces of an
// unfinished repair that a later fail-over carries into its own plan.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ecs/commands.h"
#include "ecs/transition.h"
#include "schema/ring.h"

namespace kv {

struct RepairConfig {
  std::chrono::milliseconds transfer_timeout{300000};  // an attempt longer than this fails
  std::chrono::milliseconds retry_backoff{1000};       // wait before the 2nd attempt; doubles
  std::chrono::milliseconds retry_backoff_cap{30000};  // longest wait between attempts
  int max_attempts = 5;                                // attempts per transfer, then give up
  std::chrono::milliseconds report_interval{5000};     // how often under-replication is logged
};

// The moves that finish an interrupted repair under `ring` (the ring that
// replaced the one it repaired): for each unfinished transfer whose target is
// still in ring, its ranges split at ring's node positions, the pieces the
// target holds in ring, each sourced from the piece's primary in ring.
// Pieces whose primary is now the target itself have no complete copy to
// come from: they get no move and are appended to *orphaned (source = target).
std::vector<Move> CarryOverMoves(const std::vector<Transfer>& unfinished, const Ring& ring,
                                 std::vector<Move>* orphaned);

// The moves whose source had not finished receiving (part of) the range:
// it is the target of an unfinished transfer with an overlapping range.
std::vector<Move> IncompleteSources(const std::vector<Move>& moves,
                                    const std::vector<Transfer>& unfinished);

// The repair transfers of one ring version, from first start to done or
// given up. Owned by the Coordinator's event loop; not thread-safe. Time is
// passed in, so tests drive it with a fake clock.
class Repair {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // transfers: repair set, ids fresh; ring: the ring in force they repair.
  Repair(RepairConfig config, std::shared_ptr<const Ring> ring, std::vector<Transfer> transfers,
         TimePoint now);

  // The first attempt of every transfer.
  void Start(Commands* out);
  // A TransferDone; false when the id is not an attempt of this repair in
  // flight (the caller logs and ignores it).
  bool OnTransferDone(const TransferResult& result, TimePoint now, Commands* out);
  // Fails attempts past their deadline, starts retries whose back-off has
  // passed (fresh ids from *next_id) and logs the under-replication report.
  void Tick(TimePoint now, uint64_t* next_id, Commands* out);
  // transferAbort for every attempt in flight; the repair is being replaced
  // or the process stops.
  void AbortInFlight(Commands* out) const;
  // The earliest attempt deadline, retry or report; nullopt when finished.
  std::optional<TimePoint> NextDeadline() const;

  // Every transfer done or given up.
  bool finished() const;
  // Transfers not done (in flight, waiting to retry or given up), with the
  // id of their latest attempt.
  std::vector<Transfer> Unfinished() const;
  // What a restart must resume: the ring and the transfers still to run
  // (not done, not given up).
  TransitionRecord Record() const;
  // True once after Record() changed (a transfer ended, or a retry took a
  // new id): the caller persists it.
  bool TakeChanged();
  // "N range(s) in T transfer(s)" still under-replicated.
  std::string PendingText() const;
  // The completion line: duration, transfers, entries, bytes, MB/s.
  std::string Summary(TimePoint now) const;
  const std::shared_ptr<const Ring>& ring() const { return ring_; }

 private:
  enum class State { kRunning, kWaiting, kDone, kGivenUp };
  struct Slot {
    Transfer transfer;  // the latest attempt's id
    int attempts = 0;
    State state = State::kRunning;
    TimePoint deadline;  // running: the attempt times out; waiting: the retry starts
  };

  void Fail(Slot& slot, const std::string& reason, TimePoint now, Commands* out);
  std::chrono::milliseconds Backoff(int attempts) const;
  size_t Count(State state) const;

  RepairConfig config_;
  std::shared_ptr<const Ring> ring_;
  std::vector<Slot> slots_;
  TimePoint started_;
  TimePoint next_report_;
  uint64_t entries_ = 0;
  uint64_t bytes_ = 0;
  bool changed_ = false;
};

}  // namespace kv

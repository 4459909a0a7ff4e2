// The Coordinator's fail-over and repair: the ring without the failed nodes
// is committed and published at once, then the ranges they leave
// under-replicated are copied to their new replicas (see ecs/coordinator.h).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "ecs/coordinator.h"

namespace kv {

namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

bool IsIn(const std::vector<NodeAddress>& list, const NodeAddress& a) {
  return std::find(list.begin(), list.end(), a) != list.end();
}

std::string MovesText(const std::vector<Move>& moves) {
  std::string out;
  for (const auto& m : moves) {
    out += std::string(out.empty() ? "" : ", ") + RangeText(m.range) + " " + m.source.ToString() +
           " -> " + m.target.ToString();
  }
  return out;
}

}  // namespace

void Coordinator::FailOver(Commands* out) {
  auto now = clock_();
  std::vector<Queued> requests = std::move(failures_);
  failures_.clear();
  std::vector<NodeAddress> dead;  // the ring's copies, which carry the peer ports
  std::vector<Queued> requesters;
  for (Queued& q : requests) {
    const RingNode* member = ring_->Find(q.request.node);
    if (member == nullptr) {
      // A joiner of the running transition would only time it out.
      if (active_ && IsIn(active_->joins, q.request.node)) {
        Abort("joining node " + q.request.node.ToString() + " failed", out);
      }
      Reply(q.request, wire::ControlStatus::OK, q.request.node.ToString() + " is not in the ring",
            out);
      continue;
    }
    if (!IsIn(dead, member->address)) dead.push_back(member->address);
    requesters.push_back(std::move(q));
  }
  if (dead.empty()) return;

  auto next = ring_->WithNodes(ring_->version() + 1, {}, dead);
  if (!next.ok()) {
    // Every failed node was found in the ring, so this is a bug.
    spdlog::error("cannot build ring version {} without {}: {}", ring_->version() + 1,
                  NodesText(dead), next.status().message());
    for (const auto& q : requesters) {
      Reply(q.request, wire::ControlStatus::UNAVAILABLE, next.status().message(), out);
    }
    return;
  }
  std::vector<Move> moves = PlanRepair(**next, dead);
  std::vector<Transfer> transfers = GroupMoves(moves, &next_transfer_id_, true);
  std::optional<TransitionRecord> record;
  if (!transfers.empty()) record = TransitionRecord{*next, transfers, {}};
  Status s = store_->CommitFailover(**next, record, next_transfer_id_);
  if (!s.ok()) {
    // Nothing changed and nothing was sent: the reporters retry.
    spdlog::error("cannot persist the fail-over to ring version {}: {}", (*next)->version(),
                  s.ToString());
    for (const auto& q : requesters) {
      Reply(q.request, wire::ControlStatus::UNAVAILABLE,
            "the ECS cannot persist its state: " + s.message(), out);
    }
    return;
  }

  // Committed: stop what the old ring had running, then switch.
  if (active_) Abort("node(s) " + NodesText(dead) + " failed; the fail-over goes first", out);
  if (repair_) {
    spdlog::warn("node(s) {} failed during the re-replication of ring version {} ({} left): "
                 "re-planning it for ring version {}",
                 NodesText(dead), repair_->ring()->version(), repair_->PendingText(),
                 (*next)->version());
    repair_->AbortInFlight(out);
    repair_.reset();
  }
  ring_ = *next;
  out->push_back(PublishRing{ring_});
  for (const auto& q : requesters) Reply(q.request, wire::ControlStatus::OK, "", out);
  for (const auto& n : dead) out->push_back(ForgetNode{n});
  auto first_report =
      std::min_element(requesters.begin(), requesters.end(),
                       [](const Queued& a, const Queued& b) { return a.at < b.at; })
          ->at;
  spdlog::info(
      "fail-over: ring version {} without [{}] committed and published, {} node(s); {} ms "
      "from the first report to publish",
      ring_->version(), NodesText(dead), ring_->size(),
      duration_cast<milliseconds>(now - first_report).count());
  if (ring_->empty()) spdlog::warn("ring version {}: every node failed", ring_->version());
  if (transfers.empty()) return;
  repair_.emplace(config_.repair, ring_, std::move(transfers), now);
  spdlog::info("ring version {}: re-replicating {}: under-replicated until they finish",
               ring_->version(), repair_->PendingText());
  repair_->Start(out);
}

std::vector<Move> Coordinator::PlanRepair(const Ring& next,
                                          const std::vector<NodeAddress>& dead) const {
  std::vector<HashRange> lost;
  std::vector<Move> moves = PlanMoves(*ring_, next, dead, &lost);
  if (!lost.empty()) {
    spdlog::error(
        "ring version {}: {} range(s) had every copy on failed node(s) {} and are lost: {}",
        next.version(), lost.size(), NodesText(dead), RangesText(lost));
  }
  if (!repair_) return moves;
  std::vector<Transfer> unfinished = repair_->Unfinished();
  std::vector<Move> orphaned;
  std::vector<Move> carried = CarryOverMoves(unfinished, next, &orphaned);
  if (!orphaned.empty()) {
    spdlog::error(
        "ring version {}: {} range(s) now have as primary a node that had not finished "
        "receiving them; keys it lacks are lost: {}",
        next.version(), orphaned.size(), MovesText(orphaned));
  }
  moves.insert(moves.end(), carried.begin(), carried.end());
  std::vector<Move> incomplete = IncompleteSources(moves, unfinished);
  if (!incomplete.empty()) {
    spdlog::error(
        "ring version {}: {} move(s) copy from a node that had not finished receiving the "
        "range; keys it lacks are lost: {}",
        next.version(), incomplete.size(), MovesText(incomplete));
  }
  spdlog::info("ring version {}: {} move(s) planned for the failure, {} carried over from the "
               "unfinished re-replication",
               next.version(), moves.size() - carried.size(), carried.size());
  return moves;
}

Status Coordinator::ResumeRepair(const TransitionRecord& record, Commands* out) {
  for (const auto& t : record.transfers) {
    out->push_back(AbortTransfer{t.source, t.transfer_id});
  }
  if (record.target->version() != ring_->version()) {
    // Only a fail-over writes a repair, together with its ring; a mismatch
    // is a record from another history, not one to act on.
    spdlog::warn("dropping a repair record for ring version {}: the ring in force is version {}",
                 record.target->version(), ring_->version());
    return store_->DropRepair();
  }
  if (record.transfers.empty()) return store_->DropRepair();
  std::vector<Transfer> transfers = record.transfers;
  for (auto& t : transfers) t.transfer_id = next_transfer_id_++;
  repair_.emplace(config_.repair, ring_, std::move(transfers), clock_());
  Status s = store_->SaveRepair(repair_->Record(), next_transfer_id_);
  if (!s.ok()) return s;
  spdlog::warn(
      "resuming the re-replication of ring version {} left by a previous run: {} aborted, to "
      "start again with new transfer ids",
      ring_->version(), repair_->PendingText());
  return Status::Ok();
}

void Coordinator::AfterRepairProgress() {
  if (!repair_->TakeChanged()) return;
  if (repair_->finished()) {
    spdlog::info("{}", repair_->Summary(clock_()));
    Status s = store_->DropRepair();
    if (!s.ok()) {
      // The next start resumes nothing harmful: it re-sends finished copies.
      spdlog::error("cannot delete the finished repair's record: {}", s.ToString());
    }
    repair_.reset();
    return;
  }
  Status s = store_->SaveRepair(repair_->Record(), next_transfer_id_);
  if (!s.ok()) {
    // Kept in memory; a restart would resume from the previous record.
    spdlog::error("cannot persist the repair's progress: {}", s.ToString());
  }
}

}  // namespace kv

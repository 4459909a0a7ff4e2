// The Coordinator's join/leave transitions: batching, planning, commit and
// abort (see the rules in ecs/coordinator.h).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "ecs/coordinator.h"

namespace kv {

namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

int64_t Ms(std::chrono::steady_clock::duration d) { return duration_cast<milliseconds>(d).count(); }

}  // namespace

void Coordinator::StartTransition(Commands* out) {
  auto now = clock_();
  Active a;
  a.first_request_at = queue_.front().at;
  a.started = now;
  std::map<std::string, bool> touched;  // host:port -> added (true) or removed (false)
  std::deque<Queued> deferred;
  for (Queued& q : queue_) {
    MembershipRequest& r = q.request;
    bool add = r.kind == RequestKind::kJoin;
    std::string key = r.node.ToString();
    auto seen = touched.find(key);
    if (seen != touched.end()) {
      if (seen->second != add) {
        deferred.push_back(std::move(q));  // join and leave of one node: one per transition
        continue;
      }
      a.record.requesters.push_back(std::move(r));
      continue;
    }
    const RingNode* member = ring_->Find(r.node);
    if (add == (member != nullptr)) {
      Reply(r, wire::ControlStatus::OK,
            r.node.ToString() + (add ? " is already in the ring" : " is not in the ring"), out);
      continue;
    }
    touched.emplace(key, add);
    if (add) {
      a.joins.push_back(r.node);
    } else {
      a.removes.push_back(member->address);  // the ring's copy carries the peer port
    }
    a.record.requesters.push_back(std::move(r));
  }
  queue_ = std::move(deferred);
  if (ring_->size() + a.joins.size() == a.removes.size()) RefuseEmptyingLeaves(&a, out);
  if (a.record.requesters.empty()) return;

  auto next = ring_->WithNodes(ring_->version() + 1, a.joins, a.removes);
  if (!next.ok()) {
    // Every address was validated on Submit, so this is a bug, not bad input.
    spdlog::error("cannot build ring version {}: {}", ring_->version() + 1,
                  next.status().message());
    for (const auto& r : a.record.requesters) {
      Reply(r, wire::ControlStatus::BAD_REQUEST, next.status().message(), out);
    }
    return;
  }
  a.record.target = *next;
  std::vector<Move> moves = PlanMoves(*ring_, **next);
  a.moves = moves.size();
  a.record.transfers = GroupMoves(moves, &next_transfer_id_);
  a.done.assign(a.record.transfers.size(), false);
  a.deadline = now + config_.transfer_timeout;
  spdlog::info(
      "transition to ring version {}: joins [{}], leaves [{}], {} move(s) in {} transfer(s)",
      (*next)->version(), NodesText(a.joins), NodesText(a.removes), a.moves,
      a.record.transfers.size());
  active_ = std::move(a);

  if (active_->record.transfers.empty()) {
    Commit(out);
    return;
  }
  Status s = store_->SaveTransition(active_->record, next_transfer_id_);
  if (!s.ok()) {
    // Nothing was sent yet: the sources have nothing to abort.
    spdlog::error("cannot persist the transition to ring version {}: {}",
                  active_->record.target->version(), s.ToString());
    for (const auto& r : active_->record.requesters) {
      Reply(r, wire::ControlStatus::UNAVAILABLE, "the ECS cannot persist its state: " + s.message(),
            out);
    }
    active_.reset();
    return;
  }
  for (const auto& t : active_->record.transfers) {
    out->push_back(StartTransfer{t, active_->record.target->version()});
  }
}

void Coordinator::RefuseEmptyingLeaves(Active* a, Commands* out) const {
  if (a->removes.empty()) return;
  for (const auto& r : a->record.requesters) {
    if (r.kind != RequestKind::kLeave) continue;
    Reply(r, wire::ControlStatus::REJECTED,
          "leaving would empty the ring and leave the data of " + r.node.ToString() +
              " nowhere; it stays a member",
          out);
  }
  std::erase_if(a->record.requesters,
                [](const MembershipRequest& r) { return r.kind == RequestKind::kLeave; });
  spdlog::warn("refused the leave of {}: the ring would have no node left", NodesText(a->removes));
  a->removes.clear();
}

void Coordinator::Commit(Commands* out) {
  Status s = store_->CommitRing(*active_->record.target);
  if (!s.ok()) {
    Abort("the ECS cannot persist ring version " +
              std::to_string(active_->record.target->version()) + ": " + s.message(),
          out);
    return;
  }
  Active a = std::move(*active_);
  active_.reset();
  ring_ = a.record.target;
  out->push_back(PublishRing{ring_});
  for (const auto& r : a.record.requesters) Reply(r, wire::ControlStatus::OK, "", out);
  for (const auto& n : a.removes) out->push_back(ForgetNode{n});
  auto now = clock_();
  spdlog::info(
      "ring version {} committed and published: {} node(s), joins [{}], leaves [{}], {} "
      "move(s), transition {} ms; {} ms from the first queued request to publish",
      ring_->version(), ring_->size(), NodesText(a.joins), NodesText(a.removes), a.moves,
      Ms(now - a.started), Ms(now - a.first_request_at));
}

void Coordinator::Abort(const std::string& reason, Commands* out) {
  Active a = std::move(*active_);
  active_.reset();
  for (const auto& t : a.record.transfers) {
    out->push_back(AbortTransfer{t.source, t.transfer_id});
  }
  Status s = store_->DropTransition();
  if (!s.ok()) {
    // The record stays; the next start rolls it back again, which is harmless.
    spdlog::error("cannot delete the aborted transition's record: {}", s.ToString());
  }
  std::string why = "transition to ring version " + std::to_string(a.record.target->version()) +
                    " aborted: " + reason;
  for (const auto& r : a.record.requesters) {
    Reply(r, wire::ControlStatus::UNAVAILABLE, why + "; retry", out);
  }
  spdlog::warn("{} (after {} ms; joins [{}], leaves [{}]; ring stays at version {})", why,
               Ms(clock_() - a.started), NodesText(a.joins), NodesText(a.removes),
               ring_->version());
}

}  // namespace kv

#include "ecs/coordinator.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

namespace kv {

namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

bool IsIn(const std::vector<NodeAddress>& list, const NodeAddress& a) {
  return std::find(list.begin(), list.end(), a) != list.end();
}

std::string Join(const std::vector<NodeAddress>& nodes) {
  std::string out;
  for (const auto& n : nodes) {
    if (!out.empty()) out += ' ';
    out += n.ToString();
  }
  return out.empty() ? "-" : out;
}

std::string RangeText(const HashRange& r) {
  return "(" + r.from.ToHex() + ", " + r.to.ToHex() + "]";
}

std::string TransferText(const Transfer& t) {
  return std::to_string(t.transfer_id) + " (" + t.source.ToString() + " -> " + t.target.ToString() +
         ")";
}

// The address rules of Ring::Make, plus a peer port for nodes the ECS will
// have to reach.
Status ValidateNode(const MembershipRequest& r) {
  auto probe = Ring::Make(1, 1, {r.node});
  if (!probe.ok()) return probe.status();
  if (r.kind == RequestKind::kJoin && r.node.peer_port == 0) {
    return Status::InvalidArgument("join of " + r.node.ToString() + " has peer port 0");
  }
  return Status::Ok();
}

int64_t Ms(std::chrono::steady_clock::duration d) { return duration_cast<milliseconds>(d).count(); }

}  // namespace

Coordinator::Coordinator(CoordinatorConfig config, RingStore* store, Clock clock)
    : config_(config), store_(store), clock_(std::move(clock)) {}

size_t Coordinator::held() const {
  return queue_.size() + (active_ ? active_->record.requesters.size() : 0);
}

Status Coordinator::Recover(Commands* out) {
  auto ring = store_->LoadRing();
  if (!ring.ok()) return ring.status();
  if (*ring) {
    ring_ = *ring;
    if (ring_->replication_factor() != config_.replication_factor) {
      spdlog::warn("the stored ring has replication factor {}, not {}; keeping {}",
                   ring_->replication_factor(), config_.replication_factor,
                   ring_->replication_factor());
    }
  } else {
    auto empty = Ring::Make(0, config_.replication_factor, {});
    if (!empty.ok()) return empty.status();
    ring_ = *empty;
  }
  auto next_id = store_->LoadNextTransferId();
  if (!next_id.ok()) return next_id.status();
  next_transfer_id_ = *next_id;

  auto transition = store_->LoadTransition();
  if (!transition.ok()) return transition.status();
  if (*transition) {
    const TransitionRecord& t = **transition;
    std::string who;
    for (const auto& r : t.requesters) {
      who += std::string(who.empty() ? "" : ", ") + KindName(r.kind) + " " + r.node.ToString();
    }
    spdlog::warn(
        "rolling back the transition to ring version {} left by a previous run ({}): aborting "
        "{} transfer(s), keeping ring version {}; its requesters retry on their own",
        t.target->version(), who.empty() ? "no requesters" : who, t.transfers.size(),
        ring_->version());
    for (const auto& transfer : t.transfers) {
      out->push_back(AbortTransfer{transfer.source, transfer.transfer_id});
    }
    Status s = store_->DropTransition();
    if (!s.ok()) return s;
  }
  spdlog::info("ring version {} with {} node(s), replication factor {}", ring_->version(),
               ring_->size(), ring_->replication_factor());
  if (ring_->version() > 0) out->push_back(PublishRing{ring_});
  return Status::Ok();
}

void Coordinator::Reply(const MembershipRequest& to, wire::ControlStatus status, std::string reason,
                        Commands* out) const {
  out->push_back(ReplyTo{to.client, to.request_id, status, std::move(reason), ring_});
}

void Coordinator::Submit(MembershipRequest request, Commands* out) {
  if (held() >= config_.max_held) {
    spdlog::warn("refusing {} {} (request {}): the ECS already holds {} requests",
                 KindName(request.kind), request.node.ToString(), request.request_id, held());
    Reply(request, wire::ControlStatus::OVERLOADED,
          "the ECS holds " + std::to_string(held()) + " requests; back off and retry", out);
    return;
  }
  Status s = ValidateNode(request);
  if (!s.ok()) {
    spdlog::warn("refusing {} (request {}): {}", KindName(request.kind), request.request_id,
                 s.message());
    Reply(request, wire::ControlStatus::BAD_REQUEST, s.message(), out);
    return;
  }
  spdlog::debug("queued {} {} (request {}): {} queued", KindName(request.kind),
                request.node.ToString(), request.request_id, queue_.size() + 1);
  queue_.push_back(Queued{std::move(request), clock_()});
}

std::optional<std::chrono::steady_clock::time_point> Coordinator::NextDeadline() const {
  if (active_) return active_->deadline;
  if (!queue_.empty()) return queue_.front().at + config_.batch_window;
  return std::nullopt;
}

void Coordinator::Tick(Commands* out) {
  auto now = clock_();
  if (active_ && now >= active_->deadline) {
    std::string pending;
    for (size_t i = 0; i < active_->record.transfers.size(); ++i) {
      if (active_->done[i]) continue;
      pending +=
          std::string(pending.empty() ? "" : ", ") + TransferText(active_->record.transfers[i]);
    }
    Abort("timed out after " + std::to_string(config_.transfer_timeout.count()) +
              " ms waiting for transfer " + pending,
          out);
  }
  // A batch that needs no data moved commits at once, so the next may start.
  while (!active_ && !queue_.empty() && now >= queue_.front().at + config_.batch_window) {
    StartTransition(out);
  }
}

void Coordinator::StartTransition(Commands* out) {
  auto now = clock_();
  Active a;
  a.first_request_at = queue_.front().at;
  a.started = now;
  std::vector<NodeAddress> dead;
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
      if (r.kind == RequestKind::kNodeFailed && !IsIn(dead, r.node)) {
        dead.push_back(r.node);
        ++a.failed;
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
      if (r.kind == RequestKind::kNodeFailed) {
        dead.push_back(r.node);
        ++a.failed;
      }
    }
    a.record.requesters.push_back(std::move(r));
  }
  queue_ = std::move(deferred);
  if (ring_->size() + a.joins.size() == a.removes.size()) RefuseEmptyingLeaves(dead, &a, out);
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
  std::vector<Move> moves;
  if (!ring_->empty()) {
    std::vector<HashRange> lost;
    moves = PlanMoves(*ring_, **next, dead, &lost);
    if (!lost.empty()) {
      std::string ranges;
      for (const auto& r : lost) ranges += (ranges.empty() ? "" : " ") + RangeText(r);
      spdlog::error(
          "ring version {}: {} range(s) had every copy on failed node(s) {} and are lost: {}",
          (*next)->version(), lost.size(), Join(dead), ranges);
    }
  }
  if ((*next)->empty() && !ring_->empty()) {
    spdlog::warn("ring version {}: every node failed; the ring is empty", (*next)->version());
  }
  a.moves = moves.size();
  a.record.transfers = GroupMoves(moves, &next_transfer_id_);
  a.done.assign(a.record.transfers.size(), false);
  a.deadline = now + config_.transfer_timeout;
  spdlog::info(
      "transition to ring version {}: joins [{}], leaves [{}] ({} failed), {} move(s) in {} "
      "transfer(s)",
      (*next)->version(), Join(a.joins), Join(a.removes), a.failed, a.moves,
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

void Coordinator::RefuseEmptyingLeaves(const std::vector<NodeAddress>& dead, Active* a,
                                       Commands* out) const {
  std::vector<NodeAddress> leaving;
  for (const auto& n : a->removes) {
    if (!IsIn(dead, n)) leaving.push_back(n);
  }
  if (leaving.empty()) return;
  std::vector<MembershipRequest> kept;
  for (auto& r : a->record.requesters) {
    if (!IsIn(leaving, r.node)) {
      kept.push_back(std::move(r));
      continue;
    }
    Reply(r, wire::ControlStatus::REJECTED,
          "leaving would empty the ring and leave the data of " + r.node.ToString() +
              " nowhere; it stays a member",
          out);
  }
  a->record.requesters = std::move(kept);
  std::erase_if(a->removes, [&](const NodeAddress& n) { return IsIn(leaving, n); });
  spdlog::warn("refused the leave of {}: the ring would have no node left", Join(leaving));
}

void Coordinator::OnTransferDone(const TransferResult& result, Commands* out) {
  size_t i = 0;
  if (active_) {
    const auto& transfers = active_->record.transfers;
    while (i < transfers.size() && transfers[i].transfer_id != result.transfer_id) ++i;
  }
  if (!active_ || i == active_->record.transfers.size()) {
    spdlog::info("ignoring TransferDone for transfer {}: not part of the current transition",
                 result.transfer_id);
    return;
  }
  if (active_->done[i]) {
    spdlog::info("ignoring a repeated TransferDone for transfer {}", result.transfer_id);
    return;
  }
  const Transfer& t = active_->record.transfers[i];
  if (!result.ok) {
    Abort("transfer " + TransferText(t) + " failed: " +
              (result.reason.empty() ? std::string("no reason given") : result.reason),
          out);
    return;
  }
  active_->done[i] = true;
  spdlog::info("transfer {} done: {} entries, {} bytes", TransferText(t), result.entries,
               result.bytes);
  if (std::all_of(active_->done.begin(), active_->done.end(), [](bool d) { return d; })) {
    Commit(out);
  }
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
      "ring version {} committed and published: {} node(s), joins [{}], leaves [{}] ({} "
      "failed), {} move(s), transition {} ms; {} ms from the first queued request to publish",
      ring_->version(), ring_->size(), Join(a.joins), Join(a.removes), a.failed, a.moves,
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
               Ms(clock_() - a.started), Join(a.joins), Join(a.removes), ring_->version());
}

void Coordinator::Stop(Commands* out) {
  if (active_) {
    spdlog::warn("stopping during the transition to ring version {}: aborting its transfers",
                 active_->record.target->version());
    for (const auto& t : active_->record.transfers) {
      out->push_back(AbortTransfer{t.source, t.transfer_id});
    }
    for (const auto& r : active_->record.requesters) {
      Reply(r, wire::ControlStatus::UNAVAILABLE, "the ECS is stopping; retry", out);
    }
    active_.reset();
  }
  for (const auto& q : queue_) {
    Reply(q.request, wire::ControlStatus::UNAVAILABLE, "the ECS is stopping; retry", out);
  }
  queue_.clear();
}

}  // namespace kv

// The Coordinator's entry points: recovery, intake, timers, TransferDone
// routing and stop. Joins and leaves run in ecs/transition_run.cpp, failures
// and repair in ecs/failover.cpp.
#include "ecs/coordinator.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace kv {

namespace {

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

void Earliest(std::optional<std::chrono::steady_clock::time_point>* best,
              std::chrono::steady_clock::time_point t) {
  if (!*best || t < **best) *best = t;
}

}  // namespace

Coordinator::Coordinator(CoordinatorConfig config, RingStore* store, Clock clock)
    : config_(config), store_(store), clock_(std::move(clock)) {}

size_t Coordinator::held() const {
  return queue_.size() + failures_.size() + (active_ ? active_->record.requesters.size() : 0);
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
  auto repair = store_->LoadRepair();
  if (!repair.ok()) return repair.status();
  if (*repair) {
    Status s = ResumeRepair(**repair, out);
    if (!s.ok()) return s;
  }
  spdlog::info("ring version {} with {} node(s), replication factor {}", ring_->version(),
               ring_->size(), ring_->replication_factor());
  if (ring_->version() > 0) out->push_back(PublishRing{ring_});
  // The old attempts were aborted above; the new ones go after the ring.
  if (repair_) repair_->Start(out);
  return Status::Ok();
}

void Coordinator::Reply(const MembershipRequest& to, wire::ControlStatus status, std::string reason,
                        Commands* out) const {
  out->push_back(ReplyTo{to.client, to.request_id, status, std::move(reason), ring_});
}

void Coordinator::Submit(MembershipRequest request, Commands* out) {
  // A failure report is never turned away: it is handled on the next Tick,
  // in the same poll round, and the ring must not keep a dead primary.
  bool failure = request.kind == RequestKind::kNodeFailed;
  if (!failure && held() >= config_.max_held) {
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
  if (failure) {
    spdlog::info("nodeFailed {} (request {}): failing over on the next tick",
                 request.node.ToString(), request.request_id);
    failures_.push_back(Queued{std::move(request), clock_()});
    return;
  }
  spdlog::debug("queued {} {} (request {}): {} queued", KindName(request.kind),
                request.node.ToString(), request.request_id, queue_.size() + 1);
  queue_.push_back(Queued{std::move(request), clock_()});
}

std::optional<std::chrono::steady_clock::time_point> Coordinator::NextDeadline() const {
  if (!failures_.empty()) return clock_();
  std::optional<std::chrono::steady_clock::time_point> next;
  if (active_) Earliest(&next, active_->deadline);
  if (repair_) {
    if (auto r = repair_->NextDeadline()) Earliest(&next, *r);
  }
  if (!active_ && !repair_ && !queue_.empty()) {
    Earliest(&next, queue_.front().at + config_.batch_window);
  }
  return next;
}

void Coordinator::Tick(Commands* out) {
  if (!failures_.empty()) FailOver(out);
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
  if (repair_) {
    repair_->Tick(now, &next_transfer_id_, out);
    AfterRepairProgress();
  }
  // A batch that needs no data moved commits at once, so the next may start.
  while (!active_ && !repair_ && !queue_.empty() &&
         now >= queue_.front().at + config_.batch_window) {
    StartTransition(out);
  }
}

void Coordinator::OnTransferDone(const TransferResult& result, Commands* out) {
  size_t i = 0;
  if (active_) {
    const auto& transfers = active_->record.transfers;
    while (i < transfers.size() && transfers[i].transfer_id != result.transfer_id) ++i;
  }
  if (!active_ || i == active_->record.transfers.size()) {
    if (repair_ && repair_->OnTransferDone(result, clock_(), out)) {
      AfterRepairProgress();
      return;
    }
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
  if (repair_) {
    spdlog::warn("stopping during the re-replication of ring version {} ({} left): the next "
                 "start resumes it",
                 repair_->ring()->version(), repair_->PendingText());
    repair_->AbortInFlight(out);
    repair_.reset();
  }
  for (const auto& q : queue_) {
    Reply(q.request, wire::ControlStatus::UNAVAILABLE, "the ECS is stopping; retry", out);
  }
  for (const auto& q : failures_) {
    Reply(q.request, wire::ControlStatus::UNAVAILABLE, "the ECS is stopping; retry", out);
  }
  queue_.clear();
  failures_.clear();
}

}  // namespace kv

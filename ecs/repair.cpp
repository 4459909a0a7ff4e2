#include "ecs/repair.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <utility>

namespace kv {

namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

int64_t Ms(std::chrono::steady_clock::duration d) { return duration_cast<milliseconds>(d).count(); }

bool Overlap(const HashRange& a, const HashRange& b) {
  // Two arcs meet exactly when one of them ends inside the other.
  return a.Contains(b.to) || b.Contains(a.to);
}

// r cut at every node position of ring strictly inside it, in clockwise
// order: no position lies inside a piece, so one node is primary of each.
std::vector<HashRange> SplitAtNodes(const HashRange& r, const Ring& ring) {
  std::vector<Hash128> cuts;
  for (const auto& n : ring.nodes()) {
    if (r.Contains(n.position) && n.position != r.to) cuts.push_back(n.position);
  }
  // Clockwise from r.from: positions above it first, then those past the top.
  auto wrapped = [&](const Hash128& p) { return !(r.from < p); };
  std::sort(cuts.begin(), cuts.end(), [&](const Hash128& a, const Hash128& b) {
    if (wrapped(a) != wrapped(b)) return !wrapped(a);
    return a < b;
  });
  std::vector<HashRange> out;
  Hash128 from = r.from;
  for (const auto& c : cuts) {
    out.push_back(HashRange{from, c});
    from = c;
  }
  out.push_back(HashRange{from, r.to});
  return out;
}

}  // namespace

std::vector<Move> CarryOverMoves(const std::vector<Transfer>& unfinished, const Ring& ring,
                                 std::vector<Move>* orphaned) {
  std::vector<Move> out;
  for (const Transfer& t : unfinished) {
    if (!ring.Contains(t.target)) continue;
    for (const HashRange& range : t.ranges) {
      for (const HashRange& piece : SplitAtNodes(range, ring)) {
        std::vector<NodeAddress> holders = ring.Replicas(piece.to);
        if (std::find(holders.begin(), holders.end(), t.target) == holders.end()) continue;
        Move m{piece, ring.Primary(piece.to)->address, t.target};
        if (m.source == m.target) {
          if (orphaned != nullptr) orphaned->push_back(m);
          continue;
        }
        if (!out.empty() && out.back().range.to == m.range.from && out.back().source == m.source &&
            out.back().target == m.target) {
          out.back().range.to = m.range.to;
          continue;
        }
        out.push_back(std::move(m));
      }
    }
  }
  return out;
}

std::vector<Move> IncompleteSources(const std::vector<Move>& moves,
                                    const std::vector<Transfer>& unfinished) {
  std::vector<Move> out;
  for (const Move& m : moves) {
    bool incomplete = std::any_of(unfinished.begin(), unfinished.end(), [&](const Transfer& t) {
      return t.target == m.source &&
             std::any_of(t.ranges.begin(), t.ranges.end(),
                         [&](const HashRange& r) { return Overlap(r, m.range); });
    });
    if (incomplete) out.push_back(m);
  }
  return out;
}

Repair::Repair(RepairConfig config, std::shared_ptr<const Ring> ring,
               std::vector<Transfer> transfers, TimePoint now)
    : config_(config), ring_(std::move(ring)), started_(now), next_report_(now) {
  for (auto& t : transfers) {
    t.repair = true;
    slots_.push_back(Slot{std::move(t), 0, State::kRunning, now});
  }
  next_report_ = now + config_.report_interval;
}

void Repair::Start(Commands* out) {
  for (Slot& s : slots_) {
    s.attempts = 1;
    s.state = State::kRunning;
    s.deadline = started_ + config_.transfer_timeout;
    out->push_back(StartTransfer{s.transfer, ring_->version()});
  }
}

bool Repair::OnTransferDone(const TransferResult& result, TimePoint now, Commands* out) {
  auto it = std::find_if(slots_.begin(), slots_.end(), [&](const Slot& s) {
    return s.state == State::kRunning && s.transfer.transfer_id == result.transfer_id;
  });
  if (it == slots_.end()) return false;
  if (!result.ok) {
    Fail(*it, result.reason.empty() ? std::string("no reason given") : result.reason, now, out);
    return true;
  }
  it->state = State::kDone;
  entries_ += result.entries;
  bytes_ += result.bytes;
  changed_ = true;
  spdlog::info("repair transfer {} done: {} entries, {} bytes; {} of {} transfer(s) done",
               TransferText(it->transfer), result.entries, result.bytes, Count(State::kDone),
               slots_.size());
  return true;
}

void Repair::Fail(Slot& slot, const std::string& reason, TimePoint now, Commands* out) {
  // A source that reported failure has already stopped; one that timed out
  // may still be streaming.
  out->push_back(AbortTransfer{slot.transfer.source, slot.transfer.transfer_id});
  changed_ = true;
  if (slot.attempts >= config_.max_attempts) {
    slot.state = State::kGivenUp;
    spdlog::error(
        "giving up re-replicating {} range(s) to {} after {} attempt(s), last: transfer {}: {}; "
        "they stay under-replicated: {}",
        slot.transfer.ranges.size(), slot.transfer.target.ToString(), slot.attempts,
        TransferText(slot.transfer), reason, RangesText(slot.transfer.ranges));
    return;
  }
  slot.state = State::kWaiting;
  auto wait = Backoff(slot.attempts);
  slot.deadline = now + wait;
  spdlog::warn("repair transfer {} failed (attempt {} of {}): {}; retrying in {} ms",
               TransferText(slot.transfer), slot.attempts, config_.max_attempts, reason,
               wait.count());
}

std::chrono::milliseconds Repair::Backoff(int attempts) const {
  auto wait = config_.retry_backoff;
  for (int i = 1; i < attempts && wait < config_.retry_backoff_cap; ++i) wait *= 2;
  return std::min(wait, config_.retry_backoff_cap);
}

void Repair::Tick(TimePoint now, uint64_t* next_id, Commands* out) {
  for (Slot& s : slots_) {
    if (s.state == State::kRunning && now >= s.deadline) {
      Fail(s, "timed out after " + std::to_string(config_.transfer_timeout.count()) + " ms", now,
           out);
    } else if (s.state == State::kWaiting && now >= s.deadline) {
      uint64_t old_id = s.transfer.transfer_id;
      s.transfer.transfer_id = (*next_id)++;
      ++s.attempts;
      s.state = State::kRunning;
      s.deadline = now + config_.transfer_timeout;
      changed_ = true;
      spdlog::info("retrying repair transfer {} as {} (attempt {} of {})", old_id,
                   TransferText(s.transfer), s.attempts, config_.max_attempts);
      out->push_back(StartTransfer{s.transfer, ring_->version()});
    }
  }
  if (!finished() && now >= next_report_) {
    spdlog::info(
        "ring version {}: {} still under-replicated; {} of {} transfer(s) done after {} ms",
        ring_->version(), PendingText(), Count(State::kDone), slots_.size(), Ms(now - started_));
    next_report_ = now + config_.report_interval;
  }
}

void Repair::AbortInFlight(Commands* out) const {
  for (const Slot& s : slots_) {
    if (s.state == State::kRunning) {
      out->push_back(AbortTransfer{s.transfer.source, s.transfer.transfer_id});
    }
  }
}

std::optional<Repair::TimePoint> Repair::NextDeadline() const {
  if (finished()) return std::nullopt;
  TimePoint next = next_report_;
  for (const Slot& s : slots_) {
    if (s.state == State::kRunning || s.state == State::kWaiting) next = std::min(next, s.deadline);
  }
  return next;
}

bool Repair::finished() const {
  return Count(State::kRunning) == 0 && Count(State::kWaiting) == 0;
}

size_t Repair::Count(State state) const {
  return static_cast<size_t>(
      std::count_if(slots_.begin(), slots_.end(), [&](const Slot& s) { return s.state == state; }));
}

std::vector<Transfer> Repair::Unfinished() const {
  std::vector<Transfer> out;
  for (const Slot& s : slots_) {
    if (s.state != State::kDone) out.push_back(s.transfer);
  }
  return out;
}

TransitionRecord Repair::Record() const {
  TransitionRecord record;
  record.target = ring_;
  for (const Slot& s : slots_) {
    if (s.state == State::kRunning || s.state == State::kWaiting) {
      record.transfers.push_back(s.transfer);
    }
  }
  return record;
}

bool Repair::TakeChanged() { return std::exchange(changed_, false); }

std::string Repair::PendingText() const {
  size_t ranges = 0, transfers = 0;
  for (const Slot& s : slots_) {
    if (s.state == State::kDone) continue;
    ranges += s.transfer.ranges.size();
    ++transfers;
  }
  return std::to_string(ranges) + " range(s) in " + std::to_string(transfers) + " transfer(s)";
}

std::string Repair::Summary(TimePoint now) const {
  int64_t ms = Ms(now - started_);
  double mb_per_s =
      ms > 0 ? static_cast<double>(bytes_) / 1e6 / (static_cast<double>(ms) / 1e3) : 0;
  char rate[32];
  std::snprintf(rate, sizeof(rate), "%.1f", mb_per_s);
  return "re-replication of ring version " + std::to_string(ring_->version()) + " finished in " +
         std::to_string(ms) + " ms: " + std::to_string(Count(State::kDone)) + " of " +
         std::to_string(slots_.size()) + " transfer(s) done, " +
         std::to_string(Count(State::kGivenUp)) + " given up; " + std::to_string(entries_) +
         " entries, " + std::to_string(bytes_) + " bytes, " + rate + " MB/s";
}

}  // namespace kv

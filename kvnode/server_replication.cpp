// The replication half of the Server: the primary's streams to its replicas,
// the replica's apply path with fencing, and what a ring change does to both
// (see kvnode/replication.h and docs/replication.md).
#include <spdlog/spdlog.h>

#include <random>

#include "kvnode/server.h"

namespace kv {
namespace {

uint64_t RandomStreamId() {
  static thread_local std::mt19937_64 gen{std::random_device{}()};
  uint64_t id = 0;
  while (id == 0) id = gen();
  return id;
}

std::string NodeKey(const NodeAddress& a) { return a.host + ":" + std::to_string(a.port); }

}  // namespace

uint64_t Server::NextVersion() {
  uint64_t ring_version = ring_ ? ring_->version() : 0;
  if (ring_version != version_ring_) {
    version_ring_ = ring_version;
    version_counter_ = 0;
  }
  return (ring_version << kVersionShift) | ++version_counter_;
}

uint64_t Server::AckedThrough() const {
  uint64_t through = repl_seq_ - 1;
  for (const auto& s : streams_) {
    if (!s->unacked.empty()) through = std::min(through, s->unacked.front().batch->seq - 1);
  }
  return through;
}

void Server::ReplicateWrites(const std::vector<WriteOp>& ops, const std::vector<uint64_t>& versions,
                             const std::vector<uint64_t>& hold_ids) {
  if (streams_.empty() || ops.empty()) return;
  auto batch = std::make_shared<ReplBatch>(repl_seq_++);
  size_t bytes = 0;
  for (const auto& op : ops) bytes += op.key.size() + op.value.size();
  batch->Reserve(ops.size(), bytes);
  for (size_t i = 0; i < ops.size(); ++i) {
    batch->Add(ops[i].key, ops[i].value, ops[i].is_delete, versions[i]);
  }
  for (auto& stream : streams_) {
    for (uint64_t id : hold_ids) held_[id].waiting++;
    stream->unacked.push_back(ReplInFlight{batch, hold_ids, {}});
    SendReplicate(*stream, stream->unacked.back());
  }
}

void Server::SendReplicate(ReplicaStream& stream, ReplInFlight& in_flight) {
  zmq::message_t msg = EncodeReplicate(next_hold_id_++, ring_ ? ring_->version() : 0, self_,
                                       stream, AckedThrough(), *in_flight.batch);
  in_flight.sent = Clock::now();
  // Never block the loop on a slow or dead replica: what does not fit is
  // re-sent by ReplicationTick, and a dead replica is removed from the ring.
  (void)PeerLink(stream.replica).send(msg, zmq::send_flags::dontwait);
}

void Server::NoteReplicated(std::string_view key) {
  // Bounded: a range whose transfer never comes (given up) stops being
  // recorded past this many keys, with a warning.
  constexpr size_t kMaxEarlyReplicated = 1 << 20;
  // Nothing is newly held when this ring gave the node the ranges it had
  // (the steady state): no key can race a transfer's first chunk.
  if (!held_now_ || held_now_ == held_before_) return;
  Hash128 pos = KeyPosition(key);
  if (!held_now_->Contains(pos) || (held_before_ && held_before_->Contains(pos)) ||
      RangesContain(received_ranges_, pos)) {
    return;
  }
  if (early_replicated_.size() >= kMaxEarlyReplicated) {
    if (early_replicated_full_) return;
    early_replicated_full_ = true;
    spdlog::warn("more than {} keys replicated into ranges whose transfer has not arrived; "
                 "a late first chunk may clear some of them",
                 kMaxEarlyReplicated);
    return;
  }
  early_replicated_.emplace(key);
}

void Server::DropStreamHolds(ReplicaStream& stream, const Status& outcome) {
  if (!stream.unacked.empty()) {
    spdlog::debug("replication to {}: {} unacknowledged batch(es) settled as {}",
                  stream.replica.ToString(), stream.unacked.size(), outcome.ToString());
  }
  std::deque<ReplInFlight> unacked = std::move(stream.unacked);
  stream.unacked.clear();
  for (auto& f : unacked) SettleForward(f.hold_ids, outcome);
}

void Server::OnReplicateAck(const ReplicateAckMessage& ack) {
  ReplicaStream* stream = nullptr;
  for (auto& s : streams_) {
    if (s->id == ack.stream) stream = s.get();
  }
  if (stream == nullptr) return;  // a stream that has been replaced
  auto pop_through = [&](uint64_t seq) {
    while (!stream->unacked.empty() && stream->unacked.front().batch->seq <= seq) {
      std::vector<uint64_t> ids = std::move(stream->unacked.front().hold_ids);
      stream->unacked.pop_front();
      SettleForward(ids, Status::Ok());
    }
  };
  auto now = Clock::now();
  auto retry = std::chrono::milliseconds(config_.replica_retry_ms);
  switch (ack.refusal) {
    case wire::ReplicateRefusal::NONE: pop_through(ack.seq); return;
    case wire::ReplicateRefusal::GAP:
      if (ack.seq == 0) {
        // The replica does not know this stream (it restarted): start a new
        // one at the oldest batch it has not acknowledged.
        stream->id = RandomStreamId();
        stream->first_seq = stream->unacked.empty() ? repl_seq_ : stream->unacked.front().batch->seq;
        spdlog::info("replica {} restarted its stream; re-sending {} batch(es)",
                     stream->replica.ToString(), stream->unacked.size());
      } else {
        pop_through(ack.seq);
      }
      for (auto& f : stream->unacked) SendReplicate(*stream, f);
      return;
    case wire::ReplicateRefusal::FENCED: {
      // The replica's ring says this node is not the primary of these keys
      // (or it is not their replica): these writes cannot be acknowledged.
      spdlog::warn("replica {} refused writes (its ring v{}, ours v{}): {}",
                   stream->replica.ToString(), ack.ring_version, ring_ ? ring_->version() : 0,
                   ack.reason);
      if (ring_ && ack.ring_version > ring_->version()) {
        fenced_until_ring_ = std::max(fenced_until_ring_, ack.ring_version);
      }
      // They are applied here (and maybe forwarded to a hand-off target that
      // now serves them), so "not responsible", which promises that nothing
      // was applied and invites a blind retry, would be a lie: the client is
      // told the outcome is unknown.
      DropStreamHolds(*stream, Status::Unavailable("this node lost the key's range to a newer "
                                                   "ring before every replica confirmed"));
      stream->id = RandomStreamId();
      stream->first_seq = repl_seq_;
      return;
    }
    case wire::ReplicateRefusal::STALE_RING:
    case wire::ReplicateRefusal::ERROR:
    default:
      if (ack.refusal == wire::ReplicateRefusal::ERROR) {
        spdlog::warn("replica {} could not store writes: {}", stream->replica.ToString(),
                     ack.reason);
      }
      stream->retry_at = now + retry;
      return;
  }
}

void Server::ReplicationTick(Clock::time_point now) {
  auto retry = std::chrono::milliseconds(config_.replica_retry_ms);
  for (auto& stream : streams_) {
    if (stream->unacked.empty()) continue;
    bool due = now - stream->unacked.front().sent >= retry ||
               (stream->retry_at != Clock::time_point{} && now >= stream->retry_at);
    if (!due) continue;
    stream->retry_at = {};
    for (auto& f : stream->unacked) SendReplicate(*stream, f);
  }
}

void Server::ApplyReplicates(std::vector<std::pair<zmq::message_t, ReplicateMessage>>& run) {
  ReplicaApply apply = PrepareReplicates(run);
  Status s = apply.ops.empty() ? Status::Ok() : store_->Write(apply.ops, nullptr);
  FinishReplicates(run, apply, s);
}

void Server::ApplyDeferredReplicates() {
  if (!deferred_run_.empty()) ApplyReplicates(deferred_run_);
}

Server::ReplicaApply Server::PrepareReplicates(
    const std::vector<std::pair<zmq::message_t, ReplicateMessage>>& run) {
  ReplicaApply apply;
  std::vector<ReplicateAckMessage>& acks = apply.acks;
  std::vector<WriteOp>& ops = apply.ops;
  std::vector<size_t>& applied = apply.applied;
  std::map<std::string, SourceState>& updated = apply.updated;
  acks.resize(run.size());
  uint64_t version = ring_ ? ring_->version() : 0;
  for (size_t i = 0; i < run.size(); ++i) {
    const ReplicateMessage& m = run[i].second;
    ReplicateAckMessage& ack = acks[i];
    ack.stream = m.stream;
    ack.ring_version = version;
    if (!ring_ || m.ring_version > version) {
      ack.refusal = wire::ReplicateRefusal::STALE_RING;
      continue;
    }
    auto range = ring_->WriteRangeOf(m.primary);
    bool fenced = !range.ok();
    if (!fenced) {
      auto replicas = ring_->Replicas(range->to);
      fenced = std::find(replicas.begin(), replicas.end(), self_) == replicas.end() ||
               NodeKey(replicas.front()) != NodeKey(m.primary);
    }
    for (size_t e = 0; !fenced && e < m.batch->entries.size(); ++e) {
      fenced = !range->Contains(KeyPosition(m.batch->entries[e].key));
    }
    if (fenced) {
      ack.refusal = wire::ReplicateRefusal::FENCED;
      ack.reason = m.primary.ToString() + " is not the primary of these keys in ring v" +
                   std::to_string(version) + " of " + self_.ToString();
      continue;
    }
    std::string key = NodeKey(m.primary);
    auto u = updated.find(key);
    if (u == updated.end()) {
      auto known = sources_.find(key);
      SourceState start;
      if (known != sources_.end()) start = known->second;
      u = updated.emplace(key, std::move(start)).first;
    }
    SourceState& src = u->second;
    src.primary = m.primary;
    if (src.stream != m.stream) {
      if (m.seq != m.first_seq) {
        ack.refusal = wire::ReplicateRefusal::GAP;
        ack.seq = 0;
        continue;
      }
      src.stream = m.stream;
      src.last_seq = m.seq - 1;
    }
    if (m.seq <= src.last_seq) {
      ack.seq = src.last_seq;  // a re-send of something applied
      continue;
    }
    if (m.seq != src.last_seq + 1) {
      ack.refusal = wire::ReplicateRefusal::GAP;
      ack.seq = src.last_seq;
      continue;
    }
    src.last_seq = m.seq;
    ack.seq = m.seq;
    src.tail.push_back(m.batch);
    while (!src.tail.empty() && src.tail.front()->seq <= m.acked_through) src.tail.pop_front();
    for (const auto& e : m.batch->entries) {
      ops.push_back(WriteOp{e.deleted, e.key, e.value, e.version});
      spdlog::trace("replica write {} {} version {} from {} seq {}", e.deleted ? "delete" : "put",
                    e.key, e.version, m.primary.ToString(), m.seq);
    }
    applied.push_back(i);
  }
  return apply;
}

void Server::FinishReplicates(std::vector<std::pair<zmq::message_t, ReplicateMessage>>& run,
                              ReplicaApply& apply, const Status& s) {
  std::vector<ReplicateAckMessage>& acks = apply.acks;
  const std::vector<WriteOp>& ops = apply.ops;
  if (s.ok()) {
    for (auto& [key, state] : apply.updated) sources_[key] = std::move(state);
    for (const auto& op : ops) {
      cache_.Erase(op.key);
      NoteReplicated(op.key);
      // A snapshot entry arriving later must not overwrite this newer write.
      for (auto& [tid, in] : incoming_) {
        if (!in.snapshot_complete && RangesContain(in.ranges, KeyPosition(op.key))) {
          in.forwarded.insert(std::string(op.key));
        }
      }
    }
  } else {
    spdlog::error("applying {} replicated writes failed: {}", ops.size(), s.ToString());
    for (size_t i : apply.applied) {
      acks[i].refusal = wire::ReplicateRefusal::ERROR;
      acks[i].reason = s.message();
    }
  }
  for (size_t i = 0; i < run.size(); ++i) {
    zmq::message_t id(run[i].first.data(), run[i].first.size());
    zmq::message_t ack = EncodeReplicateAck(run[i].second.request_id, acks[i]);
    (void)peer_.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    (void)peer_.send(ack, zmq::send_flags::dontwait);
  }
  run.clear();
}

void Server::ReconcileReplication(const std::optional<HashRange>& old_write_range) {
  std::vector<NodeAddress> want;
  if (write_range_) {
    for (auto& r : ring_->Replicas(write_range_->to)) {
      if (!(r == self_)) want.push_back(r);
    }
  }
  // Replicas that are no longer in the set: if this node is still primary,
  // the writes they held up are durable here and reach any new replica
  // through re-replication; if it is not, their outcome is unknown (they are
  // applied here and may live on at the new primary), and the clients are
  // told so rather than invited to retry blindly.
  Status gone = write_range_ ? Status::Ok()
                             : Status::Unavailable("this node is no longer primary before "
                                                   "every replica confirmed");
  for (auto it = streams_.begin(); it != streams_.end();) {
    if (std::find(want.begin(), want.end(), (*it)->replica) != want.end()) {
      ++it;
      continue;
    }
    spdlog::info("replication to {} ends", (*it)->replica.ToString());
    DropStreamHolds(**it, gone);
    it = streams_.erase(it);
  }
  for (const auto& r : want) {
    bool have = false;
    for (const auto& s : streams_) have |= s->replica == r;
    if (have) continue;
    auto stream = std::make_unique<ReplicaStream>();
    stream->replica = r;
    stream->id = RandomStreamId();
    stream->first_seq = repl_seq_;
    spdlog::info("replicating to {}", r.ToString());
    streams_.push_back(std::move(stream));
  }

  // Promotion: batches this node applied as a replica and whose primary never
  // reported them acknowledged by every replica may be missing on the other
  // replicas. This node may already have served them, so it sends them on
  // before any write of its own (same links, so in order).
  if (write_range_) {
    std::vector<WriteOp> ops;
    std::vector<uint64_t> versions;
    for (auto& [key, src] : sources_) {
      if (src.primary == self_) continue;
      for (const auto& batch : src.tail) {
        for (const auto& e : batch->entries) {
          Hash128 pos = KeyPosition(e.key);
          bool was_mine = old_write_range && old_write_range->Contains(pos);
          if (!write_range_->Contains(pos) || was_mine) continue;
          ops.push_back(WriteOp{e.deleted, e.key, e.value, e.version});
          versions.push_back(e.version);
        }
      }
    }
    if (!ops.empty() && !streams_.empty()) {
      spdlog::info("promoted: re-sending {} write(s) the previous primary had not confirmed",
                   ops.size());
      std::vector<uint64_t> hold_ids;
      for (const auto& op : ops) {
        uint64_t id = next_hold_id_++;
        HeldReply& h = NewHold(id);
        h.silent = true;
        h.key.assign(op.key);
        h.waiting = 1;
        UnackedKey& u = UnackedFor(h.key);
        u.writes++;
        u.has_image = false;  // what came before these writes is not known here: gets wait
        hold_ids.push_back(id);
      }
      ReplicateWrites(ops, versions, hold_ids);
      SettleForward(hold_ids, Status::Ok());
    }
  }
  // Sources that have left the ring send nothing more.
  for (auto it = sources_.begin(); it != sources_.end();) {
    it = ring_->Contains(it->second.primary) ? std::next(it) : sources_.erase(it);
  }
}

}  // namespace kv

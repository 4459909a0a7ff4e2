// The cluster half of the Server: applying rings, the peer protocol and
// hand-off (see kvnode/handoff.h for the protocol in one paragraph).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "kvnode/server.h"
#include "schema/framing.h"
#include "schema/socket.h"

namespace kv {
namespace {

NodeAddress ReadAddress(wire::NodeAddress::Reader r) {
  NodeAddress a;
  a.host = r.getHost();
  a.port = r.getPort();
  a.peer_port = r.getPeerPort();
  return a;
}

std::vector<WriteOp> ReadEntries(capnp::List<wire::Entry>::Reader list) {
  std::vector<WriteOp> out;
  out.reserve(list.size());
  for (auto e : list) {
    WriteOp op;
    op.is_delete = e.getDeleted();
    auto key = e.getKey();
    auto value = e.getValue();
    op.key = {reinterpret_cast<const char*>(key.begin()), key.size()};
    op.value = {reinterpret_cast<const char*>(value.begin()), value.size()};
    op.version = e.getVersion();
    out.push_back(op);
  }
  return out;
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

void Server::ApplyRing(std::shared_ptr<const Ring> ring) {
  if (ring_ && ring->version() <= ring_->version()) return;
  // Replicates read before this ring are judged by the ring they were sent in.
  ApplyDeferredReplicates();
  std::optional<HashRange> held_before;
  if (ring_) {
    if (auto held = ring_->ReadRangeOf(self_); held.ok()) held_before = *held;
  }
  if (!early_replicated_.empty()) {
    spdlog::info("{} key(s) were replicated here in ring v{} into ranges whose transfer never "
                 "completed",
                 early_replicated_.size(), ring_ ? ring_->version() : 0);
  }
  ring_ = std::move(ring);
  held_before_ = held_before;
  held_now_.reset();
  if (auto held = ring_->ReadRangeOf(self_); held.ok()) held_now_ = *held;
  // The first ring follows an empty one: nothing was anywhere to transfer.
  if (ring_->version() == 1) held_before_ = held_now_;
  early_replicated_.clear();
  received_ranges_ = std::move(received_since_ring_);
  received_since_ring_.clear();
  early_replicated_full_ = false;
  auto range = ring_->WriteRangeOf(self_);
  std::optional<HashRange> old_range = write_range_;
  bool was_in = write_range_.has_value();
  if (range.ok()) {
    write_range_ = *range;
  } else {
    write_range_.reset();
  }
  spdlog::info("applied ring v{} ({} nodes, RF {}): this node {}", ring_->version(), ring_->size(),
               ring_->replication_factor(),
               write_range_ ? "is primary of (" + write_range_->from.ToHex() + ", " +
                                  write_range_->to.ToHex() + "]"
                            : std::string(was_in ? "has left the ring" : "is not in the ring"));
  if (fenced_until_ring_ != 0 && ring_->version() >= fenced_until_ring_) fenced_until_ring_ = 0;
  ReconcileReplication(old_range);
  if (was_in && !write_range_ && !leaving_) {
    // Declared failed (e.g. paused past the failure timeout): whatever this
    // node holds may be stale. It joins again as a new member and serves only
    // what hand-off brings it.
    spdlog::warn("this node was removed from the ring while running; joining again as a new member");
    cache_ = ValueCache(cache_.capacity(), cache_.strategy());
    link_->RequestJoin();
  }
  FinishTransfers();
  // Repairs the ECS sent for this ring before it arrived here.
  std::vector<DeferredStart> deferred = std::move(deferred_repairs_);
  deferred_repairs_.clear();
  for (auto& d : deferred) {
    StartTransfer(d.identity, d.request_id, d.transfer_id, d.prepares_version, std::move(d.target),
                  std::move(d.ranges), /*repair=*/true);
  }
  notifier_->OnRing();
}

void Server::FinishTransfers() {
  if (!ring_) return;
  for (auto it = outgoing_.begin(); it != outgoing_.end();) {
    OutgoingTransfer& t = *it->second;
    if (t.repair) {
      // Nothing to delete: the source keeps the ranges it repaired.
      it = t.done_reported ? outgoing_.erase(it) : std::next(it);
      continue;
    }
    if (t.prepares_version > ring_->version() || !t.forwards.empty()) {
      ++it;
      continue;
    }
    // The ring this transfer prepared (or a later one) is in force here: the
    // ranges now belong to the target. Delete what this node no longer holds.
    if (write_range_) {
      auto held = ring_->ReadRangeOf(self_);
      uint64_t deleted = 0;
      Status s = store_->DeleteRanges(
          t.ranges, [&](const Hash128& pos) { return held.ok() && held->Contains(pos); },
          &deleted);
      if (!s.ok()) {
        spdlog::error("transfer {}: deleting handed-off data failed: {}", t.id, s.ToString());
      } else {
        spdlog::info("transfer {}: deleted {} handed-off keys", t.id, deleted);
      }
      cache_ = ValueCache(cache_.capacity(), cache_.strategy());  // drop anything stale
    }
    it = outgoing_.erase(it);
  }
}

void Server::ProcessPeer() {
  // Consecutive Replicates are applied with one group commit; anything else
  // first applies the run before it, so messages take effect in order. The
  // last run waits in deferred_run_ for this turn's client batch.
  std::vector<std::pair<zmq::message_t, ReplicateMessage>>& run = deferred_run_;
  ApplyDeferredReplicates();
  for (int i = 0; i < 256; ++i) {
    size_t total = RecvMultipart(peer_, &frames_, 3, zmq::recv_flags::dontwait);
    if (total == 0) break;
    if (total != 2) {
      spdlog::warn("peer port: dropping a {}-frame message", total);
      continue;
    }
    try {
      const bool readable = peer_reader_.Reset(frames_[1]).ok();
      bool replicate = false;
      ReplicateMessage m;
      Status s = readable ? ReadUntrusted([&]() -> Status {
        auto msg = peer_reader_.Root<wire::PeerMessage>();
        if (msg.getVersion() != wire::PEER_VERSION || !msg.isReplicate()) return Status::Ok();
        replicate = true;
        return ReadReplicate(msg, kMaxKeyBytes, &m);
      })
                             : Status::Ok();
      if (replicate) {
        if (!s.ok()) {
          spdlog::warn("peer port: bad replicate message: {}", s.message());
        } else {
          run.emplace_back(std::move(frames_[0]), std::move(m));
        }
        continue;
      }
      if (!run.empty()) ApplyReplicates(run);
      HandlePeerMessage(frames_[0], frames_[1]);
    } catch (const std::exception& e) {
      spdlog::error("internal error handling a peer message: {}", e.what());
    }
  }
}

void Server::HandlePeerMessage(const zmq::message_t& identity, const zmq::message_t& frame) {
  auto reader = FrameReader::Open(frame);
  if (!reader.ok()) {
    spdlog::warn("peer port: bad message: {}", reader.status().message());
    return;
  }
  // Decoded inside ReadUntrusted; acted on afterwards (actions may throw for
  // their own reasons and must not be reported as malformed input).
  enum class Kind { kNone, kStart, kAbort, kChunk, kForward } kind = Kind::kNone;
  uint64_t request_id = 0, transfer_id = 0, prepares = 0, index = 0;
  NodeAddress target;
  RangeList ranges;
  std::vector<WriteOp> entries;
  bool last = false, repair = false;
  Status s = ReadUntrusted([&]() -> Status {
    auto msg = (*reader)->Root<wire::PeerMessage>();
    if (msg.getVersion() != wire::PEER_VERSION) {
      return Status::InvalidArgument("peer version " + std::to_string(msg.getVersion()));
    }
    request_id = msg.getRequestId();
    switch (msg.which()) {
      case wire::PeerMessage::TRANSFER_START: {
        auto st = msg.getTransferStart();
        kind = Kind::kStart;
        transfer_id = st.getTransferId();
        prepares = st.getPreparesVersion();
        repair = st.getRepair();
        target = ReadAddress(st.getTarget());
        return ReadRanges(st.getRanges(), &ranges);
      }
      case wire::PeerMessage::TRANSFER_ABORT:
        kind = Kind::kAbort;
        transfer_id = msg.getTransferAbort();
        return Status::Ok();
      case wire::PeerMessage::CHUNK: {
        auto c = msg.getChunk();
        kind = Kind::kChunk;
        transfer_id = c.getTransferId();
        index = c.getIndex();
        last = c.getLast();
        entries = ReadEntries(c.getEntries());
        return ReadRanges(c.getRanges(), &ranges);
      }
      case wire::PeerMessage::FORWARD: {
        auto f = msg.getForward();
        kind = Kind::kForward;
        transfer_id = f.getTransferId();
        entries = ReadEntries(f.getEntries());
        return Status::Ok();
      }
      default:
        return Status::InvalidArgument("unexpected peer message on the peer port");
    }
  });
  if (!s.ok()) {
    spdlog::warn("peer port: {}", s.message());
    return;
  }
  for (const auto& e : entries) {
    if (e.key.empty() || e.key.size() > kMaxKeyBytes) {
      spdlog::warn("peer port: transfer {} carries a key of {} bytes; refused", transfer_id,
                   e.key.size());
      zmq::message_t id(identity.data(), identity.size());
      zmq::message_t ack = EncodeAck(request_id, transfer_id,
                                     Status::InvalidArgument("key out of limits"));
      (void)peer_.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      (void)peer_.send(ack, zmq::send_flags::dontwait);
      return;
    }
  }
  switch (kind) {
    case Kind::kStart:
      StartTransfer(identity, request_id, transfer_id, prepares, std::move(target),
                    std::move(ranges), repair);
      break;
    case Kind::kAbort: AbortTransfer(transfer_id, "aborted by the ECS", /*by_ecs=*/true); break;
    case Kind::kChunk:
    case Kind::kForward: {
      Status applied = kind == Kind::kChunk
                           ? ApplyChunk(transfer_id, index, std::move(ranges), std::move(entries),
                                        last)
                           : ApplyForward(transfer_id, std::move(entries));
      zmq::message_t id(identity.data(), identity.size());
      zmq::message_t ack = EncodeAck(request_id, transfer_id, applied);
      (void)peer_.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      (void)peer_.send(ack, zmq::send_flags::dontwait);
      break;
    }
    case Kind::kNone: break;
  }
}

void Server::StartTransfer(const zmq::message_t& identity, uint64_t request_id,
                           uint64_t transfer_id, uint64_t prepares_version, NodeAddress target,
                           RangeList ranges, bool repair) {
  if (repair && (!ring_ || ring_->version() < prepares_version)) {
    // The target gets live writes through replication only once this node
    // has applied the ring that makes it a replica: start then.
    spdlog::info("transfer {}: repair for ring v{} waits until this node has applied it",
                 transfer_id, prepares_version);
    DeferredStart d;
    d.identity.rebuild(identity.data(), identity.size());
    d.request_id = request_id;
    d.transfer_id = transfer_id;
    d.prepares_version = prepares_version;
    d.target = std::move(target);
    d.ranges = std::move(ranges);
    std::erase_if(deferred_repairs_,
                  [&](const DeferredStart& x) { return x.transfer_id == transfer_id; });
    deferred_repairs_.push_back(std::move(d));
    return;
  }
  auto existing = outgoing_.find(transfer_id);
  if (existing != outgoing_.end()) {
    OutgoingTransfer& t = *existing->second;
    t.ecs_identity.rebuild(identity.data(), identity.size());
    t.ecs_request_id = request_id;
    if (t.done_reported) {
      t.done_reported = false;
      ReportIfDone(t);
    }
    return;
  }
  auto t = std::make_unique<OutgoingTransfer>();
  t->id = transfer_id;
  t->prepares_version = prepares_version;
  t->target = target;
  t->ranges = std::move(ranges);
  t->ecs_identity.rebuild(identity.data(), identity.size());
  t->ecs_request_id = request_id;
  t->started = t->last_progress = Clock::now();
  t->repair = repair;
  if (repair) t->rate_bytes_per_s = static_cast<uint64_t>(config_.repair_rate_mb) << 20;
  spdlog::info("transfer {}: {} {} range(s) to {} (peer port {}) for ring v{}", t->id,
               repair ? "re-replicating" : "streaming", t->ranges.size(), target.ToString(),
               target.peer_port, prepares_version);
  auto snapshot = store_->SnapshotRanges(t->ranges);
  if (!snapshot.ok()) {
    spdlog::error("transfer {}: cannot snapshot: {}", t->id, snapshot.status().ToString());
    zmq::message_t id(identity.data(), identity.size());
    zmq::message_t done = EncodeTransferDone(request_id, *t, snapshot.status());
    (void)peer_.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    (void)peer_.send(done, zmq::send_flags::dontwait);
    return;
  }
  t->snapshot = std::move(*snapshot);
  t->socket = &PeerLink(target);
  OutgoingTransfer& ref = *t;
  outgoing_[transfer_id] = std::move(t);
  // Chunk 0 goes out now, before any forward of this transfer can, so the
  // target clears the ranges before it applies anything.
  PumpTransfer(ref);
}

void Server::PumpTransfer(OutgoingTransfer& t) {
  size_t chunk_bytes = static_cast<size_t>(config_.handoff_chunk_kb) << 10;
  while (!t.snapshot_exhausted &&
         t.chunks_in_flight.size() < static_cast<size_t>(config_.handoff_window)) {
    if (t.rate_bytes_per_s > 0) {
      // Re-replication shares the node with clients: stay under the cap
      // (ClusterTick pumps again).
      double allowed = Seconds(Clock::now() - t.started) * static_cast<double>(t.rate_bytes_per_s);
      if (static_cast<double>(t.bytes) > allowed) return;
    }
    std::vector<std::pair<std::string, std::string>> entries;
    std::vector<uint64_t> versions;
    auto done = t.snapshot->Next(chunk_bytes, &entries, &versions);
    if (!done.ok()) {
      spdlog::error("transfer {}: snapshot read failed: {}", t.id, done.status().ToString());
      zmq::message_t id(t.ecs_identity.data(), t.ecs_identity.size());
      zmq::message_t msg = EncodeTransferDone(t.ecs_request_id, t, done.status());
      (void)peer_.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      (void)peer_.send(msg, zmq::send_flags::dontwait);
      t.snapshot_exhausted = true;
      t.done_reported = true;
      return;
    }
    uint64_t rid = t.next_request_id++;
    for (const auto& [k, v] : entries) t.bytes += k.size() + v.size();
    t.entries += entries.size();
    zmq::message_t chunk = EncodeChunk(rid, t, t.next_chunk++, entries, *done, versions);
    // At most --handoff-window chunks are unacknowledged, far below the
    // socket's high-water mark, so this send does not block.
    (void)t.socket->send(chunk, zmq::send_flags::dontwait);
    t.chunks_in_flight.insert(rid);
    if (*done) {
      t.snapshot_exhausted = true;
      t.snapshot.reset();  // release the read transaction
    }
  }
}

zmq::socket_t& Server::PeerLink(const NodeAddress& peer) {
  std::string key = peer.host + ":" + std::to_string(peer.peer_port);
  auto it = peer_links_.find(key);
  if (it != peer_links_.end()) return it->second;
  SocketOptions options;
  options.send_hwm = 10000;
  zmq::socket_t socket = MakeSocket(ctx_, zmq::socket_type::dealer, options);
  socket.set(zmq::sockopt::linger, 0);
  socket.connect(TcpEndpoint(peer.host, peer.peer_port));
  return peer_links_.emplace(key, std::move(socket)).first->second;
}

void Server::OnPeerLink(zmq::socket_t& link) {
  std::vector<uint64_t> touched;
  for (int i = 0; i < 1024; ++i) {
    size_t total = RecvMultipart(link, &link_frames_, 2, zmq::recv_flags::dontwait);
    if (total == 0) break;
    if (total != 1) continue;
    Status opened = link_reader_.Reset(link_frames_[0]);
    uint64_t rid = 0, transfer_id = 0;
    bool ok = false, is_replicate_ack = false;
    std::string reason;
    ReplicateAckMessage rack;
    Status s = opened.ok() ? ReadUntrusted([&]() -> Status {
      auto msg = link_reader_.Root<wire::PeerMessage>();
      if (msg.getVersion() != wire::PEER_VERSION) return Status::InvalidArgument("bad version");
      rid = msg.getRequestId();
      if (msg.isReplicateAck()) {
        is_replicate_ack = true;
        rack = ReadReplicateAck(msg.getReplicateAck());
        return Status::Ok();
      }
      if (!msg.isAck()) return Status::InvalidArgument("expected an ack");
      transfer_id = msg.getAck().getTransferId();
      ok = msg.getAck().getOk();
      reason = msg.getAck().getReason();
      return Status::Ok();
    })
                           : opened;
    if (!s.ok()) {
      spdlog::warn("peer link: bad message: {}", s.message());
      continue;
    }
    if (is_replicate_ack) {
      OnReplicateAck(rack);
      continue;
    }
    auto t = outgoing_.find(transfer_id);
    if (t == outgoing_.end()) continue;  // a transfer that has ended
    OnTransferAck(*t->second, rid, ok, reason);
    touched.push_back(transfer_id);
  }
  for (uint64_t id : touched) {
    auto t = outgoing_.find(id);
    if (t == outgoing_.end()) continue;
    PumpTransfer(*t->second);
    ReportIfDone(*t->second);
  }
  if (!touched.empty()) FinishTransfers();
}

void Server::OnTransferAck(OutgoingTransfer& t, uint64_t rid, bool ok, const std::string& reason) {
  t.last_progress = Clock::now();
  if (t.chunks_in_flight.erase(rid) > 0) {
    if (!ok) AbortTransfer(t.id, "target refused a chunk: " + reason, /*by_ecs=*/false);
  } else if (auto f = t.forwards.find(rid); f != t.forwards.end()) {
    std::vector<uint64_t> ids = std::move(f->second.hold_ids);
    t.forwards.erase(f);
    SettleForward(ids, ok ? Status::Ok() : Status::Unavailable("hand-off target: " + reason));
  }
}

void Server::ReportIfDone(OutgoingTransfer& t) {
  if (t.done_reported || !t.snapshot_acked()) return;
  t.done_reported = true;
  double secs = Seconds(Clock::now() - t.started);
  spdlog::info("transfer {}: snapshot of {} entries ({:.1f} MB) acknowledged in {:.2f} s ({:.1f} "
               "MB/s)",
               t.id, t.entries, t.bytes / 1e6, secs, secs > 0 ? t.bytes / 1e6 / secs : 0.0);
  zmq::message_t id(t.ecs_identity.data(), t.ecs_identity.size());
  zmq::message_t done = EncodeTransferDone(t.ecs_request_id, t, Status::Ok());
  (void)peer_.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
  (void)peer_.send(done, zmq::send_flags::dontwait);
}

void Server::AbortTransfer(uint64_t transfer_id, const std::string& why, bool by_ecs) {
  auto it = outgoing_.find(transfer_id);
  if (it == outgoing_.end()) return;
  OutgoingTransfer& t = *it->second;
  spdlog::warn("transfer {} to {}: {}", t.id, t.target.ToString(), why);
  if (!t.done_reported) {
    // Tell the ECS, so the transition is aborted rather than waiting out its timeout.
    zmq::message_t id(t.ecs_identity.data(), t.ecs_identity.size());
    zmq::message_t done = EncodeTransferDone(t.ecs_request_id, t, Status::Unavailable(why));
    (void)peer_.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    (void)peer_.send(done, zmq::send_flags::dontwait);
  }
  // Aborted by the ECS, or failed before this node said it was done: the
  // transition cannot commit, the ranges stay here, and the parked writes are
  // durable where they belong. Failed after TransferDone: the ECS may already
  // have given the ranges to the target, which lacks these writes, so their
  // outcome is unknown, and the ranges are locked until the next ring.
  bool lock = !by_ecs && t.done_reported;
  Status outcome =
      lock ? Status::Unavailable("hand-off target stopped accepting writes") : Status::Ok();
  for (auto& [rid, fwd] : t.forwards) SettleForward(fwd.hold_ids, outcome);
  t.forwards.clear();
  if (lock) {
    t.broken = true;
    return;
  }
  outgoing_.erase(it);
}

Status Server::ApplyChunk(uint64_t transfer_id, uint64_t index, RangeList ranges,
                          std::vector<WriteOp> entries, bool last) {
  IncomingTransfer& in = incoming_[transfer_id];
  in.last_seen = Clock::now();
  if (index == 0) {
    in.ranges = std::move(ranges);
    in.forwarded.clear();
    in.snapshot_complete = false;
    uint64_t deleted = 0;
    // Writes replicated here before this first chunk are newer than the
    // snapshot: kept, and the snapshot's entries for them dropped.
    std::set<Hash128> keep;
    for (const auto& key : early_replicated_) {
      Hash128 pos = KeyPosition(key);
      if (!RangesContain(in.ranges, pos)) continue;
      keep.insert(pos);
      in.forwarded.insert(key);
    }
    Status s = store_->DeleteRanges(
        in.ranges, [&](const Hash128& pos) { return keep.count(pos) != 0; }, &deleted);
    if (!s.ok()) return s;
    if (deleted > 0) spdlog::info("transfer {}: cleared {} stale keys", transfer_id, deleted);
    // The read cache may still hold values of the keys just cleared (this node
    // served them in an earlier ring): it must never answer with them.
    cache_ = ValueCache(cache_.capacity(), cache_.strategy());
    spdlog::info("transfer {}: receiving {} range(s)", transfer_id, in.ranges.size());
  }
  if (!in.forwarded.empty()) {
    std::erase_if(entries, [&](const WriteOp& e) { return in.forwarded.count(std::string(e.key)); });
  }
  Status s = store_->Write(entries, nullptr);
  if (!s.ok()) return s;
  for (const auto& e : entries) {
    cache_.Erase(e.key);
    spdlog::trace("transfer {} chunk {}: {} {} version {}", transfer_id, index,
                  e.is_delete ? "delete" : "put", e.key, e.version);
  }
  if (last) {
    in.snapshot_complete = true;
    in.forwarded.clear();
    // These ranges are in: writes replicated into them need no more care.
    std::erase_if(early_replicated_,
                  [&](const std::string& key) { return RangesContain(in.ranges, KeyPosition(key)); });
    received_ranges_.insert(received_ranges_.end(), in.ranges.begin(), in.ranges.end());
    received_since_ring_.insert(received_since_ring_.end(), in.ranges.begin(), in.ranges.end());
    spdlog::info("transfer {}: snapshot received", transfer_id);
  }
  return Status::Ok();
}

Status Server::ApplyForward(uint64_t transfer_id, std::vector<WriteOp> entries) {
  Status s = store_->Write(entries, nullptr);
  if (!s.ok()) return s;
  auto it = incoming_.find(transfer_id);
  for (const auto& e : entries) {
    cache_.Erase(e.key);
    spdlog::trace("transfer {} forward: {} {} version {}", transfer_id,
                  e.is_delete ? "delete" : "put", e.key, e.version);
    if (it != incoming_.end() && !it->second.snapshot_complete) {
      it->second.forwarded.insert(std::string(e.key));
    }
  }
  if (it != incoming_.end()) it->second.last_seen = Clock::now();
  return Status::Ok();
}

void Server::ForwardWrites(const std::vector<WriteOp>& ops, const std::vector<uint64_t>& hold_ids) {
  std::vector<uint64_t> stalled;
  std::vector<Hash128> positions;
  positions.reserve(ops.size());
  for (const auto& op : ops) positions.push_back(KeyPosition(op.key));
  for (auto& [tid, t] : outgoing_) {
    // Broken: its ranges are refused before they get here. Repair: the
    // target is a replica and gets the writes through replication.
    if (t->broken || t->repair) continue;
    std::vector<WriteOp> fwd;
    std::vector<uint64_t> ids;
    for (size_t i = 0; i < ops.size(); ++i) {
      if (!RangesContain(t->ranges, positions[i])) continue;
      held_[hold_ids[i]].waiting++;
      fwd.push_back(ops[i]);
      ids.push_back(hold_ids[i]);
    }
    if (fwd.empty()) continue;
    uint64_t rid = t->next_request_id++;
    zmq::message_t msg = EncodeForward(rid, t->id, fwd);
    t->forwards[rid] = InFlightForward{std::move(ids), Clock::now()};
    if (!t->socket->send(msg, zmq::send_flags::dontwait)) {
      // The target is not taking messages (gone, or far behind): never block
      // the event loop on it. The transfer fails; the ECS aborts the
      // transition, so these writes stay (durably) with this node.
      stalled.push_back(tid);
    }
  }
  for (uint64_t tid : stalled) AbortTransfer(tid, "target is not accepting forwarded writes", /*by_ecs=*/false);
}

void Server::SettleForward(const std::vector<uint64_t>& hold_ids, const Status& outcome) {
  for (uint64_t id : hold_ids) {
    auto it = held_.find(id);
    if (it == held_.end()) continue;  // already answered (an earlier failure)
    HeldReply& h = it->second;
    if (outcome.ok() && --h.waiting > 0) continue;
    if (!h.silent) {
      Reply r;
      r.request_id = h.request_id;
      r.key = h.key;
      std::string reason;  // outlives r, which only points at it
      if (outcome.ok()) {
        r.status = h.status;
      } else {
        // Applied here already: never a refusal, which would invite a retry.
        r.status = h.failure_status;
        reason = "outcome unknown: " + outcome.message();
        r.reason = reason;
      }
      Send(h.identity, r);
    }
    auto u = unacked_keys_.find(h.key);
    if (u != unacked_keys_.end()) {
      UnackedKey& k = u->second;
      std::string_view writer(static_cast<const char*>(h.identity.data()), h.identity.size());
      auto w = std::find(k.writers.begin(), k.writers.end(), writer);
      if (w != k.writers.end()) k.writers.erase(w);
      // Acknowledged: gets from other clients show it from now on (an older
      // write settling later does not take that back). An unknown outcome
      // leaves the image: the write may yet turn out lost.
      if (outcome.ok() && k.has_image && !h.silent && id > k.image_hold) {
        k.image_hold = id;
        k.status = h.deleted ? WireStatus::GET_ERROR : WireStatus::GET_SUCCESS;
        k.value.swap(h.value);  // h is retired below: no copy, and both keep a buffer
        k.reason.clear();
      }
    }
    notifier_->Settle(id, outcome.ok());
    ReleaseKey(h.key);
    RetireHold(it);
  }
}

void Server::ClusterTick() {
  auto now = Clock::now();
  link_->Tick(now);
  ReplicationTick(now);
  for (auto& [tid, t] : outgoing_) {
    if (t->rate_bytes_per_s > 0 && !t->snapshot_exhausted) PumpTransfer(*t);
  }
  auto timeout = std::chrono::milliseconds(config_.forward_timeout_ms);
  for (auto& [tid, t] : outgoing_) {
    for (auto f = t->forwards.begin(); f != t->forwards.end();) {
      if (now - f->second.sent < timeout) {
        ++f;
        continue;
      }
      std::vector<uint64_t> ids = std::move(f->second.hold_ids);
      f = t->forwards.erase(f);
      SettleForward(ids, Status::Unavailable("hand-off target " + t->target.ToString() +
                                             " did not confirm within " +
                                             std::to_string(config_.forward_timeout_ms) + " ms"));
    }
  }
  FinishTransfers();
  for (auto it = incoming_.begin(); it != incoming_.end();) {
    bool stale = it->second.snapshot_complete && now - it->second.last_seen > std::chrono::minutes(1);
    it = stale ? incoming_.erase(it) : std::next(it);
  }
}

bool Server::ReadyToExit() const {
  return leaving_ && link_->leave_done() && ring_ && !write_range_ && held_.empty();
}

}  // namespace kv

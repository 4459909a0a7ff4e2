// The cluster half of the Server: applying rings, the peer protocol and
// hand-off (see kvnode/handoff.h for the protocol in one paragraph).
#include <spdlog/spdlog.h>

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
  ring_ = std::move(ring);
  auto range = ring_->WriteRangeOf(self_);
  bool was_in = write_range_.has_value();
  if (range.ok()) {
    write_range_ = *range;
  } else {
    write_range_.reset();
  }
  spdlog::info("applied ring v{} ({} nodes): this node {}", ring_->version(), ring_->size(),
               write_range_ ? "serves (" + write_range_->from.ToHex() + ", " +
                                  write_range_->to.ToHex() + "]"
                            : std::string(was_in ? "has left the ring" : "is not in the ring"));
  FinishTransfers();
}

void Server::FinishTransfers() {
  if (!ring_) return;
  for (auto it = outgoing_.begin(); it != outgoing_.end();) {
    OutgoingTransfer& t = *it->second;
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
      for (const auto& [from, to] : t.ranges) (void)from, (void)to;
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
  for (int i = 0; i < 256; ++i) {
    size_t total = RecvMultipart(peer_, &frames_, 3, zmq::recv_flags::dontwait);
    if (total == 0) break;
    if (total != 2) {
      spdlog::warn("peer port: dropping a {}-frame message", total);
      continue;
    }
    try {
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
  bool last = false;
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
                    std::move(ranges));
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
                           RangeList ranges) {
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
  spdlog::info("transfer {}: streaming {} range(s) to {} (peer port {}) for ring v{}", t->id,
               t->ranges.size(), target.ToString(), target.peer_port, prepares_version);
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
  SocketOptions options;
  options.send_hwm = 1000;
  t->socket = MakeSocket(ctx_, zmq::socket_type::dealer, options);
  t->socket.connect(TcpEndpoint(target.host, target.peer_port));
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
    std::vector<std::pair<std::string, std::string>> entries;
    auto done = t.snapshot->Next(chunk_bytes, &entries);
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
    zmq::message_t chunk = EncodeChunk(rid, t, t.next_chunk++, entries, *done);
    // At most --handoff-window chunks are unacknowledged, far below the
    // socket's high-water mark, so this send does not block.
    (void)t.socket.send(chunk, zmq::send_flags::dontwait);
    t.chunks_in_flight.insert(rid);
    if (*done) {
      t.snapshot_exhausted = true;
      t.snapshot.reset();  // release the read transaction
    }
  }
}

void Server::OnTransferSocket(OutgoingTransfer& t) {
  uint64_t id = t.id;
  for (int i = 0; i < 256; ++i) {
    std::vector<zmq::message_t> frames;
    size_t total = RecvMultipart(t.socket, &frames, 2, zmq::recv_flags::dontwait);
    if (total == 0) break;
    if (total != 1) continue;
    auto reader = FrameReader::Open(frames[0]);
    uint64_t rid = 0;
    bool ok = false;
    std::string reason;
    Status s = reader.ok() ? ReadUntrusted([&]() -> Status {
      auto msg = (*reader)->Root<wire::PeerMessage>();
      if (!msg.isAck()) return Status::InvalidArgument("expected an ack");
      rid = msg.getRequestId();
      ok = msg.getAck().getOk();
      reason = msg.getAck().getReason();
      return Status::Ok();
    })
                           : reader.status();
    if (!s.ok()) {
      spdlog::warn("transfer {}: bad message from the target: {}", id, s.message());
      continue;
    }
    t.last_progress = Clock::now();
    if (t.chunks_in_flight.erase(rid) > 0) {
      if (!ok) {
        AbortTransfer(id, "target refused a chunk: " + reason, /*by_ecs=*/false);
        return;  // t is gone
      }
    } else if (auto f = t.forwards.find(rid); f != t.forwards.end()) {
      std::vector<uint64_t> ids = std::move(f->second.hold_ids);
      t.forwards.erase(f);
      SettleForward(ids, ok ? Status::Ok() : Status::Unavailable("hand-off target: " + reason));
    }
  }
  PumpTransfer(t);
  ReportIfDone(t);
  FinishTransfers();  // may erase t
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
    Status s = store_->DeleteRanges(in.ranges, [](const Hash128&) { return false; }, &deleted);
    if (!s.ok()) return s;
    if (deleted > 0) spdlog::info("transfer {}: cleared {} stale keys", transfer_id, deleted);
    spdlog::info("transfer {}: receiving {} range(s)", transfer_id, in.ranges.size());
  }
  if (!in.forwarded.empty()) {
    std::erase_if(entries, [&](const WriteOp& e) { return in.forwarded.count(std::string(e.key)); });
  }
  Status s = store_->Write(entries, nullptr);
  if (!s.ok()) return s;
  for (const auto& e : entries) cache_.Erase(e.key);
  if (last) {
    in.snapshot_complete = true;
    in.forwarded.clear();
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
    if (it != incoming_.end() && !it->second.snapshot_complete) {
      it->second.forwarded.insert(std::string(e.key));
    }
  }
  if (it != incoming_.end()) it->second.last_seen = Clock::now();
  return Status::Ok();
}

std::vector<bool> Server::ForwardWrites(const std::vector<WriteOp>& ops,
                                        std::vector<HeldReply>& parked) {
  std::vector<uint64_t> stalled;
  std::vector<bool> held(ops.size(), false);
  std::vector<uint64_t> hold_id(ops.size(), 0);
  std::vector<Hash128> positions;
  positions.reserve(ops.size());
  for (const auto& op : ops) positions.push_back(KeyPosition(op.key));
  for (auto& [tid, t] : outgoing_) {
    if (t->broken) continue;  // its ranges are refused before they get here
    std::vector<WriteOp> fwd;
    std::vector<uint64_t> ids;
    for (size_t i = 0; i < ops.size(); ++i) {
      if (!RangesContain(t->ranges, positions[i])) continue;
      if (hold_id[i] == 0) {
        hold_id[i] = next_hold_id_++;
        held_[hold_id[i]] = std::move(parked[i]);
        held[i] = true;
      }
      held_[hold_id[i]].waiting++;
      fwd.push_back(ops[i]);
      ids.push_back(hold_id[i]);
    }
    if (fwd.empty()) continue;
    uint64_t rid = t->next_request_id++;
    zmq::message_t msg = EncodeForward(rid, t->id, fwd);
    t->forwards[rid] = InFlightForward{std::move(ids), Clock::now()};
    if (!t->socket.send(msg, zmq::send_flags::dontwait)) {
      // The target is not taking messages (gone, or far behind): never block
      // the event loop on it. The transfer fails; the ECS aborts the
      // transition, so these writes stay (durably) with this node.
      stalled.push_back(tid);
    }
  }
  for (uint64_t tid : stalled) AbortTransfer(tid, "target is not accepting forwarded writes", /*by_ecs=*/false);
  return held;
}

void Server::SettleForward(const std::vector<uint64_t>& hold_ids, const Status& outcome) {
  for (uint64_t id : hold_ids) {
    auto it = held_.find(id);
    if (it == held_.end()) continue;  // already answered (an earlier failure)
    HeldReply& h = it->second;
    if (outcome.ok() && --h.waiting > 0) continue;
    Reply r;
    r.request_id = h.request_id;
    r.key = h.key;
    std::string reason;  // outlives r, which only points at it
    if (outcome.ok()) {
      r.status = h.status;
    } else {
      r.status = h.failure_status;
      reason = "outcome unknown: " + outcome.message();
      r.reason = reason;
    }
    Send(h.identity, r);
    held_.erase(it);
  }
}

void Server::ClusterTick() {
  auto now = Clock::now();
  link_->Tick(now);
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

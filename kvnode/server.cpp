#include "kvnode/server.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "schema/framing.h"
#include "schema/socket.h"

namespace kv {
namespace {

WireStatus ErrorStatusFor(Op op) {
  switch (op) {
    case Op::kPut: return WireStatus::PUT_ERROR;
    case Op::kGet: return WireStatus::GET_ERROR;
    case Op::kDelete: return WireStatus::DELETE_ERROR;
    default: return WireStatus::BAD_REQUEST;
  }
}

Status WritePortFile(const std::string& path, uint16_t port, uint16_t peer_port) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << " " << peer_port << "\n";
    if (!out) return Status::IOError("cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::IOError("cannot rename " + tmp + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

Server::Server(NodeConfig config)
    : config_(std::move(config)),
      cache_(static_cast<size_t>(config_.cache_entries),
             ParseCacheStrategy(config_.cache_strategy).ok()
                 ? *ParseCacheStrategy(config_.cache_strategy)
                 : CacheStrategy::kLru) {}

Server::~Server() {
  for (int fd : stop_pipe_) {
    if (fd >= 0) close(fd);
  }
}

Status Server::Start() {
  if (pipe2(stop_pipe_, O_NONBLOCK | O_CLOEXEC) != 0) {
    return Status::IOError(std::string("pipe: ") + strerror(errno));
  }
  StoreOptions store_options;
  store_options.dir = config_.data_dir;
  store_options.sync = config_.sync == "always";
  store_options.map_size_bytes = static_cast<uint64_t>(config_.map_size_mb) << 20;
  store_options.memtable_bytes = static_cast<uint64_t>(config_.memtable_mb) << 20;
  auto store = Store::Open(store_options);
  if (!store.ok()) return store.status();
  store_ = std::move(*store);

  SocketOptions options;
  // Values up to twice the limit still arrive and get a put_error with a
  // reason; anything larger is cut off by ZeroMQ (the peer is disconnected).
  options.max_msg_bytes = 2 * config_.max_value_bytes + 64 * 1024;
  socket_ = MakeSocket(ctx_, zmq::socket_type::router, options);
  try {
    socket_.bind(TcpEndpoint(config_.address, config_.port));
  } catch (const zmq::error_t& e) {
    return Status::Unavailable("cannot bind " + config_.address + ":" +
                               std::to_string(config_.port) + ": " + e.what());
  }
  auto port = BoundPort(socket_);
  if (!port.ok()) return port.status();
  port_ = *port;

  uint16_t want_peer = 0;
  if (config_.peer_port >= 0) {
    want_peer = static_cast<uint16_t>(config_.peer_port);
  } else if (config_.port != 0) {
    want_peer = static_cast<uint16_t>(config_.port + 1);
  }
  SocketOptions peer_options;
  peer_options.max_msg_bytes = 4 * (config_.handoff_chunk_kb << 10) + 4 * config_.max_value_bytes;
  peer_ = MakeSocket(ctx_, zmq::socket_type::router, peer_options);
  try {
    peer_.bind(TcpEndpoint(config_.address, want_peer));
  } catch (const zmq::error_t& e) {
    return Status::Unavailable("cannot bind peer port " + config_.address + ":" +
                               std::to_string(want_peer) + ": " + e.what());
  }
  auto bound_peer = BoundPort(peer_);
  if (!bound_peer.ok()) return bound_peer.status();
  peer_port_ = *bound_peer;

  if (Status s = StartNotifier(); !s.ok()) return s;

  self_.host = config_.advertise.empty() ? config_.address : config_.advertise;
  self_.port = port_;
  self_.peer_port = peer_port_;
  position_ = NodePosition(self_.host, port_);

  if (!config_.broker_host.empty()) {
    ClusterLinkOptions link;
    link.broker_host = config_.broker_host;
    link.broker_port = config_.broker_port;
    link.broker_pub_port = config_.broker_pub_port >= 0
                               ? static_cast<uint16_t>(config_.broker_pub_port)
                               : static_cast<uint16_t>(config_.broker_port + 1);
    link.self = self_;
    link.retry = std::chrono::milliseconds(config_.join_retry_ms);
    link.heartbeat = std::chrono::milliseconds(config_.heartbeat_ms);
    link.lease = std::chrono::milliseconds(config_.lease_ms);
    link_ = std::make_unique<ClusterLink>(ctx_, link);
    // A flush or a range delete for hand-off can block this loop for longer
    // than the failure timeout: heartbeats keep going meanwhile.
    store_->SetBusyHook([this] {
      if (link_) link_->KeepAlive(Clock::now());
    });
  }

  auto count = store_->Count();
  spdlog::info(
      "kvnode listening on {}:{} (peer port {}, notify port {}, data {}, {} keys, last seq {}, "
      "sync {}, cache {} x {}, {})",
      config_.address, port_, peer_port_, notifier_->port(), config_.data_dir,
      count.ok() ? *count : 0, store_->last_seq(), config_.sync, cache_.capacity(),
      CacheStrategyName(cache_.strategy()),
      cluster_mode() ? "joining broker " + config_.broker_host + ":" +
                           std::to_string(config_.broker_port) + " as " + self_.ToString()
                     : std::string("standalone"));
  if (!config_.port_file.empty()) {
    Status s = WritePortFile(config_.port_file, port_, peer_port_);
    if (!s.ok()) return s;
  }
  if (cluster_mode()) {
    link_->Start();
    link_->RequestJoin();
  }
  return Status::Ok();
}

void Server::RequestStop() {
  char c = 1;
  ssize_t n = write(stop_pipe_[1], &c, 1);  // async-signal-safe
  (void)n;
}

Status Server::Run() {
  std::vector<zmq::pollitem_t> items;
  for (;;) {
    items.clear();
    items.push_back({static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0});
    items.push_back({nullptr, stop_pipe_[0], ZMQ_POLLIN, 0});
    items.push_back({static_cast<void*>(store_->flush_events()), 0, ZMQ_POLLIN, 0});
    items.push_back({static_cast<void*>(peer_), 0, ZMQ_POLLIN, 0});
    constexpr size_t kLink = 4;
    if (cluster_mode()) link_->AppendPollItems(&items);
    size_t links_at = items.size();
    std::vector<zmq::socket_t*> polled;  // links are never closed while running
    for (auto& [key, link] : peer_links_) {
      items.push_back({static_cast<void*>(link), 0, ZMQ_POLLIN, 0});
      polled.push_back(&link);
    }
    const size_t notify_at = items.size();
    items.push_back(notifier_->PollItem());
    auto timeout = std::chrono::milliseconds(cluster_mode() ? 100 : -1);
    try {
      zmq::poll(items.data(), items.size(), timeout);
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      return Status::IOError(std::string("poll: ") + e.what());
    }
    if (items[1].revents & ZMQ_POLLIN) {
      char buf[16];
      while (read(stop_pipe_[0], buf, sizeof(buf)) > 0) ++stop_requests_;
      if (!cluster_mode() || stop_requests_ > 1 || !write_range_) break;
      if (!leaving_) {
        spdlog::info("leaving the cluster: handing data off before exiting");
        leaving_ = true;
        leave_deadline_ = Clock::now() + std::chrono::milliseconds(config_.leave_timeout_ms);
        link_->RequestLeave();
      }
    }
    try {
      if (items[2].revents & ZMQ_POLLIN) store_->OnFlushEvent();
      if (cluster_mode()) {
        for (size_t i = 0; i < polled.size(); ++i) {
          if (items[links_at + i].revents & ZMQ_POLLIN) OnPeerLink(*polled[i]);
        }
      }
      if (items[3].revents & ZMQ_POLLIN) ProcessPeer();
      if (cluster_mode()) {
        if (auto ring = link_->OnPoll(&items[kLink])) ApplyRing(std::move(ring));
      }
      if (items[0].revents & ZMQ_POLLIN) ProcessIncoming();
      ApplyDeferredReplicates();  // if no client batch took them along
      if (items[notify_at].revents & ZMQ_POLLIN) notifier_->OnReadable();
      if (cluster_mode()) ClusterTick();
    } catch (const std::exception& e) {
      // A bug, not bad input (that is handled where it is parsed): log it and
      // keep serving.
      spdlog::error("internal error in the event loop: {}", e.what());
    }
    FlushReplies();  // every reply this turn produced, one frame per client
    if (cluster_mode()) {
      if (leaving_ && ReadyToExit()) break;
      if (leaving_ && !link_->leave_refusal().empty()) {
        // E.g. the last node: its data has nowhere to go. It stops with its
        // data and stays in the ring, so it serves again when restarted.
        spdlog::warn("leave refused ({}); stopping without hand-off, still a ring member",
                     link_->leave_refusal());
        break;
      }
      if (leaving_ && Clock::now() > leave_deadline_) {
        spdlog::error("leave did not complete within {} ms; exiting anyway",
                      config_.leave_timeout_ms);
        break;
      }
    }
  }
  // Every batch is committed and answered before the loop polls again, so
  // nothing acknowledged is in flight here. Give queued replies a moment to
  // leave, flush the write-ahead log into LMDB and close.
  // Writes still waiting for a hand-off target are durable here, but whether
  // the target has them is unknown: their clients are told so.
  for (auto& [id, t] : outgoing_) {
    for (auto& [rid, fwd] : t->forwards) {
      SettleForward(fwd.hold_ids,
                    Status::Unavailable("node stopping before the hand-off target confirmed"));
    }
  }
  for (auto& stream : streams_) {
    DropStreamHolds(*stream, Status::Unavailable("node stopping before every replica confirmed"));
  }
  ApplyDeferredReplicates();
  FlushReplies();
  spdlog::info("kvnode stopping: flushing and closing (last seq {})", store_->last_seq());
  socket_.set(zmq::sockopt::linger, 1000);
  socket_.close();
  outgoing_.clear();
  peer_links_.clear();
  link_.reset();
  peer_.close();
  Status flushed = store_->FlushAll();
  if (!flushed.ok()) {
    spdlog::error("flush at shutdown failed (the write-ahead log still has every write): {}",
                  flushed.ToString());
  }
  store_.reset();
  spdlog::info("kvnode stopped");
  spdlog::default_logger()->flush();
  return Status::Ok();
}

void Server::ProcessIncoming() {
  size_t taken = 0;
  while (taken < static_cast<size_t>(config_.max_batch)) {
    size_t total = RecvMultipart(socket_, &frames_, 3, zmq::recv_flags::dontwait);
    if (total == 0) break;
    try {
      taken += HandleFrames(frames_, total);
    } catch (const std::exception& e) {
      // A bug, not bad input: log it and answer if we can.
      spdlog::error("internal error handling a request: {}", e.what());
      if (!frames_.empty()) SendBadRequest(frames_[0], 0, "internal error");
      ++taken;
    }
  }
  // Reads answered from the cache or the store leave now, not after the
  // group commit's fsync.
  FlushReplies();
  if (!batch_.empty()) CommitBatch();
}

size_t Server::HandleFrames(std::vector<zmq::message_t>& frames, size_t total) {
  if (total < 2) {
    spdlog::warn("dropping a message with {} frame(s): no identity to reply to", total);
    return 1;
  }
  const zmq::message_t& identity = frames[0];
  if (total != 2) {
    spdlog::warn("bad request: {} frames, expected identity + 1", total);
    SendBadRequest(identity, 0, "expected exactly 1 frame, got " + std::to_string(total - 1));
    return 1;
  }
  PackedReader reader(frames[1], scratch_);
  size_t handled = 0;
  do {
    Request request;
    uint64_t request_id = 0;
    Status s = reader.NextRequest(&request, &request_id);
    ++handled;
    if (!s.ok()) {
      spdlog::warn("bad request ({} bytes, message {} of the frame): {}", frames[1].size(),
                   reader.decoded(), s.message());
      SendBadRequest(identity, request_id, s.message());
      break;  // the rest of the frame cannot be trusted to be delimited
    }
    HandleRequest(identity, request);
  } while (!reader.done());
  return handled;
}

void Server::HandleRequest(const zmq::message_t& identity, const Request& request) {
  Status s = Validate(request);
  if (!s.ok()) {
    Reply reply;
    reply.request_id = request.request_id;
    reply.status = ErrorStatusFor(request.op);
    reply.key = request.key.substr(0, kMaxKeyBytes);
    reply.reason = s.message();
    Send(identity, reply);
    return;
  }
  if (auto refusal = CheckResponsible(request)) {
    Reply reply;
    reply.request_id = request.request_id;
    reply.status = *refusal;
    reply.key = request.key;
    reply.ring_version = ring_ ? ring_->version() : 0;
    Send(identity, reply);
    return;
  }
  if (TryAnswerNow(identity, request)) return;

  const bool write = request.op == Op::kPut || request.op == Op::kDelete;
  // A recycled request keeps its key and value buffers: assigning into them
  // allocates nothing for keys and values no longer than the last ones.
  Pending p;
  if (!spare_pending_.empty()) {
    p = std::move(spare_pending_.back());
    spare_pending_.pop_back();
  }
  p.identity.rebuild(identity.data(), identity.size());
  p.op = request.op;
  p.request_id = request.request_id;
  p.key.assign(request.key);
  p.value.assign(request.op == Op::kPut ? request.value : std::string_view());
  p.answer = WireStatus::GET_ERROR;
  if (request.op == Op::kGet) {
    // A get of a key written earlier in the batch (TryAnswerNow took every
    // other): it sees that write and none after it, and is answered once the
    // batch is durable.
    if (auto w = LastWriteInBatch(p.key)) {
      const Pending& last = batch_[*w];
      p.answer = last.op == Op::kPut ? WireStatus::GET_SUCCESS : WireStatus::GET_ERROR;
      if (last.op == Op::kPut) p.value = last.value;
    } else {
      std::string_view value;
      std::string reason;
      p.answer = ReadLatest(p.key, &value, &reason);
      p.value.assign(value);
    }
  }
  batch_.push_back(std::move(p));
  // Indexed once in batch_: the index reads its keys back from there.
  if (write) batch_keys_.Set(batch_.back().key, batch_.size() - 1, BatchKeyOf());
}

Status Server::Validate(const Request& r) const {
  if (r.op == Op::kKeyrange || r.op == Op::kKeyrangeRead) return Status::Ok();
  if (r.key.empty()) return Status::InvalidArgument("key is empty");
  if (r.key.size() > kMaxKeyBytes) {
    return Status::InvalidArgument("key is " + std::to_string(r.key.size()) +
                                   " bytes, the limit is " + std::to_string(kMaxKeyBytes));
  }
  if (r.op == Op::kPut && r.value.size() > static_cast<size_t>(config_.max_value_bytes)) {
    return Status::InvalidArgument("value is " + std::to_string(r.value.size()) +
                                   " bytes, the limit is " +
                                   std::to_string(config_.max_value_bytes));
  }
  return Status::Ok();
}

bool Server::TryAnswerNow(const zmq::message_t& identity, const Request& request) {
  Reply reply;
  reply.request_id = request.request_id;
  switch (request.op) {
    case Op::kKeyrange:
    case Op::kKeyrangeRead: {
      if (cluster_mode() && !ring_) {
        reply.status = WireStatus::SERVER_STOPPED;
        reply.reason = "no ring yet";
        Send(identity, reply);
        return true;
      }
      std::string text = KeyrangeText(request.op == Op::kKeyrangeRead);
      reply.ring_version = ring_ ? ring_->version() : 0;
      reply.status = request.op == Op::kKeyrange ? WireStatus::KEYRANGE_SUCCESS
                                                 : WireStatus::KEYRANGE_READ_SUCCESS;
      reply.metadata = text;
      Send(identity, reply);
      return true;
    }
    case Op::kGet: {
      // An unordered get does not wait for this connection's writes of its
      // key, in this batch or unacknowledged: it is answered now with what
      // acknowledged writes left (the store before this batch, or the image).
      if (!request.unordered && LastWriteInBatch(request.key)) return false;
      if (!request.stale_ok && !KeyQuiet(request.key)) {
        // A write of this key is not yet on every replica: answering with it
        // now could show a value a fail-over then loses. The value the last
        // acknowledged write left is safe to show.
        if (const UnackedKey* image = AnswerableImage(request.key, identity, request.unordered)) {
          Reply reply;
          reply.request_id = request.request_id;
          reply.key = request.key;
          reply.status = image->status;
          reply.value = image->value;
          reply.reason = image->reason;
          Send(identity, reply);
          return true;
        }
        std::string_view value;
        std::string reason;
        WireStatus status = ReadLatest(request.key, &value, &reason);
        parked_reads_[std::string(request.key)].push_back(
            Park(identity, request.request_id, status, value, reason));
        return true;
      }
      AnswerGet(identity, request.request_id, request.key);
      return true;
    }
    default:
      return false;
  }
}

WireStatus Server::ReadLatest(std::string_view key, std::string_view* value,
                              std::string* reason) {
  // Recent writes are in memory already: answer from there, and keep the
  // cache (and its churn) for what only LMDB has.
  switch (store_->FindRecent(key, value)) {
    case Store::Recent::kValue: return WireStatus::GET_SUCCESS;
    case Store::Recent::kDeleted: return WireStatus::GET_ERROR;
    case Store::Recent::kUnknown: break;
  }
  if (const std::string* cached = cache_.Get(key)) {
    *value = *cached;
    return WireStatus::GET_SUCCESS;
  }
  Status s = store_->Get(key, &value_buf_);
  if (s.ok()) {
    cache_.Put(key, value_buf_);
    *value = value_buf_;
    return WireStatus::GET_SUCCESS;
  }
  if (!s.IsNotFound()) {
    spdlog::error("get failed: {}", s.ToString());
    *reason = s.message();
  }
  return WireStatus::GET_ERROR;
}

void Server::AnswerGet(const zmq::message_t& identity, uint64_t request_id, std::string_view key) {
  Reply reply;
  reply.request_id = request_id;
  reply.key = key;
  std::string reason;
  reply.status = ReadLatest(key, &reply.value, &reason);
  reply.reason = reason;
  Send(identity, reply);
}

Server::ParkedRead Server::Park(const zmq::message_t& identity, uint64_t request_id,
                                WireStatus status, std::string_view value,
                                std::string_view reason) {
  ParkedRead r;
  r.identity.rebuild(identity.data(), identity.size());
  r.request_id = request_id;
  r.status = status;
  r.value.assign(value);
  r.reason.assign(reason);
  return r;
}

void Server::ReleaseKey(const std::string& key) {
  auto it = unacked_keys_.find(key);
  if (it == unacked_keys_.end() || --it->second.writes > 0) return;
  auto node = unacked_keys_.extract(it);
  if (spare_unacked_.size() < kSpareNodes) spare_unacked_.push_back(std::move(node));
  notifier_->OnKeyQuiet(key);
  auto parked = parked_reads_.find(key);
  if (parked == parked_reads_.end()) return;
  std::vector<ParkedRead> reads = std::move(parked->second);
  parked_reads_.erase(parked);
  Request probe;
  probe.op = Op::kGet;
  probe.key = key;
  for (auto& r : reads) {
    Reply reply;
    reply.request_id = r.request_id;
    reply.key = key;
    if (auto refusal = CheckResponsible(probe)) {
      reply.status = *refusal;
    } else {
      reply.status = r.status;
      reply.value = r.value;
      reply.reason = r.reason;
    }
    Send(r.identity, reply);
  }
}

const Server::UnackedKey* Server::AnswerableImage(std::string_view key,
                                                  const zmq::message_t& identity,
                                                  bool unordered) const {
  const UnackedKey* u = FindUnacked(key);
  if (u == nullptr || !u->has_image) return nullptr;
  if (unordered) return u;
  std::string_view id(static_cast<const char*>(identity.data()), identity.size());
  for (const auto& w : u->writers) {
    if (w == id) return nullptr;  // its own write comes first: wait for it
  }
  return u;
}

HeldReply& Server::NewHold(uint64_t id) {
  if (spare_holds_.empty()) return held_[id];
  auto node = std::move(spare_holds_.back());
  spare_holds_.pop_back();
  node.key() = id;
  HeldReply& h = node.mapped();
  // A fresh hold that keeps the old one's string buffers.
  std::string key = std::move(h.key), value = std::move(h.value);
  h = HeldReply();
  h.key = std::move(key);
  h.key.clear();
  h.value = std::move(value);
  h.value.clear();
  return held_.insert(std::move(node)).position->second;
}

void Server::RetireHold(std::map<uint64_t, HeldReply>::iterator it) {
  auto node = held_.extract(it);
  if (spare_holds_.size() < kSpareNodes) spare_holds_.push_back(std::move(node));
}

Server::UnackedKey& Server::UnackedFor(std::string_view key) {
  auto it = unacked_keys_.find(key);
  if (it != unacked_keys_.end()) return it->second;
  if (spare_unacked_.empty()) return unacked_keys_.emplace(std::string(key), UnackedKey{}).first->second;
  auto node = std::move(spare_unacked_.back());
  spare_unacked_.pop_back();
  node.key().assign(key);
  UnackedKey& u = node.mapped();
  // A fresh entry that keeps the old one's value buffer and writer list.
  std::string value = std::move(u.value);
  std::vector<std::string> writers = std::move(u.writers);
  u = UnackedKey();
  u.value = std::move(value);
  u.value.clear();
  u.writers = std::move(writers);
  u.writers.clear();
  return unacked_keys_.insert(std::move(node)).position->second;
}

uint64_t Server::HoldWrite(const Pending& p) {
  uint64_t id = next_hold_id_++;
  HeldReply& h = NewHold(id);
  h.identity.rebuild(p.identity.data(), p.identity.size());
  h.request_id = p.request_id;
  h.failure_status = ErrorStatusFor(p.op);
  h.key.assign(p.key);
  h.value.assign(p.value);
  h.deleted = p.op == Op::kDelete;
  h.waiting = 1;  // released by the caller's SettleForward, once every ack is counted
  UnackedKey& u = UnackedFor(p.key);
  if (u.writes++ == 0) {
    // Quiet until now, and not yet applied (CommitBatch holds before it
    // writes): what the store has is what acknowledged writes left.
    std::string_view value;
    u.has_image = true;
    u.status = ReadLatest(p.key, &value, &u.reason);
    u.value.assign(value);
  }
  u.writers.emplace_back(static_cast<const char*>(p.identity.data()), p.identity.size());
  return id;
}

void Server::CommitBatch() {
  std::vector<WriteOp> ops;
  std::vector<size_t> op_pending;  // ops[i] came from batch_[op_pending[i]]
  ops.reserve(batch_.size());
  for (size_t i = 0; i < batch_.size(); ++i) {
    const Pending& p = batch_[i];
    if (p.op == Op::kPut || p.op == Op::kDelete) {
      ops.push_back(WriteOp{p.op == Op::kDelete, p.key, p.value});
      op_pending.push_back(i);
    }
  }
  std::vector<bool> existed;
  std::vector<uint64_t> versions(ops.size()), prev_versions;
  for (size_t i = 0; i < ops.size(); ++i) ops[i].version = versions[i] = NextVersion();
  // With replicas, the batch goes out to them before this node's own fsync,
  // so the replicas' fsyncs run alongside it rather than after it: a write
  // then costs about one fsync of latency, not two. Nothing is answered
  // before this node's write and every replica's are durable (acks are read
  // in later loop turns), and should the local write fail, the holds are
  // settled as outcome unknown: the replicas may have the batch.
  // Writes that wait for acks are held before they are applied, so that the
  // hold can take the key's image (what acknowledged writes left) first.
  bool forwarding = false;
  for (const auto& [tid, t] : outgoing_) forwarding |= !t->broken && !t->repair;
  std::vector<uint64_t> hold_ids;
  if (!ops.empty() && (!streams_.empty() || forwarding)) {
    hold_ids.resize(ops.size());
    for (size_t i = 0; i < ops.size(); ++i) hold_ids[i] = HoldWrite(batch_[op_pending[i]]);
    ReplicateWrites(ops, versions, hold_ids);  // nothing without replicas
  }
  // Replicated writes read this turn share the group commit (one fsync); the
  // ranges a node replicates and the range it is primary of do not overlap,
  // and they come first, as they were read first.
  Status failure;
  if (!deferred_run_.empty()) {
    ReplicaApply apply = PrepareReplicates(deferred_run_);
    const size_t replicated = apply.ops.size();
    std::vector<WriteOp> all = apply.ops;
    all.insert(all.end(), ops.begin(), ops.end());
    failure = store_->Write(all, &existed, &prev_versions, replicated);
    FinishReplicates(deferred_run_, apply, failure);
    if (failure.ok()) {
      existed.erase(existed.begin(), existed.begin() + replicated);
      prev_versions.erase(prev_versions.begin(), prev_versions.begin() + replicated);
    }
  } else {
    failure = store_->Write(ops, &existed, &prev_versions);
  }
  if (!failure.ok()) {
    spdlog::error("group commit of {} writes failed: {}", ops.size(), failure.ToString());
  }

  std::vector<Reply> replies(batch_.size());
  std::vector<std::string> values(batch_.size());  // read results owned here
  size_t write_index = 0;
  for (size_t i = 0; i < batch_.size(); ++i) {
    const Pending& p = batch_[i];
    Reply& r = replies[i];
    r.request_id = p.request_id;
    r.key = p.key;
    if (!failure.ok()) {
      // The outcome of the failed batch is unknown; the reason says so.
      r.status = ErrorStatusFor(p.op);
      r.reason = failure.message();
      continue;
    }
    switch (p.op) {
      case Op::kPut:
        r.status = existed[write_index++] ? WireStatus::PUT_UPDATE : WireStatus::PUT_SUCCESS;
        cache_.Update(p.key, p.value);
        break;
      case Op::kDelete:
        r.status = existed[write_index++] ? WireStatus::DELETE_SUCCESS : WireStatus::DELETE_ERROR;
        cache_.Erase(p.key);
        break;
      case Op::kGet:
        r.status = p.answer;  // fixed when it joined the batch
        if (p.answer == WireStatus::GET_SUCCESS) r.value = p.value;
        break;
      default: break;
    }
  }
  // Writes go to every replica, and those in ranges being handed off to their
  // targets too; their replies wait for every ack, and reads of their keys
  // wait with them.
  std::vector<bool> held(batch_.size(), false);
  if (!failure.ok() && !hold_ids.empty()) {
    // Maybe replicated already: the outcome is unknown, not a plain failure.
    for (size_t i : op_pending) held[i] = true;
    SettleForward(hold_ids, Status::IOError(failure.message()));
  } else if (failure.ok() && !hold_ids.empty()) {
    for (size_t i = 0; i < ops.size(); ++i) {
      held_[hold_ids[i]].status = replies[op_pending[i]].status;
      held[op_pending[i]] = true;
    }
    NotifyCommitted(ops, existed, prev_versions, &hold_ids);  // published as they settle
    if (forwarding) ForwardWrites(ops, hold_ids);
    SettleForward(hold_ids, Status::Ok());  // answers those with nothing to wait for
  } else if (failure.ok()) {
    NotifyCommitted(ops, existed, prev_versions, nullptr);  // acknowledged now
  }
  // A read in the batch of a key whose write is not acknowledged everywhere
  // waits for it, like any other read of that key.
  for (size_t i = 0; i < batch_.size(); ++i) {
    const Pending& p = batch_[i];
    if (p.op != Op::kGet || KeyQuiet(p.key)) continue;
    if (const UnackedKey* image = AnswerableImage(p.key, p.identity)) {
      // Another client's write: show what acknowledged writes left.
      Reply& r = replies[i];
      r.status = image->status;
      values[i] = image->value;
      r.value = values[i];
      r.reason = image->reason;
      continue;
    }
    parked_reads_[p.key].push_back(
        Park(p.identity, p.request_id, replies[i].status, replies[i].value, replies[i].reason));
    held[i] = true;
  }
  if (spdlog::should_log(spdlog::level::trace)) {
    for (size_t i = 0; i < ops.size(); ++i) {
      const Pending& p = batch_[op_pending[i]];
      spdlog::trace("write {} {} version {} -> {} (request {})", ops[i].is_delete ? "delete" : "put",
                    p.key, versions[i], StatusWord(replies[op_pending[i]].status), p.request_id);
    }
  }
  spdlog::trace("group commit: {} requests, last seq {}", batch_.size(), store_->last_seq());
  for (size_t i = 0; i < batch_.size(); ++i) {
    if (!held[i]) Send(batch_[i].identity, replies[i]);
  }
  for (auto& p : batch_) {
    if (spare_pending_.size() == kSpareNodes) break;
    spare_pending_.push_back(std::move(p));
  }
  batch_.clear();
  batch_keys_.Clear();
}

void Server::Send(const zmq::message_t& identity, const Reply& reply) {
  Reply r = reply;
  if (ring_) r.ring_version = ring_->version();
  r.notify_port = notifier_->port();
  std::string_view id(static_cast<const char*>(identity.data()), identity.size());
  auto [it, added] = outbox_index_.try_emplace(std::string(id), outbox_used_);
  if (added) {
    if (outbox_used_ == outbox_.size()) outbox_.emplace_back();
    outbox_[outbox_used_].identity.assign(id);
    ++outbox_used_;
  }
  Outbox& box = outbox_[it->second];
  // A single large reply travels alone rather than growing a frame past the cap.
  if (!box.frame.empty() && box.frame.bytes() + reply.value.size() >= kMaxPackedBytes) {
    SendFrame(box);
  }
  box.frame.Add(r);
  if (box.frame.bytes() >= kMaxPackedBytes) SendFrame(box);
}

void Server::SendFrame(Outbox& box) {
  if (box.frame.empty()) return;
  zmq::message_t id(box.identity.data(), box.identity.size());
  zmq::message_t body = box.frame.Take();
  // ROUTER drops messages to peers that are gone or over their HWM; a client
  // that vanished simply never sees its replies.
  (void)socket_.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
  (void)socket_.send(body, zmq::send_flags::dontwait);
}

void Server::FlushReplies() {
  for (size_t i = 0; i < outbox_used_; ++i) SendFrame(outbox_[i]);
  outbox_used_ = 0;
  outbox_index_.clear();
}

void Server::SendBadRequest(const zmq::message_t& identity, uint64_t request_id,
                            const std::string& reason) {
  Reply reply;
  reply.request_id = request_id;
  reply.status = WireStatus::BAD_REQUEST;
  reply.reason = reason;
  Send(identity, reply);
}

std::string Server::KeyrangeText(bool read) const {
  if (ring_) return read ? ring_->KeyrangeReadText() : ring_->KeyrangeText();
  // Standalone: this node owns the whole ring, (own, own].
  std::string own = position_.ToHex();
  return position_.Next().ToHex() + "," + own + "," + self_.host + ":" + std::to_string(port_) +
         ";";
}

std::optional<WireStatus> Server::CheckResponsible(const Request& request) const {
  if (!cluster_mode() || request.op == Op::kKeyrange || request.op == Op::kKeyrangeRead) {
    return std::nullopt;
  }
  if (!write_range_) return WireStatus::SERVER_STOPPED;
  // Cut off from the control plane for longer than the lease: another node
  // may have taken over.
  if (!link_->LeaseValid(Clock::now())) return WireStatus::SERVER_STOPPED;
  Hash128 pos = KeyPosition(request.key);
  if (request.op == Op::kGet && request.stale_ok) {
    auto held = ring_->ReadRangeOf(self_);
    if (held.ok() && held->Contains(pos)) return std::nullopt;
    return WireStatus::SERVER_NOT_RESPONSIBLE;
  }
  if (!write_range_->Contains(pos)) return WireStatus::SERVER_NOT_RESPONSIBLE;
  // A replica knows a newer ring in which this node is no longer primary.
  if (fenced_until_ring_ != 0) return WireStatus::SERVER_NOT_RESPONSIBLE;
  for (const auto& [id, t] : outgoing_) {
    if (t->broken && RangesContain(t->ranges, pos)) return WireStatus::SERVER_WRITE_LOCK;
  }
  return std::nullopt;
}

}  // namespace kv

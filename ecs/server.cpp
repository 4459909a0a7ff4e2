#include "ecs/server.h"

#include <capnp/message.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "peer.capnp.h"
#include "schema/framing.h"
#include "schema/socket.h"
#include "schema/wire.h"

namespace kv {

namespace {

constexpr int kDrainLimit = 1024;  // messages taken from one socket per poll round
constexpr const char* kMonitorEndpoint = "inproc://kvecs-control-monitor";

using Clock = std::chrono::steady_clock;

capnp::Data::Reader AsData(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(s.data()), s.size());
}

void SetAddress(wire::NodeAddress::Builder out, const NodeAddress& a) {
  out.setHost(a.host);
  out.setPort(a.port);
  out.setPeerPort(a.peer_port);
}

NodeAddress GetAddress(wire::NodeAddress::Reader in) {
  auto host = in.getHost();
  return NodeAddress{std::string(host.cStr(), host.size()), in.getPort(), in.getPeerPort()};
}

zmq::message_t ControlFrame(const std::function<void(wire::ControlMessage::Builder)>& fill) {
  capnp::MallocMessageBuilder builder;
  auto msg = builder.initRoot<wire::ControlMessage>();
  msg.setVersion(wire::CONTROL_VERSION);
  fill(msg);
  return ToFrame(builder);
}

zmq::message_t PeerFrame(uint64_t request_id,
                         const std::function<void(wire::PeerMessage::Builder)>& fill) {
  capnp::MallocMessageBuilder builder;
  auto msg = builder.initRoot<wire::PeerMessage>();
  msg.setVersion(wire::PEER_VERSION);
  msg.setRequestId(request_id);
  fill(msg);
  return ToFrame(builder);
}

std::optional<RequestKind> KindOf(wire::ControlRequest::Which which) {
  switch (which) {
    case wire::ControlRequest::JOIN:
      return RequestKind::kJoin;
    case wire::ControlRequest::LEAVE:
      return RequestKind::kLeave;
    case wire::ControlRequest::NODE_FAILED:
      return RequestKind::kNodeFailed;
    default:
      return std::nullopt;
  }
}

}  // namespace

EcsServer::EcsServer(EcsConfig config, Coordinator::Clock clock)
    : config_(std::move(config)), clock_(std::move(clock)) {}

EcsServer::~EcsServer() {
  for (int fd : stop_pipe_) {
    if (fd >= 0) close(fd);
  }
}

Status EcsServer::Start() {
  if (!config_.broker_sub_port) {
    return Status::InvalidArgument("broker sub port not resolved (call ResolveConfig)");
  }
  if (pipe2(stop_pipe_, O_NONBLOCK | O_CLOEXEC) != 0) {
    return Status::IOError(std::string("pipe: ") + strerror(errno));
  }
  auto store = RingStore::Open(config_.data_dir);
  if (!store.ok()) return store.status();
  store_ = std::move(*store);
  coordinator_ = std::make_unique<Coordinator>(ToCoordinatorConfig(config_), store_.get(), clock_);
  Commands recovered;
  Status s = coordinator_->Recover(&recovered);
  if (!s.ok()) return s;

  SocketOptions options;
  options.max_msg_bytes = config_.max_frame_bytes;
  control_ = MakeSocket(ctx_, zmq::socket_type::dealer, options);
  monitor_ = MakeSocket(ctx_, zmq::socket_type::pair, options);
  pub_ = MakeSocket(ctx_, zmq::socket_type::pub, options);
  try {
    if (zmq_socket_monitor(control_.handle(), kMonitorEndpoint,
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) != 0) {
      return Status::IOError(std::string("zmq_socket_monitor: ") + zmq_strerror(zmq_errno()));
    }
    monitor_.connect(kMonitorEndpoint);
    control_.connect(TcpEndpoint(config_.broker_host, config_.broker_port));
    pub_.connect(TcpEndpoint(config_.broker_host, *config_.broker_sub_port));
  } catch (const zmq::error_t& e) {
    return Status::InvalidArgument("cannot connect to the broker at " + config_.broker_host + ": " +
                                   e.what());
  }
  spdlog::info(
      "kvecs: broker control {}:{}, publishing to {}:{}, state in {}, replication factor {}, "
      "batch window {} ms, transfer timeout {} ms, repair timeout {} ms, credit {}",
      config_.broker_host, config_.broker_port, config_.broker_host, *config_.broker_sub_port,
      config_.data_dir, config_.replication_factor, config_.batch_window_ms,
      config_.transfer_timeout_ms, config_.repair_timeout_ms, config_.credit);
  // Queued on the DEALER until the first connection, which delivers it.
  TopUpCredit();
  Execute(recovered);
  next_republish_ = clock_() + std::chrono::milliseconds(config_.republish_ms);
  return Status::Ok();
}

void EcsServer::RequestStop() {
  char c = 1;
  ssize_t n = write(stop_pipe_[1], &c, 1);  // async-signal-safe
  (void)n;
}

Status EcsServer::Run() {
  std::vector<zmq::pollitem_t> items;
  std::vector<std::string> peer_keys;
  for (;;) {
    items = {{static_cast<void*>(control_), 0, ZMQ_POLLIN, 0},
             {static_cast<void*>(monitor_), 0, ZMQ_POLLIN, 0},
             {nullptr, stop_pipe_[0], ZMQ_POLLIN, 0}};
    peer_keys.clear();
    for (auto& [key, socket] : peers_) {
      items.push_back({static_cast<void*>(socket), 0, ZMQ_POLLIN, 0});
      peer_keys.push_back(key);
    }
    auto now = clock_();
    auto wake = next_republish_;
    if (auto deadline = coordinator_->NextDeadline(); deadline && *deadline < wake) {
      wake = *deadline;
    }
    auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(wake - now);
    // Round up, so a deadline 0.4 ms away does not spin.
    if (wake > now) timeout += std::chrono::milliseconds(1);
    if (timeout.count() < 0) timeout = std::chrono::milliseconds(0);
    try {
      zmq::poll(items.data(), items.size(), timeout);
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      return Status::IOError(std::string("poll: ") + e.what());
    }
    if (items[2].revents & ZMQ_POLLIN) break;
    try {
      if (items[0].revents & ZMQ_POLLIN) ProcessControl();
      if (items[1].revents & ZMQ_POLLIN) ProcessMonitor();
      for (size_t i = 0; i < peer_keys.size(); ++i) {
        if (items[3 + i].revents & ZMQ_POLLIN) ProcessPeer(peer_keys[i]);
      }
      coordinator_->Tick(&pending_);
      Execute(pending_);
      TopUpCredit();
      if (clock_() >= next_republish_) {
        if (coordinator_->ring()->version() > 0) Publish(*coordinator_->ring());
        next_republish_ = clock_() + std::chrono::milliseconds(config_.republish_ms);
      }
    } catch (const std::exception& e) {
      // A bug, not bad input: log it and keep serving.
      spdlog::error("internal error in the event loop: {}", e.what());
      pending_.clear();
    }
  }
  spdlog::info("kvecs stopping: ring version {}, {} request(s) held",
               coordinator_->ring()->version(), coordinator_->held());
  coordinator_->Stop(&pending_);
  Execute(pending_);
  // Let the aborts and replies just sent leave, but not for ever.
  auto linger = static_cast<int>(config_.shutdown_linger_ms);
  for (auto& [key, socket] : peers_) {
    socket.set(zmq::sockopt::linger, linger);
    socket.close();
  }
  peers_.clear();
  control_.set(zmq::sockopt::linger, linger);
  zmq_socket_monitor(control_.handle(), nullptr, 0);
  control_.close();
  monitor_.close();
  pub_.close();
  spdlog::info("kvecs stopped");
  spdlog::default_logger()->flush();
  return Status::Ok();
}

// ---- broker ----

void EcsServer::ProcessControl() {
  for (int i = 0; i < kDrainLimit; ++i) {
    size_t total = RecvMultipart(control_, &frames_, 2, zmq::recv_flags::dontwait);
    if (total == 0) break;
    if (total != 1) {
      spdlog::warn("broker: dropping a message of {} frames, expected 1", total);
      continue;
    }
    HandleControl(frames_[0]);
  }
}

void EcsServer::HandleControl(const zmq::message_t& frame) {
  auto reader = FrameReader::Open(frame);
  if (!reader.ok()) {
    spdlog::warn("broker: dropping a malformed frame ({} bytes): {}", frame.size(),
                 reader.status().message());
    return;
  }
  std::string client;  // set once readable, so a bad request can still be answered
  uint64_t request_id = 0;
  bool is_work = false;
  std::optional<MembershipRequest> request;
  Status s = ReadUntrusted([&]() -> Status {
    auto msg = (*reader)->Root<wire::ControlMessage>();
    if (msg.getVersion() != wire::CONTROL_VERSION) {
      return Status::InvalidArgument("control protocol version " +
                                     std::to_string(msg.getVersion()));
    }
    switch (msg.which()) {
      case wire::ControlMessage::WORK: {
        is_work = true;
        auto work = msg.getWork();
        auto raw = work.getClient();
        client.assign(reinterpret_cast<const char*>(raw.begin()), raw.size());
        auto body = work.getRequest();
        request_id = body.getRequestId();
        auto kind = KindOf(body.which());
        if (!kind) {
          return Status::InvalidArgument("the ECS takes join, leave and nodeFailed only");
        }
        wire::NodeAddress::Reader address = *kind == RequestKind::kJoin    ? body.getJoin()
                                            : *kind == RequestKind::kLeave ? body.getLeave()
                                                                           : body.getNodeFailed();
        if (client.empty()) return Status::InvalidArgument("work without a client identity");
        request = MembershipRequest{client, request_id, *kind, GetAddress(address)};
        return Status::Ok();
      }
      case wire::ControlMessage::REPLY: {
        auto reply = msg.getReply();
        spdlog::warn("broker refused a message of ours (request {}): {}", reply.getRequestId(),
                     std::string(reply.getReason()));
        return Status::Ok();
      }
      default:
        return Status::InvalidArgument("unexpected control message kind " +
                                       std::to_string(static_cast<int>(msg.which())));
    }
  });
  if (is_work && promised_ > 0) --promised_;
  if (s.ok() && request) coordinator_->Submit(std::move(*request), &pending_);
  if (!s.ok()) {
    spdlog::warn("broker: bad message ({} bytes, request {}): {}", frame.size(), request_id,
                 s.message());
    if (!client.empty()) {
      pending_.push_back(ReplyTo{client, request_id, wire::ControlStatus::BAD_REQUEST, s.message(),
                                 coordinator_->ring()});
    }
  }
}

void EcsServer::ProcessMonitor() {
  for (int i = 0; i < kDrainLimit; ++i) {
    size_t total = RecvMultipart(monitor_, &frames_, 2, zmq::recv_flags::dontwait);
    if (total == 0) break;
    if (frames_.empty() || frames_[0].size() < sizeof(uint16_t)) continue;
    uint16_t event = 0;
    std::memcpy(&event, frames_[0].data(), sizeof(event));
    if (event == ZMQ_EVENT_CONNECTED) {
      ++connections_;
      if (connections_ == 1) {
        spdlog::info("connected to the broker");
      } else {
        // The broker sees a new identity (or is a new broker): the credit it
        // held for us is void. Over-granting here is bounded by the credit
        // limit the Coordinator enforces.
        spdlog::info("reconnected to the broker: granting credit again");
        promised_ = 0;
      }
    } else if (event == ZMQ_EVENT_DISCONNECTED) {
      spdlog::warn("lost the connection to the broker; reconnecting");
    }
  }
}

// ---- nodes ----

zmq::socket_t& EcsServer::PeerSocket(const NodeAddress& node) {
  std::string key = node.ToString();
  auto it = peers_.find(key);
  if (it != peers_.end()) return it->second;
  SocketOptions options;
  options.max_msg_bytes = config_.max_frame_bytes;
  zmq::socket_t socket = MakeSocket(ctx_, zmq::socket_type::dealer, options);
  socket.connect(TcpEndpoint(node.host, node.peer_port));
  spdlog::debug("connecting to {} on peer port {}", key, node.peer_port);
  return peers_.emplace(key, std::move(socket)).first->second;
}

void EcsServer::ProcessPeer(const std::string& key) {
  auto it = peers_.find(key);
  if (it == peers_.end()) return;
  for (int i = 0; i < kDrainLimit; ++i) {
    size_t total = RecvMultipart(it->second, &frames_, 2, zmq::recv_flags::dontwait);
    if (total == 0) break;
    if (total != 1) {
      spdlog::warn("node {}: dropping a message of {} frames, expected 1", key, total);
      continue;
    }
    HandlePeer(key, frames_[0]);
  }
}

void EcsServer::HandlePeer(const std::string& key, const zmq::message_t& frame) {
  auto reader = FrameReader::Open(frame);
  Status s = reader.ok() ? Status::Ok() : reader.status();
  std::optional<TransferResult> result;
  if (s.ok()) {
    s = ReadUntrusted([&]() -> Status {
      auto msg = (*reader)->Root<wire::PeerMessage>();
      if (msg.getVersion() != wire::PEER_VERSION) {
        return Status::InvalidArgument("peer protocol version " + std::to_string(msg.getVersion()));
      }
      if (msg.which() != wire::PeerMessage::TRANSFER_DONE) {
        return Status::InvalidArgument("expected transferDone, got message kind " +
                                       std::to_string(static_cast<int>(msg.which())));
      }
      auto done = msg.getTransferDone();
      result = TransferResult{done.getTransferId(), done.getOk(), std::string(done.getReason()),
                              done.getEntries(), done.getBytes()};
      return Status::Ok();
    });
  }
  if (!s.ok()) {
    spdlog::warn("node {}: dropping a bad message ({} bytes): {}", key, frame.size(), s.message());
    return;
  }
  coordinator_->OnTransferDone(*result, &pending_);
}

// ---- commands ----

void EcsServer::Execute(Commands& commands) {
  for (auto& c : commands) {
    if (auto* start = std::get_if<StartTransfer>(&c)) {
      SendTransferStart(*start);
    } else if (auto* abort = std::get_if<AbortTransfer>(&c)) {
      SendTransferAbort(*abort);
    } else if (auto* publish = std::get_if<PublishRing>(&c)) {
      Publish(*publish->ring);
      next_republish_ = clock_() + std::chrono::milliseconds(config_.republish_ms);
    } else if (auto* reply = std::get_if<ReplyTo>(&c)) {
      SendReply(*reply);
    } else if (auto* forget = std::get_if<ForgetNode>(&c)) {
      if (peers_.erase(forget->node.ToString()) > 0) {
        spdlog::debug("closed the connection to {}: it left the ring", forget->node.ToString());
      }
    }
  }
  commands.clear();
}

void EcsServer::SendTransferStart(const StartTransfer& start) {
  const Transfer& t = start.transfer;
  zmq::message_t frame = PeerFrame(t.transfer_id, [&](wire::PeerMessage::Builder msg) {
    auto ts = msg.initTransferStart();
    ts.setTransferId(t.transfer_id);
    ts.setPreparesVersion(start.prepares_version);
    ts.setRepair(t.repair);
    SetAddress(ts.initTarget(), t.target);
    auto ranges = ts.initRanges(static_cast<unsigned>(t.ranges.size()));
    for (unsigned i = 0; i < ranges.size(); ++i) {
      ranges[i].setFrom(AsData(t.ranges[i].from.AsBytes()));
      ranges[i].setTo(AsData(t.ranges[i].to.AsBytes()));
    }
  });
  spdlog::info("transfer {}: asking {} to {} {} range(s) to {} for ring version {}", t.transfer_id,
               t.source.ToString(), t.repair ? "re-replicate" : "hand", t.ranges.size(),
               t.target.ToString(), start.prepares_version);
  SendPeer(t.source, std::move(frame), "transferStart");
}

void EcsServer::SendTransferAbort(const AbortTransfer& abort) {
  zmq::message_t frame = PeerFrame(abort.transfer_id, [&](wire::PeerMessage::Builder msg) {
    msg.setTransferAbort(abort.transfer_id);
  });
  spdlog::info("transfer {}: telling {} to abort", abort.transfer_id, abort.source.ToString());
  SendPeer(abort.source, std::move(frame), "transferAbort");
}

void EcsServer::SendPeer(const NodeAddress& node, zmq::message_t frame, const char* what) {
  try {
    if (!PeerSocket(node).send(frame, zmq::send_flags::dontwait)) {
      spdlog::warn("cannot queue {} for {}: its send queue is full", what, node.ToString());
    }
  } catch (const zmq::error_t& e) {
    spdlog::warn("cannot send {} to {}: {}", what, node.ToString(), e.what());
  }
}

void EcsServer::Publish(const Ring& ring) {
  std::string topic = wire::RING_TOPIC.get().cStr();
  zmq::message_t t(topic.data(), topic.size());
  zmq::message_t body = ring.EncodeRing();
  // PUB never blocks; a publication nobody subscribed to yet is dropped and
  // the next republish carries it.
  (void)pub_.send(t, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
  (void)pub_.send(body, zmq::send_flags::dontwait);
  spdlog::debug("published ring version {}", ring.version());
}

void EcsServer::SendReply(const ReplyTo& reply) {
  zmq::message_t frame = ControlFrame([&](wire::ControlMessage::Builder msg) {
    auto done = msg.initWorkDone();
    done.setClient(AsData(reply.client));
    auto r = done.initReply();
    r.setRequestId(reply.request_id);
    r.setStatus(reply.status);
    r.setReason(reply.reason);
    if (reply.ring && reply.ring->version() > 0) reply.ring->ToCapnp(r.initRing());
  });
  SendControl(std::move(frame), "workDone");
}

void EcsServer::SendControl(zmq::message_t frame, const char* what) {
  if (!control_.send(frame, zmq::send_flags::dontwait)) {
    spdlog::warn("cannot queue {} for the broker: its send queue is full", what);
  }
}

void EcsServer::TopUpCredit() {
  int64_t room = config_.credit - static_cast<int64_t>(coordinator_->held()) - promised_;
  if (room <= 0) return;
  zmq::message_t frame = ControlFrame(
      [&](wire::ControlMessage::Builder msg) { msg.setEcsReady(static_cast<uint32_t>(room)); });
  if (control_.send(frame, zmq::send_flags::dontwait)) {
    promised_ += room;
    spdlog::debug("granted the broker {} more credit ({} promised)", room, promised_);
  }
}

}  // namespace kv

#include "broker/broker.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <capnp/message.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "broker/broker_util.h"
#include "schema/framing.h"
#include "schema/socket.h"

namespace kv {
namespace {

using broker_util::kDrainLimit;
using broker_util::kMaxFrames;
using broker_util::Printable;
using broker_util::RingTopic;
using broker_util::ToString;

const char* KindName(wire::ControlRequest::Which which) {
  switch (which) {
    case wire::ControlRequest::JOIN: return "join";
    case wire::ControlRequest::LEAVE: return "leave";
    case wire::ControlRequest::GET_RING: return "getRing";
    case wire::ControlRequest::HEARTBEAT: return "heartbeat";
    case wire::ControlRequest::NODE_FAILED: return "nodeFailed";
  }
  return "unknown";
}

// The request id of any control message that carries one, for answering a
// malformed message; may throw kj::Exception on a bad pointer.
uint64_t PeekRequestId(wire::ControlMessage::Reader msg) {
  switch (msg.which()) {
    case wire::ControlMessage::REQUEST: return msg.getRequest().getRequestId();
    case wire::ControlMessage::REPLY: return msg.getReply().getRequestId();
    case wire::ControlMessage::WORK: return msg.getWork().getRequest().getRequestId();
    case wire::ControlMessage::WORK_DONE: return msg.getWorkDone().getReply().getRequestId();
    default: return 0;
  }
}

Status WritePortFile(const std::string& path, uint16_t control, uint16_t pub, uint16_t sub) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << control << " " << pub << " " << sub << "\n";
    if (!out) return Status::IOError("cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::IOError("cannot rename " + tmp + ": " + ec.message());
  return Status::Ok();
}

Result<uint16_t> Bind(zmq::socket_t& socket, const std::string& address, uint16_t port,
                      const char* what) {
  try {
    socket.bind(TcpEndpoint(address, port));
  } catch (const zmq::error_t& e) {
    return Status::Unavailable(std::string("cannot bind the ") + what + " socket on " + address +
                               ":" + std::to_string(port) + ": " + e.what());
  }
  return BoundPort(socket);
}

}  // namespace

Broker::Broker(BrokerConfig config, Clock clock)
    : config_(std::move(config)),
      clock_(std::move(clock)),
      queue_(static_cast<size_t>(config_.max_queue)),
      failures_(std::chrono::milliseconds(config_.failure_timeout_ms)) {}

Broker::~Broker() {
  for (int fd : stop_pipe_) {
    if (fd >= 0) close(fd);
  }
}

Status Broker::Start() {
  if (!config_.pub_port || !config_.sub_port) {
    return Status::InvalidArgument("event-plane ports not resolved (call ResolvePorts)");
  }
  if (pipe2(stop_pipe_, O_NONBLOCK | O_CLOEXEC) != 0) {
    return Status::IOError(std::string("pipe: ") + strerror(errno));
  }
  SocketOptions options;
  options.max_msg_bytes = config_.max_frame_bytes;
  SocketOptions control_options = options;
  // Sending to a vanished peer fails instead of vanishing silently, so work
  // meant for a dead ECS stays queued.
  control_options.router_mandatory = true;
  control_ = MakeSocket(ctx_, zmq::socket_type::router, control_options);
  pub_ = MakeSocket(ctx_, zmq::socket_type::xpub, options);
  pub_.set(zmq::sockopt::xpub_verbose, 1);  // every subscribe, so late joiners get the cache
  sub_ = MakeSocket(ctx_, zmq::socket_type::xsub, options);

  auto control = Bind(control_, config_.address, config_.port, "control");
  if (!control.ok()) return control.status();
  auto pub = Bind(pub_, config_.address, *config_.pub_port, "pub");
  if (!pub.ok()) return pub.status();
  auto sub = Bind(sub_, config_.address, *config_.sub_port, "sub");
  if (!sub.ok()) return sub.status();
  control_port_ = *control;
  pub_port_ = *pub;
  sub_port_ = *sub;

  // The broker's own subscription: the cache fills even with no subscriber.
  // XSUB re-sends it to every publisher that connects later.
  std::string subscribe = "\x01" + RingTopic();
  zmq::message_t m(subscribe.data(), subscribe.size());
  (void)sub_.send(m, zmq::send_flags::dontwait);

  spdlog::info("kvbroker on {}: control {}, pub {}, sub {} (max queue {}, failure timeout {})",
               config_.address, control_port_, pub_port_, sub_port_, config_.max_queue,
               failures_.enabled() ? std::to_string(config_.failure_timeout_ms) + " ms" : "off");
  if (!config_.port_file.empty()) {
    Status s = WritePortFile(config_.port_file, control_port_, pub_port_, sub_port_);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

void Broker::RequestStop() {
  char c = 1;
  ssize_t n = write(stop_pipe_[1], &c, 1);  // async-signal-safe
  (void)n;
}

Status Broker::Run() {
  std::vector<zmq::pollitem_t> items = {
      {static_cast<void*>(control_), 0, ZMQ_POLLIN, 0},
      {static_cast<void*>(sub_), 0, ZMQ_POLLIN, 0},
      {static_cast<void*>(pub_), 0, ZMQ_POLLIN, 0},
      {nullptr, stop_pipe_[0], ZMQ_POLLIN, 0},
  };
  for (;;) {
    try {
      zmq::poll(items.data(), items.size(), PollTimeout());
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      return Status::IOError(std::string("poll: ") + e.what());
    }
    if (items[3].revents & ZMQ_POLLIN) break;
    // Publications before subscriptions: a subscriber arriving in the same
    // round gets the newest ring.
    if (items[1].revents & ZMQ_POLLIN) ProcessPublications();
    if (items[2].revents & ZMQ_POLLIN) ProcessSubscriptions();
    if (items[0].revents & ZMQ_POLLIN) ProcessControl();
    ReportFailures();
  }
  spdlog::info("kvbroker stopping: {} requests still queued, ring version {}", queue_.depth(),
               ring_version_);
  control_.close();
  pub_.close();
  sub_.close();
  spdlog::info("kvbroker stopped");
  spdlog::default_logger()->flush();
  return Status::Ok();
}

// ---- control plane ----

void Broker::ProcessControl() {
  for (int i = 0; i < kDrainLimit; ++i) {
    size_t total = RecvMultipart(control_, &frames_, kMaxFrames, zmq::recv_flags::dontwait);
    if (total == 0) break;
    try {
      HandleControl(frames_, total);
    } catch (const std::exception& e) {
      // A bug, not bad input: log it and answer if we can.
      spdlog::error("internal error handling a control message: {}", e.what());
      if (total >= 2) {
        Reply(ToString(frames_[0]), 0, wire::ControlStatus::BAD_REQUEST, "internal error");
      }
    }
  }
}

void Broker::HandleControl(std::vector<zmq::message_t>& frames, size_t total) {
  if (total < 2) {
    spdlog::warn("control: dropping a message with {} frame(s): no identity and body", total);
    return;
  }
  std::string identity = ToString(frames[0]);
  uint64_t request_id = 0;
  Status s;
  auto reader = FrameReader::Open(frames[1]);
  if (!reader.ok()) {
    s = reader.status();
  } else {
    s = ReadUntrusted([&]() -> Status {
      auto msg = (*reader)->Root<wire::ControlMessage>();
      request_id = PeekRequestId(msg);
      if (total != 2) {
        return Status::InvalidArgument("expected 1 frame after the identity, got " +
                                       std::to_string(total - 1));
      }
      if (msg.getVersion() != wire::CONTROL_VERSION) {
        return Status::InvalidArgument("control protocol version " +
                                       std::to_string(msg.getVersion()) + ", expected " +
                                       std::to_string(wire::CONTROL_VERSION));
      }
      switch (msg.which()) {
        case wire::ControlMessage::REQUEST: return HandleRequest(identity, msg.getRequest());
        case wire::ControlMessage::ECS_READY:
          HandleEcsReady(identity, msg.getEcsReady());
          return Status::Ok();
        case wire::ControlMessage::WORK_DONE: return HandleWorkDone(identity, msg.getWorkDone());
        case wire::ControlMessage::REPLY:
          return Status::InvalidArgument("reply is sent by the broker, not to it");
        case wire::ControlMessage::WORK:
          return Status::InvalidArgument("work is sent by the broker, not to it");
      }
      return Status::InvalidArgument("unknown control message kind " +
                                     std::to_string(static_cast<int>(msg.which())));
    });
  }
  if (!s.ok()) {
    spdlog::warn("control: bad message from {} ({} bytes, request {}): {}", Printable(identity),
                 frames[1].size(), request_id, s.message());
    Reply(identity, request_id, wire::ControlStatus::BAD_REQUEST, s.message());
  }
}

Status Broker::HandleRequest(const std::string& identity, wire::ControlRequest::Reader request) {
  uint64_t id = request.getRequestId();
  switch (request.which()) {
    case wire::ControlRequest::JOIN:
    case wire::ControlRequest::LEAVE:
    case wire::ControlRequest::NODE_FAILED:
      Enqueue(identity, request);
      return Status::Ok();
    case wire::ControlRequest::GET_RING:
      if (ring_version_ == 0) {
        Reply(identity, id, wire::ControlStatus::UNAVAILABLE, "no ring published yet");
      } else {
        Reply(identity, id, wire::ControlStatus::OK, "", /*with_ring=*/true);
      }
      return Status::Ok();
    case wire::ControlRequest::HEARTBEAT: {
      auto address = request.getHeartbeat();
      std::string host = address.getHost();
      if (host.empty() || address.getPort() == 0) {
        return Status::InvalidArgument("heartbeat needs a host and a port");
      }
      std::string key = host + ":" + std::to_string(address.getPort());
      auto silent = failures_.OnHeartbeat(key, clock_());
      if (failures_.IsReported(key)) {
        // Its lease must not come back while the ECS removes it: a paused
        // primary that resumed would otherwise serve stale reads.
        Reply(identity, id, wire::ControlStatus::REJECTED,
              key + " was reported failed; it serves again only after rejoining");
        return Status::Ok();
      }
      if (silent && failures_.enabled() && *silent >= failures_.timeout()) {
        spdlog::info("heartbeat from {} again after {} ms of silence", key, silent->count());
      } else {
        spdlog::trace("heartbeat from {}", key);
      }
      Reply(identity, id, wire::ControlStatus::OK, "");
      return Status::Ok();
    }
  }
  return Status::InvalidArgument("unknown request kind " +
                                 std::to_string(static_cast<int>(request.which())));
}

void Broker::Enqueue(const std::string& identity, wire::ControlRequest::Reader request) {
  capnp::MallocMessageBuilder builder;
  auto msg = builder.initRoot<wire::ControlMessage>();
  msg.setVersion(wire::CONTROL_VERSION);
  auto work = msg.initWork();
  work.setClient(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(identity.data()),
                                     identity.size()));
  work.setRequest(request);  // deep copy: throws (nothing queued) if malformed
  zmq::message_t frame = ToFrame(builder);

  QueuedRequest queued{identity, request.getRequestId(), ToString(frame)};
  size_t before = queue_.depth();
  Status s = queue_.Push(std::move(queued));
  if (!s.ok()) {
    spdlog::warn("refusing {} from {} (request {}): {}", KindName(request.which()),
                 Printable(identity), request.getRequestId(), s.message());
    Reply(identity, request.getRequestId(), wire::ControlStatus::OVERLOADED, s.message());
    return;
  }
  spdlog::debug("queued {} from {} (request {}): depth {}, credit {}", KindName(request.which()),
                Printable(identity), request.getRequestId(), queue_.depth(), queue_.credit());
  LogDepthChange(before, "grew");
  Dispatch();
}

void Broker::HandleEcsReady(const std::string& identity, uint32_t credit) {
  if (identity != ecs_) {
    if (ecs_.empty()) {
      spdlog::info("ECS {} is ready", Printable(identity));
    } else {
      spdlog::warn("ECS {} replaces ECS {}; the old one's credit ({}) is void",
                   Printable(identity), Printable(ecs_), queue_.credit());
    }
    ecs_ = identity;
    queue_.ResetCredit();
  }
  queue_.AddCredit(credit);
  spdlog::debug("ECS credit +{} = {}, depth {}", credit, queue_.credit(), queue_.depth());
  Dispatch();
}

void Broker::Dispatch() {
  while (!ecs_.empty() && queue_.CanTake()) {
    size_t before = queue_.depth();
    QueuedRequest next = queue_.Take();
    zmq::message_t frame(next.work_frame.data(), next.work_frame.size());
    if (!SendTo(ecs_, std::move(frame))) {
      queue_.Return(std::move(next));
      spdlog::warn("ECS {} is unreachable; {} requests wait for an ECS", Printable(ecs_),
                   queue_.depth());
      ecs_.clear();
      queue_.ResetCredit();
      return;
    }
    spdlog::debug("handed request {} from {} to the ECS: depth {}, credit {}", next.request_id,
                  Printable(next.client), queue_.depth(), queue_.credit());
    LogDepthChange(before, "shrank");
  }
}

Status Broker::HandleWorkDone(const std::string& identity, wire::RoutedReply::Reader done) {
  if (ecs_.empty() || identity != ecs_) {
    return Status::InvalidArgument("workDone from a peer that is not the ECS");
  }
  auto client_bytes = done.getClient();
  if (client_bytes.size() == 0) return Status::InvalidArgument("workDone without a client");
  std::string client(reinterpret_cast<const char*>(client_bytes.begin()), client_bytes.size());
  CacheRingFromReply(done.getReply());
  if (client == FailureReporter()) {
    LogFailureReportDone(done.getReply());
    return Status::Ok();
  }
  capnp::MallocMessageBuilder builder;
  auto msg = builder.initRoot<wire::ControlMessage>();
  msg.setVersion(wire::CONTROL_VERSION);
  msg.setReply(done.getReply());
  zmq::message_t frame = ToFrame(builder);
  if (!SendTo(client, std::move(frame))) {
    spdlog::info("requester {} of request {} is gone; the ECS's reply is dropped",
                 Printable(client), done.getReply().getRequestId());
  }
  return Status::Ok();
}

void Broker::LogDepthChange(size_t before, const char* what) {
  if (WorkQueue::CrossesTen(before, queue_.depth())) {
    spdlog::info("queue {} to {} requests (credit {})", what, queue_.depth(), queue_.credit());
  }
}

bool Broker::SendTo(const std::string& identity, zmq::message_t body) {
  zmq::message_t id(identity.data(), identity.size());
  try {
    if (!control_.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return false;
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return false;  // router_mandatory: peer not connected
    throw;
  }
  // Once the identity frame is accepted the rest of the message goes through.
  (void)control_.send(body, zmq::send_flags::dontwait);
  return true;
}

void Broker::Reply(const std::string& identity, uint64_t request_id, wire::ControlStatus status,
                   const std::string& reason, bool with_ring) {
  capnp::MallocMessageBuilder builder;
  auto msg = builder.initRoot<wire::ControlMessage>();
  msg.setVersion(wire::CONTROL_VERSION);
  auto reply = msg.initReply();
  reply.setRequestId(request_id);
  reply.setStatus(status);
  reply.setReason(reason);
  if (with_ring && ring_version_ != 0) {
    // The cached frame was validated when it arrived.
    auto ring = FrameReader::Open(ring_frame_);
    if (ring.ok()) reply.setRing((*ring)->Root<wire::Ring>());
  }
  zmq::message_t frame = ToFrame(builder);
  if (!SendTo(identity, std::move(frame))) {
    spdlog::debug("requester {} of request {} is gone; reply dropped", Printable(identity),
                  request_id);
  }
}

}  // namespace kv

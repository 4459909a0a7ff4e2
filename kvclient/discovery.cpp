#include "kvclient/discovery.h"

#include <capnp/message.h>
#include <spdlog/spdlog.h>

#include <vector>

#include "schema/framing.h"
#include "schema/socket.h"

namespace kv::client {
namespace {

// Request ids of the probe's two requests on its private socket.
constexpr uint64_t kProbeKeyrangeId = 1;
constexpr uint64_t kProbeGetRingId = 2;

std::string RingTopic() { return std::string(wire::RING_TOPIC.get().cStr()); }

// Receives one single-frame message, waiting until `deadline`. False on
// timeout; frames with more parts are dropped and waiting goes on.
bool ReceiveOne(zmq::socket_t& socket, Clock::time_point deadline, zmq::message_t* out) {
  std::vector<zmq::message_t> frames;
  for (;;) {
    auto now = Clock::now();
    if (now >= deadline) return false;
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, std::chrono::ceil<std::chrono::milliseconds>(deadline - now));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) return false;
    }
    if (!(item.revents & ZMQ_POLLIN)) continue;
    size_t total = RecvMultipart(socket, &frames, 1, zmq::recv_flags::dontwait);
    if (total == 1) {
      *out = std::move(frames[0]);
      return true;
    }
  }
}

// What a probe reply tells: a kv Reply (stored in *reply), a control reply
// (stored in *answer), or nothing usable.
enum class Seen { kNothing, kKvReply, kControl };

Seen Classify(const zmq::message_t& frame, KvReply* reply, ControlAnswer* answer) {
  auto version = ProtocolVersionOf(frame);
  if (version == wire::PROTOCOL_VERSION) {
    DecodeScratch scratch;
    Reply r;
    if (!DecodeReply(frame, scratch, &r).ok()) return Seen::kNothing;
    reply->request_id = r.request_id;
    reply->status = r.status;
    reply->reason.assign(r.reason);
    reply->metadata.assign(r.metadata);
    reply->ring_version = r.ring_version;
    return Seen::kKvReply;
  }
  if (version == wire::CONTROL_VERSION) {
    auto decoded = DecodeControlReply(frame);
    // A broker refusing our kv frame may answer with an unreadable request id;
    // any control reply still shows it is a broker.
    if (decoded.ok()) *answer = std::move(*decoded);
    return Seen::kControl;
  }
  return Seen::kNothing;
}

}  // namespace

zmq::message_t EncodeGetRing(uint64_t request_id) {
  capnp::MallocMessageBuilder builder;
  auto msg = builder.initRoot<wire::ControlMessage>();
  msg.setVersion(wire::CONTROL_VERSION);
  auto request = msg.initRequest();
  request.setRequestId(request_id);
  request.setGetRing();
  return ToFrame(builder);
}

Result<ControlAnswer> DecodeControlReply(const zmq::message_t& frame) {
  auto reader = FrameReader::Open(frame);
  if (!reader.ok()) return reader.status();
  ControlAnswer answer;
  Status s = ReadUntrusted([&]() -> Status {
    auto msg = (*reader)->Root<wire::ControlMessage>();
    if (msg.getVersion() != wire::CONTROL_VERSION) {
      return Status::InvalidArgument("control protocol version " +
                                     std::to_string(msg.getVersion()));
    }
    if (!msg.isReply()) return Status::InvalidArgument("not a control reply");
    auto reply = msg.getReply();
    answer.request_id = reply.getRequestId();
    answer.status = reply.getStatus();
    answer.reason = reply.getReason();
    if (reply.hasRing() && reply.getRing().getVersion() > 0) {
      auto ring = Ring::FromCapnp(reply.getRing());
      if (!ring.ok()) return ring.status();
      answer.ring = *ring;
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return answer;
}

Result<ProbeResult> Probe(zmq::context_t& ctx, const std::string& host, uint16_t port,
                          std::chrono::milliseconds timeout) {
  ProbeResult result;
  zmq::socket_t socket = MakeSocket(ctx, zmq::socket_type::dealer);
  try {
    socket.connect(TcpEndpoint(host, port));
  } catch (const zmq::error_t& e) {
    return Status::InvalidArgument("cannot connect to " + host + ":" + std::to_string(port) + ": " +
                                   e.what());
  }

  Request keyrange;
  keyrange.request_id = kProbeKeyrangeId;
  keyrange.op = Op::kKeyrange;
  (void)socket.send(EncodeRequest(keyrange), zmq::send_flags::dontwait);
  zmq::message_t frame;
  Clock::time_point deadline = Clock::now() + timeout;
  while (ReceiveOne(socket, deadline, &frame)) {
    KvReply reply;
    ControlAnswer answer;
    Seen seen = Classify(frame, &reply, &answer);
    if (seen == Seen::kKvReply && reply.request_id == kProbeKeyrangeId) {
      result.kind = PeerKind::kNode;
      result.keyrange = std::move(reply);
      return result;
    }
    if (seen == Seen::kControl) break;  // a broker refused the kv frame: ask it properly
  }

  (void)socket.send(EncodeGetRing(kProbeGetRingId), zmq::send_flags::dontwait);
  deadline = Clock::now() + timeout;
  while (ReceiveOne(socket, deadline, &frame)) {
    KvReply reply;
    ControlAnswer answer;
    Seen seen = Classify(frame, &reply, &answer);
    if (seen == Seen::kKvReply) {
      // A slow node answering keyrange, or a node refusing the control frame.
      result.kind = PeerKind::kNode;
      if (reply.request_id == kProbeKeyrangeId) result.keyrange = std::move(reply);
      return result;
    }
    if (seen == Seen::kControl && answer.request_id == kProbeGetRingId) {
      result.kind = PeerKind::kBroker;
      result.ring_answer = std::move(answer);
      return result;
    }
  }
  return result;
}

BrokerLink::BrokerLink(zmq::context_t& ctx, std::string host, uint16_t control_port,
                       uint16_t pub_port)
    : ctx_(ctx),
      host_(std::move(host)),
      control_port_(control_port),
      pub_port_(pub_port),
      address_(host_ + ":" + std::to_string(control_port_)) {}

Status BrokerLink::Open() {
  try {
    control_.emplace(MakeSocket(ctx_, zmq::socket_type::dealer));
    control_->connect(TcpEndpoint(host_, control_port_));
    sub_.emplace(MakeSocket(ctx_, zmq::socket_type::sub));
    sub_->set(zmq::sockopt::subscribe, RingTopic());
    sub_->connect(TcpEndpoint(host_, pub_port_));
  } catch (const zmq::error_t& e) {
    control_.reset();
    sub_.reset();
    return Status::InvalidArgument("cannot connect to the broker at " + address_ + " (pub port " +
                                   std::to_string(pub_port_) + "): " + e.what());
  }
  return Status::Ok();
}

Result<std::shared_ptr<const Ring>> BrokerLink::GetRing(std::chrono::milliseconds timeout) {
  if (!control_) return Status::Unavailable("broker link to " + address_ + " is not open");
  const uint64_t id = next_request_id_++;
  try {
    if (!control_->send(EncodeGetRing(id), zmq::send_flags::dontwait)) {
      return Status::Overloaded("send queue to the broker at " + address_ + " is full");
    }
  } catch (const zmq::error_t& e) {
    return Status::IOError("send to the broker at " + address_ + " failed: " + e.what());
  }
  const Clock::time_point deadline = Clock::now() + timeout;
  zmq::message_t frame;
  while (ReceiveOne(*control_, deadline, &frame)) {
    auto answer = DecodeControlReply(frame);
    if (!answer.ok()) {
      spdlog::warn("dropping a bad control reply from {}: {}", address_, answer.status().message());
      continue;
    }
    if (answer->request_id != id) continue;  // late answer to an earlier getRing
    switch (answer->status) {
      case wire::ControlStatus::OK:
        if (answer->ring) return answer->ring;
        return Status::Unavailable("the broker at " + address_ + " has no ring yet");
      case wire::ControlStatus::UNAVAILABLE:
        return Status::Unavailable("the broker at " + address_ + " has no ring yet" +
                                   (answer->reason.empty() ? "" : " (" + answer->reason + ")"));
      case wire::ControlStatus::OVERLOADED:
        return Status::Overloaded("the broker at " + address_ + " is overloaded");
      default:
        return Status::InvalidArgument("the broker at " + address_ +
                                       " refused getRing: " + answer->reason);
    }
  }
  return Status::Timeout("no reply from the broker at " + address_ + " within " +
                         std::to_string(timeout.count()) + " ms");
}

std::shared_ptr<const Ring> BrokerLink::TakeUpdates(std::chrono::milliseconds wait) {
  if (!sub_) return nullptr;
  std::shared_ptr<const Ring> newest;
  std::vector<zmq::message_t> frames;
  auto timeout = wait;
  for (;;) {
    zmq::pollitem_t item{sub_->handle(), 0, ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, timeout);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) break;
    }
    if (!(item.revents & ZMQ_POLLIN)) break;
    timeout = std::chrono::milliseconds(0);  // drain what is there, then stop
    size_t total = RecvMultipart(*sub_, &frames, 2, zmq::recv_flags::dontwait);
    if (total != 2) {
      if (total != 0) spdlog::warn("ring publication with {} frames; ignored", total);
      continue;
    }
    auto ring = Ring::DecodeRing(frames[1]);
    if (!ring.ok()) {
      spdlog::warn("bad ring publication from {}: {}", address_, ring.status().message());
      continue;
    }
    if (!newest || (*ring)->version() > newest->version()) newest = *ring;
  }
  return newest;
}

zmq::pollitem_t BrokerLink::UpdatesPollItem() {
  if (!sub_) return zmq::pollitem_t{nullptr, -1, 0, 0};
  return zmq::pollitem_t{sub_->handle(), 0, ZMQ_POLLIN, 0};
}

}  // namespace kv::client

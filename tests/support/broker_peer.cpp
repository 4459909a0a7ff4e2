#include "tests/support/broker_peer.h"

#include <capnp/message.h>

#include <stdexcept>
#include <string_view>

#include "schema/framing.h"
#include "schema/socket.h"
#include "schema/wire.h"

namespace kvtest {
namespace {

using kv::wire::ControlMessage;
using kv::wire::ControlRequest;

std::string Frame(capnp::MallocMessageBuilder& builder) {
  zmq::message_t m = kv::ToFrame(builder);
  return std::string(m.data<char>(), m.size());
}

void SendAll(zmq::socket_t& socket, const std::vector<std::string>& frames) {
  for (size_t i = 0; i < frames.size(); ++i) {
    zmq::message_t m(frames[i].data(), frames[i].size());
    auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
    (void)socket.send(m, flags);
  }
}

void FillRing(kv::wire::Ring::Builder ring, uint64_t version, size_t nodes) {
  ring.setVersion(version);
  ring.setReplicationFactor(1);
  auto list = ring.initNodes(static_cast<unsigned>(nodes));
  for (size_t i = 0; i < nodes; ++i) {
    auto addr = list[i].initAddress();
    addr.setHost("127.0.0.1");
    addr.setPort(static_cast<uint16_t>(40000 + i));
    addr.setPeerPort(static_cast<uint16_t>(41000 + i));
    auto pos = list[i].initPosition(16);
    for (size_t b = 0; b < 16; ++b) pos[b] = static_cast<uint8_t>(i * 16 + b);
  }
}

}  // namespace

BrokerProcess::BrokerProcess(const std::string& work_dir, std::vector<std::string> extra_flags) {
  static int counter = 0;
  std::string tag = std::to_string(getpid()) + "-" + std::to_string(++counter);
  std::string port_file = work_dir + "/broker-" + tag + ".ports";
  std::vector<std::string> argv = {Bin("kvbroker"), "-a", "127.0.0.1", "-p", "0",
                                   "--port-file", port_file};
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  process_ = std::make_unique<Process>(argv, work_dir + "/broker-" + tag + ".log");
  WaitFor(
      [&] {
        std::string text = ReadFile(port_file);
        if (text.empty() || text.back() != '\n') return !process_->running();
        unsigned c = 0, p = 0, s = 0;
        if (std::sscanf(text.c_str(), "%u %u %u", &c, &p, &s) != 3) return true;
        port_file_text_ = text;
        control_port_ = static_cast<uint16_t>(c);
        pub_port_ = static_cast<uint16_t>(p);
        sub_port_ = static_cast<uint16_t>(s);
        return true;
      },
      15s);
}

bool BrokerProcess::LogContains(const std::string& text, std::chrono::milliseconds deadline) {
  return WaitFor([&] { return process_->Log().find(text) != std::string::npos; }, deadline);
}

std::string AddressRequestFrame(ControlRequest::Which kind, uint64_t request_id,
                                const std::string& host, uint16_t port) {
  capnp::MallocMessageBuilder b;
  auto msg = b.initRoot<ControlMessage>();
  msg.setVersion(kv::wire::CONTROL_VERSION);
  auto req = msg.initRequest();
  req.setRequestId(request_id);
  kv::wire::NodeAddress::Builder addr = [&] {
    switch (kind) {
      case ControlRequest::JOIN: return req.initJoin();
      case ControlRequest::LEAVE: return req.initLeave();
      case ControlRequest::HEARTBEAT: return req.initHeartbeat();
      case ControlRequest::NODE_FAILED: return req.initNodeFailed();
      default: throw std::logic_error("not an address request");
    }
  }();
  addr.setHost(host);
  addr.setPort(port);
  addr.setPeerPort(static_cast<uint16_t>(port + 1));
  return Frame(b);
}

std::string GetRingFrame(uint64_t request_id, uint16_t version) {
  capnp::MallocMessageBuilder b;
  auto msg = b.initRoot<ControlMessage>();
  msg.setVersion(version);
  auto req = msg.initRequest();
  req.setRequestId(request_id);
  req.setGetRing();
  return Frame(b);
}

std::string RingFrame(uint64_t version, size_t nodes) {
  capnp::MallocMessageBuilder b;
  FillRing(b.initRoot<kv::wire::Ring>(), version, nodes);
  return Frame(b);
}

ControlPeer::ControlPeer(uint16_t control_port) {
  socket_ = kv::MakeSocket(ctx_, zmq::socket_type::dealer);
  socket_.connect(kv::TcpEndpoint("127.0.0.1", control_port));
}

void ControlPeer::SendFrames(const std::vector<std::string>& frames) { SendAll(socket_, frames); }

void ControlPeer::Join(uint64_t request_id, const std::string& host, uint16_t port) {
  SendFrames({AddressRequestFrame(ControlRequest::JOIN, request_id, host, port)});
}

void ControlPeer::GetRing(uint64_t request_id) { SendFrames({GetRingFrame(request_id)}); }

void ControlPeer::Heartbeat(uint64_t request_id, const std::string& host, uint16_t port) {
  SendFrames({AddressRequestFrame(ControlRequest::HEARTBEAT, request_id, host, port)});
}

void ControlPeer::EcsReady(uint32_t credit) {
  capnp::MallocMessageBuilder b;
  auto msg = b.initRoot<ControlMessage>();
  msg.setVersion(kv::wire::CONTROL_VERSION);
  msg.setEcsReady(credit);
  SendFrames({Frame(b)});
}

void ControlPeer::WorkDone(const std::string& client, uint64_t request_id,
                           kv::wire::ControlStatus status, const std::string& reason) {
  capnp::MallocMessageBuilder b;
  auto msg = b.initRoot<ControlMessage>();
  msg.setVersion(kv::wire::CONTROL_VERSION);
  auto done = msg.initWorkDone();
  done.setClient(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(client.data()),
                                     client.size()));
  auto reply = done.initReply();
  reply.setRequestId(request_id);
  reply.setStatus(status);
  reply.setReason(reason);
  SendFrames({Frame(b)});
}

std::optional<ControlMsg> ControlPeer::Receive(std::chrono::milliseconds deadline) {
  zmq::pollitem_t item{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, deadline) == 0) return std::nullopt;
  std::vector<zmq::message_t> frames;
  size_t total = kv::RecvMultipart(socket_, &frames, 2, zmq::recv_flags::dontwait);
  if (total != 1) throw std::runtime_error("expected one frame, got " + std::to_string(total));
  auto reader = kv::FrameReader::Open(frames[0]);
  if (!reader.ok()) throw std::runtime_error("undecodable: " + reader.status().ToString());
  ControlMsg out;
  kv::Status s = kv::ReadUntrusted([&] {
    auto msg = (*reader)->Root<ControlMessage>();
    out.kind = msg.which();
    if (msg.isReply()) {
      auto r = msg.getReply();
      out.request_id = r.getRequestId();
      out.status = r.getStatus();
      out.reason = r.getReason();
      out.ring_version = r.getRing().getVersion();
      out.ring_nodes = r.getRing().getNodes().size();
    } else if (msg.isWork()) {
      auto w = msg.getWork();
      out.client.assign(reinterpret_cast<const char*>(w.getClient().begin()),
                        w.getClient().size());
      auto req = w.getRequest();
      out.request_kind = req.which();
      out.work_request_id = req.getRequestId();
      kv::wire::NodeAddress::Reader addr;
      if (req.isJoin()) addr = req.getJoin();
      if (req.isLeave()) addr = req.getLeave();
      if (req.isNodeFailed()) addr = req.getNodeFailed();
      out.host = addr.getHost();
      out.port = addr.getPort();
    }
    return kv::Status::Ok();
  });
  if (!s.ok()) throw std::runtime_error("undecodable: " + s.ToString());
  return out;
}

std::optional<ControlMsg> ControlPeer::CallGetRing(uint64_t request_id) {
  GetRing(request_id);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    auto m = Receive(std::max(left, std::chrono::milliseconds(1)));
    if (!m) return std::nullopt;
    if (m->kind == ControlMessage::REPLY && m->request_id == request_id) return m;
  }
  return std::nullopt;
}

RingPublisher::RingPublisher(uint16_t sub_port) {
  socket_ = kv::MakeSocket(ctx_, zmq::socket_type::pub);
  socket_.connect(kv::TcpEndpoint("127.0.0.1", sub_port));
}

void RingPublisher::Publish(uint64_t version, size_t nodes) {
  PublishFrames({std::string(kv::wire::RING_TOPIC.get().cStr()), RingFrame(version, nodes)});
}

void RingPublisher::PublishFrames(const std::vector<std::string>& frames) {
  SendAll(socket_, frames);
}

RingSubscriber::RingSubscriber(uint16_t pub_port) {
  socket_ = kv::MakeSocket(ctx_, zmq::socket_type::sub);
  socket_.set(zmq::sockopt::subscribe, kv::wire::RING_TOPIC.get().cStr());
  socket_.connect(kv::TcpEndpoint("127.0.0.1", pub_port));
}

std::optional<uint64_t> RingSubscriber::NextVersion(std::chrono::milliseconds deadline) {
  zmq::pollitem_t item{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, deadline) == 0) return std::nullopt;
  std::vector<zmq::message_t> frames;
  size_t total = kv::RecvMultipart(socket_, &frames, 3, zmq::recv_flags::dontwait);
  if (total != 2) throw std::runtime_error("publication of " + std::to_string(total) + " frames");
  auto reader = kv::FrameReader::Open(frames[1]);
  if (!reader.ok()) throw std::runtime_error("undecodable ring: " + reader.status().ToString());
  uint64_t version = 0;
  kv::Status s = kv::ReadUntrusted([&] {
    version = (*reader)->Root<kv::wire::Ring>().getVersion();
    return kv::Status::Ok();
  });
  if (!s.ok()) throw std::runtime_error("undecodable ring: " + s.ToString());
  return version;
}

bool PublishUntilCached(RingPublisher& publisher, ControlPeer& peer, uint64_t version,
                        std::chrono::milliseconds deadline) {
  static uint64_t next_id = 1u << 30;
  return WaitFor(
      [&] {
        publisher.Publish(version);
        auto reply = peer.CallGetRing(++next_id);
        return reply && reply->ring_version == version;
      },
      deadline);
}

}  // namespace kvtest

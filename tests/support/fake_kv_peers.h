// Test support for the client library: in-process fakes on 127.0.0.1
// ephemeral ports. ServedNode is a ROUTER playing a kvnode (answering every kv
// request from its own thread with a scripted handler); FakeBroker a ROUTER +
// XPUB playing a kvbroker (getRing and ring publications). Header-only. Each
// fake is used from the test thread; its own thread only answers.
#pragma once

#include <capnp/message.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "kvclient/connection.h"
#include "schema/framing.h"
#include "schema/ring.h"
#include "schema/socket.h"
#include "schema/wire.h"

namespace kvtest {

using namespace std::chrono_literals;

struct Seen {
  kv::Op op = kv::Op::kGet;
  std::string key;
  std::string value;
  bool stale_ok = false;   // Request.staleOk
  bool unordered = false;  // Request.unordered
};

struct Answer {
  Answer(kv::WireStatus s, std::string v = "", std::string m = "", uint64_t version = 0)
      : status(s), value(std::move(v)), metadata(std::move(m)), ring_version(version) {}
  kv::WireStatus status;
  std::string value;
  std::string metadata;
  uint64_t ring_version;
};

// A ROUTER bound to an ephemeral loopback port that answers every kv request
// from its own thread with handler(request); nullopt = stay silent. Frames
// that are not kv requests are ignored.
class ServedNode {
 public:
  using Handler = std::function<std::optional<Answer>(const Seen&)>;

  explicit ServedNode(Handler handler)
      : handler_(std::move(handler)), socket_(kv::MakeSocket(ctx_, zmq::socket_type::router)) {
    socket_.bind(kv::TcpEndpoint("127.0.0.1", 0));
    port_ = *kv::BoundPort(socket_);
    thread_ = std::thread([this] { Loop(); });
  }
  ~ServedNode() {
    stop_ = true;
    thread_.join();
  }

  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  kv::NodeAddress node_address() const { return kv::NodeAddress{"127.0.0.1", port_, 0}; }
  size_t Count(kv::Op op) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& s : seen_) n += s.op == op;
    return n;
  }
  std::vector<Seen> seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

 private:
  void Loop() {
    std::vector<zmq::message_t> frames;
    kv::DecodeScratch scratch;
    while (!stop_) {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, 20ms);
      if (!(item.revents & ZMQ_POLLIN)) continue;
      if (kv::RecvMultipart(socket_, &frames, 2, zmq::recv_flags::dontwait) != 2) continue;
      kv::Request request;
      uint64_t id = 0;
      if (!kv::DecodeRequest(frames[1], scratch, &request, &id).ok()) continue;
      Seen seen{request.op, std::string(request.key), std::string(request.value), request.stale_ok,
                request.unordered};
      {
        std::lock_guard<std::mutex> lock(mu_);
        seen_.push_back(seen);
      }
      std::optional<Answer> answer = handler_(seen);
      if (!answer) continue;
      kv::Reply reply;
      reply.request_id = request.request_id;
      reply.status = answer->status;
      reply.key = seen.key;
      reply.value = answer->value;
      reply.metadata = answer->metadata;
      reply.ring_version = answer->ring_version;
      socket_.send(frames[0], zmq::send_flags::sndmore);
      socket_.send(kv::EncodeReply(reply), zmq::send_flags::none);
    }
  }

  Handler handler_;
  zmq::context_t ctx_;
  zmq::socket_t socket_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;  // guards seen_
  std::vector<Seen> seen_;
  std::thread thread_;
};

// A kvbroker stand-in: a ROUTER answering getRing with the current ring (and
// anything else with a control bad_request), and an XPUB sending the current
// ring to each new subscriber and every ring given to Publish.
class FakeBroker {
 public:
  explicit FakeBroker(std::shared_ptr<const kv::Ring> ring)
      : ring_(std::move(ring)),
        control_(kv::MakeSocket(ctx_, zmq::socket_type::router)),
        pub_(kv::MakeSocket(ctx_, zmq::socket_type::xpub)) {
    control_.bind(kv::TcpEndpoint("127.0.0.1", 0));
    pub_.set(zmq::sockopt::xpub_verbose, 1);
    pub_.bind(kv::TcpEndpoint("127.0.0.1", 0));
    control_port_ = *kv::BoundPort(control_);
    pub_port_ = *kv::BoundPort(pub_);
    thread_ = std::thread([this] { Loop(); });
  }
  ~FakeBroker() {
    stop_ = true;
    thread_.join();
  }
  uint16_t control_port() const { return control_port_; }
  uint16_t pub_port() const { return pub_port_; }
  void Publish(std::shared_ptr<const kv::Ring> ring) {
    std::lock_guard<std::mutex> lock(mu_);
    ring_ = std::move(ring);
    publish_ = true;
  }

 private:
  void Loop() {
    std::vector<zmq::message_t> frames;
    while (!stop_) {
      zmq::pollitem_t items[] = {{control_.handle(), 0, ZMQ_POLLIN, 0},
                                 {pub_.handle(), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 2, 10ms);
      std::lock_guard<std::mutex> lock(mu_);
      if (items[0].revents & ZMQ_POLLIN &&
          kv::RecvMultipart(control_, &frames, 2, zmq::recv_flags::dontwait) == 2) {
        Answer(frames[0], frames[1]);
      }
      if (items[1].revents & ZMQ_POLLIN) {
        zmq::message_t subscription;
        (void)pub_.recv(subscription, zmq::recv_flags::dontwait);
        if (subscription.size() > 0 && subscription.data<char>()[0] == 1) publish_ = true;
      }
      if (publish_) {
        publish_ = false;
        pub_.send(zmq::str_buffer("ring"), zmq::send_flags::sndmore);
        pub_.send(ring_->EncodeRing(), zmq::send_flags::none);
      }
    }
  }

  void Answer(zmq::message_t& identity, const zmq::message_t& frame) {
    uint64_t request_id = 0;
    bool get_ring = false;
    if (kv::client::ProtocolVersionOf(frame) == kv::wire::CONTROL_VERSION) {
      auto reader = kv::FrameReader::Open(frame);
      if (reader.ok()) {
        (void)kv::ReadUntrusted([&] {
          auto msg = (*reader)->Root<kv::wire::ControlMessage>();
          if (msg.isRequest() && msg.getRequest().isGetRing()) {
            get_ring = true;
            request_id = msg.getRequest().getRequestId();
          }
          return kv::Status::Ok();
        });
      }
    }
    capnp::MallocMessageBuilder builder;
    auto msg = builder.initRoot<kv::wire::ControlMessage>();
    msg.setVersion(kv::wire::CONTROL_VERSION);
    auto reply = msg.initReply();
    reply.setRequestId(request_id);
    if (get_ring) {
      reply.setStatus(kv::wire::ControlStatus::OK);
      ring_->ToCapnp(reply.initRing());
    } else {
      reply.setStatus(kv::wire::ControlStatus::BAD_REQUEST);
      reply.setReason("not a control message");
    }
    control_.send(identity, zmq::send_flags::sndmore);
    control_.send(kv::ToFrame(builder), zmq::send_flags::none);
  }

  zmq::context_t ctx_;
  std::mutex mu_;  // guards ring_ and publish_ (Publish runs on the test thread)
  std::shared_ptr<const kv::Ring> ring_;
  bool publish_ = false;
  zmq::socket_t control_;
  zmq::socket_t pub_;
  uint16_t control_port_ = 0, pub_port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A ring of `nodes` with replication factor rf.
inline std::shared_ptr<const kv::Ring> MakeRing(uint64_t version, std::vector<kv::NodeAddress> nodes,
                                                int rf = 1) {
  auto ring = kv::Ring::Make(version, rf, std::move(nodes));
  REQUIRE(ring.ok());
  return *ring;
}

// A key whose primary in `ring` is `owner`.
inline std::string KeyOwnedBy(const kv::Ring& ring, const kv::NodeAddress& owner) {
  for (int i = 0; i < 10000; ++i) {
    std::string key = "key" + std::to_string(i);
    if (ring.Primary(kv::KeyPosition(key))->address == owner) return key;
  }
  FAIL("no key found for " << owner.ToString());
  return "";
}

}  // namespace kvtest

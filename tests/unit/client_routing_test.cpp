// KvClient routing and retries against in-process fakes on 127.0.0.1
// ephemeral ports: ROUTERs playing kvnodes (each answering from its own thread
// with a scripted handler) and a ROUTER + XPUB playing a kvbroker.
#include <capnp/message.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "kvclient/client.h"
#include "schema/framing.h"
#include "schema/ring.h"
#include "schema/socket.h"
#include "tests/support/process.h"

using kv::NodeAddress;
using kv::Op;
using kv::Ring;
using kv::WireStatus;
using kv::client::Clock;
using kv::client::KvClient;
using namespace std::chrono_literals;

namespace {

struct Seen {
  Op op = Op::kGet;
  std::string key;
  std::string value;
};

struct Answer {
  Answer(WireStatus s, std::string v = "", std::string m = "", uint64_t version = 0)
      : status(s), value(std::move(v)), metadata(std::move(m)), ring_version(version) {}
  WireStatus status;
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
  NodeAddress node_address() const { return NodeAddress{"127.0.0.1", port_, 0}; }
  size_t Count(Op op) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& s : seen_) n += s.op == op;
    return n;
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
      Seen seen{request.op, std::string(request.key), std::string(request.value)};
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
  explicit FakeBroker(std::shared_ptr<const Ring> ring)
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
  void Publish(std::shared_ptr<const Ring> ring) {
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
  std::shared_ptr<const Ring> ring_;
  bool publish_ = false;
  zmq::socket_t control_;
  zmq::socket_t pub_;
  uint16_t control_port_ = 0, pub_port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::shared_ptr<const Ring> MakeRing(uint64_t version, std::vector<NodeAddress> nodes) {
  auto ring = Ring::Make(version, 1, std::move(nodes));
  REQUIRE(ring.ok());
  return *ring;
}

// A key whose primary in `ring` is `owner`.
std::string KeyOwnedBy(const Ring& ring, const NodeAddress& owner) {
  for (int i = 0; i < 10000; ++i) {
    std::string key = "key" + std::to_string(i);
    if (ring.Primary(kv::KeyPosition(key))->address == owner) return key;
  }
  FAIL("no key found for " << owner.ToString());
  return "";
}

// Keyrange text as a standalone node prints it: one node, whole ring. With
// ring version 0 the client sends everything to the address it connected to,
// whatever address the text names.
const std::string kStandaloneText =
    (*Ring::Make(0, 1, {NodeAddress{"127.0.0.1", 1, 0}}))->KeyrangeText();

}  // namespace

TEST_CASE("a node that is not responsible sends the client to the key's new node",
          "[client][routing]") {
  // Two nodes share a view of the ring: version 1 has both, version 2 only B
  // (A left). A refuses keys once asked, as a node does after a ring change.
  std::atomic<bool> moved{false};
  std::shared_ptr<const Ring> v1, v2;
  auto keyrange = [&]() {
    const auto& ring = moved ? v2 : v1;
    return Answer{WireStatus::KEYRANGE_SUCCESS, "", ring->KeyrangeText(), ring->version()};
  };
  ServedNode a([&](const Seen& s) -> std::optional<Answer> {
    if (s.op == Op::kKeyrange) return keyrange();
    moved = true;
    return Answer{WireStatus::SERVER_NOT_RESPONSIBLE, "", "", 2};
  });
  ServedNode b([&](const Seen& s) -> std::optional<Answer> {
    if (s.op == Op::kKeyrange) return keyrange();
    return Answer{WireStatus::GET_SUCCESS, "from B", "", moved ? 2u : 1u};
  });
  v1 = MakeRing(1, {a.node_address(), b.node_address()});
  v2 = MakeRing(2, {b.node_address()});
  const std::string key = KeyOwnedBy(*v1, a.node_address());

  kv::client::ClientOptions options;
  options.request_timeout = 2s;
  KvClient client(options);
  REQUIRE(client.Connect("127.0.0.1", b.port()).ok());  // B is the node we know
  CHECK_FALSE(client.via_broker());
  CHECK(client.router().version() == 1);
  CHECK(client.router().table().size() == 2);

  auto reply = client.Get(key);
  REQUIRE(reply.ok());
  CHECK(reply->status == WireStatus::GET_SUCCESS);
  CHECK(reply->value == "from B");
  CHECK(a.Count(Op::kGet) == 1);       // straight to the owner by ring 1...
  CHECK(a.Count(Op::kKeyrange) == 1);  // ...which is asked for its newer ring...
  CHECK(b.Count(Op::kGet) == 1);       // ...and the request goes to B at once
  CHECK(client.router().version() == 2);
  // A left the ring, so its connection is closed.
  CHECK(client.router().OpenAddresses() == std::vector<std::string>{b.address()});
}

TEST_CASE("server_stopped and server_write_lock are retried with back-off until served",
          "[client][retry]") {
  std::atomic<int> refusals{2};
  ServedNode node([&](const Seen& s) -> std::optional<Answer> {
    if (s.op == Op::kKeyrange) return Answer{WireStatus::KEYRANGE_SUCCESS, "", kStandaloneText};
    if (refusals-- > 0) {
      return Answer{s.op == Op::kPut ? WireStatus::SERVER_WRITE_LOCK : WireStatus::SERVER_STOPPED};
    }
    return Answer{s.op == Op::kPut ? WireStatus::PUT_SUCCESS : WireStatus::GET_SUCCESS, "v"};
  });
  KvClient client;
  REQUIRE(client.Connect("127.0.0.1", node.port()).ok());

  auto get = client.Get("k");
  REQUIRE(get.ok());
  CHECK(get->status == WireStatus::GET_SUCCESS);
  CHECK(node.Count(Op::kGet) == 3);

  refusals = 1;
  auto put = client.Put("k", "v");  // refused before anything was applied: safe to resend
  REQUIRE(put.ok());
  CHECK(put->status == WireStatus::PUT_SUCCESS);
  CHECK(node.Count(Op::kPut) == 2);
}

TEST_CASE("a request refused for longer than the retry budget gives up naming the node",
          "[client][retry]") {
  ServedNode node([&](const Seen& s) -> std::optional<Answer> {
    if (s.op == Op::kKeyrange) return Answer{WireStatus::KEYRANGE_SUCCESS, "", kStandaloneText};
    return Answer{WireStatus::SERVER_STOPPED};
  });
  kv::client::ClientOptions options;
  options.retry_budget = 200ms;
  KvClient client(options);
  REQUIRE(client.Connect("127.0.0.1", node.port()).ok());
  auto started = Clock::now();
  auto reply = client.Get("k");
  REQUIRE_FALSE(reply.ok());
  CHECK(reply.status().code() == kv::Status::Code::kUnavailable);
  CHECK(reply.status().message() == "gave up after 200 ms: server_stopped from " + node.address());
  CHECK(Clock::now() - started < 1s);
  CHECK(node.Count(Op::kGet) >= 3);  // 10, 20, 40, 80 ms ceilings fit in 200 ms
}

TEST_CASE("a get that timed out is asked again, a put that timed out is not", "[client][retry]") {
  std::atomic<int> gets{0};
  ServedNode node([&](const Seen& s) -> std::optional<Answer> {
    if (s.op == Op::kKeyrange) return Answer{WireStatus::KEYRANGE_SUCCESS, "", kStandaloneText};
    if (s.op == Op::kGet && ++gets > 1) return Answer{WireStatus::GET_SUCCESS, "late but here"};
    return std::nullopt;  // the first get and every put go unanswered
  });
  kv::client::ClientOptions options;
  options.request_timeout = 150ms;
  KvClient client(options);
  REQUIRE(client.Connect("127.0.0.1", node.port()).ok());

  auto get = client.Get("k");
  REQUIRE(get.ok());
  CHECK(get->value == "late but here");
  CHECK(node.Count(Op::kGet) == 2);

  auto put = client.Put("k", "v");
  REQUIRE_FALSE(put.ok());
  CHECK(put.status().IsTimeout());
  CHECK(put.status().message().find("outcome unknown") != std::string::npos);
  auto del = client.Delete("k");
  REQUIRE_FALSE(del.ok());
  CHECK(del.status().IsTimeout());
  CHECK(node.Count(Op::kPut) == 1);
  CHECK(node.Count(Op::kDelete) == 1);
}

TEST_CASE("through a broker the client routes by its ring and follows the rings it publishes",
          "[client][routing]") {
  ServedNode a([&](const Seen& s) -> std::optional<Answer> {
    return Answer{s.op == Op::kGet ? WireStatus::GET_SUCCESS : WireStatus::BAD_REQUEST, "from A"};
  });
  ServedNode b([&](const Seen& s) -> std::optional<Answer> {
    return Answer{s.op == Op::kGet ? WireStatus::GET_SUCCESS : WireStatus::BAD_REQUEST, "from B"};
  });
  auto v1 = MakeRing(1, {a.node_address(), b.node_address()});
  auto v2 = MakeRing(2, {b.node_address()});
  FakeBroker broker(v1);
  const std::string key = KeyOwnedBy(*v1, a.node_address());

  kv::client::ClientOptions options;
  options.request_timeout = 2s;
  options.broker_pub_port = broker.pub_port();
  KvClient client(options);
  REQUIRE(client.Connect("127.0.0.1", broker.control_port()).ok());
  CHECK(client.via_broker());
  CHECK(client.address() == "127.0.0.1:" + std::to_string(broker.control_port()));
  CHECK(client.router().version() == 1);

  auto keyrange = client.Keyrange();
  REQUIRE(keyrange.ok());
  CHECK(keyrange->status == WireStatus::KEYRANGE_SUCCESS);
  CHECK(keyrange->metadata == v1->KeyrangeText());
  auto keyrange_read = client.KeyrangeRead();
  REQUIRE(keyrange_read.ok());
  CHECK(keyrange_read->status == WireStatus::KEYRANGE_READ_SUCCESS);
  CHECK(keyrange_read->metadata == v1->KeyrangeReadText());

  auto first = client.Get(key);
  REQUIRE(first.ok());
  CHECK(first->value == "from A");

  // Ring 2 arrives on the event plane without the client asking for it.
  broker.Publish(v2);
  std::string value;
  CHECK(kvtest::WaitFor([&] {
    auto r = client.Get(key);
    if (r.ok()) value = r->value;
    return value == "from B";
  }));
  CHECK(client.router().version() == 2);
  CHECK(client.router().OpenAddresses() == std::vector<std::string>{b.address()});
  CHECK(client.Keyrange()->metadata == v2->KeyrangeText());
}

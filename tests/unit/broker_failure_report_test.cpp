// The Broker's failure reports (and its ring cache), in process with a fake clock: the test moves
// time, fake peers (tests/support/broker_peer.h) play the nodes and the ECS on
// 127.0.0.1 ephemeral ports. Rings come from kvtest::RingFrame: n made-up
// nodes 127.0.0.1:40000, 40001, ... The broker looks at the clock at least
// every failure_check_ms of real time, so a step of the fake clock shows
// within a few milliseconds.
//
// Where a test shows that no report was sent, the ECS sends getRing twice: the
// broker answers in order and checks for failures after each round, so any
// report due at the current fake time arrives before the second answer.
#include <capnp/message.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "broker/broker.h"
#include "schema/framing.h"
#include "schema/ring.h"
#include "tests/support/broker_peer.h"

using kv::wire::ControlMessage;
using kv::wire::ControlRequest;
using kv::wire::ControlStatus;
using kvtest::ControlPeer;
using kvtest::RingPublisher;
using namespace std::chrono_literals;

namespace {

const std::string kA = "127.0.0.1:40000", kB = "127.0.0.1:40001", kC = "127.0.0.1:40002";

// A Broker running on its own thread with a clock the test sets.
class RunningBroker {
 public:
  explicit RunningBroker(int64_t max_queue = 1000) {
    kv::BrokerConfig config;
    config.port = 0;
    config.max_queue = max_queue;
    config.failure_timeout_ms = 1000;
    config.failure_check_ms = 5;
    REQUIRE(kv::ResolvePorts(&config).ok());
    broker_ = std::make_unique<kv::Broker>(config, [this] { return Now(); });
    REQUIRE(broker_->Start().ok());
    thread_ = std::thread([this] { (void)broker_->Run(); });
  }
  ~RunningBroker() {
    broker_->RequestStop();
    thread_.join();
  }
  kv::Broker& operator*() { return *broker_; }
  kv::Broker* operator->() { return broker_.get(); }
  // Fake time since the start, in milliseconds.
  void Set(int64_t ms) { ms_ = ms; }

 private:
  std::chrono::steady_clock::time_point Now() const {
    return std::chrono::steady_clock::time_point(std::chrono::hours(1)) +
           std::chrono::milliseconds(ms_.load());
  }
  std::atomic<int64_t> ms_{0};
  std::unique_ptr<kv::Broker> broker_;
  std::thread thread_;
};

// Sends one heartbeat per address and waits for each answer.
void Heartbeat(ControlPeer& node, const std::vector<std::string>& addresses) {
  static uint64_t id = 1000;
  for (const auto& a : addresses) {
    auto colon = a.find(':');
    node.Heartbeat(++id, a.substr(0, colon), static_cast<uint16_t>(std::stoi(a.substr(colon + 1))));
    auto reply = node.Receive();
    REQUIRE(reply.has_value());
    REQUIRE(reply->request_id == id);
    REQUIRE(reply->status == ControlStatus::OK);
  }
}

// The next message to the ECS must be a nodeFailed report; returns "host:port".
std::string NextReport(ControlPeer& ecs) {
  auto m = ecs.Receive();
  REQUIRE(m.has_value());
  REQUIRE(m->kind == ControlMessage::WORK);
  REQUIRE(m->request_kind == ControlRequest::NODE_FAILED);
  CHECK(m->client == kv::Broker::FailureReporter());
  return m->host + ":" + std::to_string(m->port);
}

void RequireNoWork(ControlPeer& ecs) {
  static uint64_t id = 1u << 20;
  for (int i = 0; i < 2; ++i) {
    ecs.GetRing(++id);
    auto m = ecs.Receive();
    REQUIRE(m.has_value());
    REQUIRE(m->kind == ControlMessage::REPLY);
    REQUIRE(m->request_id == id);
  }
}

void PublishRing(RingPublisher& publisher, ControlPeer& peer, uint64_t version, size_t nodes) {
  REQUIRE(kvtest::WaitFor([&] {
    publisher.Publish(version, nodes);
    auto reply = peer.CallGetRing(1);
    return reply && reply->ring_version == version;
  }));
}

}  // namespace

TEST_CASE("a ring member silent for the failure timeout is reported until a ring drops it",
          "[broker][failure]") {
  RunningBroker broker;
  ControlPeer ecs(broker->control_port()), node(broker->control_port());
  RingPublisher publisher(broker->sub_port());
  ecs.EcsReady(100);
  PublishRing(publisher, ecs, 1, 3);  // A, B and C; their clocks start at 0

  broker.Set(900);
  Heartbeat(node, {kA, kB});
  RequireNoWork(ecs);
  broker.Set(1000);  // C has been silent since the ring arrived
  CHECK(NextReport(ecs) == kC);
  RequireNoWork(ecs);

  // The ECS's answer goes to no one: the broker drops it without complaint.
  ecs.WorkDone(kv::Broker::FailureReporter(), 1, ControlStatus::OK, "removed");
  RequireNoWork(ecs);

  broker.Set(1800);
  Heartbeat(node, {kA, kB});
  RequireNoWork(ecs);  // C was reported at 1000: not again before 2000
  broker.Set(2000);
  CHECK(NextReport(ecs) == kC);  // the ring still has it: the report may have been lost

  PublishRing(publisher, ecs, 2, 2);  // C removed
  broker.Set(2600);
  Heartbeat(node, {kA, kB});
  broker.Set(3500);
  Heartbeat(node, {kA, kB});
  RequireNoWork(ecs);
}

TEST_CASE("failure reports are queued past a full queue and not repeated while they wait",
          "[broker][failure]") {
  RunningBroker broker(/*max_queue=*/1);
  ControlPeer client(broker->control_port()), node(broker->control_port());
  RingPublisher publisher(broker->sub_port());
  PublishRing(publisher, client, 1, 3);
  node.Join(1, "10.0.0.9", 5009);  // fills the queue: no ECS yet
  node.Join(2, "10.0.0.9", 5009);
  auto refused = node.Receive();
  REQUIRE(refused.has_value());
  CHECK(refused->request_id == 2);
  CHECK(refused->status == ControlStatus::OVERLOADED);

  broker.Set(900);
  Heartbeat(node, {kA, kB});  // answered at once, full queue or not
  broker.Set(1100);
  CHECK(client.CallGetRing(3).has_value());  // a round at 1100: C's report is queued
  broker.Set(2100);  // A and B silent since 900, C due again
  CHECK(client.CallGetRing(4).has_value());

  ControlPeer ecs(broker->control_port());
  ecs.EcsReady(100);
  auto join = ecs.Receive();
  REQUIRE(join.has_value());
  CHECK(join->request_kind == ControlRequest::JOIN);
  std::vector<std::string> reports;
  for (int i = 0; i < 3; ++i) reports.push_back(NextReport(ecs));
  std::sort(reports.begin(), reports.end());
  CHECK(reports == std::vector<std::string>{kA, kB, kC});  // C once, though due twice
  RequireNoWork(ecs);
}

TEST_CASE("a node that keeps sending heartbeats is never reported", "[broker][failure]") {
  RunningBroker broker;
  ControlPeer ecs(broker->control_port()), node(broker->control_port());
  RingPublisher publisher(broker->sub_port());
  ecs.EcsReady(100);
  PublishRing(publisher, ecs, 1, 2);
  for (int64_t t = 0; t <= 5000; t += 250) {
    broker.Set(t);
    Heartbeat(node, {kA, kB});
  }
  RequireNoWork(ecs);
}

TEST_CASE("a ring in an ECS answer newer than the cached one is cached and published at once",
          "[broker][ring]") {
  RunningBroker broker;
  ControlPeer ecs(broker->control_port()), node(broker->control_port());
  kvtest::RingSubscriber subscriber(broker->pub_port());
  ecs.EcsReady(1);
  REQUIRE(ecs.CallGetRing(1).has_value());  // the broker knows the ECS now
  node.Join(7, "127.0.0.1", 40000);
  auto work = ecs.Receive();
  REQUIRE(work.has_value());
  REQUIRE(work->kind == ControlMessage::WORK);

  capnp::MallocMessageBuilder b;
  auto msg = b.initRoot<ControlMessage>();
  msg.setVersion(kv::wire::CONTROL_VERSION);
  auto done = msg.initWorkDone();
  done.setClient(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(work->client.data()),
                                     work->client.size()));
  auto reply = done.initReply();
  reply.setRequestId(7);
  reply.setStatus(ControlStatus::OK);
  (*kv::Ring::Make(3, 1, {kv::NodeAddress{"127.0.0.1", 40000, 40001}}))->ToCapnp(reply.initRing());
  zmq::message_t frame = kv::ToFrame(b);
  ecs.SendFrames({std::string(frame.data<char>(), frame.size())});

  auto answered = node.Receive();
  REQUIRE(answered.has_value());
  CHECK(answered->ring_version == 3);
  CHECK(node.CallGetRing(8)->ring_version == 3);  // cached before any publication
  CHECK(subscriber.NextVersion() == std::optional<uint64_t>(3));
}

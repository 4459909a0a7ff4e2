// kvbroker as a real process on 127.0.0.1 with a fake ECS (a DEALER sending
// ecsReady and answering work, a PUB publishing rings) and fake nodes. Where a
// test must show that something did NOT arrive, the peer sends getRing as a
// barrier: the broker answers in order, so anything misrouted would arrive
// before that reply.
#include <signal.h>

#include <catch2/catch.hpp>
#include <regex>
#include <string>

#include "tests/support/broker_peer.h"
#include "tests/support/process.h"

using kv::wire::ControlMessage;
using kv::wire::ControlRequest;
using kv::wire::ControlStatus;
using kvtest::BrokerProcess;
using kvtest::ControlPeer;
using kvtest::RingPublisher;
using kvtest::RingSubscriber;
using kvtest::TempDir;

namespace {

// Receives the next message and requires it to be a work item.
kvtest::ControlMsg NextWork(ControlPeer& ecs) {
  auto m = ecs.Receive();
  REQUIRE(m.has_value());
  REQUIRE(m->kind == ControlMessage::WORK);
  return *m;
}

// Sends getRing and requires its reply to be the very next message.
void RequireNothingBefore(ControlPeer& peer, uint64_t barrier_id) {
  peer.GetRing(barrier_id);
  auto m = peer.Receive();
  REQUIRE(m.has_value());
  CHECK(m->kind == ControlMessage::REPLY);
  CHECK(m->request_id == barrier_id);
}

}  // namespace

TEST_CASE("the port file lists the control, pub and sub ports on one line", "[broker]") {
  TempDir work;
  BrokerProcess broker(work.path());
  REQUIRE(broker.started());
  CHECK(std::regex_match(broker.port_file_text(), std::regex("[0-9]+ [0-9]+ [0-9]+\n")));
  CHECK(broker.control_port() != broker.pub_port());
  CHECK(broker.pub_port() != broker.sub_port());
  CHECK(broker.control_port() != broker.sub_port());
}

TEST_CASE("joins reach the ECS in arrival order, one per credit", "[broker][queue]") {
  TempDir work;
  BrokerProcess broker(work.path());
  REQUIRE(broker.started());
  ControlPeer a(broker.control_port()), b(broker.control_port()), c(broker.control_port());
  // Each node's getRing reply proves its join was queued before the next node sends.
  a.Join(1, "10.0.0.1", 5001);
  REQUIRE(a.CallGetRing(100));
  b.Join(2, "10.0.0.2", 5002);
  REQUIRE(b.CallGetRing(100));
  c.Join(3, "10.0.0.3", 5003);
  REQUIRE(c.CallGetRing(100));

  ControlPeer ecs(broker.control_port());
  ecs.EcsReady(1);
  auto first = NextWork(ecs);
  CHECK(first.request_kind == ControlRequest::JOIN);
  CHECK(first.work_request_id == 1);
  CHECK(first.host == "10.0.0.1");
  CHECK(first.port == 5001);
  RequireNothingBefore(ecs, 900);  // one credit, one request

  ecs.EcsReady(2);
  auto second = NextWork(ecs);
  auto third = NextWork(ecs);
  CHECK(second.host == "10.0.0.2");
  CHECK(third.host == "10.0.0.3");
  CHECK(first.client != second.client);
  CHECK(second.client != third.client);
  RequireNothingBefore(ecs, 901);
}

TEST_CASE("the ECS's answer reaches the requester it names and no one else", "[broker][queue]") {
  TempDir work;
  BrokerProcess broker(work.path());
  REQUIRE(broker.started());
  ControlPeer ecs(broker.control_port());
  ecs.EcsReady(2);
  REQUIRE(ecs.CallGetRing(900));  // the broker knows the ECS before the joins arrive
  ControlPeer a(broker.control_port()), b(broker.control_port());
  a.Join(11, "10.0.0.1", 5001);
  b.Join(22, "10.0.0.2", 5002);
  auto w1 = NextWork(ecs);
  auto w2 = NextWork(ecs);
  auto& work_a = w1.work_request_id == 11 ? w1 : w2;
  auto& work_b = w1.work_request_id == 11 ? w2 : w1;
  REQUIRE(work_a.work_request_id == 11);
  REQUIRE(work_b.work_request_id == 22);

  ecs.WorkDone(work_a.client, 11, ControlStatus::OK, "welcome a");
  ecs.WorkDone(work_b.client, 22, ControlStatus::REJECTED, "no room for b");
  auto reply_b = b.Receive();
  REQUIRE(reply_b.has_value());
  CHECK(reply_b->kind == ControlMessage::REPLY);
  CHECK(reply_b->request_id == 22);
  CHECK(reply_b->status == ControlStatus::REJECTED);
  CHECK(reply_b->reason == "no room for b");
  auto reply_a = a.Receive();
  REQUIRE(reply_a.has_value());
  CHECK(reply_a->request_id == 11);
  CHECK(reply_a->status == ControlStatus::OK);
  CHECK(reply_a->reason == "welcome a");
  RequireNothingBefore(a, 100);
  RequireNothingBefore(b, 100);
}

TEST_CASE("requests beyond --max-queue are answered overloaded and the queued ones survive",
          "[broker][queue]") {
  TempDir work;
  BrokerProcess broker(work.path(), {"--max-queue", "2"});
  REQUIRE(broker.started());
  ControlPeer node(broker.control_port());
  node.Join(1, "10.0.0.1", 5001);
  node.Join(2, "10.0.0.2", 5002);
  node.Join(3, "10.0.0.3", 5003);
  auto refused = node.Receive();
  REQUIRE(refused.has_value());
  CHECK(refused->request_id == 3);
  CHECK(refused->status == ControlStatus::OVERLOADED);
  CHECK(refused->reason.find("2 requests") != std::string::npos);

  ControlPeer ecs(broker.control_port());
  ecs.EcsReady(10);
  CHECK(NextWork(ecs).work_request_id == 1);
  CHECK(NextWork(ecs).work_request_id == 2);
  RequireNothingBefore(ecs, 900);
}

TEST_CASE("the queue depth is logged at info each time it crosses a multiple of ten",
          "[broker][queue]") {
  TempDir work;
  BrokerProcess broker(work.path());
  REQUIRE(broker.started());
  ControlPeer node(broker.control_port());
  for (uint64_t id = 1; id <= 10; ++id) node.Join(id, "10.0.0.1", static_cast<uint16_t>(id));
  CHECK(broker.LogContains("queue grew to 10 requests"));
  ControlPeer ecs(broker.control_port());
  ecs.EcsReady(1);
  NextWork(ecs);
  CHECK(broker.LogContains("queue shrank to 9 requests"));
}

TEST_CASE("getRing is unavailable before any ring is published and returns the ring after",
          "[broker][ring]") {
  TempDir work;
  BrokerProcess broker(work.path());
  REQUIRE(broker.started());
  ControlPeer client(broker.control_port());
  auto before = client.CallGetRing(1);
  REQUIRE(before.has_value());
  CHECK(before->status == ControlStatus::UNAVAILABLE);
  CHECK(before->reason == "no ring published yet");

  RingPublisher ecs_pub(broker.sub_port());
  REQUIRE(kvtest::PublishUntilCached(ecs_pub, client, 7));
  auto after = client.CallGetRing(2);
  REQUIRE(after.has_value());
  CHECK(after->status == ControlStatus::OK);
  CHECK(after->ring_version == 7);
  CHECK(after->ring_nodes == 3);
}

TEST_CASE("a heartbeat is answered ok at once and one without an address is refused",
          "[broker]") {
  TempDir work;
  BrokerProcess broker(work.path());
  REQUIRE(broker.started());
  ControlPeer node(broker.control_port());
  node.Heartbeat(5, "10.0.0.1", 5001);
  auto ok = node.Receive();
  REQUIRE(ok.has_value());
  CHECK(ok->request_id == 5);
  CHECK(ok->status == ControlStatus::OK);
  node.Heartbeat(6, "", 0);
  auto bad = node.Receive();
  REQUIRE(bad.has_value());
  CHECK(bad->request_id == 6);
  CHECK(bad->status == ControlStatus::BAD_REQUEST);
}

TEST_CASE("a late subscriber receives the last ring at once", "[broker][ring]") {
  TempDir work;
  BrokerProcess broker(work.path());
  REQUIRE(broker.started());
  ControlPeer client(broker.control_port());
  RingPublisher ecs_pub(broker.sub_port());
  REQUIRE(kvtest::PublishUntilCached(ecs_pub, client, 4));
  RingSubscriber late(broker.pub_port());
  CHECK(late.NextVersion() == std::optional<uint64_t>(4));
}

TEST_CASE("a subscriber receives newer rings as they are published", "[broker][ring]") {
  TempDir work;
  BrokerProcess broker(work.path());
  REQUIRE(broker.started());
  ControlPeer client(broker.control_port());
  RingPublisher ecs_pub(broker.sub_port());
  REQUIRE(kvtest::PublishUntilCached(ecs_pub, client, 1));
  RingSubscriber node(broker.pub_port());
  REQUIRE(node.NextVersion() == std::optional<uint64_t>(1));  // connected: the cache arrived
  ecs_pub.Publish(2);
  CHECK(node.NextVersion() == std::optional<uint64_t>(2));
}

TEST_CASE("an older ring published after a newer one is neither cached nor forwarded",
          "[broker][ring]") {
  TempDir work;
  BrokerProcess broker(work.path());
  REQUIRE(broker.started());
  ControlPeer client(broker.control_port());
  RingPublisher ecs_pub(broker.sub_port());
  REQUIRE(kvtest::PublishUntilCached(ecs_pub, client, 5));
  ecs_pub.Publish(3);
  REQUIRE(broker.LogContains("ignoring ring version 3"));
  CHECK(client.CallGetRing(1)->ring_version == 5);
  RingSubscriber late(broker.pub_port());
  CHECK(late.NextVersion() == std::optional<uint64_t>(5));
}

TEST_CASE("garbage on the control socket is answered bad_request and the broker keeps serving",
          "[broker][robustness]") {
  TempDir work;
  BrokerProcess broker(work.path());
  REQUIRE(broker.started());
  ControlPeer peer(broker.control_port());
  auto expect_bad = [&](uint64_t request_id, const std::string& reason_part) {
    auto m = peer.Receive();
    REQUIRE(m.has_value());
    CHECK(m->kind == ControlMessage::REPLY);
    CHECK(m->status == ControlStatus::BAD_REQUEST);
    CHECK(m->request_id == request_id);
    CHECK(m->reason.find(reason_part) != std::string::npos);
  };
  peer.SendFrames({"this is not a capnp message"});
  expect_bad(0, "");
  peer.SendFrames({""});
  expect_bad(0, "");
  peer.SendFrames({kvtest::GetRingFrame(42, /*version=*/9)});
  expect_bad(42, "version");
  peer.SendFrames({kvtest::GetRingFrame(43), "an extra frame"});
  expect_bad(43, "expected 1 frame");
  peer.WorkDone("someone", 44, ControlStatus::OK, "pretending to be the ECS");
  expect_bad(44, "not the ECS");
  CHECK(broker.LogContains("bad message"));

  auto still = peer.CallGetRing(50);
  REQUIRE(still.has_value());
  CHECK(still->status == ControlStatus::UNAVAILABLE);
  // Nothing was queued by the garbage.
  ControlPeer ecs(broker.control_port());
  ecs.EcsReady(5);
  RequireNothingBefore(ecs, 900);
  CHECK(broker.process().running());
}

TEST_CASE("garbage on the event plane is logged and leaves the cached ring alone",
          "[broker][robustness]") {
  TempDir work;
  BrokerProcess broker(work.path());
  REQUIRE(broker.started());
  ControlPeer client(broker.control_port());
  RingPublisher ecs_pub(broker.sub_port());
  REQUIRE(kvtest::PublishUntilCached(ecs_pub, client, 5));
  ecs_pub.PublishFrames({"ring"});
  REQUIRE(broker.LogContains("dropping a publication of 1 frame"));
  ecs_pub.PublishFrames({"ring", "not a ring"});
  REQUIRE(broker.LogContains("dropping a malformed ring"));
  ecs_pub.PublishFrames({"ringtone", kvtest::RingFrame(9)});
  REQUIRE(broker.LogContains("unknown topic 'ringtone'"));
  ecs_pub.PublishFrames({"ring", kvtest::RingFrame(9), "extra"});
  REQUIRE(broker.LogContains("dropping a publication of 3 frame"));

  CHECK(client.CallGetRing(1)->ring_version == 5);
  RingSubscriber late(broker.pub_port());
  CHECK(late.NextVersion() == std::optional<uint64_t>(5));
  ecs_pub.Publish(6);
  CHECK(late.NextVersion() == std::optional<uint64_t>(6));
}

TEST_CASE("the newest ECS gets the work and the old one's answers are refused", "[broker]") {
  TempDir work;
  BrokerProcess broker(work.path());
  REQUIRE(broker.started());
  ControlPeer old_ecs(broker.control_port()), new_ecs(broker.control_port());
  ControlPeer node(broker.control_port());
  old_ecs.EcsReady(5);
  REQUIRE(old_ecs.CallGetRing(900));
  node.Join(1, "10.0.0.1", 5001);
  auto taken = NextWork(old_ecs);

  new_ecs.EcsReady(1);
  REQUIRE(new_ecs.CallGetRing(900));
  node.Join(2, "10.0.0.2", 5002);
  auto retaken = NextWork(new_ecs);
  CHECK(retaken.work_request_id == 2);
  RequireNothingBefore(old_ecs, 901);  // the old ECS's remaining credit is void

  old_ecs.WorkDone(taken.client, 1, ControlStatus::OK, "late");
  auto refused = old_ecs.Receive();
  REQUIRE(refused.has_value());
  CHECK(refused->status == ControlStatus::BAD_REQUEST);
  new_ecs.WorkDone(retaken.client, 2, ControlStatus::OK, "joined");
  auto reply = node.Receive();
  REQUIRE(reply.has_value());
  CHECK(reply->request_id == 2);
  CHECK(reply->reason == "joined");
}

TEST_CASE("SIGTERM and SIGINT stop the broker with exit status 0", "[broker]") {
  TempDir work;
  for (int sig : {SIGTERM, SIGINT}) {
    BrokerProcess broker(work.path());
    REQUIRE(broker.started());
    broker.process().Signal(sig);
    auto status = broker.process().Wait();
    INFO("exit status " << (status ? std::to_string(*status) : "none") << ", log:\n"
                        << broker.process().Log());
    CHECK(status == std::optional<int>(0));
    CHECK(broker.LogContains("kvbroker stopped", std::chrono::seconds(1)));
  }
}

TEST_CASE("kvbroker -h lists the flags and exits 0", "[broker]") {
  auto r = kvtest::Run({kvtest::Bin("kvbroker"), "-h"});
  CHECK(r.exit_status == 0);
  for (const char* flag : {"-a", "-p", "--pub-port", "--sub-port", "--max-queue", "--port-file",
                           "-ll", "-l"}) {
    CHECK(r.out.find(flag) != std::string::npos);
  }
}

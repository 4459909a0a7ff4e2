// kvecs as a real process between a real kvbroker and fake nodes on
// 127.0.0.1 (tests/integration/ecs_fakes.h): joins, time-outs, restarts of the
// ECS and the broker, bad input. Failures: ecs_failover_test.cpp.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "tests/integration/ecs_fakes.h"

using namespace ecsfake;  // the shared test helpers
using kv::wire::ControlStatus;
using kvtest::TempDir;
using namespace std::chrono_literals;

TEST_CASE("nodes that join through the broker appear in the rings the ECS publishes",
          "[ecs][integration]") {
  TempDir work;
  Ports ports;
  auto broker = StartBroker(work, "broker", &ports);
  auto ecs = StartEcs(work, ports, work / "ecs-data", "ecs.log");
  zmq::context_t ctx(1);
  RingWatcher watcher(ctx, ports.pub);
  FakeNode a(ctx), b(ctx), c(ctx);
  for (FakeNode* n : {&a, &b, &c}) n->AttachBroker(ports.control);
  std::vector<FakeNode*> all = {&a, &b, &c};

  a.SendJoin(1);
  REQUIRE(PumpUntil(all, &watcher, [&] { return a.ReplyTo(1).has_value(); }));
  CHECK(a.ReplyTo(1)->status == ControlStatus::OK);
  CHECK(a.ReplyTo(1)->ring_version == 1);

  b.SendJoin(2);
  c.SendJoin(3);
  REQUIRE(PumpUntil(all, &watcher, [&] { return b.ReplyTo(2) && c.ReplyTo(3); }));
  CHECK(b.ReplyTo(2)->status == ControlStatus::OK);
  CHECK(c.ReplyTo(3)->status == ControlStatus::OK);
  CHECK(b.ReplyTo(2)->ring_nodes >= 2);
  // The data of version 2 came from a, the only member of version 1.
  auto start = a.Find(true);
  REQUIRE(start.has_value());
  CHECK(start->prepares_version == 2);

  REQUIRE(PumpUntil(all, &watcher, [&] {
    auto latest = watcher.Latest();
    return latest && latest->size() == 3;
  }));
  auto latest = watcher.Latest();
  CHECK(latest->Contains(a.address()));
  CHECK(latest->Contains(b.address()));
  CHECK(latest->Contains(c.address()));
  CHECK(latest->replication_factor() == 3);  // the default
  for (size_t i = 1; i < watcher.rings.size(); ++i) {
    CHECK(watcher.rings[i]->version() >= watcher.rings[i - 1]->version());
  }
  CHECK(watcher.rings.front()->version() >= 1);

  ecs->Signal(SIGTERM);
  auto status = ecs->Wait();
  REQUIRE(status.has_value());
  CHECK(*status == 0);
}

TEST_CASE("a source that never answers makes the transition time out and the joiner retry",
          "[ecs][integration]") {
  TempDir work;
  Ports ports;
  auto broker = StartBroker(work, "broker", &ports);
  auto ecs = StartEcs(work, ports, work / "ecs-data", "ecs.log", {"--transfer-timeout-ms", "500"});
  zmq::context_t ctx(1);
  FakeNode a(ctx), b(ctx);
  a.AttachBroker(ports.control);
  b.AttachBroker(ports.control);
  std::vector<FakeNode*> all = {&a, &b};
  a.SendJoin(1);
  REQUIRE(PumpUntil(all, nullptr, [&] { return a.ReplyTo(1).has_value(); }));
  REQUIRE(a.ReplyTo(1)->status == ControlStatus::OK);

  a.answer_transfers = false;
  b.SendJoin(2);
  REQUIRE(PumpUntil(all, nullptr, [&] { return b.ReplyTo(2).has_value(); }));
  CHECK(b.ReplyTo(2)->status == ControlStatus::UNAVAILABLE);
  CHECK(b.ReplyTo(2)->reason.find("timed out") != std::string::npos);
  CHECK(b.ReplyTo(2)->ring_version == 1);
  auto start = a.Find(true);
  REQUIRE(start.has_value());
  REQUIRE(PumpUntil(all, nullptr, [&] { return a.Find(false).has_value(); }));
  CHECK(a.Find(false)->transfer_id == start->transfer_id);
}

TEST_CASE("after kill -9 mid-transition a restarted ECS keeps the old ring and aborts the transfer",
          "[ecs][integration]") {
  TempDir work;
  Ports ports;
  auto broker = StartBroker(work, "broker", &ports);
  auto ecs = StartEcs(work, ports, work / "ecs-data", "ecs.log");
  zmq::context_t ctx(1);
  FakeNode a(ctx), b(ctx);
  a.AttachBroker(ports.control);
  b.AttachBroker(ports.control);
  std::vector<FakeNode*> all = {&a, &b};
  a.SendJoin(1);
  REQUIRE(PumpUntil(all, nullptr, [&] { return a.ReplyTo(1).has_value(); }));
  REQUIRE(a.ReplyTo(1)->status == ControlStatus::OK);

  a.answer_transfers = false;
  b.SendJoin(2);
  REQUIRE(PumpUntil(all, nullptr, [&] { return a.Find(true).has_value(); }));
  uint64_t transfer_id = a.Find(true)->transfer_id;
  ecs->Kill9();

  // A fresh broker has no cached ring: whatever its subscribers see now the
  // restarted ECS published.
  broker->Signal(SIGTERM);
  REQUIRE(broker->Wait().has_value());
  Ports fresh;
  auto broker2 = StartBroker(work, "broker2", &fresh);
  RingWatcher watcher(ctx, fresh.pub);
  auto restarted = StartEcs(work, fresh, work / "ecs-data", "ecs2.log");
  REQUIRE(PumpUntil(all, &watcher, [&] { return a.Find(false) && watcher.Latest(); }));
  CHECK(a.Find(false)->transfer_id == transfer_id);
  CHECK(watcher.Latest()->version() == 1);
  CHECK(watcher.Latest()->size() == 1);
  CHECK(watcher.Latest()->Contains(a.address()));

  SECTION("and the joiner's retry commits version 2") {
    a.answer_transfers = true;
    b.AttachBroker(fresh.control);
    b.SendJoin(3);
    REQUIRE(PumpUntil(all, &watcher, [&] { return b.ReplyTo(3).has_value(); }));
    CHECK(b.ReplyTo(3)->status == ControlStatus::OK);
    CHECK(b.ReplyTo(3)->ring_version == 2);
    REQUIRE(PumpUntil(all, &watcher, [&] { return watcher.Latest()->version() == 2; }));
    CHECK(watcher.Latest()->size() == 2);
  }
}

TEST_CASE("a broker that restarts gets the ECS's credit and ring again", "[ecs][integration]") {
  TempDir work;
  Ports ports;
  auto broker = StartBroker(work, "broker", &ports);
  auto ecs = StartEcs(work, ports, work / "ecs-data", "ecs.log");
  zmq::context_t ctx(1);
  FakeNode a(ctx), b(ctx);
  a.AttachBroker(ports.control);
  std::vector<FakeNode*> all = {&a, &b};
  a.SendJoin(1);
  REQUIRE(PumpUntil(all, nullptr, [&] { return a.ReplyTo(1).has_value(); }));
  REQUIRE(a.ReplyTo(1)->status == ControlStatus::OK);

  broker->Signal(SIGTERM);
  REQUIRE(broker->Wait().has_value());
  Ports again;
  auto broker2 = StartBroker(work, "broker2", &again, ports);
  REQUIRE(again.control == ports.control);
  RingWatcher watcher(ctx, ports.pub);
  REQUIRE(PumpUntil(all, &watcher, [&] { return watcher.Latest() != nullptr; }));
  CHECK(watcher.Latest()->version() == 1);  // republished into the new broker's cache

  b.AttachBroker(ports.control);
  b.SendJoin(2);
  REQUIRE(PumpUntil(all, &watcher, [&] { return b.ReplyTo(2).has_value(); }));
  CHECK(b.ReplyTo(2)->status == ControlStatus::OK);
  CHECK(b.ReplyTo(2)->ring_version == 2);
}

TEST_CASE("kvecs help shows three copies by default and a factor above 255 is refused",
          "[ecs][integration]") {
  auto help = kvtest::Run({kvtest::Bin("kvecs"), "-h"});
  CHECK(help.exit_status == 0);
  auto at = help.out.find("--replication-factor");
  REQUIRE(at != std::string::npos);
  CHECK(help.out.find("(default: 3)", at) < help.out.find("--batch-window-ms"));
  auto refused = kvtest::Run(
      {kvtest::Bin("kvecs"), "-bh", "127.0.0.1", "-bp", "5150", "--replication-factor", "256"});
  CHECK(refused.exit_status == 2);
}

TEST_CASE("kvecs refuses to start without a broker", "[ecs][integration]") {
  auto result = kvtest::Run({kvtest::Bin("kvecs"), "-bp", "5150"});
  CHECK(result.exit_status == 2);
  CHECK(result.err.find("-bh") != std::string::npos);
}

TEST_CASE("garbage from a node on the ECS's peer connection is logged and changes nothing",
          "[ecs][integration]") {
  TempDir work;
  Ports ports;
  auto broker = StartBroker(work, "broker", &ports);
  auto ecs = StartEcs(work, ports, work / "ecs-data", "ecs.log");
  zmq::context_t ctx(1);
  FakeNode a(ctx), b(ctx);
  a.AttachBroker(ports.control);
  b.AttachBroker(ports.control);
  std::vector<FakeNode*> all = {&a, &b};
  a.SendJoin(1);
  REQUIRE(PumpUntil(all, nullptr, [&] { return a.ReplyTo(1).has_value(); }));
  a.garbage_first = true;
  b.SendJoin(2);
  REQUIRE(PumpUntil(all, nullptr, [&] { return b.ReplyTo(2).has_value(); }));
  CHECK(b.ReplyTo(2)->status == ControlStatus::OK);
  CHECK(b.ReplyTo(2)->ring_version == 2);
  CHECK(ecs->running());
  std::string log = kvtest::ReadFile(work / "ecs.log");
  CHECK(log.find("dropping a bad message") != std::string::npos);
}

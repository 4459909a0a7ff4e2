// KvClient's read modes against in-process fakes on 127.0.0.1 ephemeral ports
// (tests/support/fake_kv_peers.h): linearizable gets go to the primary,
// stale-OK gets to any node with a copy, flagged staleOk, and back to the
// primary when a replica will not answer. Where a test shows reads spread over
// replicas it makes 60 reads of which all landing on one of three nodes has
// probability 3^-59.
#include <atomic>
#include <catch2/catch.hpp>
#include <set>
#include <string>

#include "kvclient/client.h"
#include "tests/support/fake_kv_peers.h"
#include "tests/support/process.h"

using kv::Op;
using kv::WireStatus;
using kv::client::KvClient;
using kv::client::ReadMode;
using kvtest::Answer;
using kvtest::FakeBroker;
using kvtest::Seen;
using kvtest::ServedNode;
using namespace std::chrono_literals;

namespace {

constexpr int kReads = 60;

// A node that answers every get with its name.
ServedNode::Handler Named(const std::string& name) {
  return [name](const Seen& s) -> std::optional<Answer> {
    if (s.op == Op::kGet) return Answer{WireStatus::GET_SUCCESS, name};
    return Answer{WireStatus::BAD_REQUEST};
  };
}

// Three nodes, every one holding every key (replication factor 3).
struct ThreeNodes {
  explicit ThreeNodes(ServedNode::Handler replica_handler = {}) {
    for (int i = 0; i < 3; ++i) {
      const std::string name = "node" + std::to_string(i);
      nodes.push_back(std::make_unique<ServedNode>([this, name, replica_handler](const Seen& s) {
        if (replica_handler && s.op == Op::kGet && name != primary_name) return replica_handler(s);
        return Named(name)(s);
      }));
    }
    ring = kvtest::MakeRing(1, {a().node_address(), b().node_address(), c().node_address()}, 3);
    key = kvtest::KeyOwnedBy(*ring, a().node_address());
  }
  ServedNode& a() { return *nodes[0]; }
  ServedNode& b() { return *nodes[1]; }
  ServedNode& c() { return *nodes[2]; }
  std::vector<Seen> Gets() {
    std::vector<Seen> gets;
    for (auto& n : nodes) {
      for (const auto& s : n->seen()) {
        if (s.op == Op::kGet) gets.push_back(s);
      }
    }
    return gets;
  }

  const std::string primary_name = "node0";  // a(), the primary of key
  std::vector<std::unique_ptr<ServedNode>> nodes;
  std::shared_ptr<const kv::Ring> ring;
  std::string key;  // its primary is a()
};

kv::client::ClientOptions Options(const FakeBroker& broker, ReadMode mode) {
  kv::client::ClientOptions options;
  options.request_timeout = 2s;
  options.broker_pub_port = broker.pub_port();
  options.read_mode = mode;
  return options;
}

}  // namespace

TEST_CASE("a linearizable get goes to the key's primary without the stale flag",
          "[client][reads]") {
  ThreeNodes nodes;
  FakeBroker broker(nodes.ring);
  KvClient client(Options(broker, ReadMode::kPrimary));
  REQUIRE(client.Connect("127.0.0.1", broker.control_port()).ok());
  for (int i = 0; i < 10; ++i) {
    auto reply = client.Get(nodes.key);
    REQUIRE(reply.ok());
    CHECK(reply->value == "node0");
  }
  for (const Seen& s : nodes.Gets()) CHECK_FALSE(s.stale_ok);
  CHECK(nodes.Gets().size() == 10);
}

TEST_CASE("a stale-OK get goes to any replica of the key, flagged stale_ok", "[client][reads]") {
  ThreeNodes nodes;
  FakeBroker broker(nodes.ring);
  KvClient client(Options(broker, ReadMode::kAny));
  REQUIRE(client.Connect("127.0.0.1", broker.control_port()).ok());
  std::set<std::string> answered_by;
  for (int i = 0; i < kReads; ++i) {
    auto reply = client.Get(nodes.key);
    REQUIRE(reply.ok());
    CHECK(reply->status == WireStatus::GET_SUCCESS);
    answered_by.insert(reply->value);
  }
  CHECK(answered_by.size() >= 2);
  CHECK(nodes.Gets().size() == kReads);
  for (const Seen& s : nodes.Gets()) CHECK(s.stale_ok);

  // Per call, the mode can be overridden.
  auto primary = client.Get(nodes.key, ReadMode::kPrimary);
  REQUIRE(primary.ok());
  CHECK(primary->value == "node0");
}

TEST_CASE("a replica that refuses a stale-OK get as not responsible sends it to the primary",
          "[client][reads]") {
  ThreeNodes nodes([](const Seen&) -> std::optional<Answer> {
    return Answer{WireStatus::SERVER_NOT_RESPONSIBLE, "", "", 1};  // no replica reads yet
  });
  FakeBroker broker(nodes.ring);
  KvClient client(Options(broker, ReadMode::kAny));
  REQUIRE(client.Connect("127.0.0.1", broker.control_port()).ok());
  for (int i = 0; i < kReads; ++i) {
    auto reply = client.Get(nodes.key);
    REQUIRE(reply.ok());
    CHECK(reply->status == WireStatus::GET_SUCCESS);
    CHECK(reply->value == "node0");
  }
  CHECK(nodes.a().Count(Op::kGet) == kReads);
  CHECK(nodes.b().Count(Op::kGet) + nodes.c().Count(Op::kGet) > 0);  // they were asked first
}

TEST_CASE("a replica that does not answer a stale-OK get in time sends it to the primary",
          "[client][reads]") {
  ThreeNodes nodes([](const Seen&) -> std::optional<Answer> { return std::nullopt; });
  FakeBroker broker(nodes.ring);
  auto options = Options(broker, ReadMode::kAny);
  options.request_timeout = 100ms;
  KvClient client(options);
  REQUIRE(client.Connect("127.0.0.1", broker.control_port()).ok());
  // Reads until a silent replica was chosen at least once (each time with
  // probability 2/3).
  for (int i = 0; i < 40 && nodes.b().Count(Op::kGet) + nodes.c().Count(Op::kGet) == 0; ++i) {
    auto reply = client.Get(nodes.key);
    REQUIRE(reply.ok());
    CHECK(reply->value == "node0");
  }
  CHECK(nodes.b().Count(Op::kGet) + nodes.c().Count(Op::kGet) > 0);
}

TEST_CASE("through a node, stale-OK gets route by the keyrange_read ranges it reports",
          "[client][reads]") {
  std::atomic<int> keyrange_reads{0};
  std::shared_ptr<const kv::Ring> ring;
  auto handler = [&](const std::string& name) {
    return [&, name](const Seen& s) -> std::optional<Answer> {
      if (s.op == Op::kKeyrange) {
        return Answer{WireStatus::KEYRANGE_SUCCESS, "", ring->KeyrangeText(), 1};
      }
      if (s.op == Op::kKeyrangeRead) {
        ++keyrange_reads;
        return Answer{WireStatus::KEYRANGE_READ_SUCCESS, "", ring->KeyrangeReadText(), 1};
      }
      return Named(name)(s);
    };
  };
  ServedNode a(handler("A")), b(handler("B")), c(handler("C"));
  ring = kvtest::MakeRing(1, {a.node_address(), b.node_address(), c.node_address()}, 3);
  const std::string key = kvtest::KeyOwnedBy(*ring, b.node_address());

  kv::client::ClientOptions options;
  options.request_timeout = 2s;
  KvClient client(options);
  REQUIRE(client.Connect("127.0.0.1", a.port()).ok());
  REQUIRE_FALSE(client.via_broker());
  std::set<std::string> answered_by;
  for (int i = 0; i < kReads; ++i) {
    auto reply = client.Get(key, ReadMode::kAny);
    REQUIRE(reply.ok());
    answered_by.insert(reply->value);
  }
  CHECK(answered_by.size() >= 2);
  CHECK(keyrange_reads == 1);  // once per ring version
  CHECK(client.Get(key)->value == "B");
}

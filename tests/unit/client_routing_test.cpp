// KvClient routing and retries against in-process fakes on 127.0.0.1
// ephemeral ports (tests/support/fake_kv_peers.h): ROUTERs playing kvnodes
// (each answering from its own thread with a scripted handler) and a ROUTER +
// XPUB playing a kvbroker.
#include <atomic>
#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <vector>

#include "kvclient/client.h"
#include "schema/ring.h"
#include "tests/support/fake_kv_peers.h"
#include "tests/support/process.h"

using kv::NodeAddress;
using kv::Op;
using kv::Ring;
using kv::WireStatus;
using kv::client::Clock;
using kv::client::KvClient;
using kvtest::Answer;
using kvtest::FakeBroker;
using kvtest::KeyOwnedBy;
using kvtest::MakeRing;
using kvtest::Seen;
using kvtest::ServedNode;
using namespace std::chrono_literals;

namespace {

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

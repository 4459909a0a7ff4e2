// The client library against an in-process ROUTER on 127.0.0.1 that plays the
// node: replies matched by request id, stale replies dropped, timeouts.
#include "kvclient/client.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "schema/framing.h"
#include "schema/hash.h"
#include "schema/socket.h"

using kv::Op;
using kv::WireStatus;
using kv::client::Clock;
using kv::client::Completion;
using kv::client::Connection;
using kv::client::KvClient;
using namespace std::chrono_literals;

namespace {

struct Received {
  zmq::message_t identity;
  uint64_t request_id = 0;
  Op op = Op::kGet;
  std::string key;
  std::string value;
};

// A ROUTER bound to an ephemeral loopback port that answers only when told.
class FakeNode {
 public:
  FakeNode() : router_(kv::MakeSocket(ctx_, zmq::socket_type::router)) {
    router_.bind(kv::TcpEndpoint("127.0.0.1", 0));
    auto port = kv::BoundPort(router_);
    REQUIRE(port.ok());
    port_ = *port;
  }
  uint16_t port() const { return port_; }

  // The first request of the next frame, or nullopt if none arrives within
  // the deadline (connections that do not coalesce send one per frame).
  std::optional<Received> Receive(std::chrono::milliseconds deadline = 5s) {
    std::vector<Received> frame = ReceivePacked(deadline);
    if (frame.empty()) return std::nullopt;
    return std::move(frame.front());
  }

  // Every request of the next frame (a packed frame holds several), or none
  // if no frame arrives within the deadline.
  std::vector<Received> ReceivePacked(std::chrono::milliseconds deadline = 5s) {
    std::vector<Received> out;
    zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, deadline) == 0) return out;
    std::vector<zmq::message_t> frames;
    REQUIRE(kv::RecvMultipart(router_, &frames, 2) == 2);
    kv::DecodeScratch scratch;
    kv::PackedReader reader(frames[1], scratch);
    while (!reader.done()) {
      kv::Request request;
      uint64_t id = 0;
      REQUIRE(reader.NextRequest(&request, &id).ok());
      Received r;
      r.identity.copy(frames[0]);
      r.request_id = request.request_id;
      r.op = request.op;
      r.key = std::string(request.key);
      r.value = std::string(request.value);
      out.push_back(std::move(r));
    }
    return out;
  }

  // Answers every request in one packed frame to their (common) sender.
  void ReplyPacked(const std::vector<Received>& to, WireStatus status) {
    kv::PackedWriter writer;
    for (const auto& r : to) {
      kv::Reply reply;
      reply.request_id = r.request_id;
      reply.status = status;
      reply.key = r.key;
      writer.Add(reply);
    }
    zmq::message_t identity;
    identity.copy(const_cast<zmq::message_t&>(to.front().identity));
    router_.send(identity, zmq::send_flags::sndmore);
    router_.send(writer.Take(), zmq::send_flags::none);
  }

  void Reply(const Received& to, uint64_t request_id, WireStatus status,
             const std::string& value = "", const std::string& metadata = "") {
    kv::Reply reply;
    reply.request_id = request_id;
    reply.status = status;
    reply.key = to.key;
    reply.value = value;
    reply.metadata = metadata;
    reply.ring_version = 7;
    zmq::message_t identity;
    identity.copy(const_cast<zmq::message_t&>(to.identity));
    router_.send(identity, zmq::send_flags::sndmore);
    router_.send(kv::EncodeReply(reply), zmq::send_flags::none);
  }

 private:
  zmq::context_t ctx_;
  zmq::socket_t router_;
  uint16_t port_ = 0;
};

// Collects completions until `want` have arrived or the deadline passes.
std::vector<Completion> CollectAtLeast(Connection& c, size_t want,
                                       std::chrono::milliseconds deadline = 5s) {
  std::vector<Completion> out;
  auto end = Clock::now() + deadline;
  while (out.size() < want && Clock::now() < end) {
    zmq::pollitem_t item = c.PollItem();
    zmq::poll(&item, 1, 50ms);
    c.Collect(Clock::now(), &out);
  }
  return out;
}

}  // namespace

TEST_CASE("replies are matched to their requests by id, whatever order they come in", "[client]") {
  FakeNode node;
  zmq::context_t ctx;
  Connection c(ctx, "127.0.0.1", node.port());
  REQUIRE(c.Open().ok());
  auto a = c.Send(Op::kPut, "a", "1");
  auto b = c.Send(Op::kGet, "b");
  auto d = c.Send(Op::kDelete, "d");
  REQUIRE((a.ok() && b.ok() && d.ok()));
  CHECK(c.in_flight() == 3);

  std::vector<Received> got;
  for (int i = 0; i < 3; ++i) {
    auto r = node.Receive();
    REQUIRE(r.has_value());
    got.push_back(std::move(*r));
  }
  // An id nobody asked for first, then the three answers in reverse order.
  node.Reply(got[0], 999, WireStatus::PUT_SUCCESS);
  node.Reply(got[2], got[2].request_id, WireStatus::DELETE_SUCCESS);
  node.Reply(got[1], got[1].request_id, WireStatus::GET_SUCCESS, "value of b");
  node.Reply(got[0], got[0].request_id, WireStatus::PUT_SUCCESS);

  auto done = CollectAtLeast(c, 3);
  REQUIRE(done.size() == 3);
  for (const auto& completion : done) {
    REQUIRE(completion.result.ok());
    if (completion.request_id == *a) {
      CHECK(completion.op == Op::kPut);
      CHECK(completion.result->status == WireStatus::PUT_SUCCESS);
    } else if (completion.request_id == *b) {
      CHECK(completion.op == Op::kGet);
      CHECK(completion.result->value == "value of b");
    } else {
      CHECK(completion.request_id == *d);
      CHECK(completion.result->status == WireStatus::DELETE_SUCCESS);
    }
  }
  CHECK(c.in_flight() == 0);
  CHECK(c.stale_replies() == 1);
}

TEST_CASE("a request past its timeout completes as Timeout and its late reply is dropped",
          "[client]") {
  FakeNode node;
  zmq::context_t ctx;
  Connection c(ctx, "127.0.0.1", node.port(), {std::chrono::milliseconds(3000)});
  REQUIRE(c.Open().ok());
  auto first = c.Send(Op::kGet, "slow");
  REQUIRE(first.ok());
  auto slow = node.Receive();
  REQUIRE(slow.has_value());

  // Collect with a clock past the deadline instead of waiting for it.
  std::vector<Completion> expired;
  c.Collect(Clock::now() + 3001ms, &expired);
  REQUIRE(expired.size() == 1);
  CHECK(expired[0].request_id == *first);
  CHECK(expired[0].result.status().IsTimeout());
  CHECK(expired[0].result.status().message() ==
        "no reply from 127.0.0.1:" + std::to_string(node.port()) + " within 3000 ms");

  // The connection still works: the late reply is dropped, the new one matched.
  auto second = c.Send(Op::kGet, "fast");
  REQUIRE(second.ok());
  auto fast = node.Receive();
  REQUIRE(fast.has_value());
  node.Reply(*slow, slow->request_id, WireStatus::GET_SUCCESS, "too late");
  node.Reply(*fast, fast->request_id, WireStatus::GET_SUCCESS, "in time");
  auto reply = c.Await(*second);
  REQUIRE(reply.ok());
  CHECK(reply->value == "in time");
  CHECK(c.stale_replies() == 1);
}

TEST_CASE("KvClient gives up on a silent node: gets after the retry budget, puts at once",
          "[client]") {
  FakeNode node;  // receives but never answers
  kv::client::ClientOptions options;
  options.request_timeout = 100ms;
  options.retry_budget = 300ms;
  KvClient client(options);
  // Nothing answers the probe: treated as a node that is not up yet.
  REQUIRE(client.Connect("127.0.0.1", node.port()).ok());
  CHECK_FALSE(client.router().detected());
  const std::string no_reply =
      "no reply from 127.0.0.1:" + std::to_string(node.port()) + " within 100 ms";

  auto started = Clock::now();
  auto get = client.Get("k");
  REQUIRE_FALSE(get.ok());
  CHECK(get.status().IsTimeout());
  CHECK(get.status().message() == "gave up after 300 ms: " + no_reply);
  CHECK(Clock::now() - started < 2s);

  started = Clock::now();
  auto put = client.Put("k", "v");
  REQUIRE_FALSE(put.ok());
  CHECK(put.status().IsTimeout());
  CHECK(put.status().message() == no_reply + "; outcome unknown: the put may have been applied");
  CHECK(Clock::now() - started < 300ms);  // one attempt, never resent blindly
}

TEST_CASE("KvClient sends the key and value as given and returns the node's reply", "[client]") {
  FakeNode node;
  std::optional<Received> seen;
  // The node answers the client's probe (keyrange) and then one request from
  // its own thread (the socket is handed over to it); Receive bounds the wait.
  const kv::Hash128 own = kv::NodePosition("127.0.0.1", node.port());
  const std::string standalone =
      own.Next().ToHex() + "," + own.ToHex() + ",127.0.0.1:" + std::to_string(node.port()) + ";";
  std::thread server([&] {
    auto probe = node.Receive();
    if (!probe || probe->op != Op::kKeyrange) return;
    node.Reply(*probe, probe->request_id, WireStatus::KEYRANGE_SUCCESS, "", standalone);
    seen = node.Receive();
    if (seen) node.Reply(*seen, seen->request_id, WireStatus::PUT_UPDATE);
  });
  KvClient client;
  REQUIRE(client.Connect("127.0.0.1", node.port()).ok());
  CHECK(client.address() == "127.0.0.1:" + std::to_string(node.port()));
  auto reply = client.Put("key", "v a l ");
  server.join();
  REQUIRE(seen.has_value());
  CHECK(seen->op == Op::kPut);
  CHECK(seen->key == "key");
  CHECK(seen->value == "v a l ");
  REQUIRE(reply.ok());
  CHECK(reply->status == WireStatus::PUT_UPDATE);
  CHECK(reply->key == "key");
  CHECK(client.ring_version() == 7);
  CHECK(kv::client::ToStatus(*reply).ok());
}

TEST_CASE("KvClient without a connection answers Unavailable at once", "[client]") {
  KvClient client;
  auto reply = client.Put("k", "v");
  REQUIRE_FALSE(reply.ok());
  CHECK(reply.status().code() == kv::Status::Code::kUnavailable);
  CHECK_FALSE(client.connected());
}

TEST_CASE("reply status words map to Status codes a program can branch on", "[client]") {
  kv::client::KvReply r;
  r.status = WireStatus::GET_ERROR;
  CHECK(kv::client::ToStatus(r).IsNotFound());
  r.reason = "disk failed";
  CHECK(kv::client::ToStatus(r).IsInvalidArgument());
  r.status = WireStatus::SERVER_NOT_RESPONSIBLE;
  CHECK(kv::client::ToStatus(r).code() == kv::Status::Code::kNotResponsible);
  r.status = WireStatus::OVERLOADED;
  CHECK(kv::client::ToStatus(r).code() == kv::Status::Code::kOverloaded);
  r.status = WireStatus::SERVER_STOPPED;
  CHECK(kv::client::ToStatus(r).code() == kv::Status::Code::kUnavailable);
}

TEST_CASE("a coalescing connection packs requests until Flush and spreads frames over its links",
          "[client][packed]") {
  FakeNode node;
  zmq::context_t ctx;
  kv::client::ConnectionOptions options;
  options.coalesce = true;
  options.links = 3;
  Connection c(ctx, "127.0.0.1", node.port(), options);
  REQUIRE(c.Open().ok());
  std::set<std::string> identities;
  size_t answered = 0;
  for (int round = 0; round < 6; ++round) {
    for (int i = 0; i < 10; ++i) {
      REQUIRE(c.Send(Op::kGet, "key-" + std::to_string(round * 10 + i)).ok());
    }
    CHECK(c.held() == 10);
    // Nothing leaves before Flush.
    CHECK(node.ReceivePacked(50ms).empty());
    REQUIRE(c.Flush().ok());
    CHECK(c.held() == 0);
    auto frame = node.ReceivePacked();
    REQUIRE(frame.size() == 10);  // one frame with all ten, in order
    for (int i = 0; i < 10; ++i) CHECK(frame[i].key == "key-" + std::to_string(round * 10 + i));
    identities.insert(std::string(static_cast<const char*>(frame[0].identity.data()),
                                  frame[0].identity.size()));
    node.ReplyPacked(frame, WireStatus::GET_ERROR);
    answered += CollectAtLeast(c, 10).size();
  }
  CHECK(answered == 60);
  CHECK(c.in_flight() == 0);
  // Frames went round robin over three separate connections to the node.
  CHECK(identities.size() == 3);
}

TEST_CASE("a connection that does not coalesce sends every request at once", "[client][packed]") {
  FakeNode node;
  zmq::context_t ctx;
  Connection c(ctx, "127.0.0.1", node.port());
  REQUIRE(c.Open().ok());
  REQUIRE(c.Send(Op::kGet, "a").ok());
  REQUIRE(c.Send(Op::kGet, "b").ok());
  CHECK(c.held() == 0);
  CHECK(node.ReceivePacked().size() == 1);
  CHECK(node.ReceivePacked().size() == 1);
}

TEST_CASE("connections on one shared socket each get their own replies", "[client][packed]") {
  FakeNode a, b;
  zmq::context_t ctx;
  kv::client::SharedSocket shared(ctx);
  kv::client::ConnectionOptions options;
  options.coalesce = true;
  options.links = 2;
  options.shared = &shared;
  Connection to_a(ctx, "127.0.0.1", a.port(), options);
  Connection to_b(ctx, "127.0.0.1", b.port(), options);
  REQUIRE(to_a.Open().ok());
  REQUIRE(to_b.Open().ok());
  // Both poll through the same socket.
  CHECK(to_a.PollItem().socket == to_b.PollItem().socket);
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 5; ++i) {
      REQUIRE(to_a.Send(Op::kGet, "a-" + std::to_string(i)).ok());
      REQUIRE(to_b.Send(Op::kGet, "b-" + std::to_string(i)).ok());
    }
    REQUIRE(to_a.Flush().ok());
    REQUIRE(to_b.Flush().ok());
    auto at_a = a.ReceivePacked();
    auto at_b = b.ReceivePacked();
    REQUIRE(at_a.size() == 5);
    REQUIRE(at_b.size() == 5);
    CHECK(at_a[0].key == "a-0");
    CHECK(at_b[0].key == "b-0");
    b.ReplyPacked(at_b, WireStatus::GET_ERROR);
    a.ReplyPacked(at_a, WireStatus::GET_SUCCESS);
    // Collecting one connection reads the shared socket for both.
    auto done_a = CollectAtLeast(to_a, 5);
    REQUIRE(done_a.size() == 5);
    for (const auto& c : done_a) CHECK(c.result->status == WireStatus::GET_SUCCESS);
    std::vector<Completion> done_b;
    to_b.Collect(Clock::now(), &done_b, /*readable=*/false);
    if (done_b.size() < 5) {
      auto more = CollectAtLeast(to_b, 5 - done_b.size());
      done_b.insert(done_b.end(), std::make_move_iterator(more.begin()),
                    std::make_move_iterator(more.end()));
    }
    REQUIRE(done_b.size() == 5);
    for (const auto& c : done_b) CHECK(c.result->status == WireStatus::GET_ERROR);
  }
  CHECK(to_a.in_flight() == 0);
  CHECK(to_b.in_flight() == 0);
}

// Replication factor 3 on real processes: an acknowledged write is on every
// replica when its reply arrives, replicas refuse writes from a node that is
// not the key's primary, killing a primary loses no acknowledged write, and a get
// never shows a write that is not yet on every replica.
#include <catch2/catch.hpp>
#include <chrono>
#include <atomic>
#include <csignal>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "peer.capnp.h"
#include "schema/socket.h"
#include "schema/wire.h"
#include "tests/support/cluster.h"
#include "tests/support/fault_workload.h"
#include "tests/support/linearizability.h"

using kv::Op;
using kv::WireStatus;
using kvtest::Cluster;
using kvtest::RawClient;
using kvtest::RoutedClient;
using kvtest::TempDir;

namespace {

// A get with stale_ok, which any replica of the key answers from its own copy.
std::optional<kvtest::OwnedReply> ReplicaGet(RawClient& c, const std::string& key, uint64_t id) {
  kv::Request r;
  r.request_id = id;
  r.op = Op::kGet;
  r.key = key;
  r.stale_ok = true;
  c.Send(r);
  return c.Receive(std::chrono::seconds(5));
}

// A Replicate claiming to come from primary (kvnode/replication.h's format,
// built here because integration tests link no server library).
zmq::message_t Replicate(uint64_t ring_version, uint16_t primary_port, uint64_t stream,
                         const std::string& key, const std::string& value) {
  capnp::MallocMessageBuilder b;
  auto msg = b.initRoot<kv::wire::PeerMessage>();
  msg.setVersion(kv::wire::PEER_VERSION);
  msg.setRequestId(7);
  auto r = msg.initReplicate();
  r.setRingVersion(ring_version);
  auto p = r.initPrimary();
  p.setHost("127.0.0.1");
  p.setPort(primary_port);
  p.setPeerPort(1);
  r.setStream(stream);
  r.setSeq(1);
  r.setFirstSeq(1);
  auto e = r.initEntries(1)[0];
  e.setKey(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(key.data()), key.size()));
  e.setValue(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(value.data()), value.size()));
  e.setVersion(1);
  return kv::ToFrame(b);
}

// Starts n nodes in a started cluster and waits until all are in the ring.
void StartNodes(Cluster& cluster, size_t n) {
  REQUIRE(cluster.started());
  for (size_t i = 0; i < n; ++i) cluster.StartNode();
  REQUIRE(cluster.WaitForRingSize(n));
}

bool IsWriteOk(const std::optional<kvtest::OwnedReply>& r) {
  return r && (r->status == WireStatus::PUT_SUCCESS || r->status == WireStatus::PUT_UPDATE ||
               r->status == WireStatus::DELETE_SUCCESS);
}

}  // namespace

TEST_CASE("with replication factor 3 an acknowledged write is on every replica when it is answered",
          "[replication]") {
  TempDir dir;
  Cluster cluster(dir.path(), {"--replication-factor", "3"});
  StartNodes(cluster, 3);

  RoutedClient client([&] { return cluster.LivePorts(); });
  std::map<std::string, std::string> written;
  for (int i = 0; i < 200; ++i) {
    std::string key = "r-" + std::to_string(i), value = "value-" + std::to_string(i);
    REQUIRE(IsWriteOk(client.Call(Op::kPut, key, value)));
    written[key] = value;
  }
  for (int i = 0; i < 200; i += 4) {
    REQUIRE(IsWriteOk(client.Call(Op::kDelete, "r-" + std::to_string(i))));
    written.erase("r-" + std::to_string(i));
  }
  // Three nodes, three copies: every node holds every key, at once.
  uint64_t id = 1;
  for (size_t n = 0; n < 3; ++n) {
    RawClient replica(cluster.node(n).port());
    for (int i = 0; i < 200; ++i) {
      std::string key = "r-" + std::to_string(i);
      auto reply = ReplicaGet(replica, key, id++);
      REQUIRE(reply);
      auto it = written.find(key);
      if (it == written.end()) {
        CHECK(reply->status == WireStatus::GET_ERROR);
      } else {
        REQUIRE(reply->status == WireStatus::GET_SUCCESS);
        CHECK(reply->value == it->second);
      }
    }
  }
}

TEST_CASE("a replica refuses replicated writes from a node that is not the key's primary",
          "[replication]") {
  TempDir dir;
  Cluster cluster(dir.path(), {"--replication-factor", "3"});
  StartNodes(cluster, 3);

  RoutedClient client([&] { return cluster.LivePorts(); });
  REQUIRE(IsWriteOk(client.Call(Op::kPut, "fenced-key", "good")));

  // Pretend to be a primary that is not in the ring at all, then one that is
  // in the ring but not the key's primary.
  zmq::context_t ctx(1);
  zmq::socket_t dealer = kv::MakeSocket(ctx, zmq::socket_type::dealer, {});
  dealer.connect(kv::TcpEndpoint("127.0.0.1", cluster.node(0).peer_port()));
  auto entries = cluster.Keyrange();
  kv::Hash128 pos = kv::KeyPosition("fenced-key");
  uint16_t primary_port = 0;
  for (const auto& e : entries) {
    bool in = e.from_inclusive <= e.to_inclusive
                  ? (pos >= e.from_inclusive && pos <= e.to_inclusive)
                  : (pos >= e.from_inclusive || pos <= e.to_inclusive);
    if (in) primary_port = e.port;
  }
  uint16_t impostor_port = 0;
  for (const auto& e : entries) {
    if (e.port != primary_port) impostor_port = e.port;
  }
  for (uint16_t claimed : {uint16_t{1}, impostor_port}) {
    zmq::message_t msg = Replicate(1000000, claimed, 42 + claimed, "fenced-key", "evil");
    REQUIRE(dealer.send(msg, zmq::send_flags::none));
    zmq::message_t reply;
    dealer.set(zmq::sockopt::rcvtimeo, 5000);
    REQUIRE(dealer.recv(reply));
    auto reader = kv::FrameReader::Open(reply);
    REQUIRE(reader.ok());
    auto root = (*reader)->Root<kv::wire::PeerMessage>();
    REQUIRE(root.isReplicateAck());
    // Its ring is older than the claimed version 1000000: never applied.
    CHECK(root.getReplicateAck().getRefusal() != kv::wire::ReplicateRefusal::NONE);

    // With a current ring version the refusal is a fence.
    zmq::message_t msg2 = Replicate(0, claimed, 42 + claimed, "fenced-key", "evil");
    REQUIRE(dealer.send(msg2, zmq::send_flags::none));
    REQUIRE(dealer.recv(reply));
    auto reader2 = kv::FrameReader::Open(reply);
    REQUIRE(reader2.ok());
    auto root2 = (*reader2)->Root<kv::wire::PeerMessage>();
    REQUIRE(root2.isReplicateAck());
    CHECK(root2.getReplicateAck().getRefusal() == kv::wire::ReplicateRefusal::FENCED);
  }
  auto reply = client.Call(Op::kGet, "fenced-key");
  REQUIRE(reply);
  CHECK(reply->value == "good");
  RawClient replica(cluster.node(0).port());
  auto stale = ReplicaGet(replica, "fenced-key", 99);
  REQUIRE(stale);
  CHECK(stale->value == "good");
}

TEST_CASE("killing a primary under load loses no acknowledged write and its range takes writes again",
          "[replication][failover]") {
  TempDir dir;
  Cluster cluster(dir.path(), {"--replication-factor", "3"});
  StartNodes(cluster, 4);

  // Keys whose primary is node 0, so the kill hits them.
  auto ring = cluster.Keyrange();
  uint16_t victim = cluster.node(0).port();
  auto primary_of = [&](const std::string& key) {
    kv::Hash128 pos = kv::KeyPosition(key);
    for (const auto& e : ring) {
      bool in = e.from_inclusive <= e.to_inclusive
                    ? (pos >= e.from_inclusive && pos <= e.to_inclusive)
                    : (pos >= e.from_inclusive || pos <= e.to_inclusive);
      if (in) return e.port;
    }
    return uint16_t{0};
  };
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < 40 && i < 100000; ++i) {
    std::string key = "victim-" + std::to_string(i);
    if (primary_of(key) == victim) keys.push_back(key);
  }
  REQUIRE(keys.size() == 40);

  RoutedClient client([&] { return cluster.LivePorts(); });
  std::map<std::string, std::string> acked;
  // Values of writes with no definite answer since the last acknowledged one:
  // each may or may not have taken effect.
  std::map<std::string, std::set<std::string>> maybe;
  int n = 0;
  auto write = [&](std::chrono::milliseconds deadline) {
    std::string key = keys[n % keys.size()], value = "v" + std::to_string(n);
    ++n;
    auto reply = client.Call(Op::kPut, key, value, deadline);
    if (IsWriteOk(reply)) {
      acked[key] = value;
      maybe[key].clear();
    } else {
      maybe[key].insert(value);
    }
    return IsWriteOk(reply);
  };
  for (int i = 0; i < 200; ++i) REQUIRE(write(std::chrono::seconds(10)));

  auto killed_at = std::chrono::steady_clock::now();
  cluster.node(0).process().Kill9();
  // Writes to the killed primary's keys fail or time out until the ring has
  // moved them; then they succeed again. Short attempts, so that the time to
  // resume is measured to about 200 ms, not to one 3 s attempt.
  client.set_attempt_timeout(std::chrono::milliseconds(200));
  std::optional<std::chrono::steady_clock::time_point> resumed;
  for (int i = 0; i < 2000 && std::chrono::steady_clock::now() - killed_at < std::chrono::seconds(30);
       ++i) {
    if (write(std::chrono::seconds(2)) && !resumed) resumed = std::chrono::steady_clock::now();
    if (resumed && i > 100) break;
  }
  REQUIRE(resumed);
  auto window = std::chrono::duration_cast<std::chrono::milliseconds>(*resumed - killed_at);
  WARN("writes to the killed primary's range resumed " << window.count() << " ms after kill -9");
  REQUIRE(cluster.WaitForRingSize(3));
  client.set_attempt_timeout(std::chrono::seconds(3));

  for (const auto& [key, value] : acked) {
    auto reply = client.Call(Op::kGet, key);
    REQUIRE(reply);
    REQUIRE(reply->status == WireStatus::GET_SUCCESS);
    INFO("key " << key << ": last acknowledged " << value);
    CHECK((reply->value == value || maybe[key].count(reply->value) == 1));
  }
}

TEST_CASE("a read packed between two writes of its key answers with the first, not the second",
          "[replication][packed]") {
  TempDir dir;
  Cluster cluster(dir.path(), {"--replication-factor", "3"});
  StartNodes(cluster, 3);
  // put k, get k, delete k in one frame to k's primary: the get is taken after
  // the put and before the delete, and waits for the put to reach every
  // replica; the delete, applied meanwhile, must not change its answer.
  RoutedClient client([&] { return cluster.LivePorts(); });
  for (int round = 0; round < 20; ++round) {
    const std::string key = "ordered-" + std::to_string(round);
    const std::string value = "first-" + std::to_string(round);
    // Through the routing client first: it waits until the primary serves.
    REQUIRE(IsWriteOk(client.Call(Op::kPut, key, "before")));
    RawClient primary(kvtest::PrimaryPort(cluster.Keyrange(), key));
    std::vector<kv::Request> frame(3);
    frame[0].op = Op::kPut;
    frame[0].value = value;
    frame[1].op = Op::kGet;
    frame[2].op = Op::kDelete;
    for (uint64_t i = 0; i < 3; ++i) {
      frame[i].request_id = i + 1;
      frame[i].key = key;
    }
    primary.SendPacked(frame);
    auto replies = primary.ReceiveById(3);
    REQUIRE(replies.size() == 3);
    CHECK(replies[1].status == WireStatus::PUT_UPDATE);
    CHECK(replies[2].status == WireStatus::GET_SUCCESS);
    CHECK(replies[2].value == value);
    CHECK(replies[3].status == WireStatus::DELETE_SUCCESS);
  }
}

TEST_CASE("while a write waits for a replica, another client's get answers at once with the "
          "acknowledged value and the writer's own get waits for its write unless unordered",
          "[replication][image]") {
  TempDir dir;
  Cluster cluster(dir.path(), {"--replication-factor", "3"});
  StartNodes(cluster, 3);
  RoutedClient client([&] { return cluster.LivePorts(); });
  const std::string key = "imaged";
  REQUIRE(IsWriteOk(client.Call(Op::kPut, key, "acknowledged")));
  const uint16_t primary_port = kvtest::PrimaryPort(cluster.Keyrange(), key);
  size_t replica = 0;
  while (cluster.node(replica).port() == primary_port) ++replica;

  RawClient writer(primary_port), other(primary_port);
  auto request = [&](uint64_t id, Op op, const std::string& value = "") {
    kv::Request r;
    r.request_id = id;
    r.op = op;
    r.key = key;
    r.value = value;
    return r;
  };
  // One replica stopped (well under the 1.5 s failure timeout): the put is
  // applied on the primary but cannot be acknowledged.
  cluster.node(replica).process().Signal(SIGSTOP);
  writer.Send(request(1, Op::kPut, "unacknowledged"));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  writer.Send(request(2, Op::kGet));
  // The writer's unordered get (another caller on the same connection) is
  // answered like another client's, ahead of the put and the ordered get.
  kv::Request unordered = request(3, Op::kGet);
  unordered.unordered = true;
  writer.Send(unordered);
  other.Send(request(1, Op::kGet));
  auto early = other.Receive(std::chrono::milliseconds(400));
  auto writer_early = writer.Receive(std::chrono::milliseconds(400));
  auto writer_more = writer.Receive(std::chrono::milliseconds(0));
  cluster.node(replica).process().Signal(SIGCONT);
  REQUIRE(early);
  CHECK(early->status == WireStatus::GET_SUCCESS);
  CHECK(early->value == "acknowledged");  // never the write a fail-over could lose
  REQUIRE(writer_early);
  CHECK(writer_early->request_id == 3);
  CHECK(writer_early->status == WireStatus::GET_SUCCESS);
  CHECK(writer_early->value == "acknowledged");
  CHECK_FALSE(writer_more);  // neither the put nor the writer's ordered get yet

  auto replies = writer.ReceiveById(2);
  REQUIRE(replies.size() == 2);
  CHECK(replies[1].status == WireStatus::PUT_UPDATE);
  CHECK(replies[2].status == WireStatus::GET_SUCCESS);
  CHECK(replies[2].value == "unacknowledged");  // its own put, sent before it
  // Acknowledged now: every client sees it.
  other.Send(request(2, Op::kGet));
  auto late = other.Receive(std::chrono::seconds(5));
  REQUIRE(late);
  CHECK(late->value == "unacknowledged");
}

// Two clients pipeline puts, ordered gets and unordered gets of a few keys
// on one primary while a replica is stopped now and then (so writes wait for
// acks and gets take the image or park): the history is linearizable.
TEST_CASE("pipelined ordered and unordered gets beside pipelined puts stay linearizable",
          "[replication][image][lin]") {
  TempDir dir;
  Cluster cluster(dir.path(), {"--replication-factor", "3"});
  StartNodes(cluster, 3);
  const auto ring = cluster.Keyrange();
  const uint16_t primary = cluster.node(0).port();
  std::vector<std::string> keys;
  for (int i = 0; i < 400 && keys.size() < 6; ++i) {
    std::string k = "pipelined-" + std::to_string(i);
    if (kvtest::PrimaryPort(ring, k) == primary) keys.push_back(k);
  }
  REQUIRE(keys.size() == 6);
  size_t replica = 1;
  {  // until the primary serves (it may apply the ring after the broker has it)
    RawClient probe(primary);
    std::optional<kvtest::OwnedReply> r;
    for (int i = 0; i < 100; ++i) {
      r = probe.Call(Op::kGet, keys[0]);
      if (r && r->status == WireStatus::GET_ERROR) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    REQUIRE(r);
    REQUIRE(r->status == WireStatus::GET_ERROR);
  }

  const auto origin = std::chrono::steady_clock::now();
  std::atomic<bool> stop{false};
  constexpr int kClients = 2, kInFlight = 4, kMaxOps = 20000;
  std::vector<std::vector<kvtest::lin::Operation>> histories(kClients);
  std::vector<int> unordered_gets(kClients, 0);
  std::vector<std::string> first_error(kClients);
  auto client_loop = [&](int c) {
    RawClient raw(primary);
    std::mt19937_64 rng(1000 + c);
    std::map<uint64_t, size_t> open;  // request id -> index in the history
    std::vector<kvtest::lin::Operation>& history = histories[c];
    uint64_t next_id = 1;
    while (!stop || !open.empty()) {
      while (!stop && open.size() < kInFlight && history.size() < kMaxOps) {
        kvtest::lin::Operation op;
        op.client = c;
        op.key = keys[rng() % keys.size()];
        kv::Request r;
        r.request_id = next_id++;
        r.key = op.key;
        const int pick = static_cast<int>(rng() % 10);
        if (pick < 4) {
          op.kind = kvtest::lin::OpKind::kPut;
          op.value = "c" + std::to_string(c) + "-" + std::to_string(r.request_id);
          r.op = Op::kPut;
          r.value = *op.value;  // a view: sent (encoded) below, while op is alive
        } else {
          op.kind = kvtest::lin::OpKind::kGet;
          r.op = Op::kGet;
          r.unordered = pick >= 7;
          unordered_gets[c] += r.unordered;
        }
        op.invoke_us = kvtest::MicrosSince(origin);
        raw.Send(r);
        open[r.request_id] = history.size();
        history.push_back(op);
      }
      if (open.empty()) break;
      auto reply = raw.Receive(std::chrono::seconds(5));
      if (!reply) {  // every open request's outcome is unknown
        for (auto& [id, at] : open) kvtest::ClassifyReply(std::nullopt, &history[at]);
        break;
      }
      auto it = open.find(reply->request_id);
      if (it == open.end()) continue;
      kvtest::lin::Operation& op = history[it->second];
      op.complete_us = kvtest::MicrosSince(origin);
      kvtest::ClassifyReply(reply, &op);
      if (op.outcome != kvtest::lin::Outcome::kOk && first_error[c].empty()) {
        first_error[c] = std::string(kv::StatusWord(reply->status)) + ": " + reply->reason;
      }
      open.erase(it);
    }
  };
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) threads.emplace_back(client_loop, c);
  for (int round = 0; round < 4; ++round) {  // 2 s: stopped, running, stopped, ...
    cluster.node(replica).process().Signal(SIGSTOP);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    cluster.node(replica).process().Signal(SIGCONT);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  stop = true;
  for (auto& t : threads) t.join();

  std::vector<kvtest::lin::Operation> all;
  for (const auto& h : histories) all.insert(all.end(), h.begin(), h.end());
  CHECK(unordered_gets[0] + unordered_gets[1] > 50);
  std::map<int, int> outcomes;
  for (const auto& op : all) ++outcomes[static_cast<int>(op.outcome)];
  INFO("first errors: " << first_error[0] << " | " << first_error[1]);
  INFO("outcomes ok " << outcomes[0] << " error " << outcomes[1] << " unknown " << outcomes[2]);
  auto result = kvtest::lin::CheckHistory(all);
  INFO(result.Report());
  CHECK(result.verdict == kvtest::lin::Verdict::kOk);
}

TEST_CASE("a node whose transfers are in before it applies their ring keeps no record of the "
          "writes replicated to it afterwards",
          "[replication][transfer]") {
  // A source streams for a ring as soon as it has applied it, so the joining
  // node usually has the snapshots before it applies the ring. Those ranges
  // are complete: writes replicated into them later need no protection from a
  // first chunk, and recording them (up to 2^20 keys) would cost a lookup per
  // replicated write and memory for nothing.
  TempDir dir;
  Cluster cluster(dir.path(), {"--replication-factor", "3"});
  StartNodes(cluster, 3);
  RoutedClient client([&] { return cluster.LivePorts(); });
  for (int i = 0; i < 300; ++i) {
    REQUIRE(IsWriteOk(client.Call(Op::kPut, "late-" + std::to_string(i), "v")));
  }
  // Ring v1 (nothing to transfer), then a joining node that receives
  // transfers; each new ring makes every node report what it recorded in the
  // ring before.
  cluster.StartNode();
  REQUIRE(cluster.WaitForRingSize(4));
  for (int i = 0; i < 300; ++i) {
    REQUIRE(IsWriteOk(client.Call(Op::kPut, "later-" + std::to_string(i), "v")));
  }
  cluster.StartNode();
  REQUIRE(cluster.WaitForRingSize(5));
  for (size_t n = 0; n < 4; ++n) {
    INFO("node " << n << " log:\n" << cluster.node(n).process().Log());
    CHECK(cluster.node(n).process().Log().find("transfer never completed") == std::string::npos);
  }
}

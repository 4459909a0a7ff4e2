// kvnode as a real process on 127.0.0.1: durability across kill -9, bad input
// on the wire, graceful shutdown.
#include <signal.h>

#include <catch2/catch.hpp>
#include <string>

#include "tests/support/process.h"
#include "tests/support/raw_client.h"

using kv::Op;
using kv::WireStatus;
using kvtest::NodeProcess;
using kvtest::RawClient;
using kvtest::TempDir;

TEST_CASE("every acknowledged write survives kill -9 of the node", "[node][durability]") {
  TempDir work;
  std::string data = work / "data";
  constexpr int kWrites = 2000;
  int acknowledged = 0;
  {
    NodeProcess node(data, work.path());
    REQUIRE(node.started());
    RawClient client(node.port());
    // Keep many writes in flight so they are group-committed together.
    for (int i = 0; i < kWrites; ++i) {
      kv::Request r;
      r.request_id = static_cast<uint64_t>(i + 1);
      r.op = Op::kPut;
      std::string key = "key-" + std::to_string(i), value = "value-" + std::to_string(i);
      r.key = key;
      r.value = value;
      client.Send(r);
    }
    for (int i = 0; i < kWrites; ++i) {
      auto reply = client.Receive();
      REQUIRE(reply.has_value());
      REQUIRE(reply->status == WireStatus::PUT_SUCCESS);
      ++acknowledged;
    }
    node.process().Kill9();
  }
  REQUIRE(acknowledged == kWrites);
  NodeProcess restarted(data, work.path());
  REQUIRE(restarted.started());
  RawClient client(restarted.port());
  int found = 0;
  for (int i = 0; i < kWrites; ++i) {
    auto reply = client.Call(Op::kGet, "key-" + std::to_string(i));
    REQUIRE(reply.has_value());
    if (reply->status == WireStatus::GET_SUCCESS && reply->value == "value-" + std::to_string(i)) {
      ++found;
    }
  }
  CHECK(found == kWrites);
}

TEST_CASE("puts, updates, gets and deletes answer with the seed's status words", "[node]") {
  TempDir work;
  NodeProcess node(work / "data", work.path());
  REQUIRE(node.started());
  RawClient c(node.port());
  CHECK(c.Call(Op::kPut, "k", "v1")->status == WireStatus::PUT_SUCCESS);
  CHECK(c.Call(Op::kPut, "k", "v 2 with spaces")->status == WireStatus::PUT_UPDATE);
  auto got = c.Call(Op::kGet, "k");
  CHECK(got->status == WireStatus::GET_SUCCESS);
  CHECK(got->value == "v 2 with spaces");
  CHECK(c.Call(Op::kDelete, "k")->status == WireStatus::DELETE_SUCCESS);
  CHECK(c.Call(Op::kGet, "k")->status == WireStatus::GET_ERROR);
  CHECK(c.Call(Op::kDelete, "k")->status == WireStatus::DELETE_ERROR);
  auto range = c.Call(Op::kKeyrange);
  CHECK(range->status == WireStatus::KEYRANGE_SUCCESS);
  CHECK(range->metadata.find(",127.0.0.1:" + std::to_string(node.port()) + ";") !=
        std::string::npos);
}

TEST_CASE("a pipelined get sees the put sent before it", "[node]") {
  TempDir work;
  NodeProcess node(work / "data", work.path());
  REQUIRE(node.started());
  RawClient c(node.port());
  kv::Request put;
  put.request_id = 1;
  put.op = Op::kPut;
  put.key = "k";
  put.value = "fresh";
  kv::Request get;
  get.request_id = 2;
  get.op = Op::kGet;
  get.key = "k";
  c.Send(put);
  c.Send(get);
  for (int i = 0; i < 2; ++i) {
    auto r = c.Receive();
    REQUIRE(r.has_value());
    if (r->request_id == 2) {
      CHECK(r->status == WireStatus::GET_SUCCESS);
      CHECK(r->value == "fresh");
    }
  }
}

// The get, in a frame of its own right behind its key's put, often arrives
// while that put's group commit is running. It must see that write; another
// client's read of a quiet key is answered as usual.
TEST_CASE("a get in the frame after its key's put sees the put, round after round",
          "[node][sync]") {
  TempDir work;
  NodeProcess node(work / "data", work.path());
  REQUIRE(node.started());
  RawClient writer(node.port());
  RawClient reader(node.port());
  REQUIRE(writer.Call(Op::kPut, "quiet", "still")->status == WireStatus::PUT_SUCCESS);
  constexpr int kRounds = 200;
  for (int i = 0; i < kRounds; ++i) {
    const std::string key = "behind-" + std::to_string(i % 7);
    const std::string value = "v" + std::to_string(i);  // Request holds views
    kv::Request put;
    put.request_id = 2 * i + 1;
    put.op = Op::kPut;
    put.key = key;
    put.value = value;
    kv::Request get;
    get.request_id = 2 * i + 2;
    get.op = Op::kGet;
    get.key = key;
    writer.Send(put);
    writer.Send(get);
    kv::Request other;
    other.request_id = i + 1;
    other.op = Op::kGet;
    other.key = "quiet";
    reader.Send(other);
    auto replies = writer.ReceiveById(2);
    REQUIRE(replies.size() == 2);
    CHECK((replies[put.request_id].status == WireStatus::PUT_SUCCESS ||
           replies[put.request_id].status == WireStatus::PUT_UPDATE));
    REQUIRE(replies[get.request_id].status == WireStatus::GET_SUCCESS);
    REQUIRE(replies[get.request_id].value == value);
    auto seen = reader.Receive();
    REQUIRE(seen.has_value());
    CHECK(seen->request_id == other.request_id);
    CHECK(seen->value == "still");
  }
}

TEST_CASE("an unordered get packed after its key's put answers with the value before it",
          "[node][packed]") {
  TempDir work;
  NodeProcess node(work / "data", work.path());
  REQUIRE(node.started());
  RawClient c(node.port());
  REQUIRE(c.Call(Op::kPut, "k", "old")->status == WireStatus::PUT_SUCCESS);
  std::vector<kv::Request> requests(3);
  requests[0].op = Op::kPut;
  requests[0].value = "new";
  requests[1].op = Op::kGet;
  requests[1].unordered = true;  // another caller's: the put is concurrent with it
  requests[2].op = Op::kGet;     // ordered: sees the put sent before it
  for (size_t i = 0; i < requests.size(); ++i) {
    requests[i].request_id = 10 + i;
    requests[i].key = "k";
  }
  c.SendPacked(requests);
  auto replies = c.ReceiveById(3);
  REQUIRE(replies.size() == 3);
  CHECK(replies[10].status == WireStatus::PUT_UPDATE);
  CHECK(replies[11].status == WireStatus::GET_SUCCESS);
  CHECK(replies[11].value == "old");
  CHECK(replies[12].status == WireStatus::GET_SUCCESS);
  CHECK(replies[12].value == "new");
  auto after = c.Call(Op::kGet, "k");
  REQUIRE(after);
  CHECK(after->value == "new");
}

TEST_CASE("keys and values out of limits are refused and nothing is stored", "[node][limits]") {
  TempDir work;
  NodeProcess node(work / "data", work.path(), {"--max-value-bytes", "1000"});
  REQUIRE(node.started());
  RawClient c(node.port());
  auto empty = c.Call(Op::kPut, "", "v");
  CHECK(empty->status == WireStatus::PUT_ERROR);
  CHECK(empty->reason.find("empty") != std::string::npos);
  auto long_key = c.Call(Op::kPut, std::string(251, 'k'), "v");
  CHECK(long_key->status == WireStatus::PUT_ERROR);
  CHECK(long_key->reason.find("250") != std::string::npos);
  CHECK(c.Call(Op::kPut, std::string(250, 'k'), "v")->status == WireStatus::PUT_SUCCESS);
  auto big = c.Call(Op::kPut, "big", std::string(1001, 'v'));
  CHECK(big->status == WireStatus::PUT_ERROR);
  CHECK(big->reason.find("1000") != std::string::npos);
  CHECK(c.Call(Op::kGet, "big")->status == WireStatus::GET_ERROR);
  CHECK(c.Call(Op::kPut, "fits", std::string(1000, 'v'))->status == WireStatus::PUT_SUCCESS);
}

TEST_CASE("garbage, truncated, oversize and multi-frame messages leave the node serving",
          "[node][malformed]") {
  TempDir work;
  NodeProcess node(work / "data", work.path(), {"--max-value-bytes", "4096"});
  REQUIRE(node.started());
  RawClient c(node.port());
  REQUIRE(c.Call(Op::kPut, "before", "x")->status == WireStatus::PUT_SUCCESS);

  c.SendFrames({"this is not cap'n proto"});
  auto r = c.Receive();
  REQUIRE(r.has_value());
  CHECK(r->status == WireStatus::BAD_REQUEST);
  CHECK_FALSE(r->reason.empty());

  c.SendFrames({std::string(64, '\x7f')});  // word-aligned junk
  r = c.Receive();
  REQUIRE(r.has_value());
  CHECK(r->status == WireStatus::BAD_REQUEST);

  std::string value(600, 'v');  // the request only points at it
  kv::Request valid;
  valid.request_id = 31;
  valid.op = Op::kPut;
  valid.key = "k";
  valid.value = value;
  zmq::message_t full = kv::EncodeRequest(valid);
  std::string truncated(static_cast<const char*>(full.data()), full.size() - 256);
  c.SendFrames({truncated});
  r = c.Receive();
  REQUIRE(r.has_value());
  CHECK(r->status == WireStatus::BAD_REQUEST);

  std::string whole(static_cast<const char*>(full.data()), full.size());
  c.SendFrames({whole, "extra frame"});
  r = c.Receive();
  REQUIRE(r.has_value());
  CHECK(r->status == WireStatus::BAD_REQUEST);
  CHECK(r->reason.find("frame") != std::string::npos);

  // Over the value limit but under the transport cap: a put_error with a reason.
  auto big = c.Call(Op::kPut, "big", std::string(6000, 'v'));
  REQUIRE(big.has_value());
  CHECK(big->status == WireStatus::PUT_ERROR);

  // Far over the transport cap: ZeroMQ cuts that connection; a new one works.
  {
    RawClient attacker(node.port());
    attacker.SendFrames({std::string(1 << 20, 'x')});
    CHECK_FALSE(attacker.Receive(std::chrono::milliseconds(300)).has_value());
  }

  RawClient fresh(node.port());
  CHECK(fresh.Call(Op::kGet, "before")->value == "x");
  CHECK(c.Call(Op::kGet, "before")->status == WireStatus::GET_SUCCESS);
  CHECK(node.process().running());
}

TEST_CASE("SIGTERM stops the node cleanly with exit status 0", "[node][shutdown]") {
  TempDir work;
  std::string data = work / "data";
  {
    NodeProcess node(data, work.path());
    REQUIRE(node.started());
    RawClient c(node.port());
    REQUIRE(c.Call(Op::kPut, "k", "v")->status == WireStatus::PUT_SUCCESS);
    node.process().Signal(SIGTERM);
    auto status = node.process().Wait(std::chrono::seconds(10));
    REQUIRE(status.has_value());
    CHECK(*status == 0);
    CHECK(node.process().Log().find("kvnode stopped") != std::string::npos);
  }
  NodeProcess again(data, work.path());
  REQUIRE(again.started());
  RawClient c(again.port());
  CHECK(c.Call(Op::kGet, "k")->value == "v");
}

TEST_CASE("kvnode -h describes its flags and bad flags exit 2", "[node][flags]") {
  auto help = kvtest::Run({kvtest::Bin("kvnode"), "-h"});
  CHECK(help.exit_status == 0);
  for (const char* flag : {"-a", "-p", "-d", "-l", "-ll", "-c", "-s", "-bh", "-bp", "--sync",
                           "--max-value-bytes"}) {
    CHECK(help.out.find(flag) != std::string::npos);
  }
  auto bad = kvtest::Run({kvtest::Bin("kvnode"), "-s", "MRU"});
  CHECK(bad.exit_status == 2);
  CHECK(bad.err.find("MRU") != std::string::npos);
}

TEST_CASE("garbage on the peer port is logged and changes nothing", "[node][malformed]") {
  TempDir work;
  NodeProcess node(work / "data", work.path());
  REQUIRE(node.started());
  REQUIRE(node.peer_port() != 0);
  RawClient c(node.port());
  REQUIRE(c.Call(Op::kPut, "k", "v")->status == WireStatus::PUT_SUCCESS);
  RawClient peer(node.peer_port());
  peer.SendFrames({"garbage"});
  peer.SendFrames({std::string(64, '\x01')});
  peer.SendFrames({"two", "frames"});
  // A well-formed client request is not a peer message either.
  kv::Request r;
  r.request_id = 1;
  r.op = Op::kDelete;
  r.key = "k";
  peer.Send(r);
  CHECK(kvtest::WaitFor([&] {
    return node.process().Log().find("peer port:") != std::string::npos;
  }));
  CHECK(c.Call(Op::kGet, "k")->value == "v");
  CHECK(node.process().running());
}

TEST_CASE("gets between writes of their key in one frame see exactly the writes before them",
          "[node][packed]") {
  TempDir work;
  NodeProcess node(work / "data", work.path());
  REQUIRE(node.started());
  RawClient c(node.port());
  // Per key: put a, get, put b, get, delete, get, put c; all keys in one frame,
  // interleaved, so each get sits between two writes of its key in one batch.
  const std::vector<std::pair<Op, std::string>> steps = {
      {Op::kPut, "a"}, {Op::kGet, ""}, {Op::kPut, "b"}, {Op::kGet, ""},
      {Op::kDelete, ""}, {Op::kGet, ""}, {Op::kPut, "c"}};
  constexpr int kKeys = 20;
  std::vector<kv::Request> requests;
  std::vector<std::string> keys;
  for (int k = 0; k < kKeys; ++k) keys.push_back("between-" + std::to_string(k));
  for (size_t s = 0; s < steps.size(); ++s) {
    for (int k = 0; k < kKeys; ++k) {
      kv::Request r;
      r.request_id = requests.size() + 1;
      r.op = steps[s].first;
      r.key = keys[k];
      r.value = steps[s].second;
      requests.push_back(r);
    }
  }
  c.SendPacked(requests);
  auto replies = c.ReceiveById(requests.size());
  REQUIRE(replies.size() == requests.size());
  for (int k = 0; k < kKeys; ++k) {
    auto at = [&](size_t step) { return replies[step * kKeys + k + 1]; };
    CHECK(at(0).status == WireStatus::PUT_SUCCESS);
    CHECK(at(1).status == WireStatus::GET_SUCCESS);
    CHECK(at(1).value == "a");
    CHECK(at(2).status == WireStatus::PUT_UPDATE);
    CHECK(at(3).status == WireStatus::GET_SUCCESS);
    CHECK(at(3).value == "b");
    CHECK(at(4).status == WireStatus::DELETE_SUCCESS);
    CHECK(at(5).status == WireStatus::GET_ERROR);
    CHECK(at(6).status == WireStatus::PUT_SUCCESS);
    auto last = c.Call(Op::kGet, keys[k]);
    REQUIRE(last);
    CHECK(last->value == "c");
  }
}

TEST_CASE("a packed frame of requests is answered request by request, in packed frames",
          "[node][packed]") {
  TempDir work;
  NodeProcess node(work / "data", work.path());
  REQUIRE(node.started());
  RawClient c(node.port());
  constexpr int kRequests = 300;
  std::vector<std::string> keys, values;
  for (int i = 0; i < kRequests; ++i) {
    keys.push_back("packed-" + std::to_string(i % 100));
    values.push_back("value-" + std::to_string(i));
  }
  // 100 puts, then 100 gets of the same keys, then 100 deletes, in one frame:
  // taken in order, as if sent one by one.
  std::vector<kv::Request> requests;
  for (int i = 0; i < kRequests; ++i) {
    kv::Request r;
    r.request_id = static_cast<uint64_t>(i + 1);
    r.op = i < 100 ? Op::kPut : (i < 200 ? Op::kGet : Op::kDelete);
    r.key = keys[i];
    if (r.op == Op::kPut) r.value = values[i];
    requests.push_back(r);
  }
  c.SendPacked(requests);
  std::map<uint64_t, kvtest::OwnedReply> replies;
  while (replies.size() < static_cast<size_t>(kRequests)) {
    auto reply = c.Receive();
    REQUIRE(reply.has_value());
    CHECK(replies.count(reply->request_id) == 0);
    replies[reply->request_id] = *reply;
  }
  for (int i = 0; i < kRequests; ++i) {
    const auto& r = replies[static_cast<uint64_t>(i + 1)];
    CHECK(r.key == keys[i]);
    if (i < 100) {
      CHECK(r.status == WireStatus::PUT_SUCCESS);
    } else if (i < 200) {
      CHECK(r.status == WireStatus::GET_SUCCESS);
      CHECK(r.value == values[i - 100]);
    } else {
      CHECK(r.status == WireStatus::DELETE_SUCCESS);
    }
  }
  // The node packed its replies: far fewer frames than replies.
  CHECK(c.frames_received() < static_cast<uint64_t>(kRequests) / 4);

  // A malformed message ends its frame; what came before it is answered, and
  // the node goes on serving.
  kv::PackedWriter writer;
  kv::Request put;
  put.request_id = 1001;
  put.op = Op::kPut;
  put.key = "before-junk";
  put.value = "v";
  writer.Add(put);
  zmq::message_t frame = writer.Take();
  std::string bytes(static_cast<const char*>(frame.data()), frame.size());
  bytes.append(std::string(64, '\x7f'));
  c.SendFrames({bytes});
  std::map<uint64_t, kvtest::OwnedReply> mixed;
  for (int i = 0; i < 2; ++i) {
    auto reply = c.Receive();
    REQUIRE(reply.has_value());
    mixed[reply->request_id] = *reply;
  }
  CHECK(mixed[1001].status == WireStatus::PUT_SUCCESS);
  CHECK(mixed[0].status == WireStatus::BAD_REQUEST);
  CHECK(c.Call(Op::kGet, "before-junk")->value == "v");
  CHECK(node.process().running());
}

// kvclient, kvbench and the client library routing through a real kvbroker,
// or through one node, to a real cluster (kvbroker + kvecs + kvnodes on
// 127.0.0.1 ephemeral ports).
#include <signal.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "kvclient/client.h"
#include "schema/hash.h"
#include "schema/ring.h"
#include "tests/support/cluster.h"
#include "tests/support/process.h"

using kvtest::Bin;
using kvtest::Cluster;
using kvtest::Run;
using kvtest::TempDir;

namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> ViaBroker(const Cluster& cluster, std::vector<std::string> args = {}) {
  std::vector<std::string> argv = {Bin("kvclient"), "-bh", "127.0.0.1", "-bp",
                                   std::to_string(cluster.broker_ports().control)};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// The client port of the node whose range holds key.
uint16_t OwnerPort(const std::vector<kv::KeyrangeEntry>& ring, const std::string& key) {
  kv::Hash128 pos = kv::KeyPosition(key);
  for (const auto& e : ring) {
    bool in = e.from_inclusive <= e.to_inclusive
                  ? (pos >= e.from_inclusive && pos <= e.to_inclusive)
                  : (pos >= e.from_inclusive || pos <= e.to_inclusive);
    if (in) return e.port;
  }
  return 0;
}

// 50 keys, at least 5 on every node (a node's range may be small, so plain
// consecutive keys could miss one).
std::vector<std::string> KeysOnEveryNode(const std::vector<kv::KeyrangeEntry>& ring) {
  std::map<uint16_t, int> per_node;
  std::vector<std::string> keys, rest;
  for (int i = 0; i < 100000 && keys.size() + rest.size() < 50; ++i) {
    std::string key = "route-" + std::to_string(i);
    int& on_node = per_node[OwnerPort(ring, key)];
    if (on_node < 5) {
      ++on_node;
      keys.push_back(key);
    } else if (rest.size() < 35) {
      rest.push_back(key);
    }
  }
  keys.insert(keys.end(), rest.begin(), rest.end());
  return keys;
}

double JsonNumber(const std::string& json, const std::string& key) {
  auto at = json.find("\"" + key + "\":");
  REQUIRE(at != std::string::npos);
  return std::strtod(json.c_str() + at + key.size() + 3, nullptr);
}

void StartThreeNodes(Cluster& cluster) {
  REQUIRE(cluster.started());
  for (int i = 0; i < 3; ++i) cluster.StartNode();
  REQUIRE(cluster.WaitForRingSize(3));
}

}  // namespace

TEST_CASE("through the broker, one-shot commands and a shell session reach every node",
          "[client][routing][integration]") {
  TempDir work;
  Cluster cluster(work.path(), {"--replication-factor", "1"});
  StartThreeNodes(cluster);
  const auto ring = cluster.Keyrange();
  REQUIRE(ring.size() == 3);

  auto put = Run(ViaBroker(cluster, {"put", "k", "v"}));
  INFO(put.err);
  CHECK(put.exit_status == 0);
  CHECK(put.out == "put_success k\n");
  auto get = Run(ViaBroker(cluster, {"get", "k"}));
  CHECK(get.exit_status == 0);
  CHECK(get.out == "get_success k v\n");

  // keyrange through the broker: the cached ring, as the nodes print it.
  auto keyrange = Run(ViaBroker(cluster, {"keyrange"}));
  CHECK(keyrange.exit_status == 0);
  REQUIRE(keyrange.out.rfind("keyrange_success ", 0) == 0);
  auto printed = kv::Ring::ParseKeyrange(
      keyrange.out.substr(17, keyrange.out.size() - 18));  // without word and newline
  REQUIRE(printed.ok());
  CHECK(printed->size() == 3);
  CHECK(*printed == ring);

  // A scripted session: 50 keys spread over all three nodes.
  const auto keys = KeysOnEveryNode(ring);
  REQUIRE(keys.size() == 50);
  std::string script;
  for (const auto& k : keys) script += "put " + k + " value of " + k + "\n";
  for (const auto& k : keys) script += "get " + k + "\n";
  script += "keyrange_read\nquit\n";
  auto session = Run(ViaBroker(cluster), script, std::chrono::seconds(60));
  CHECK(session.exit_status == 0);
  auto lines = Lines(session.out);
  REQUIRE(lines.size() == 102);
  for (size_t i = 0; i < keys.size(); ++i) {
    CHECK(lines[i] == "put_success " + keys[i]);
    CHECK(lines[50 + i] == "get_success " + keys[i] + " value of " + keys[i]);
  }
  CHECK(lines[100].rfind("keyrange_read_success ", 0) == 0);
  CHECK(lines[101] == "bye");

  // Each key is stored on the node the ring names, and every node holds some.
  std::map<uint16_t, int> stored;
  std::map<uint16_t, std::unique_ptr<kvtest::RawClient>> direct;
  for (const auto& k : keys) {
    uint16_t port = OwnerPort(ring, k);
    auto& c = direct[port];
    if (!c) c = std::make_unique<kvtest::RawClient>(port);
    auto r = c->Call(kv::Op::kGet, k);
    REQUIRE(r.has_value());
    INFO(k << " on port " << port << ": " << kv::StatusWord(r->status));
    CHECK(r->status == kv::WireStatus::GET_SUCCESS);
    if (r->status == kv::WireStatus::GET_SUCCESS) ++stored[port];
  }
  CHECK(stored.size() == 3);
}

TEST_CASE("a client connected to one node routes to the others by its keyrange",
          "[client][routing][integration]") {
  TempDir work;
  Cluster cluster(work.path(), {"--replication-factor", "1"});
  StartThreeNodes(cluster);
  const auto ring = cluster.Keyrange();
  const uint16_t seed = cluster.node(0).port();
  // Keys owned by the other two nodes, written and read through node 0.
  std::vector<std::string> keys;
  for (int i = 0; i < 1000 && keys.size() < 10; ++i) {
    std::string key = "elsewhere-" + std::to_string(i);
    if (OwnerPort(ring, key) != seed) keys.push_back(key);
  }
  const std::vector<std::string> via_node = {Bin("kvclient"), "-bh", "127.0.0.1", "-bp",
                                             std::to_string(seed)};
  std::string script;
  for (const auto& k : keys) script += "put " + k + " v\nget " + k + "\n";
  auto session = Run(via_node, script + "keyrange\n");
  auto lines = Lines(session.out);
  REQUIRE(lines.size() == 2 * keys.size() + 1);
  for (size_t i = 0; i < keys.size(); ++i) {
    CHECK(lines[2 * i] == "put_success " + keys[i]);
    CHECK(lines[2 * i + 1] == "get_success " + keys[i] + " v");
  }
  CHECK(lines.back().rfind("keyrange_success ", 0) == 0);

  auto bench = Run({Bin("kvbench"), "-bh", "127.0.0.1", "-bp", std::to_string(seed), "--records",
                    "300", "--ops", "1000", "--json"},
                   "", std::chrono::seconds(90));
  INFO(bench.out << bench.err);
  REQUIRE(bench.exit_status == 0);
  CHECK(JsonNumber(bench.out, "errors") == 0);
  CHECK(JsonNumber(bench.out, "redirects") == 0);
}

TEST_CASE("a client through the broker follows nodes joining and leaving",
          "[client][routing][integration]") {
  TempDir work;
  Cluster cluster(work.path(), {"--replication-factor", "1"});
  StartThreeNodes(cluster);
  kv::client::ClientOptions options;
  options.request_timeout = std::chrono::seconds(2);
  options.broker_pub_port = cluster.broker_ports().pub;  // ephemeral, not control + 1
  kv::client::KvClient client(options);
  REQUIRE(client.Connect("127.0.0.1", cluster.broker_ports().control).ok());
  REQUIRE(client.via_broker());
  const uint64_t first_version = client.router().version();
  CHECK(client.router().table().size() == 3);
  // A second router that never sends a request: only the event plane can
  // bring it new rings.
  zmq::context_t ctx;
  kv::client::Router watcher(ctx, {std::chrono::seconds(2), cluster.broker_ports().pub, 1});
  REQUIRE(watcher.Connect("127.0.0.1", cluster.broker_ports().control).ok());
  REQUIRE(watcher.table().size() == 3);

  std::vector<std::string> keys;
  for (int i = 0; i < 60; ++i) keys.push_back("moving-" + std::to_string(i));
  auto check_all = [&] {
    for (const auto& k : keys) {
      auto r = client.Get(k);
      INFO(k << ": " << (r.ok() ? kv::StatusWord(r->status) : r.status().ToString()));
      REQUIRE(r.ok());
      CHECK(r->status == kv::WireStatus::GET_SUCCESS);
      CHECK(r->value == "value of " + k);
    }
  };
  for (const auto& k : keys) {
    auto r = client.Put(k, "value of " + k);
    REQUIRE(r.ok());
    CHECK(kv::IsSuccess(r->status));
  }

  cluster.StartNode();
  REQUIRE(cluster.WaitForRingSize(4));
  CHECK(kvtest::WaitFor([&] {
    watcher.PollUpdates();
    return watcher.table().size() == 4;
  }));
  check_all();
  CHECK(client.router().table().size() == 4);
  CHECK(client.router().version() > first_version);

  // A node leaves gracefully: its connection closes once the new ring is in.
  const std::string leaving = "127.0.0.1:" + std::to_string(cluster.node(1).port());
  cluster.node(1).process().Signal(SIGTERM);
  REQUIRE(cluster.node(1).process().Wait(std::chrono::seconds(30)).has_value());
  REQUIRE(cluster.WaitForRingSize(3));
  check_all();
  CHECK_FALSE(client.router().table().HasNode(leaving));
  auto open = client.router().OpenAddresses();
  CHECK(std::find(open.begin(), open.end(), leaving) == open.end());
}

TEST_CASE("kvbench through the broker sends each request to its key's node without errors",
          "[kvbench][routing][integration]") {
  TempDir work;
  Cluster cluster(work.path(), {"--replication-factor", "1"});
  StartThreeNodes(cluster);
  auto result = Run(
      {Bin("kvbench"), "-bh", "127.0.0.1", "-bp", std::to_string(cluster.broker_ports().control),
       "--broker-pub-port", std::to_string(cluster.broker_ports().pub), "--records", "500", "--ops",
       "2000", "--connections", "2", "--inflight", "16", "--json"},
      "", std::chrono::seconds(90));
  INFO(result.out << result.err);
  REQUIRE(result.exit_status == 0);
  CHECK(JsonNumber(result.out, "ops") == 2000);
  CHECK(JsonNumber(result.out, "errors") == 0);
  // A stable ring: every request went straight to the right node.
  CHECK(JsonNumber(result.out, "redirects") == 0);
  CHECK(JsonNumber(result.out, "throughput_ops") > 0);
  CHECK(result.out.find("\"p999\":") != std::string::npos);
}

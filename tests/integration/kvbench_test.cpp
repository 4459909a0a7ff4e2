// kvbench as a real process against a real kvnode, a cluster and (when
// redis-server is installed) Redis, on 127.0.0.1. Also the benchmark
// regression guard: a few seconds of workloads a and c against a single node
// and a 3-node cluster that fails on errors, or when the cluster's throughput
// collapses to under a tenth of the single node's in the same run; it never
// judges absolute times.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <iostream>
#include <string>

#include "tests/support/cluster.h"
#include "tests/support/process.h"

using kvtest::Bin;
using kvtest::Cluster;
using kvtest::NodeProcess;
using kvtest::Process;
using kvtest::Run;
using kvtest::RunResult;
using kvtest::TempDir;

namespace {

// The number after the first "key": in a flat scan of the JSON text; the
// headline (run phase) keys come before the nested "load" object.
double JsonNumber(const std::string& json, const std::string& key) {
  auto at = json.find("\"" + key + "\":");
  REQUIRE(at != std::string::npos);
  return std::strtod(json.c_str() + at + key.size() + 3, nullptr);
}

// Runs kvbench with --json; requires exit 0 and no errors.
std::string BenchJson(const std::vector<std::string>& target, const std::string& workload,
                      std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {Bin("kvbench")};
  argv.insert(argv.end(), target.begin(), target.end());
  for (const char* flag : {"--connections", "2", "--inflight", "16", "--json"}) argv.push_back(flag);
  argv.insert(argv.end(), {"--workload", workload});
  argv.insert(argv.end(), extra.begin(), extra.end());
  RunResult result = Run(argv, "", std::chrono::seconds(120));
  INFO(workload << ": " << result.out << result.err);
  REQUIRE(result.exit_status == 0);
  CHECK(JsonNumber(result.out, "errors") == 0);
  return result.out;
}

// A TCP port on 127.0.0.1 nothing listens on right now (for redis-server,
// which cannot report a port it picked itself).
uint16_t FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

TEST_CASE("kvbench loads and runs a bounded mix and reports it as one JSON object",
          "[kvbench][integration]") {
  TempDir work;
  NodeProcess node(work / "data", work.path());
  REQUIRE(node.started());
  auto result =
      Run({Bin("kvbench"), "-bh", "127.0.0.1", "-bp", std::to_string(node.port()), "--records",
           "500", "--ops", "2000", "--connections", "2", "--inflight", "16", "--json"},
          "", std::chrono::seconds(60));
  INFO(result.out << result.err);
  REQUIRE(result.exit_status == 0);
  const std::string& json = result.out;
  CHECK(json.front() == '{');
  CHECK(json.find('\n') == json.size() - 1);  // exactly one line
  CHECK(JsonNumber(json, "throughput_ops") > 0);
  CHECK(JsonNumber(json, "ops") == 2000);
  CHECK(JsonNumber(json, "errors") == 0);
  CHECK(json.find("\"latency_us\":{\"get\":{\"count\":") != std::string::npos);
  CHECK(json.find("\"put\":{\"count\":") != std::string::npos);
  CHECK(json.find("\"p999\":") != std::string::npos);
  CHECK(json.find("\"load\":{\"throughput_ops\":") != std::string::npos);
}

TEST_CASE("kvbench prints a table with throughput and latency percentiles by default",
          "[kvbench][integration]") {
  TempDir work;
  NodeProcess node(work / "data", work.path());
  REQUIRE(node.started());
  auto result = Run({Bin("kvbench"), "-bh", "127.0.0.1", "-bp", std::to_string(node.port()),
                     "--records", "100", "--ops", "300", "--read-ratio", "0.9"},
                    "", std::chrono::seconds(60));
  INFO(result.out << result.err);
  REQUIRE(result.exit_status == 0);
  CHECK(result.out.find("run: 300 ops in ") != std::string::npos);
  CHECK(result.out.find("ops/s, 0 errors") != std::string::npos);
  CHECK(result.out.find("p99.9") != std::string::npos);
  CHECK(result.out.find("errors: none") != std::string::npos);
}

TEST_CASE("kvbench refuses contradictory or missing flags with exit status 2",
          "[kvbench][integration]") {
  CHECK(Run({Bin("kvbench"), "-bp", "1", "--load-only", "--run-only"}).exit_status == 2);
  CHECK(Run({Bin("kvbench"), "--ops", "10"}).exit_status == 2);  // no port
  CHECK(Run({Bin("kvbench"), "-bp", "1", "--workload", "z"}).exit_status == 2);
  CHECK(Run({Bin("kvbench"), "-bp", "1", "--read-ratio", "1.5"}).exit_status == 2);
}

TEST_CASE("kvbench runs every YCSB workload and both seed scenarios against a node",
          "[kvbench][integration]") {
  TempDir work;
  NodeProcess node(work / "data", work.path());
  REQUIRE(node.started());
  const std::vector<std::string> target = {"-bh", "127.0.0.1", "-bp", std::to_string(node.port())};
  BenchJson(target, "a", {"--records", "300", "--load-only"});
  for (const char* workload : {"a", "b", "c", "d", "f"}) {
    std::string json =
        BenchJson(target, workload, {"--records", "300", "--ops", "600", "--run-only"});
    CHECK(JsonNumber(json, "ops") == 600);
    CHECK(json.find(std::string("\"workload\":\"") + workload + "\"") != std::string::npos);
    CHECK(json.find("\"read\":{\"count\":") != std::string::npos);
  }
  for (const char* seed : {"seed1", "seed2"}) {
    std::string json = BenchJson(target, seed, {"--records", "200"});
    CHECK(JsonNumber(json, "ops") == 800);  // put, get, update and delete of each key
    CHECK(json.find("\"delete\":{\"count\":200,") != std::string::npos);
  }
}

TEST_CASE("kvbench drives Redis with the same workloads", "[kvbench][integration]") {
  if (::access("/usr/bin/redis-server", X_OK) != 0) {
    WARN("redis-server is not installed; skipping");
    return;
  }
  TempDir work;
  const std::string port = std::to_string(FreePort());
  Process redis({"/usr/bin/redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", work.path()},
                work / "redis.log");
  const std::vector<std::string> target = {"--target", "redis://127.0.0.1:" + port};
  REQUIRE(kvtest::WaitFor([&] {
    return Run({Bin("kvbench"), target[0], target[1], "--workload", "c", "--records", "1",
                "--ops", "1"})
               .exit_status == 0;
  }));
  std::string json = BenchJson(target, "f", {"--records", "300", "--ops", "600"});
  CHECK(JsonNumber(json, "ops") == 600);
  CHECK(json.find("\"target\":\"redis 127.0.0.1:" + port + "\"") != std::string::npos);
  CHECK(json.find("\"read_modify_write\":{\"count\":") != std::string::npos);
  json = BenchJson(target, "seed2", {"--records", "100"});
  CHECK(JsonNumber(json, "ops") == 400);
}

TEST_CASE("benchmark guard: a replicated 3-node cluster keeps at least a tenth of a single node",
          "[kvbench][integration][guard]") {
  TempDir work;
  NodeProcess single(work / "single", work.path());
  REQUIRE(single.started());
  Cluster cluster(work.path(), {"--replication-factor", "3"});
  REQUIRE(cluster.started());
  // The cluster support starts nodes at debug level; a log line per request would be
  // measured too, so the nodes log as the single node does.
  for (int i = 0; i < 3; ++i) cluster.StartNode({"-ll", "info"});
  REQUIRE(cluster.WaitForRingSize(3));

  const std::vector<std::string> node = {"-bh", "127.0.0.1", "-bp",
                                         std::to_string(single.port())};
  const std::vector<std::string> brokered = {"-bh", "127.0.0.1", "-bp",
                                             std::to_string(cluster.broker_ports().control)};
  const std::vector<std::string> load = {"--records", "2000", "--load-only"};
  const std::vector<std::string> run = {"--records", "2000", "--run-only", "--duration", "2"};
  BenchJson(node, "a", load);
  BenchJson(brokered, "a", load);
  for (const char* workload : {"a", "c"}) {
    const double one = JsonNumber(BenchJson(node, workload, run), "throughput_ops");
    const double three = JsonNumber(BenchJson(brokered, workload, run), "throughput_ops");
    const double ratio = one > 0 ? three / one : 0.0;
    std::cout << "bench guard: workload " << workload << ": single node " << one
              << " ops/s, 3 nodes RF 3 " << three << " ops/s, ratio " << ratio << std::endl;
    INFO("workload " << workload << ": single " << one << " ops/s, 3 nodes " << three);
    CHECK(one > 0);
    CHECK(ratio >= 0.1);
  }
}

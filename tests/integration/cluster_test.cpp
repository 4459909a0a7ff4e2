// Whole clusters on 127.0.0.1: broker + ECS + nodes joining and leaving under
// a steady write load; every acknowledged write is checked after every step.
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <thread>

#include "tests/support/cluster.h"

using kv::Op;
using kv::WireStatus;
using kvtest::Cluster;
using kvtest::RoutedClient;
using kvtest::TempDir;

namespace {

// Writes keys "w-<n>" with values "v-<n>" until stopped, recording every
// acknowledged write. Bounded: at most max_writes.
class Writer {
 public:
  Writer(Cluster& cluster, int max_writes = 100000)
      : client_([&cluster] { return cluster.LivePorts(); }), max_writes_(max_writes) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~Writer() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::map<std::string, std::string> acknowledged() {
    std::lock_guard<std::mutex> lock(mu_);
    return acked_;
  }
  int failures() const { return failures_; }

 private:
  void Loop() {
    for (int n = 0; n < max_writes_ && !stop_; ++n) {
      std::string key = "w-" + std::to_string(n), value = "v-" + std::to_string(n);
      auto reply = client_.Call(Op::kPut, key, value, std::chrono::seconds(10));
      if (reply && (reply->status == WireStatus::PUT_SUCCESS ||
                    reply->status == WireStatus::PUT_UPDATE)) {
        std::lock_guard<std::mutex> lock(mu_);
        acked_[key] = value;
      } else {
        ++failures_;
      }
    }
  }
  RoutedClient client_;
  int max_writes_;
  std::atomic<bool> stop_{false};
  std::atomic<int> failures_{0};
  std::mutex mu_;
  std::map<std::string, std::string> acked_;
  std::thread thread_;
};

// Every acknowledged write is readable with its value.
void CheckAll(Cluster& cluster, const std::map<std::string, std::string>& acked) {
  RoutedClient reader([&cluster] { return cluster.LivePorts(); });
  size_t missing = 0;
  for (const auto& [key, value] : acked) {
    auto r = reader.Call(Op::kGet, key);
    if (!r || r->status != WireStatus::GET_SUCCESS || r->value != value) {
      if (++missing <= 5) {
        UNSCOPED_INFO("lost " << key << ": "
                              << (r ? kv::StatusWord(r->status) : "no answer"));
      }
    }
  }
  CHECK(missing == 0);
}

void CheckRing(Cluster& cluster, size_t n) {
  REQUIRE(cluster.WaitForRingSize(n));
  auto ring = cluster.Keyrange();
  CHECK(ring.size() == n);
  CHECK(kv::CoversWholeRingExactly(ring));
  CHECK(cluster.versions_only_grew());
}

}  // namespace

TEST_CASE("a cluster grows from 1 to 5 nodes one at a time under load without losing a write",
          "[cluster][join]") {
  TempDir work;
  Cluster cluster(work.path(), {"--replication-factor", "1"});
  REQUIRE(cluster.started());
  cluster.StartNode();
  CheckRing(cluster, 1);
  Writer writer(cluster);
  for (size_t n = 2; n <= 5; ++n) {
    REQUIRE(kvtest::WaitFor([&] { return writer.acknowledged().size() >= 100 * (n - 1); },
                            std::chrono::seconds(30)));
    cluster.StartNode();
    CheckRing(cluster, n);
    CheckAll(cluster, writer.acknowledged());
  }
  writer.Stop();
  CheckAll(cluster, writer.acknowledged());
  CHECK(writer.failures() == 0);
}

TEST_CASE("nodes leave gracefully on SIGTERM and hand their data to the others",
          "[cluster][leave]") {
  TempDir work;
  Cluster cluster(work.path(), {"--replication-factor", "1"});
  REQUIRE(cluster.started());
  const std::vector<std::string> slow = {"--handoff-chunk-kb", "1", "--handoff-window", "1"};
  for (int i = 0; i < 4; ++i) cluster.StartNode(slow);
  CheckRing(cluster, 4);
  Writer writer(cluster);
  REQUIRE(kvtest::WaitFor([&] { return writer.acknowledged().size() >= 300; },
                          std::chrono::seconds(30)));
  for (size_t leaving : {size_t{0}, size_t{2}}) {
    cluster.node(leaving).process().Signal(SIGTERM);
    auto status = cluster.node(leaving).process().Wait(std::chrono::seconds(30));
    REQUIRE(status.has_value());
    CHECK(*status == 0);
    size_t expected = cluster.LivePorts().size();
    CheckRing(cluster, expected);
    CheckAll(cluster, writer.acknowledged());
  }
  // A third leave while a join's hand-off is running.
  size_t joiner = cluster.StartNode(slow);
  REQUIRE(kvtest::WaitFor(
      [&] {
        for (size_t i : {size_t{1}, size_t{3}}) {
          if (cluster.node(i).process().Log().find("streaming") != std::string::npos) return true;
        }
        return false;
      },
      std::chrono::seconds(20)));
  cluster.node(3).process().Signal(SIGTERM);
  auto status = cluster.node(3).process().Wait(std::chrono::seconds(60));
  REQUIRE(status.has_value());
  CHECK(*status == 0);
  CheckRing(cluster, 2);
  CHECK(cluster.node(joiner).process().running());
  writer.Stop();
  CheckAll(cluster, writer.acknowledged());
}

TEST_CASE("a storm of 20 nodes joining at once is admitted in a few transitions",
          "[cluster][storm]") {
  TempDir work;
  // Starting 20 processes takes a second or two (more under sanitizers); the
  // batch window lets the ECS merge the joins that arrive meanwhile.
  Cluster cluster(work.path(), {"--replication-factor", "1", "--batch-window-ms", "500"});
  REQUIRE(cluster.started());
  cluster.StartNode();
  CheckRing(cluster, 1);
  Writer writer(cluster);
  REQUIRE(kvtest::WaitFor([&] { return writer.acknowledged().size() >= 200; },
                          std::chrono::seconds(30)));
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) cluster.StartNode({"-c", "100"});
  REQUIRE(cluster.WaitForRingSize(21, std::chrono::seconds(60)));
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string ecs_log = cluster.ecs().Log();
  size_t transitions = 0;
  for (size_t at = ecs_log.find("committed and published"); at != std::string::npos;
       at = ecs_log.find("committed and published", at + 1)) {
    ++transitions;
  }
  // Reported, not asserted on time: the numbers go in the closing note.
  WARN("join storm: 20 nodes admitted in " << seconds << " s, " << transitions - 1
                                           << " transition(s) after the first node");
  CHECK(transitions - 1 <= 10);  // nodes start over ~1 s; the batch window merges them
  writer.Stop();
  CheckAll(cluster, writer.acknowledged());
  CHECK(writer.failures() == 0);
}

TEST_CASE("the ECS killed mid-transition rolls back on restart, and a broker restart loses nothing",
          "[cluster][restart]") {
  TempDir work;
  Cluster cluster(work.path(), {"--replication-factor", "1", "--transfer-timeout-ms", "20000"});
  REQUIRE(cluster.started());
  // Small chunks and a window of one make the hand-off slow enough to interrupt.
  size_t first = cluster.StartNode({"--handoff-chunk-kb", "1", "--handoff-window", "1"});
  CheckRing(cluster, 1);
  {
    RoutedClient loader([&cluster] { return cluster.LivePorts(); });
    for (int i = 0; i < 3000; ++i) {
      auto r = loader.Call(Op::kPut, "pre-" + std::to_string(i), std::string(200, 'p'));
      REQUIRE(r);
      REQUIRE(kv::IsSuccess(r->status));
    }
  }
  Writer writer(cluster);
  cluster.StartNode();
  REQUIRE(kvtest::WaitFor(
      [&] { return cluster.node(first).process().Log().find("streaming") != std::string::npos; },
      std::chrono::seconds(20)));
  cluster.KillEcs();
  cluster.StartEcs();
  // The restarted ECS rolls the transition back; the joiner retries and gets in.
  CheckRing(cluster, 2);
  CHECK(cluster.ecs().Log().find("roll") != std::string::npos);
  CheckAll(cluster, writer.acknowledged());

  cluster.RestartBroker();
  cluster.StartNode();
  CheckRing(cluster, 3);
  writer.Stop();
  CheckAll(cluster, writer.acknowledged());
  for (int i = 0; i < 3000; i += 97) {
    RoutedClient reader([&cluster] { return cluster.LivePorts(); });
    auto r = reader.Call(Op::kGet, "pre-" + std::to_string(i));
    REQUIRE(r);
    CHECK(r->status == WireStatus::GET_SUCCESS);
  }
}

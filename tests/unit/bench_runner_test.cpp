// kvbench's runner against a fake target (no processes), the JSON report's
// shape, and the redis:// URL parser.
#include <catch2/catch.hpp>
#include <deque>
#include <thread>
#include <set>
#include <string>
#include <vector>

#include "kvclient/bench.h"
#include "kvclient/report.h"
#include "kvclient/runner.h"
#include "kvclient/target.h"

using namespace kv::bench;
using Clock = std::chrono::steady_clock;

namespace {

// Answers every request sent since the last Poll; a get of a key in
// `missing` fails with get_error. Remembers what was sent, in order.
class FakeTarget : public Target {
 public:
  struct Sent {
    size_t lane;
    Action action;
    std::string key;
    size_t value_size;
    size_t outstanding;  // requests sent and not yet answered when this was sent
  };

  std::string Describe() const override { return "fake"; }
  void Send(size_t lane, uint64_t tag, Action action, std::string_view key,
            std::string_view value) override {
    sent.push_back(Sent{lane, action, std::string(key), value.size(), outstanding_++});
    bool ok = !(action == Action::kGet && missing.count(std::string(key)));
    queued_.push_back(TargetReply{tag, ok, ok ? "" : "get_error"});
  }
  void Poll(std::chrono::milliseconds, std::vector<TargetReply>* out) override {
    out->insert(out->end(), queued_.begin(), queued_.end());
    queued_.clear();
    outstanding_ = 0;
  }

  std::vector<Sent> sent;
  std::set<std::string> missing;

 private:
  std::vector<TargetReply> queued_;
  size_t outstanding_ = 0;
};

RunnerOptions Options(uint64_t connections, uint64_t inflight) {
  RunnerOptions options;
  options.connections = connections;
  options.inflight = inflight;
  options.value_size = 10;
  return options;
}

std::unique_ptr<Workload> Make(const std::string& name, uint64_t records) {
  auto w = MakeWorkload(name, {records});
  REQUIRE(w.ok());
  return std::move(*w);
}

// Runs workload `name` over `records` records on the target until it runs
// out, or after `ops` operations when ops is not 0.
PhaseResult RunOn(FakeTarget& target, const std::string& name, uint64_t records,
                  const RunnerOptions& options, uint64_t ops = 0) {
  PhaseRunner runner(target, options);
  auto workload = Make(name, records);
  std::mt19937_64 rng(1);
  return runner.Run("run", *workload, rng, PhaseLimits{std::chrono::seconds(10), ops});
}

}  // namespace

TEST_CASE("the runner stops after the ops bound and counts every op type the workload has",
          "[kvbench][runner]") {
  FakeTarget target;
  PhaseResult result = RunOn(target, "a", 100, Options(2, 4), 500);
  CHECK(result.ops == 500);
  CHECK(result.errors == 0);
  CHECK(target.sent.size() == 500);
  CHECK(result.by_op.size() == 2);
  CHECK(result.by_op["read"].ok + result.by_op["update"].ok == 500);
  CHECK(result.by_op["read"].latency_us.count() == result.by_op["read"].ok);
  // Lanes are taken round robin.
  CHECK(target.sent[0].lane == 0);
  CHECK(target.sent[1].lane == 1);
  CHECK(target.sent[2].lane == 0);
  for (const auto& s : target.sent) CHECK(s.value_size == (s.action == Action::kPut ? 10u : 0u));
}

TEST_CASE("seed2 starts each loop only once the loop before it has been answered",
          "[kvbench][runner]") {
  FakeTarget target;
  // Room for more than the 10 keys at once.
  PhaseResult result = RunOn(target, "seed2", 10, Options(2, 8));
  CHECK(result.ops == 40);
  REQUIRE(target.sent.size() == 40);
  CHECK(target.sent[9].outstanding == 9);  // a loop itself has everything in flight at once
  for (size_t i : {10, 20, 30}) CHECK(target.sent[i].outstanding == 0);
  CHECK(target.sent[10].action == Action::kGet);
  CHECK(target.sent[39].action == Action::kDelete);
}

TEST_CASE("a failed step ends its chain and is counted by kind under its op type",
          "[kvbench][runner]") {
  FakeTarget target;
  target.missing = {KeyFor(1)};
  PhaseResult result = RunOn(target, "seed1", 3, Options(1, 1));
  // Key 1: put, then the failing get; no update or delete of it.
  CHECK(target.sent.size() == 10);
  CHECK(result.ops == 10);
  CHECK(result.errors == 1);
  CHECK(result.errors_by_kind["get_error"] == 1);
  CHECK(result.by_op["get"].errors == 1);
  CHECK(result.by_op["delete"].ok == 2);
}

TEST_CASE("a read-modify-write sends a get then a put of one key and counts one op",
          "[kvbench][runner]") {
  FakeTarget target;
  PhaseResult result = RunOn(target, "f", 50, Options(1, 1), 200);
  CHECK(result.ops == 200);
  const uint64_t rmw = result.by_op["read_modify_write"].ok;
  CHECK(rmw > 50);
  CHECK(target.sent.size() == 200 + rmw);
  for (size_t i = 0; i + 1 < target.sent.size(); ++i) {
    if (target.sent[i + 1].action == Action::kPut) {
      CHECK(target.sent[i].action == Action::kGet);
      CHECK(target.sent[i].key == target.sent[i + 1].key);
    }
  }
}

// Holds every reply until `delay` after the request was sent, sleeping in
// Poll as a socket poll would; counts the polls asked not to sleep at all.
class SlowTarget : public Target {
 public:
  explicit SlowTarget(std::chrono::milliseconds delay) : delay_(delay) {}
  std::string Describe() const override { return "slow"; }
  void Send(size_t, uint64_t tag, Action, std::string_view, std::string_view) override {
    queued_.push_back({Clock::now() + delay_, tag});
  }
  void Poll(std::chrono::milliseconds wait, std::vector<TargetReply>* out) override {
    ++polls;
    if (wait.count() == 0) ++zero_waits;
    if (queued_.empty()) return;
    const Clock::time_point until = std::min(Clock::now() + wait, queued_.front().first);
    std::this_thread::sleep_until(until);
    while (!queued_.empty() && queued_.front().first <= Clock::now()) {
      out->push_back(TargetReply{queued_.front().second, true, ""});
      queued_.pop_front();
    }
  }
  int polls = 0;
  int zero_waits = 0;

 private:
  std::chrono::milliseconds delay_;
  std::deque<std::pair<Clock::time_point, uint64_t>> queued_;
};

TEST_CASE("without progress lines the runner sleeps in the target's poll instead of spinning",
          "[kvbench][runner]") {
  SlowTarget target(std::chrono::milliseconds(20));
  RunnerOptions options = Options(1, 4);
  options.progress_interval = std::chrono::milliseconds(1);  // long past after the first reply
  options.progress = nullptr;
  PhaseRunner runner(target, options);
  auto workload = Make("c", 10);
  std::mt19937_64 rng(1);
  PhaseResult result = runner.Run("run", *workload, rng, PhaseLimits{std::chrono::seconds(10), 12});
  CHECK(result.ops == 12);
  // Three rounds of 20 ms: a spinning runner polls thousands of times with no wait.
  INFO("polls " << target.polls);
  CHECK(target.zero_waits <= 3);
}

TEST_CASE("the JSON report is one object with the documented keys", "[kvbench][report]") {
  FakeTarget target;
  PhaseRunner runner(target, Options(1, 4));
  BenchConfig config;
  config.workload = "b";
  config.records = 20;
  auto load = MakeLoadWorkload(20);
  auto b = Make("b", 20);
  std::mt19937_64 rng(5);
  BenchResult result;
  result.target = "fake \"quoted\"";
  result.workload = b->Describe();
  result.load = runner.Run("load", *load, rng, PhaseLimits{});
  result.run = runner.Run("run", *b, rng, PhaseLimits{std::chrono::seconds(10), 100});
  const std::string json = FormatJson(config, result);
  CHECK(json.front() == '{');
  CHECK(json.back() == '}');
  CHECK(json.find('\n') == std::string::npos);
  for (const char* key :
       {"\"workload\":\"b\"", "\"target\":\"fake \\\"quoted\\\"\"", "\"throughput_ops\":",
        "\"ops\":100,", "\"errors\":0,", "\"redirects\":0,", "\"retries\":0,",
        "\"errors_by_kind\":{}",
        "\"latency_us\":{\"read\":{\"count\":", "\"update\":{\"count\":", "\"p50\":",
        "\"p95\":", "\"p99\":", "\"p999\":", "\"max\":", "\"load\":{\"throughput_ops\":",
        "\"insert\":{\"count\":20,"}) {
    INFO(key << " in " << json);
    CHECK(json.find(key) != std::string::npos);
  }
  const std::string table = FormatTable(config, result);
  CHECK(table.find("run: 100 ops in ") != std::string::npos);
  CHECK(table.find("errors: none") != std::string::npos);
}

TEST_CASE("redis URLs give host and port, with 6379 by default", "[kvbench][redis]") {
  auto plain = ParseRedisUrl("redis://127.0.0.1:6380");
  REQUIRE(plain.ok());
  CHECK(plain->host == "127.0.0.1");
  CHECK(plain->port == 6380);
  auto no_port = ParseRedisUrl("redis://localhost/");
  REQUIRE(no_port.ok());
  CHECK(no_port->host == "localhost");
  CHECK(no_port->port == 6379);
  auto v6 = ParseRedisUrl("redis://[::1]:7000");
  REQUIRE(v6.ok());
  CHECK(v6->host == "::1");
  CHECK(v6->port == 7000);
  for (const char* bad : {"http://h:1", "redis://", "redis://:6379", "redis://h:", "redis://h:0",
                          "redis://h:65536", "redis://h:12x", "redis://h:1/2", "redis://u@h:1",
                          "redis://[::1", "127.0.0.1:6379"}) {
    INFO(bad);
    CHECK_FALSE(ParseRedisUrl(bad).ok());
  }
}

TEST_CASE("kvbench configuration is checked before anything connects", "[kvbench][config]") {
  BenchConfig config;
  CHECK_FALSE(ValidateConfig(config).ok());  // no -bp and no --target
  config.target = "redis://127.0.0.1:6379";
  CHECK(ValidateConfig(config).ok());
  config.workload = "seed1";
  config.run_phase = false;
  CHECK_FALSE(ValidateConfig(config).ok());  // seed1 has no load phase
  config.run_phase = true;
  config.distribution = "pareto";
  CHECK_FALSE(ValidateConfig(config).ok());
  config.distribution = "latest";
  config.target = "redis://h:99999";
  CHECK_FALSE(ValidateConfig(config).ok());
}

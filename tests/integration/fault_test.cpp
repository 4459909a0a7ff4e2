// Fault scenarios (issue 4): broker + ECS + 5 nodes with replication factor
// 3 under concurrent clients, with nodes killed, paused and restarted and the
// ECS and the broker killed during a fail-over. Every history is checked:
// linearizable per key and no acknowledged write lost.
//
// The four [fault] scenarios run in the suite (each bounded to seconds). By
// hand: build/bin/integration_tests "[fault]", and the longer mixed run with
// KV_FAULT_SECONDS=60 build/bin/integration_tests "[fault_long]" (hidden).
// With replication factor 1 a kill -9 loses writes and the checker says so
// ("[fault_selftest]", hidden).
// KV_FAULT_ECS_FLAGS, KV_FAULT_BROKER_FLAGS and KV_FAULT_NODE_FLAGS (split on
// spaces) add server flags without a rebuild; KV_FAULT_RF sets the replication
// factor (default 3).
#include <catch2/catch.hpp>
#include <cstdlib>
#include <sstream>

#include "tests/support/fault_harness.h"
#include "tests/support/fault_schedule.h"

using kvtest::FaultHarness;
using kvtest::FaultOptions;
using kvtest::FaultRunResult;
using kvtest::Millis;
using kvtest::TempDir;

namespace {

// The servers' failure timeout; the pause and "during fail-over" steps are
// placed relative to it.
constexpr Millis kFailureTimeout(1500);
constexpr Millis kAwait(8000);

std::vector<std::string> FlagsFromEnv(const char* name) {
  std::vector<std::string> flags;
  const char* text = std::getenv(name);
  std::istringstream in(text ? text : "");
  for (std::string word; in >> word;) flags.push_back(word);
  return flags;
}

// Short timings for CI: failure detection and leases come from the servers'
// flags (added here when they exist), the rest from the harness.
FaultOptions CiOptions() {
  FaultOptions o;
  o.nodes = 5;
  o.replication_factor = std::getenv("KV_FAULT_RF") ? std::atoi(std::getenv("KV_FAULT_RF")) : 3;
  o.ecs_flags = FlagsFromEnv("KV_FAULT_ECS_FLAGS");
  o.broker_flags = FlagsFromEnv("KV_FAULT_BROKER_FLAGS");
  o.node_flags = FlagsFromEnv("KV_FAULT_NODE_FLAGS");
  o.workload.clients = 4;
  o.workload.keys = 200;
  o.workload.op_deadline = Millis(3000);
  o.load_before_faults = Millis(1000);
  o.load_after_faults = Millis(1000);
  o.quiescence_timeout = Millis(8000);
  o.final_read_timeout = Millis(8000);
  return o;
}

FaultRunResult RunScenario(FaultOptions options) {
  TempDir work;
  FaultHarness harness(work.path(), std::move(options));
  FaultRunResult r = harness.Run();
  WARN(r.Summary());
  return r;
}

void ExpectClean(const FaultRunResult& r) {
  INFO(r.Report());
  REQUIRE(r.started);
  CHECK(r.lost_writes.empty());
  CHECK(r.linearizability.verdict == kvtest::lin::Verdict::kOk);
  CHECK(r.missing_final.empty());
  CHECK(r.awaits_timed_out == 0);
  CHECK(r.counts.ok > r.counts.total / 2);
}

}  // namespace

TEST_CASE("a node killed every few seconds and restarted with its data loses no write",
          "[fault]") {
  FaultOptions o = CiOptions();
  int seconds = kvtest::FaultSecondsFromEnv(12);
  o.schedule = kvtest::KillEveryFewSeconds(std::max(1, seconds / 3), Millis(3000), Millis(1500));
  ExpectClean(RunScenario(o));
}

TEST_CASE("two nodes killed in sequence after re-replication lose no write",
          "[fault]") {
  FaultOptions o = CiOptions();
  o.schedule = kvtest::TwoKillsAfterReReplication(kAwait);
  auto r = RunScenario(o);
  ExpectClean(r);
  // The target: writes to a killed primary's keys resume within 2 s.
  CHECK(r.unavailability.resumed);
  CHECK(r.unavailability.max_ms <= 2000);
}

// Found two bugs while it was hidden: a rejoining node answered reads from a
// read cache its hand-off had cleared, and a primary that lost its range told
// clients "not responsible" (retry) for writes it had already applied.
TEST_CASE("a paused primary is replaced and serves nothing stale when it resumes",
          "[fault]") {
  FaultOptions o = CiOptions();
  o.schedule = kvtest::PauseBusyPrimary(kFailureTimeout, kAwait);
  ExpectClean(RunScenario(o));
}

TEST_CASE("the ECS and the broker killed during a fail-over lose no write",
          "[fault]") {
  FaultOptions o = CiOptions();
  o.schedule = kvtest::KillEcsAndBrokerDuringFailOver(kFailureTimeout, kAwait);
  ExpectClean(RunScenario(o));
}

TEST_CASE("a long run of mixed faults loses no write", "[.fault_long]") {
  // By hand: KV_FAULT_SECONDS=60 build/bin/integration_tests "[fault_long]"
  FaultOptions o = CiOptions();
  int seconds = kvtest::FaultSecondsFromEnv(60);
  o.max_fault_phase = Millis(seconds * 1000 + 30000);
  std::vector<kvtest::FaultStep> cycle;
  auto add = [&](std::vector<kvtest::FaultStep> steps) {
    cycle.insert(cycle.end(), steps.begin(), steps.end());
  };
  // Each round takes about 20 s.
  for (int round = 0; round * 20 < seconds; ++round) {
    add(kvtest::KillEveryFewSeconds(2, Millis(3000), Millis(1500)));
    add({{Millis(0), kvtest::FaultKind::kAwaitRing, kAwait}});
    add(kvtest::PauseBusyPrimary(kFailureTimeout, kAwait));
    add(kvtest::KillEcsAndBrokerDuringFailOver(kFailureTimeout, kAwait));
  }
  o.schedule = cycle;
  o.quiescence_timeout = Millis(20000);
  o.final_read_timeout = Millis(20000);
  ExpectClean(RunScenario(o));
}

TEST_CASE("the harness reports the acknowledged writes a node loses with its disk",
          "[.fault_selftest]") {
  // With replication factor 1 there is no other copy: a busy primary killed,
  // its data directory deleted and restarted as the same ring member must show
  // up as lost writes (or reads the checker cannot linearize).
  FaultOptions o = CiOptions();
  o.replication_factor = 1;
  kvtest::FaultStep kill;
  kill.kind = kvtest::FaultKind::kKillBusyPrimary;
  kill.wipe_data = true;
  kvtest::FaultStep restart;
  restart.kind = kvtest::FaultKind::kRestartKilledNodes;
  restart.after = Millis(1000);
  restart.same_port = true;
  o.schedule = {kill, restart};
  auto r = RunScenario(o);
  INFO(r.Report(6000));
  REQUIRE(r.started);
  CHECK_FALSE(r.ok());
  CHECK((!r.lost_writes.empty() || r.linearizability.verdict == kvtest::lin::Verdict::kViolation));
}

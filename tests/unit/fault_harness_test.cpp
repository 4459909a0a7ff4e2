// The fault harness's own logic, without processes: how replies become
// outcomes, which node a key belongs to, when a ring counts as settled, the
// unavailability and write-gap numbers, the schedules and the summary line.
#include <stdlib.h>

#include <catch2/catch.hpp>

#include "schema/hash.h"
#include "tests/support/fault_harness.h"
#include "tests/support/fault_schedule.h"

using kvtest::FaultKind;
using kvtest::Millis;
using kvtest::lin::OpKind;
using kvtest::lin::Operation;
using kvtest::lin::Outcome;
using kvtest::lin::Prior;

namespace {

Operation Classified(OpKind kind, std::optional<kv::WireStatus> status,
                     const std::string& reason = "", const std::string& value = "") {
  Operation op;
  op.kind = kind;
  if (kind == OpKind::kPut) op.value = "written";
  std::optional<kvtest::OwnedReply> reply;
  if (status) {
    reply.emplace();
    reply->status = *status;
    reply->reason = reason;
    reply->value = value;
  }
  kvtest::ClassifyReply(reply, &op);
  return op;
}

// Two ranges: [0, 7F..F] on port 1000 and [80..0, F..F] on port 2000.
std::vector<kv::KeyrangeEntry> TwoNodeRing() {
  std::string low0(32, '0'), low1 = "7" + std::string(31, 'F');
  std::string high0 = "8" + std::string(31, '0'), high1(32, 'F');
  auto parsed = kv::Ring::ParseKeyrange(low0 + "," + low1 + ",127.0.0.1:1000;" + high0 + "," +
                                        high1 + ",127.0.0.1:2000;");
  REQUIRE(parsed.ok());
  return *parsed;
}

Operation Write(const std::string& key, int64_t from_ms, int64_t to_ms,
                Outcome outcome = Outcome::kOk) {
  Operation op;
  op.key = key;
  op.kind = OpKind::kPut;
  op.value = key + std::to_string(from_ms);
  op.invoke_us = from_ms * 1000;
  op.complete_us = to_ms * 1000;
  op.outcome = outcome;
  return op;
}

}  // namespace

TEST_CASE("replies become outcomes, conservatively where a write may have applied",
          "[fault_harness]") {
  using S = kv::WireStatus;
  auto put_new = Classified(OpKind::kPut, S::PUT_SUCCESS);
  CHECK(put_new.outcome == Outcome::kOk);
  CHECK(put_new.prior == Prior::kAbsent);
  CHECK(Classified(OpKind::kPut, S::PUT_UPDATE).prior == Prior::kPresent);
  // A failed group commit says its outcome is unknown.
  CHECK(Classified(OpKind::kPut, S::PUT_ERROR, "fsync failed").outcome == Outcome::kUnknown);
  CHECK(Classified(OpKind::kPut, std::nullopt).outcome == Outcome::kUnknown);
  CHECK(Classified(OpKind::kPut, S::BAD_REQUEST).outcome == Outcome::kError);

  auto got = Classified(OpKind::kGet, S::GET_SUCCESS, "", "v1");
  CHECK(got.outcome == Outcome::kOk);
  CHECK(got.value == std::optional<std::string>("v1"));
  auto missing = Classified(OpKind::kGet, S::GET_ERROR);
  CHECK(missing.outcome == Outcome::kOk);
  CHECK_FALSE(missing.value.has_value());
  CHECK(Classified(OpKind::kGet, S::GET_ERROR, "I/O error").outcome == Outcome::kError);
  CHECK(Classified(OpKind::kGet, std::nullopt).outcome == Outcome::kUnknown);

  CHECK(Classified(OpKind::kDelete, S::DELETE_SUCCESS).prior == Prior::kPresent);
  auto absent = Classified(OpKind::kDelete, S::DELETE_ERROR);
  CHECK(absent.outcome == Outcome::kOk);
  CHECK(absent.prior == Prior::kAbsent);
  CHECK(Classified(OpKind::kDelete, S::DELETE_ERROR, "commit failed").outcome ==
        Outcome::kUnknown);
}

TEST_CASE("a key's primary is the node whose range holds the key's hash", "[fault_harness]") {
  auto ring = TwoNodeRing();
  for (const auto& key : kvtest::WorkloadKeys(50)) {
    bool low = kv::KeyPosition(key).bytes[0] < 0x80;
    CHECK(kvtest::PrimaryPort(ring, key) == (low ? 1000 : 2000));
  }
  CHECK(kvtest::PrimaryPort({}, "fk-000") == 0);
  CHECK(kvtest::WorkloadKeys(3) == std::vector<std::string>{"fk-000", "fk-001", "fk-002"});
}

TEST_CASE("a ring is settled when it covers everything with running nodes only",
          "[fault_harness]") {
  auto ring = TwoNodeRing();
  CHECK(kvtest::RingOfRunning(ring, {1000, 2000}, true));
  CHECK(kvtest::RingOfRunning(ring, {2000, 1000, 3000}, false));
  CHECK_FALSE(kvtest::RingOfRunning(ring, {2000, 1000, 3000}, true));  // 3000 not a member yet
  CHECK_FALSE(kvtest::RingOfRunning(ring, {1000}, false));             // 2000 is dead
  CHECK_FALSE(kvtest::RingOfRunning({ring[0]}, {1000}, false));         // a hole
  CHECK_FALSE(kvtest::RingOfRunning({}, {1000}, false));
}

TEST_CASE("unavailability runs from a fault to the first acknowledged write to its keys",
          "[fault_harness]") {
  std::vector<Operation> h = {
      Write("a", 0, 10),
      Write("a", 100, 400, Outcome::kUnknown),  // timed out: does not count
      Write("b", 150, 160),                     // not one of the fault's keys
      Write("a", 90, 1200),                     // invoked before the fault
      Write("a", 1500, 1600),
  };
  std::vector<kvtest::FaultEvent> events = {{100 * 1000, "kill -9 node 1", {"a"}},
                                            {120 * 1000, "kill -9 ECS", {}}};
  auto u = kvtest::MaxUnavailability(h, events, 5000 * 1000);
  CHECK(u.max_ms == 1500);
  CHECK(u.worst == "kill -9 node 1");
  CHECK(u.resumed);
  // Keys that never see a write again count until the end and are flagged.
  events.push_back({2000 * 1000, "SIGSTOP node 2", {"a"}});
  u = kvtest::MaxUnavailability(h, events, 5000 * 1000);
  CHECK(u.max_ms == 3000);
  CHECK_FALSE(u.resumed);
  CHECK(u.worst.find("never resumed") != std::string::npos);
  CHECK(kvtest::MaxUnavailability(h, {}, 5000 * 1000).max_ms == -1);

  // Gaps between acknowledged completions, and to the window's ends.
  CHECK(kvtest::MaxWriteGapMs(h, 0, 2000 * 1000) == 1040);  // 160 -> 1200
  CHECK(kvtest::MaxWriteGapMs(h, 0, 5000 * 1000) == 3400);  // 1600 -> the end
  auto counts = kvtest::CountOutcomes(h);
  CHECK(counts.total == 5);
  CHECK(counts.ok == 4);
  CHECK(counts.unknown == 1);
}

TEST_CASE("the scenario schedules are bounded and place faults as described",
          "[fault_harness]") {
  auto kills = kvtest::KillEveryFewSeconds(3, Millis(3000), Millis(1000));
  REQUIRE(kills.size() == 6);
  CHECK(kills[0].kind == FaultKind::kKillRandomNode);
  CHECK(kills[1].kind == FaultKind::kRestartKilledNodes);
  CHECK(kills[1].after == Millis(1000));
  CHECK(kills[2].after == Millis(2000));  // one kill every period

  auto two = kvtest::TwoKillsAfterReReplication(Millis(8000), [](kvtest::Cluster&) { return true; });
  int killed = 0, awaited = 0;
  for (const auto& s : two) {
    killed += s.kind == FaultKind::kKillRandomNode;
    awaited += s.kind == FaultKind::kAwait;
    if (s.kind == FaultKind::kAwait) CHECK(s.condition);
  }
  CHECK(killed == 2);
  CHECK(awaited == 2);
  CHECK(two.back().kind == FaultKind::kAwaitRing);

  auto pause = kvtest::PauseBusyPrimary(Millis(1500), Millis(8000));
  CHECK(pause[0].kind == FaultKind::kPauseBusyPrimary);
  CHECK(pause[0].duration > Millis(1500));

  auto ecs = kvtest::KillEcsAndBrokerDuringFailOver(Millis(1500), Millis(8000));
  CHECK(ecs[1].kind == FaultKind::kKillEcs);
  CHECK(ecs[1].after > Millis(1500));  // after the failure is detected

  unsetenv("KV_FAULT_SECONDS");
  CHECK(kvtest::FaultSecondsFromEnv(12) == 12);
  setenv("KV_FAULT_SECONDS", "60", 1);
  CHECK(kvtest::FaultSecondsFromEnv(12) == 60);
  setenv("KV_FAULT_SECONDS", "nonsense", 1);
  CHECK(kvtest::FaultSecondsFromEnv(12) == 12);
  unsetenv("KV_FAULT_SECONDS");
}

TEST_CASE("a run's summary counts its operations and names its worst fault",
          "[fault_harness]") {
  kvtest::FaultRunResult r;
  r.started = true;
  r.seed = 7;
  r.counts = {10, 8, 1, 1};
  r.faults = {{0, "kill -9 node 3", {"a"}}};
  r.unavailability = {1234, "kill -9 node 3", true};
  r.final_values = {{"a", std::nullopt}};
  r.linearizability.keys = 1;
  CHECK(r.ok());
  std::string line = r.Summary();
  CHECK(line.find("ops 10 (ok 8, error 1, unknown 1)") != std::string::npos);
  CHECK(line.find("faults 1") != std::string::npos);
  CHECK(line.find("1234 ms [kill -9 node 3]") != std::string::npos);
  CHECK(line.find('\n') == std::string::npos);
  r.lost_writes.push_back("key a: lost");
  CHECK_FALSE(r.ok());
  CHECK(r.Report().find("key a: lost") != std::string::npos);
}

// kvbench's workloads: the operation mix each YCSB workload promises, the
// steps of a read-modify-write, inserts for d, and the two seed scenarios.
#include "kvclient/workload.h"

#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <string>

using namespace kv::bench;

namespace {

constexpr uint64_t kRecords = 1000;

std::unique_ptr<Workload> Make(const std::string& name, WorkloadOptions options = {kRecords}) {
  auto workload = MakeWorkload(name, options);
  REQUIRE(workload.ok());
  return std::move(*workload);
}

// The name each operation is reported as (its own label, else its first step's).
std::string Reported(const Workload& w, const OpChoice& op) {
  int label = op.label >= 0 ? op.label : op.steps[0].label;
  REQUIRE(label >= 0);
  return w.op_names().at(label);
}

// Shares of each reported op type over n operations, with every one finished at once.
std::map<std::string, double> Mix(Workload& w, int n = 100000) {
  std::mt19937_64 rng(42);
  std::map<std::string, double> shares;
  for (int i = 0; i < n; ++i) {
    Pick pick = w.Next(rng);
    REQUIRE(pick.kind == Pick::kOp);
    REQUIRE(pick.op.record < kRecords + n);
    shares[Reported(w, pick.op)] += 1.0 / n;
    w.Finished(pick.op);
  }
  return shares;
}

}  // namespace

TEST_CASE("each YCSB workload issues its operation mix in the promised proportions",
          "[kvbench][workload]") {
  auto a = Mix(*Make("a"));
  CHECK(a["read"] == Approx(0.5).margin(0.01));
  CHECK(a["update"] == Approx(0.5).margin(0.01));
  auto b = Mix(*Make("b"));
  CHECK(b["read"] == Approx(0.95).margin(0.01));
  CHECK(b["update"] == Approx(0.05).margin(0.01));
  auto c = Mix(*Make("c"));
  CHECK(c.size() == 1);
  CHECK(c["read"] == Approx(1.0));
  auto d = Mix(*Make("d"));
  CHECK(d["read"] == Approx(0.95).margin(0.01));
  CHECK(d["insert"] == Approx(0.05).margin(0.01));
  auto f = Mix(*Make("f"));
  CHECK(f["read"] == Approx(0.5).margin(0.01));
  CHECK(f["read_modify_write"] == Approx(0.5).margin(0.01));
  auto mix = Mix(*Make("mix", {kRecords, 0.9}));
  CHECK(mix["get"] == Approx(0.9).margin(0.01));
  CHECK(mix["put"] == Approx(0.1).margin(0.01));
}

TEST_CASE("a read-modify-write is a get then a put of the same record, reported once",
          "[kvbench][workload]") {
  auto f = Make("f");
  std::mt19937_64 rng(1);
  for (int i = 0; i < 100; ++i) {
    OpChoice op = f->Next(rng).op;
    if (op.step_count == 1) continue;
    CHECK(op.step_count == 2);
    CHECK(op.steps[0].action == Action::kGet);
    CHECK(op.steps[1].action == Action::kPut);
    CHECK(op.steps[0].label == -1);
    CHECK(op.steps[1].label == -1);
    CHECK(f->op_names().at(op.label) == "read_modify_write");
    return;
  }
  FAIL("no read-modify-write in 100 operations");
}

TEST_CASE("workload d inserts new records in order and reads only acknowledged ones",
          "[kvbench][workload]") {
  auto d = Make("d");
  std::mt19937_64 rng(2);
  uint64_t next_insert = kRecords;
  std::vector<OpChoice> unfinished;
  for (int i = 0; i < 20000; ++i) {
    OpChoice op = d->Next(rng).op;
    if (op.insert) {
      CHECK(op.record == next_insert++);
      CHECK(op.steps[0].action == Action::kPut);
      unfinished.push_back(op);  // still in flight: not readable yet
    } else {
      REQUIRE(op.record < kRecords);
    }
  }
  for (const auto& op : unfinished) d->Finished(op);
  bool read_new = false;
  for (int i = 0; i < 2000 && !read_new; ++i) {
    OpChoice op = d->Next(rng).op;
    read_new = !op.insert && op.record >= kRecords;
  }
  CHECK(read_new);
}

TEST_CASE("seed1 walks every key once with put, get, update and delete as one chain",
          "[kvbench][workload]") {
  auto seed1 = Make("seed1", {5});
  std::mt19937_64 rng(3);
  for (uint64_t record = 0; record < 5; ++record) {
    Pick pick = seed1->Next(rng);
    REQUIRE(pick.kind == Pick::kOp);
    CHECK(pick.op.record == record);
    REQUIRE(pick.op.step_count == 4);
    const auto& names = seed1->op_names();
    CHECK(names.at(pick.op.steps[0].label) == "put");
    CHECK(names.at(pick.op.steps[1].label) == "get");
    CHECK(names.at(pick.op.steps[2].label) == "update");
    CHECK(names.at(pick.op.steps[3].label) == "delete");
    CHECK(pick.op.steps[3].action == Action::kDelete);
  }
  CHECK(seed1->Next(rng).kind == Pick::kDone);
  CHECK_FALSE(HasLoadPhase("seed1"));
  CHECK(HasLoadPhase("a"));
}

TEST_CASE("seed2 runs four loops over all keys with a wait between loops",
          "[kvbench][workload]") {
  auto seed2 = Make("seed2", {3});
  std::mt19937_64 rng(4);
  std::string trace;
  for (Pick pick = seed2->Next(rng); pick.kind != Pick::kDone; pick = seed2->Next(rng)) {
    if (pick.kind == Pick::kWait) {
      trace += "| ";
      continue;
    }
    trace += seed2->op_names().at(pick.op.steps[0].label) + std::to_string(pick.op.record) + " ";
  }
  CHECK(trace ==
        "put0 put1 put2 | get0 get1 get2 | update0 update1 update2 | delete0 delete1 delete2 ");
}

TEST_CASE("a distribution override replaces the workload's own key choice",
          "[kvbench][workload]") {
  WorkloadOptions options{kRecords};
  options.distribution = Distribution::kUniform;
  CHECK(Make("a", options)->Describe() == "a: 50% read, 50% update, uniform");
  CHECK(Make("d")->Describe() == "d: 95% read, 5% insert, latest");
}

TEST_CASE("unknown workloads and bad options are refused", "[kvbench][workload]") {
  CHECK_FALSE(MakeWorkload("e", {kRecords}).ok());
  CHECK_FALSE(MakeWorkload("a", {0}).ok());
  CHECK_FALSE(MakeWorkload("mix", {kRecords, 1.5}).ok());
  for (const auto& name : WorkloadNames()) CHECK(MakeWorkload(name, {kRecords}).ok());
  CHECK(KeyFor(42) == "user000000000042");
  CHECK(KeyFor(0) == "user000000000000");
  CHECK(KeyFor(999999999999ull) == "user999999999999");
  CHECK(KeyFor(1234567890123ull) == "user1234567890123");  // wider than 12 digits: not cut
  CHECK(KeyFor(18446744073709551615ull) == "user18446744073709551615");
}

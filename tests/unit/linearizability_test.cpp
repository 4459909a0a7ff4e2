// The register linearizability checker on hand-written histories, good and
// bad, and on generated histories of a register that is linearizable by
// construction.
#include "tests/support/linearizability.h"

#include <catch2/catch.hpp>
#include <random>

using namespace kvtest::lin;

namespace {

Operation Put(int client, const std::string& value, int64_t from, int64_t to,
              Outcome outcome = Outcome::kOk, Prior prior = Prior::kAny) {
  return Operation{client, "k", OpKind::kPut, value, prior, from, to, outcome};
}
Operation Get(int client, std::optional<std::string> value, int64_t from, int64_t to,
              Outcome outcome = Outcome::kOk) {
  return Operation{client, "k", OpKind::kGet, std::move(value), Prior::kAny, from, to, outcome};
}
Operation Del(int client, int64_t from, int64_t to, Outcome outcome = Outcome::kOk,
              Prior prior = Prior::kAny) {
  return Operation{client, "k", OpKind::kDelete, std::nullopt, prior, from, to, outcome};
}
constexpr auto kUnknown = Outcome::kUnknown;
constexpr auto kError = Outcome::kError;

Verdict Check(const std::vector<Operation>& ops, CheckOptions options = {}) {
  KeyResult r = CheckKey(ops, options);
  if (r.verdict != Verdict::kOk) UNSCOPED_INFO(r.explanation);
  return r.verdict;
}

}  // namespace

TEST_CASE("an empty history and sequential reads of the last write are linearizable",
          "[linearizability]") {
  CHECK(Check({}) == Verdict::kOk);
  CHECK(Check({Get(1, std::nullopt, 0, 5), Put(1, "a", 10, 20), Get(2, "a", 30, 40),
               Put(2, "b", 50, 60), Get(1, "b", 70, 80)}) == Verdict::kOk);
}

TEST_CASE("a stale read after an acknowledged write is a violation", "[linearizability]") {
  std::vector<Operation> h = {Put(1, "a", 0, 10), Put(1, "b", 20, 30), Get(2, "a", 40, 50)};
  KeyResult r = CheckKey(h);
  CHECK(r.verdict == Verdict::kViolation);
  // The explanation names the read that cannot be placed and the writes around it.
  CHECK(r.explanation.find("* ") != std::string::npos);
  CHECK(r.explanation.find("get k -> \"a\"") != std::string::npos);
  CHECK(r.explanation.find("put k = \"b\"") != std::string::npos);
}

TEST_CASE("a lost acknowledged write is a violation and named by the lost-write check",
          "[linearizability]") {
  std::vector<Operation> h = {Put(1, "a", 0, 10), Put(2, "b", 20, 30), Get(3, "a", 100, 110)};
  CHECK(Check(h) == Verdict::kViolation);
  auto lost = CheckNoLostWrites(h, {{"k", std::string("a")}});
  REQUIRE(lost.size() == 1);
  CHECK(lost[0].find("lost") != std::string::npos);
  CHECK(lost[0].find("put k = \"b\"") != std::string::npos);
  // The same with the key gone entirely at the end.
  h = {Put(1, "a", 0, 10), Get(3, std::nullopt, 100, 110)};
  CHECK(Check(h) == Verdict::kViolation);
  CHECK(CheckNoLostWrites(h, {{"k", std::nullopt}}).size() == 1);
}

TEST_CASE("a read of a value never written is a violation", "[linearizability]") {
  KeyResult r = CheckKey({Put(1, "a", 0, 10), Get(2, "zzz", 20, 30)});
  CHECK(r.verdict == Verdict::kViolation);
  CHECK(r.explanation.find("never written") != std::string::npos);
  // A put that definitely failed counts as never written.
  CHECK(Check({Put(1, "a", 0, 10, kError), Get(2, "a", 20, 30)}) == Verdict::kViolation);
}

TEST_CASE("reads overlapping a write may see the old or the new value, but not go back",
          "[linearizability]") {
  CHECK(Check({Put(1, "a", 0, 10), Put(1, "b", 20, 40), Get(2, "a", 25, 30),
               Get(3, "b", 26, 35)}) == Verdict::kOk);
  CHECK(Check({Put(1, "a", 0, 10), Put(1, "b", 20, 40), Get(2, "b", 25, 28),
               Get(3, "a", 30, 35)}) == Verdict::kViolation);
  // Two concurrent writes: readers may agree on either order, not on both.
  CHECK(Check({Put(1, "a", 0, 100), Put(2, "b", 10, 90), Get(3, "a", 20, 30),
               Get(3, "b", 40, 50)}) == Verdict::kOk);
  CHECK(Check({Put(1, "a", 0, 100), Put(2, "b", 10, 90), Get(3, "a", 20, 30),
               Get(3, "b", 40, 50), Get(3, "a", 95, 110)}) == Verdict::kViolation);
  // Operations that touch (one ends when the other begins) count as concurrent.
  CHECK(Check({Put(1, "a", 0, 10), Get(2, std::nullopt, 10, 20)}) == Verdict::kOk);
}

TEST_CASE("an unknown write may take effect later or never, but only once",
          "[linearizability]") {
  // Appears after the client gave up on it.
  CHECK(Check({Put(1, "a", 0, 10), Put(2, "b", 20, 0, kUnknown), Get(3, "a", 30, 40),
               Get(3, "b", 500, 600)}) == Verdict::kOk);
  // Never appears.
  CHECK(Check({Put(1, "a", 0, 10), Put(2, "b", 20, 0, kUnknown), Get(3, "a", 500, 600)}) ==
        Verdict::kOk);
  // Appears, then the older acknowledged value comes back: not linearizable.
  CHECK(Check({Put(1, "a", 0, 10), Put(2, "b", 20, 0, kUnknown), Get(3, "b", 50, 60),
               Get(3, "a", 70, 80)}) == Verdict::kViolation);
  // An unknown write cannot take effect before it was invoked.
  CHECK(Check({Put(1, "a", 0, 10), Get(3, "b", 20, 30), Put(2, "b", 40, 0, kUnknown)}) ==
        Verdict::kViolation);
  // The lost-write check accepts a final value left by a later unknown write.
  std::vector<Operation> h = {Put(1, "a", 0, 10), Put(2, "b", 20, 0, kUnknown)};
  CHECK(CheckNoLostWrites(h, {{"k", std::string("b")}}).empty());
  CHECK(CheckNoLostWrites(h, {{"k", std::string("a")}}).empty());
}

TEST_CASE("gets without a definite answer are ignored", "[linearizability]") {
  CHECK(Check({Put(1, "a", 0, 10), Get(2, "junk", 20, 30, kError),
               Get(2, "junk", 40, 0, kUnknown), Get(3, "a", 50, 60)}) == Verdict::kOk);
}

TEST_CASE("deletes leave the key absent, and an unknown delete may or may not apply",
          "[linearizability]") {
  CHECK(Check({Put(1, "a", 0, 10), Del(1, 20, 30, Outcome::kOk, Prior::kPresent),
               Get(2, std::nullopt, 40, 50)}) == Verdict::kOk);
  CHECK(Check({Put(1, "a", 0, 10), Del(1, 20, 30), Get(2, "a", 40, 50)}) ==
        Verdict::kViolation);
  CHECK(Check({Put(1, "a", 0, 10), Del(1, 20, 0, kUnknown), Get(2, "a", 40, 50),
               Get(2, std::nullopt, 60, 70)}) == Verdict::kOk);
  std::vector<Operation> h = {Put(1, "a", 0, 10), Del(1, 20, 30)};
  CHECK(CheckNoLostWrites(h, {{"k", std::nullopt}}).empty());
  CHECK(CheckNoLostWrites(h, {{"k", std::string("a")}}).size() == 1);
}

TEST_CASE("put_success, put_update and delete's found or not found are checked too",
          "[linearizability]") {
  std::vector<Operation> h = {Put(1, "a", 0, 10, Outcome::kOk, Prior::kAbsent),
                              Put(2, "b", 20, 30, Outcome::kOk, Prior::kAbsent)};
  KeyResult r = CheckKey(h);
  CHECK(r.verdict == Verdict::kViolation);
  CHECK(r.explanation.find("put_success") != std::string::npos);
  CheckOptions values_only;
  values_only.check_prior = false;
  CHECK(Check(h, values_only) == Verdict::kOk);
  CHECK(Check({Put(1, "a", 0, 10, Outcome::kOk, Prior::kPresent)}) == Verdict::kViolation);
  CHECK(Check({Del(1, 0, 10, Outcome::kOk, Prior::kPresent)}) == Verdict::kViolation);
  // An unknown put of a value nobody read can explain a later put_update.
  CHECK(Check({Put(1, "a", 0, 0, kUnknown), Put(2, "b", 20, 30, Outcome::kOk, Prior::kPresent),
               Get(3, "b", 40, 50)}) == Verdict::kOk);
}

TEST_CASE("the search gives up within its budget instead of hanging", "[linearizability]") {
  // Twenty concurrent writes, then reads that no order of them explains.
  std::vector<Operation> h;
  for (int i = 0; i < 20; ++i) h.push_back(Put(i, "v" + std::to_string(i), i, 1000));
  for (int i = 0; i < 20; ++i) h.push_back(Get(99, "v" + std::to_string(i), 2000 + 10 * i, 2005 + 10 * i));
  CheckOptions small;
  small.max_steps_per_key = 1000;
  KeyResult r = CheckKey(h, small);
  CHECK(r.verdict != Verdict::kOk);
  CHECK(r.steps <= 1001);
}

TEST_CASE("the history is split by key and each key is checked on its own",
          "[linearizability]") {
  std::vector<Operation> h = {Put(1, "a", 0, 10), Get(2, "a", 20, 30)};
  Operation other = Put(1, "x", 0, 10);
  other.key = "other";
  h.push_back(other);
  Operation stale = Get(2, std::nullopt, 40, 50);
  stale.key = "other";
  h.push_back(stale);
  CheckResult r = CheckHistory(h);
  CHECK(r.keys == 2);
  CHECK(r.verdict == Verdict::kViolation);
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0].key == "other");
  CHECK(r.Summary().find("1 key(s) violate") != std::string::npos);
}

TEST_CASE("generated histories of a linearizable register with timeouts pass quickly",
          "[linearizability]") {
  // Clients overlap at random; each operation takes effect at a random point
  // inside its interval, and an unknown write takes effect or not at random.
  std::mt19937 rng(42);
  std::vector<Operation> history;
  for (int key = 0; key < 10; ++key) {
    struct Effect {
      int64_t at;
      size_t op;
    };
    std::vector<Operation> ops;
    std::vector<Effect> effects;
    int seq = 0;
    for (int client = 0; client < 5; ++client) {
      int64_t t = rng() % 50;
      for (int i = 0; i < 60; ++i) {
        Operation op;
        op.client = client;
        op.key = "k" + std::to_string(key);
        op.invoke_us = t;
        op.complete_us = t + 1 + rng() % 200;
        int dice = rng() % 10;
        op.kind = dice < 5 ? OpKind::kGet : dice < 9 ? OpKind::kPut : OpKind::kDelete;
        if (op.kind == OpKind::kPut) op.value = "v" + std::to_string(seq++);
        bool lost_reply = op.kind != OpKind::kGet && rng() % 10 == 0;
        if (lost_reply) op.outcome = Outcome::kUnknown;
        if (!lost_reply || rng() % 2 == 0) {
          effects.push_back({op.invoke_us + static_cast<int64_t>(rng() % (op.complete_us - op.invoke_us)),
                             ops.size()});
        }
        ops.push_back(op);
        t = op.complete_us + rng() % 30;
      }
    }
    std::sort(effects.begin(), effects.end(), [](auto& a, auto& b) { return a.at < b.at; });
    std::optional<std::string> reg;
    for (const auto& e : effects) {
      Operation& op = ops[e.op];
      if (op.kind == OpKind::kGet) {
        op.value = reg;
      } else {
        op.prior = reg ? Prior::kPresent : Prior::kAbsent;
        reg = op.kind == OpKind::kPut ? op.value : std::nullopt;
      }
    }
    history.insert(history.end(), ops.begin(), ops.end());
  }
  CheckOptions options;
  options.max_steps_per_key = 200000;
  CheckResult r = CheckHistory(history, options);
  INFO(r.Report(4000));
  CHECK(r.verdict == Verdict::kOk);
  CHECK(r.keys == 10);
}

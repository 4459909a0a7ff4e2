// Test support: checks recorded histories of put/get/delete against a
// per-key register (absent, or one value). Each key is checked on its own
// (P-compositionality, as in Porcupine and Knossos) with the Wing & Gong search
// and Porcupine's cache of (linearized-set, state); a step budget bounds the
// work, so a hard history yields "gave up", never a hang. Pure functions on
// values, thread-safe; the caller owns the history.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kvtest::lin {

enum class OpKind { kPut, kGet, kDelete };

// kOk: the reply arrived and says what happened. kError: definitely not
// applied (an explicit refusal). kUnknown: no answer; a write may or may not
// have taken effect, at any time after its invocation.
enum class Outcome { kOk, kError, kUnknown };

// What an acknowledged write reported about the key before it: put_success
// and delete's "not found" say absent, put_update and delete_success present.
enum class Prior { kAny, kAbsent, kPresent };

// Times are microseconds on one monotonic clock (any origin).
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

struct Operation {
  int client = 0;
  std::string key;
  OpKind kind = OpKind::kGet;
  // put: the value written. get: the value read, nullopt = not found.
  std::optional<std::string> value;
  Prior prior = Prior::kAny;  // ok put/delete only
  int64_t invoke_us = 0;
  int64_t complete_us = 0;  // ignored for kUnknown (treated as kNever)
  Outcome outcome = Outcome::kOk;
};

enum class Verdict { kOk, kViolation, kGaveUp };
const char* VerdictName(Verdict v);

struct CheckOptions {
  // Search steps per key (and per phase) before giving up on that key.
  uint64_t max_steps_per_key = 2'000'000;
  // Also check put_success/put_update and delete's found/not-found (Prior).
  bool check_prior = true;
  // Most operations printed in one explanation.
  size_t max_printed_ops = 40;
};

struct KeyResult {
  std::string key;
  Verdict verdict = Verdict::kOk;
  size_t ops = 0;         // operations checked (after dropping failed gets)
  uint64_t steps = 0;     // search steps spent
  std::string explanation;  // for a violation or give-up: what and where
};

struct CheckResult {
  Verdict verdict = Verdict::kOk;  // worst over the keys: violation > gave up > ok
  size_t keys = 0;
  size_t ops = 0;
  std::vector<KeyResult> problems;  // keys whose verdict is not kOk
  // One line, e.g. "linearizable: 300 keys, 41234 ops" or the counts of problems.
  std::string Summary() const;
  // Summary plus every problem's explanation, truncated to max_chars.
  std::string Report(size_t max_chars = 20000) const;
};

// Checks one key's operations (all must carry the same key).
KeyResult CheckKey(const std::vector<Operation>& ops, const CheckOptions& options = {});

// Splits the history by key and checks each.
CheckResult CheckHistory(const std::vector<Operation>& history,
                         const CheckOptions& options = {});

// "No acknowledged write lost", with messages a person can read: for each key
// in final_values (its value read after quiescence, nullopt = not found), the
// final value must come from a write that no acknowledged write strictly
// followed (or be the initial absence when nothing acknowledged was written).
// Returns one message per bad key; empty = nothing lost.
std::vector<std::string> CheckNoLostWrites(
    const std::vector<Operation>& history,
    const std::map<std::string, std::optional<std::string>>& final_values);

// One line per operation, sorted by invocation, times relative to `origin_us`.
std::string FormatOperation(const Operation& op, int64_t origin_us);
std::string FormatHistory(const std::vector<Operation>& ops, size_t max_lines = 40);

}  // namespace kvtest::lin

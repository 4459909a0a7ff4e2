#include "tests/support/linearizability.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>
#include <unordered_set>

#include "tests/support/lin_search.h"

namespace kvtest::lin {
namespace {

bool HasPriorConstraints(const std::vector<Operation>& ops) {
  for (const auto& op : ops) {
    if (op.outcome == Outcome::kOk && op.kind != OpKind::kGet && op.prior != Prior::kAny) {
      return true;
    }
  }
  return false;
}

// A get that read a value no put of this key ever wrote: no search needed.
std::optional<std::string> NeverWrittenRead(const std::vector<Operation>& ops) {
  std::set<std::string> written;
  for (const auto& op : ops) {
    if (op.kind == OpKind::kPut && op.outcome != Outcome::kError && op.value) {
      written.insert(*op.value);
    }
  }
  for (const auto& op : ops) {
    if (op.kind == OpKind::kGet && op.outcome == Outcome::kOk && op.value &&
        written.count(*op.value) == 0) {
      int64_t origin = ops.empty() ? 0 : ops.front().invoke_us;
      for (const auto& o : ops) origin = std::min(origin, o.invoke_us);
      return "read of a value that was never written:\n  " + FormatOperation(op, origin) + "\n";
    }
  }
  return std::nullopt;
}

int64_t Completion(const Operation& op) {
  return op.outcome == Outcome::kUnknown ? kNever : op.complete_us;
}

std::string Describe(const std::optional<std::string>& value) {
  return value ? "\"" + *value + "\"" : std::string("absent");
}

}  // namespace

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kOk: return "linearizable";
    case Verdict::kViolation: return "NOT linearizable";
    case Verdict::kGaveUp: return "gave up";
  }
  return "?";
}

KeyResult CheckKey(const std::vector<Operation>& ops, const CheckOptions& options) {
  KeyResult result;
  if (!ops.empty()) result.key = ops.front().key;
  if (auto why = NeverWrittenRead(ops)) {
    result.verdict = Verdict::kViolation;
    result.explanation = *why;
    return result;
  }
  // Phase 1 ignores Prior, which lets it drop unknown puts nobody read: it is
  // cheap, and a violation here is a violation of the full model too.
  SearchInput weak = Prepare(ops, /*check_prior=*/false, /*drop_unread_unknown=*/true);
  SearchOutput out = Search(weak, options.max_steps_per_key);
  result.ops = weak.ops.size();
  result.steps = out.steps;
  if (out.verdict == Verdict::kOk && options.check_prior && HasPriorConstraints(ops)) {
    SearchInput full = Prepare(ops, /*check_prior=*/true, /*drop_unread_unknown=*/false);
    SearchOutput strict = Search(full, options.max_steps_per_key);
    result.ops = full.ops.size();
    result.steps += strict.steps;
    if (strict.verdict != Verdict::kOk) {
      result.verdict = strict.verdict;
      result.explanation = Explain(full, strict, options.max_printed_ops) +
                           "(values alone linearize; put_success/put_update or delete's "
                           "found/not-found do not)\n";
    }
    return result;
  }
  result.verdict = out.verdict;
  if (out.verdict != Verdict::kOk) result.explanation = Explain(weak, out, options.max_printed_ops);
  return result;
}

CheckResult CheckHistory(const std::vector<Operation>& history, const CheckOptions& options) {
  std::map<std::string, std::vector<Operation>> by_key;
  for (const auto& op : history) by_key[op.key].push_back(op);
  CheckResult result;
  result.keys = by_key.size();
  for (const auto& [key, ops] : by_key) {
    KeyResult r = CheckKey(ops, options);
    result.ops += r.ops;
    if (r.verdict == Verdict::kOk) continue;
    if (r.verdict == Verdict::kViolation || result.verdict == Verdict::kOk) {
      result.verdict = r.verdict;
    }
    result.problems.push_back(std::move(r));
  }
  return result;
}

std::string CheckResult::Summary() const {
  size_t violations = 0, gave_up = 0;
  for (const auto& p : problems) (p.verdict == Verdict::kViolation ? violations : gave_up)++;
  std::ostringstream out;
  out << VerdictName(verdict) << ": " << keys << " keys, " << ops << " ops";
  if (violations > 0) out << ", " << violations << " key(s) violate";
  if (gave_up > 0) out << ", gave up on " << gave_up << " key(s)";
  return out.str();
}

std::string CheckResult::Report(size_t max_chars) const {
  std::string text = Summary() + "\n";
  for (const auto& p : problems) {
    text += "--- key " + p.key + ": " + VerdictName(p.verdict) + " (" + std::to_string(p.ops) +
            " ops, " + std::to_string(p.steps) + " steps)\n" + p.explanation;
    if (text.size() > max_chars) {
      text.resize(max_chars);
      text += "\n... (report truncated)\n";
      break;
    }
  }
  return text;
}

std::vector<std::string> CheckNoLostWrites(
    const std::vector<Operation>& history,
    const std::map<std::string, std::optional<std::string>>& final_values) {
  std::map<std::string, std::vector<const Operation*>> writes;  // ok or unknown writes
  int64_t origin = kNever;
  for (const auto& op : history) {
    origin = std::min(origin, op.invoke_us);
    if (op.kind != OpKind::kGet && op.outcome != Outcome::kError) writes[op.key].push_back(&op);
  }
  std::vector<std::string> problems;
  for (const auto& [key, final_value] : final_values) {
    const auto& ws = writes[key];
    // A write is superseded when an acknowledged write began after it completed.
    auto superseded = [&ws](int64_t completed) {
      for (const Operation* w : ws) {
        if (w->outcome == Outcome::kOk && w->invoke_us > completed) return true;
      }
      return false;
    };
    std::vector<const Operation*> last_acked;  // acknowledged and not superseded
    for (const Operation* w : ws) {
      if (w->outcome == Outcome::kOk && !superseded(w->complete_us)) last_acked.push_back(w);
    }
    // The initial absence counts as a write that every write supersedes.
    bool fine = !final_value && last_acked.empty();
    const Operation* source = nullptr;
    for (const Operation* w : ws) {
      bool matches = final_value ? (w->kind == OpKind::kPut && w->value == final_value)
                                 : w->kind == OpKind::kDelete;
      if (!matches) continue;
      source = w;
      if (!superseded(Completion(*w))) fine = true;
    }
    if (fine) continue;
    std::string msg = "key " + key + ": final value " + Describe(final_value);
    if (source != nullptr) {
      msg += ", left by\n    " + FormatOperation(*source, origin) + "\n";
    } else if (final_value) {
      msg += ", which no put of this key wrote\n";
    } else {
      msg += ", but nothing deleted it\n";
    }
    if (!last_acked.empty()) {
      msg += "  lost: the last acknowledged write(s):\n";
      for (size_t i = 0; i < last_acked.size() && i < 4; ++i) {
        msg += "    " + FormatOperation(*last_acked[i], origin) + "\n";
      }
    }
    problems.push_back(msg);
  }
  return problems;
}

std::string FormatOperation(const Operation& op, int64_t origin_us) {
  char times[96];
  double from = (op.invoke_us - origin_us) / 1000.0;
  if (op.outcome == Outcome::kUnknown) {
    std::snprintf(times, sizeof times, "%10.3f ..      ?    ms", from);
  } else {
    std::snprintf(times, sizeof times, "%10.3f .. %10.3f ms", from,
                  (op.complete_us - origin_us) / 1000.0);
  }
  std::ostringstream out;
  out << times << "  client " << op.client << "  ";
  switch (op.kind) {
    case OpKind::kPut: out << "put " << op.key << " = " << Describe(op.value); break;
    case OpKind::kGet:
      out << "get " << op.key;
      if (op.outcome == Outcome::kOk) out << " -> " << (op.value ? Describe(op.value) : "not found");
      break;
    case OpKind::kDelete: out << "delete " << op.key; break;
  }
  if (op.outcome == Outcome::kOk && op.kind != OpKind::kGet && op.prior != Prior::kAny) {
    bool present = op.prior == Prior::kPresent;
    if (op.kind == OpKind::kPut) out << (present ? " (put_update)" : " (put_success)");
    else out << (present ? " (found)" : " (not found)");
  }
  out << (op.outcome == Outcome::kOk ? "  ok" : op.outcome == Outcome::kError ? "  error"
                                                                            : "  unknown");
  return out.str();
}

std::string FormatHistory(const std::vector<Operation>& ops, size_t max_lines) {
  std::vector<const Operation*> sorted;
  for (const auto& op : ops) sorted.push_back(&op);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](auto* a, auto* b) { return a->invoke_us < b->invoke_us; });
  int64_t origin = sorted.empty() ? 0 : sorted.front()->invoke_us;
  std::string text;
  for (size_t i = 0; i < sorted.size() && i < max_lines; ++i) {
    text += "  " + FormatOperation(*sorted[i], origin) + "\n";
  }
  if (sorted.size() > max_lines) {
    text += "  ... " + std::to_string(sorted.size() - max_lines) + " more\n";
  }
  return text;
}

}  // namespace kvtest::lin

#include "tests/support/fault_metrics.h"

#include <algorithm>
#include <set>

namespace kvtest {

using lin::OpKind;
using lin::Outcome;

namespace {

bool AckedWrite(const lin::Operation& op) {
  return op.kind != OpKind::kGet && op.outcome == Outcome::kOk;
}

}  // namespace

OpCounts CountOutcomes(const std::vector<lin::Operation>& history) {
  OpCounts c;
  for (const auto& op : history) {
    ++c.total;
    switch (op.outcome) {
      case Outcome::kOk: ++c.ok; break;
      case Outcome::kError: ++c.error; break;
      case Outcome::kUnknown: ++c.unknown; break;
    }
  }
  return c;
}

Unavailability MaxUnavailability(const std::vector<lin::Operation>& history,
                                 const std::vector<FaultEvent>& events, int64_t end_us) {
  Unavailability result;
  for (const auto& event : events) {
    if (event.keys.empty()) continue;
    std::set<std::string> keys(event.keys.begin(), event.keys.end());
    int64_t first = -1;
    for (const auto& op : history) {
      if (!AckedWrite(op) || op.invoke_us < event.at_us || keys.count(op.key) == 0) continue;
      if (first == -1 || op.complete_us < first) first = op.complete_us;
    }
    bool resumed = first != -1 && first <= end_us;
    int64_t ms = ((resumed ? first : end_us) - event.at_us) / 1000;
    if (!resumed) result.resumed = false;
    if (ms > result.max_ms) {
      result.max_ms = ms;
      result.worst = event.what + (resumed ? "" : " (writes never resumed)");
    }
  }
  return result;
}

int64_t MaxWriteGapMs(const std::vector<lin::Operation>& history, int64_t from_us,
                      int64_t to_us) {
  std::vector<int64_t> done;
  for (const auto& op : history) {
    if (AckedWrite(op) && op.complete_us >= from_us && op.complete_us <= to_us) {
      done.push_back(op.complete_us);
    }
  }
  std::sort(done.begin(), done.end());
  int64_t last = from_us, gap = 0;
  for (int64_t t : done) {
    gap = std::max(gap, t - last);
    last = t;
  }
  gap = std::max(gap, to_us - last);
  return gap / 1000;
}

}  // namespace kvtest

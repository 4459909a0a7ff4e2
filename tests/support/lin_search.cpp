#include "tests/support/lin_search.h"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_set>

namespace kvtest::lin {
namespace {

// One call or return event in Porcupine's doubly linked list. Index 0 is the
// head sentinel; -1 ends the list.
struct Entry {
  bool call = false;
  int op = -1;
  int match = -1;  // a call's return entry
  int prev = -1, next = -1;
};

class EntryList {
 public:
  explicit EntryList(const SearchInput& in) {
    struct Event {
      int64_t time;
      bool is_return;
      int op;
    };
    std::vector<Event> events;
    for (int i = 0; i < static_cast<int>(in.ops.size()); ++i) {
      events.push_back({in.ops[i].invoke_us, false, i});
      events.push_back({in.ops[i].complete_us, true, i});
    }
    // At equal times calls come first: touching operations count as concurrent.
    std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
      if (a.time != b.time) return a.time < b.time;
      if (a.is_return != b.is_return) return !a.is_return;
      return a.op < b.op;
    });
    e_.resize(events.size() + 1);
    std::vector<int> call_of(in.ops.size(), -1);
    for (size_t k = 0; k < events.size(); ++k) {
      int idx = static_cast<int>(k) + 1;
      e_[idx].call = !events[k].is_return;
      e_[idx].op = events[k].op;
      e_[idx].prev = idx - 1;
      e_[idx].next = k + 1 < events.size() ? idx + 1 : -1;
      if (e_[idx].call) call_of[events[k].op] = idx;
      else e_[call_of[events[k].op]].match = idx;
    }
    e_[0].next = events.empty() ? -1 : 1;
  }
  Entry& operator[](int i) { return e_[i]; }
  void Lift(int i) {
    Unlink(i);
    Unlink(e_[i].match);
  }
  void Unlift(int i) {
    Relink(e_[i].match);
    Relink(i);
  }

 private:
  void Unlink(int i) {
    e_[e_[i].prev].next = e_[i].next;
    if (e_[i].next != -1) e_[e_[i].next].prev = e_[i].prev;
  }
  void Relink(int i) {
    e_[e_[i].prev].next = i;
    if (e_[i].next != -1) e_[e_[i].next].prev = i;
  }
  std::vector<Entry> e_;
};

bool Step(const SearchInput& in, int op, int state, int* next) {
  Prior prior = in.prior[op];
  if (prior == Prior::kAbsent && state != kStateAbsent) return false;
  if (prior == Prior::kPresent && state == kStateAbsent) return false;
  switch (in.ops[op].kind) {
    case OpKind::kGet:
      *next = state;
      return state == in.state_of[op];
    case OpKind::kPut: *next = in.state_of[op]; return true;
    case OpKind::kDelete: *next = kStateAbsent; return true;
  }
  return false;
}

// The cache key: the linearized set's words followed by the state.
std::string CacheKey(const std::vector<uint64_t>& bits, int state) {
  std::string key(reinterpret_cast<const char*>(bits.data()), bits.size() * sizeof(uint64_t));
  key.append(reinterpret_cast<const char*>(&state), sizeof state);
  return key;
}

}  // namespace

SearchInput Prepare(const std::vector<Operation>& ops, bool check_prior,
                    bool drop_unread_unknown) {
  int64_t last_definite = std::numeric_limits<int64_t>::min();
  std::set<std::string> read;
  for (const auto& op : ops) {
    if (op.outcome == Outcome::kOk) last_definite = std::max(last_definite, op.complete_us);
    if (op.kind == OpKind::kGet && op.outcome == Outcome::kOk && op.value) read.insert(*op.value);
  }
  std::map<std::string, int> ids;
  auto id_of = [&](const std::string& v) {
    auto it = ids.find(v);
    if (it != ids.end()) return it->second;
    int id = static_cast<int>(ids.size()) + 1;
    ids.emplace(v, id);
    return id;
  };
  SearchInput in;
  for (const auto& op : ops) {
    if (op.outcome == Outcome::kError) continue;
    if (op.kind == OpKind::kGet && op.outcome != Outcome::kOk) continue;
    bool unknown = op.outcome == Outcome::kUnknown;
    std::string value = op.value.value_or("");
    if (unknown && op.invoke_us > last_definite) continue;
    if (unknown && drop_unread_unknown && op.kind == OpKind::kPut && read.count(value) == 0) {
      continue;
    }
    Operation kept = op;
    if (unknown) kept.complete_us = kNever;
    int state = kStateAbsent;
    if (op.kind == OpKind::kPut) state = read.count(value) ? id_of(value) : kStateUnread;
    if (op.kind == OpKind::kGet && op.value) state = id_of(value);
    in.ops.push_back(std::move(kept));
    in.state_of.push_back(state);
    in.prior.push_back(check_prior && !unknown && op.kind != OpKind::kGet ? op.prior
                                                                           : Prior::kAny);
  }
  return in;
}

SearchOutput Search(const SearchInput& in, uint64_t max_steps) {
  SearchOutput out;
  EntryList list(in);
  std::vector<uint64_t> bits((in.ops.size() + 63) / 64, 0);
  std::unordered_set<std::string> cache;
  struct Frame {
    int entry;
    int state;
  };
  std::vector<Frame> calls;
  int state = kStateAbsent;
  int entry = list[0].next;
  while (list[0].next != -1) {
    if (++out.steps > max_steps) {
      out.verdict = Verdict::kGaveUp;
      return out;
    }
    if (list[entry].call) {
      int op = list[entry].op;
      int next_state = state;
      if (Step(in, op, state, &next_state)) {
        bits[op / 64] |= uint64_t{1} << (op % 64);
        if (cache.insert(CacheKey(bits, next_state)).second) {
          calls.push_back({entry, state});
          state = next_state;
          list.Lift(entry);
          entry = list[0].next;
          if (calls.size() > out.best_order.size()) {
            out.best_order.clear();
            for (const auto& f : calls) out.best_order.push_back(list[f.entry].op);
            out.best_state = state;
          }
          continue;
        }
        bits[op / 64] &= ~(uint64_t{1} << (op % 64));
      }
      entry = list[entry].next;
    } else {
      // A return whose call is still pending: this prefix cannot be extended.
      if (calls.empty()) {
        out.verdict = Verdict::kViolation;
        return out;
      }
      Frame top = calls.back();
      calls.pop_back();
      int op = list[top.entry].op;
      bits[op / 64] &= ~(uint64_t{1} << (op % 64));
      state = top.state;
      list.Unlift(top.entry);
      entry = list[top.entry].next;
    }
  }
  return out;
}

std::string Explain(const SearchInput& in, const SearchOutput& out, size_t max_ops) {
  const size_t n = in.ops.size();
  std::vector<int> position(n, -1);  // place in the best prefix, or -1
  for (size_t k = 0; k < out.best_order.size(); ++k) position[out.best_order[k]] = k;
  // The blocked operation: the first to complete of those outside the prefix.
  int blocked = -1;
  for (size_t i = 0; i < n; ++i) {
    if (position[i] != -1) continue;
    if (blocked == -1 || in.ops[i].complete_us < in.ops[blocked].complete_us) blocked = i;
  }
  std::string state = out.best_state == kStateAbsent   ? "absent"
                      : out.best_state == kStateUnread ? "a value no get read"
                                                       : "?";
  for (size_t i = 0; i < n && state == "?"; ++i) {
    if (in.state_of[i] == out.best_state && in.ops[i].value) state = "\"" + *in.ops[i].value + "\"";
  }
  std::string text;
  if (out.verdict == Verdict::kGaveUp) {
    text += "search gave up after " + std::to_string(out.steps) + " steps; ";
  }
  text += "at most " + std::to_string(out.best_order.size()) + " of " + std::to_string(n) +
          " operations linearize (register then " + state + ")";
  if (blocked == -1) return text + "\n";
  int64_t origin = std::numeric_limits<int64_t>::max();
  for (const auto& op : in.ops) origin = std::min(origin, op.invoke_us);
  const Operation& b = in.ops[blocked];
  text += "; this one cannot come next:\n  * " + FormatOperation(b, origin) + "\n";
  // Around it: from the last few prefix operations to the blocked one's end.
  int64_t hi = b.complete_us == kNever ? b.invoke_us : b.complete_us;
  int64_t lo = b.invoke_us;
  for (size_t k = out.best_order.size() >= 3 ? out.best_order.size() - 3 : 0;
       k < out.best_order.size(); ++k) {
    lo = std::min(lo, in.ops[out.best_order[k]].invoke_us);
  }
  std::vector<int> window;
  for (size_t i = 0; i < n; ++i) {
    if (in.ops[i].complete_us >= lo && in.ops[i].invoke_us <= hi) window.push_back(i);
  }
  std::stable_sort(window.begin(), window.end(),
                   [&](int x, int y) { return in.ops[x].invoke_us < in.ops[y].invoke_us; });
  size_t at = std::find(window.begin(), window.end(), blocked) - window.begin();
  size_t first = at > max_ops / 2 ? at - max_ops / 2 : 0;
  size_t last = std::min(window.size(), first + max_ops);
  text += "sub-history (#k: k-th in the longest linearizable prefix, *: blocked):\n";
  if (first > 0) text += "  ... " + std::to_string(first) + " earlier\n";
  for (size_t k = first; k < last; ++k) {
    int i = window[k];
    std::string mark = i == blocked ? "*" : position[i] >= 0 ? "#" + std::to_string(position[i] + 1)
                                                            : "";
    mark.resize(std::max<size_t>(mark.size(), 6), ' ');
    text += "  " + mark + FormatOperation(in.ops[i], origin) + "\n";
  }
  if (last < window.size()) text += "  ... " + std::to_string(window.size() - last) + " later\n";
  return text;
}

}  // namespace kvtest::lin

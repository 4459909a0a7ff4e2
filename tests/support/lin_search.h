// Test support, internal to the linearizability checker: the Wing & Gong
// search over one key's operations (Porcupine's linked list of call/return
// entries, lift/unlift, and its cache of (linearized bitset, state)), and the
// explanation of a failed search. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tests/support/linearizability.h"

namespace kvtest::lin {

// Register states: absent, "some value no get read" (all such values are
// interchangeable for every later observation, so they share one state and
// one cache entry), or the id of a value some get read.
constexpr int kStateAbsent = -1;
constexpr int kStateUnread = 0;

struct SearchInput {
  std::vector<Operation> ops;  // kept operations; kUnknown ones complete at kNever
  std::vector<int> state_of;   // per op: the state a put writes / a get observed
  std::vector<Prior> prior;    // per op: the precondition enforced (kAny if none)
};

// Drops what cannot constrain the search: gets without a definite answer,
// writes that definitely failed, unknown writes invoked after every definite
// operation completed (they can always go last) and, with drop_unread_unknown
// (only sound when Prior is not checked), unknown puts whose value no get read.
SearchInput Prepare(const std::vector<Operation>& ops, bool check_prior,
                    bool drop_unread_unknown);

struct SearchOutput {
  Verdict verdict = Verdict::kOk;
  uint64_t steps = 0;
  std::vector<int> best_order;  // the longest linearizable prefix found (op indices)
  int best_state = kStateAbsent;  // the register after that prefix
};

SearchOutput Search(const SearchInput& input, uint64_t max_steps);

// What went wrong, with the surrounding sub-history: the longest prefix that
// linearizes, the operation that could not come next, and the operations
// around it ('+' in that prefix, '*' the blocked one).
std::string Explain(const SearchInput& input, const SearchOutput& output, size_t max_ops);

}  // namespace kvtest::lin

// Test support for the fault harness: the numbers a run reports, computed
// from its recorded history and the faults it injected: operation counts,
// how long the keys of a killed or paused primary went without an
// acknowledged write, and the longest stretch with no acknowledged write at
// all. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tests/support/linearizability.h"

namespace kvtest {

// One injected fault, at a time on the history's clock.
struct FaultEvent {
  int64_t at_us = 0;
  std::string what;               // e.g. "kill -9 node 2 (port 40123)"
  std::vector<std::string> keys;  // workload keys whose primary it hit; empty if none
};

struct OpCounts {
  size_t total = 0, ok = 0, error = 0, unknown = 0;
};
OpCounts CountOutcomes(const std::vector<lin::Operation>& history);

struct Unavailability {
  int64_t max_ms = -1;     // -1: no event hit a primary
  std::string worst;       // the event that gave max_ms
  bool resumed = true;     // false if some event's keys never saw a write again
};

// For every event with keys: the time from the event to the completion of the
// first acknowledged write (put or delete) to one of those keys invoked at or
// after it. An event whose keys see none before end_us counts until end_us and
// clears `resumed`.
Unavailability MaxUnavailability(const std::vector<lin::Operation>& history,
                                 const std::vector<FaultEvent>& events, int64_t end_us);

// The longest stretch within [from_us, to_us] in which no acknowledged write
// completed, in milliseconds.
int64_t MaxWriteGapMs(const std::vector<lin::Operation>& history, int64_t from_us,
                      int64_t to_us);

}  // namespace kvtest

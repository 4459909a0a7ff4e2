// Test support: the fault schedules of the scenarios in
// tests/integration/fault_test.cpp, as lists of FaultHarness steps, and the
// knob for running them longer by hand. Pure functions; thread-safe.
#pragma once

#include <functional>
#include <vector>

#include "tests/support/fault_harness.h"

namespace kvtest {

// `kills` times: kill -9 a random node, restart it (same data) after down_for,
// next kill a period after the previous one.
std::vector<FaultStep> KillEveryFewSeconds(int kills, Millis period, Millis down_for);

// Kill a random node, wait for the fail-over (and `replicated`, if given: e.g.
// a line in the ECS log saying every range has its copies again), kill a
// second one, wait again, then restart both.
std::vector<FaultStep> TwoKillsAfterReReplication(
    Millis await_deadline, std::function<bool(Cluster&)> replicated = nullptr);

// SIGSTOP the primary of a hot key for twice the failure timeout (plus a
// little), SIGCONT it, and wait for a ring of running nodes.
std::vector<FaultStep> PauseBusyPrimary(Millis failure_timeout, Millis await_deadline);

// Kill a busy primary, and while its fail-over runs kill -9 the ECS; start
// the ECS again; then the same with the broker; then restart the nodes.
std::vector<FaultStep> KillEcsAndBrokerDuringFailOver(Millis failure_timeout,
                                                      Millis await_deadline);

// KV_FAULT_SECONDS from the environment (longer runs by hand), else fallback.
int FaultSecondsFromEnv(int fallback);

}  // namespace kvtest

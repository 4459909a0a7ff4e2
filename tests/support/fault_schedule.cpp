#include "tests/support/fault_schedule.h"

#include <cstdlib>
#include <string>

namespace kvtest {
namespace {

FaultStep Do(FaultKind kind, Millis after = Millis(0), Millis duration = Millis(0)) {
  FaultStep step;
  step.kind = kind;
  step.after = after;
  step.duration = duration;
  return step;
}

}  // namespace

std::vector<FaultStep> KillEveryFewSeconds(int kills, Millis period, Millis down_for) {
  std::vector<FaultStep> steps;
  for (int k = 0; k < kills; ++k) {
    steps.push_back(Do(FaultKind::kKillRandomNode, k == 0 ? Millis(0) : period - down_for));
    steps.push_back(Do(FaultKind::kRestartKilledNodes, down_for));
  }
  return steps;
}

std::vector<FaultStep> TwoKillsAfterReReplication(Millis await_deadline,
                                                  std::function<bool(Cluster&)> replicated) {
  std::vector<FaultStep> steps;
  for (int k = 0; k < 2; ++k) {
    steps.push_back(Do(FaultKind::kKillRandomNode, k == 0 ? Millis(0) : Millis(500)));
    steps.push_back(Do(FaultKind::kAwaitFailOver, Millis(0), await_deadline));
    if (replicated) {
      FaultStep wait = Do(FaultKind::kAwait, Millis(0), await_deadline);
      wait.condition = replicated;
      wait.label = "re-replication";
      steps.push_back(wait);
    }
  }
  steps.push_back(Do(FaultKind::kRestartKilledNodes, Millis(500)));
  steps.push_back(Do(FaultKind::kAwaitRing, Millis(0), await_deadline));
  return steps;
}

std::vector<FaultStep> PauseBusyPrimary(Millis failure_timeout, Millis await_deadline) {
  return {Do(FaultKind::kPauseBusyPrimary, Millis(0), failure_timeout * 2 + Millis(500)),
          Do(FaultKind::kAwaitFailOver, Millis(0), await_deadline)};
}

std::vector<FaultStep> KillEcsAndBrokerDuringFailOver(Millis failure_timeout,
                                                      Millis await_deadline) {
  // The kill lands after the failure is detected, while the ECS moves ranges.
  Millis mid_failover = failure_timeout + Millis(200);
  return {Do(FaultKind::kKillBusyPrimary),
          Do(FaultKind::kKillEcs, mid_failover),
          Do(FaultKind::kStartEcs, Millis(1000)),
          Do(FaultKind::kAwaitFailOver, Millis(0), await_deadline),
          Do(FaultKind::kKillBusyPrimary, Millis(500)),
          Do(FaultKind::kKillBroker, mid_failover),
          Do(FaultKind::kStartBroker, Millis(1000)),
          Do(FaultKind::kAwaitFailOver, Millis(0), await_deadline),
          Do(FaultKind::kRestartKilledNodes, Millis(500)),
          Do(FaultKind::kAwaitRing, Millis(0), await_deadline)};
}

int FaultSecondsFromEnv(int fallback) {
  const char* text = std::getenv("KV_FAULT_SECONDS");
  if (text == nullptr || *text == '\0') return fallback;
  int seconds = std::atoi(text);
  return seconds > 0 ? seconds : fallback;
}

}  // namespace kvtest

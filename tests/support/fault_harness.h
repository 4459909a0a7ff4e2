// Test support: a fault-injection run against a whole cluster on 127.0.0.1.
// Starts a kvbroker, a kvecs and N kvnodes (Cluster), runs concurrent clients
// (Workload) that record every operation, injects faults from a schedule
// (kill -9 or SIGSTOP of nodes, kill of the ECS or the broker, restarts),
// then waits for quiescence, reads every key and checks the history
// (linearizability per key and "no acknowledged write lost"). One thread
// drives a FaultHarness; the client threads are its own. Kills only the
// processes it started, by PID.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tests/support/cluster.h"
#include "tests/support/fault_metrics.h"
#include "tests/support/fault_workload.h"
#include "tests/support/linearizability.h"

namespace kvtest {

using Millis = std::chrono::milliseconds;

enum class FaultKind {
  kKillRandomNode,      // kill -9 a random running node
  kKillBusyPrimary,     // kill -9 the primary of a random hot key
  kPauseBusyPrimary,    // SIGSTOP the primary of a random hot key for `duration`, then SIGCONT
  kRestartKilledNodes,  // start every killed node again with its old data directory
  kKillEcs,             // kill -9 the ECS
  kStartEcs,            // start the ECS again (same state directory)
  kKillBroker,          // kill -9 the broker
  kStartBroker,         // start the broker again on its old ports
  kAwaitRing,           // wait up to `duration` until the ring is exactly the running nodes
  kAwaitFailOver,       // wait up to `duration` until the ring holds only running nodes
  kAwait,               // wait up to `duration` until `condition` holds
};

struct FaultStep {
  Millis after{0};  // wait this long after the previous step (clients keep running)
  FaultKind kind = FaultKind::kKillRandomNode;
  Millis duration{0};                       // pause length, or an await's deadline
  std::function<bool(Cluster&)> condition;  // kAwait only
  std::string label;                        // kAwait only: what it waits for
  bool wipe_data = false;  // kills: delete the node's data directory too (a lost disk)
  bool same_port = false;  // kRestartKilledNodes: on the old ports, so the same ring member
};

struct FaultOptions {
  size_t nodes = 5;
  int replication_factor = 3;             // passed as the ECS's --replication-factor
  std::vector<std::string> ecs_flags;     // appended to every kvecs start
  std::vector<std::string> broker_flags;  // appended to every kvbroker start
  std::vector<std::string> node_flags;    // appended to every kvnode start
  WorkloadOptions workload;               // clients, keys, mix, per-op deadline, seed
  Millis load_before_faults{1500};        // load runs this long before the first step
  Millis load_after_faults{1500};         // and this long after the last
  Millis max_fault_phase{120000};         // the schedule is cut off after this
  size_t min_running_nodes = 3;           // a kill that would leave fewer is skipped
  Millis quiescence_timeout{15000};       // ring wait after the load stops
  Millis final_read_timeout{15000};       // all final reads together
  std::vector<FaultStep> schedule;
  lin::CheckOptions check;
};

struct FaultRunResult {
  bool started = false;  // the cluster came up and the ring covered every node
  uint64_t seed = 0;
  std::vector<lin::Operation> history;  // the load's operations, then the final reads
  std::map<std::string, std::optional<std::string>> final_values;
  std::vector<std::string> missing_final;  // keys with no definite final read
  lin::CheckResult linearizability;
  std::vector<std::string> lost_writes;  // CheckNoLostWrites's messages
  std::vector<FaultEvent> faults;
  std::vector<std::string> log;  // what the schedule did, with times
  int awaits_timed_out = 0;      // kAwait/kAwaitRing steps and the quiescence wait
  OpCounts counts;               // operations of the load (not the final reads)
  Unavailability unavailability;
  int64_t max_write_gap_ms = 0;  // during the fault phase

  // Everything the checks demand: linearizable, nothing lost, every key read.
  bool ok() const;
  // One line: ops, faults, unavailability, checks.
  std::string Summary() const;
  // The summary, the schedule's log and every problem (bounded in length).
  std::string Report(size_t max_chars = 30000) const;
};

class FaultHarness {
 public:
  FaultHarness(std::string work_dir, FaultOptions options);
  // Runs the whole scenario; bounded in time by the options.
  FaultRunResult Run();

 private:
  void Step(const FaultStep& step, FaultRunResult* result);
  void Note(FaultRunResult* result, const std::string& line);
  void PublishPorts();
  std::vector<size_t> RunningNodes();
  std::vector<uint16_t> RunningPorts();
  std::optional<size_t> NodeOfPort(uint16_t port);
  // The newest ring any running, unpaused node reports (empty if none answers).
  std::vector<kv::KeyrangeEntry> NewestRing();
  std::optional<size_t> BusyPrimary();
  // The workload keys whose primary is port, and in *probe a fresh key that
  // maps to it (probed for the unavailability number; empty if none).
  std::vector<std::string> KeysOf(uint16_t port, std::string* probe);
  // Runs `hit` (the signal) against node, records it as a fault on node's
  // keys and starts a probe of them; returns its description.
  std::string HitNode(size_t node, const std::string& what, const std::function<void()>& hit,
                      FaultRunResult* result);
  void KillNode(size_t node, const std::string& why, bool wipe, FaultRunResult* result);
  bool AwaitRing(bool every_running_node, Millis deadline);

  std::string work_dir_;
  FaultOptions options_;
  std::chrono::steady_clock::time_point origin_;
  std::unique_ptr<Cluster> cluster_;
  PortBoard ports_;
  std::vector<bool> killed_;
  std::optional<size_t> paused_;
  bool ecs_killed_ = false, broker_killed_ = false;  // down by the schedule's doing
  std::mt19937_64 rng_;
  std::map<uint16_t, std::unique_ptr<RawClient>> probes_;  // keyrange probes per port
  Workload* workload_ = nullptr;        // while the load runs
  std::vector<std::string> probe_keys_;  // read at the end like the workload's keys
};

}  // namespace kvtest

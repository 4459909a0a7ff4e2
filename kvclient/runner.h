// kvbench's closed loop: one thread keeps connections x inflight operations
// outstanding on a Target, taking them from a Workload, until the workload
// runs out, --ops operations have been issued or the duration has passed,
// then waits for what is in flight (each request is bounded by its timeout).
// The same loop drives every target, so a cluster and Redis see the same
// concurrency. An operation of several steps (read-modify-write, seed1's
// put/get/update/delete) holds its slot until its last step is answered;
// lanes are taken round robin per request. Operations started during the
// warm-up are carried out but left out of every figure.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <string_view>

#include "kvclient/histogram.h"
#include "kvclient/target.h"
#include "kvclient/workload.h"

namespace kv::bench {

// Latency and outcome of one operation type within a phase.
struct OpStats {
  uint64_t ok = 0;      // succeeded; their latency is recorded
  uint64_t errors = 0;  // any other outcome
  Histogram latency_us;
};

struct PhaseResult {
  std::string name;                                // "load" or "run"
  uint64_t ops = 0;                                // finished operations, errors included
  uint64_t errors = 0;                             // operations that failed
  double seconds = 0.0;                            // from the first measured send to the
                                                   // last completion
  std::map<std::string, uint64_t> errors_by_kind;  // TargetReply::error_kind -> count
  uint64_t redirects = 0;                          // resends after server_not_responsible
  uint64_t retries = 0;                            // resends after a back-off (server_stopped,
                                                   // server_write_lock, overloaded)
  std::map<std::string, OpStats> by_op;            // every op type the workload names
  double throughput() const { return seconds > 0 ? ops / seconds : 0.0; }
};

struct PhaseLimits {
  std::optional<std::chrono::milliseconds> duration;  // measured time (after the warm-up)
  uint64_t ops = 0;                                   // measured operations to issue; 0: no bound
  std::chrono::milliseconds warmup{0};                // run, but do not count, this long first
};

struct RunnerOptions {
  uint64_t connections = 4;                           // lanes, taken round robin
  uint64_t inflight = 32;                             // per lane: connections x inflight in all
  uint64_t value_size = 100;                          // bytes per put
  uint64_t seed = 42;                                 // value bytes
  std::chrono::milliseconds progress_interval{1000};  // between progress lines
  std::ostream* progress = nullptr;                   // progress lines; null: none
};

// Not thread-safe; borrows the target for its lifetime.
class PhaseRunner {
 public:
  PhaseRunner(Target& target, const RunnerOptions& options);

  PhaseResult Run(const std::string& name, Workload& workload, std::mt19937_64& rng,
                  const PhaseLimits& limits);

  // The bytes a put of `record` sends: value_size bytes at a per-record
  // offset of one buffer, so values differ without allocating per put.
  std::string_view ValueFor(uint64_t record) const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Active {
    OpChoice op;
    int step = 0;
    Clock::time_point start;       // first send of the first step
    Clock::time_point step_start;  // first send of the current step
    bool measured = false;         // issued after the warm-up
  };

  // Tops up what is in flight; false once the workload or the ops bound is exhausted.
  bool Refill(Workload& workload, std::mt19937_64& rng, const PhaseLimits& limits);
  void SendStep(uint64_t tag, const Active& active);
  void Complete(const TargetReply& reply, Clock::time_point now, Workload& workload,
                PhaseResult* result);
  void Record(int label, bool ok, const std::string& kind, Clock::duration latency,
              PhaseResult* result);

  Target& target_;
  RunnerOptions options_;
  std::string values_;
  const std::vector<std::string>* names_ = nullptr;  // the running workload's op names
  std::map<uint64_t, Active> active_;                // by tag
  uint64_t next_tag_ = 1;
  uint64_t next_lane_ = 0;
  uint64_t issued_ = 0;     // measured operations issued in this phase
  bool barrier_ = false;    // the workload asked to drain before the next operation
  Clock::time_point measure_from_;
};

}  // namespace kv::bench

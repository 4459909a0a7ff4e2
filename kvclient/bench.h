// kvbench's top level: the configuration from the command line, and RunBench,
// which builds the target (our cluster through -bh/-bp, or Redis through
// --target redis://H:P), runs the load phase (insert every record) and the
// run phase (the workload until --ops or --duration, after --warmup) on the
// same PhaseRunner, and hands back both phases' results for the report
// (kvclient/report.h). The modules under it: workload.h and key_chooser.h
// (what to send), target.h (where), runner.h (how many at once, and timing).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include "kvclient/runner.h"
#include "schema/status.h"

namespace kv::bench {

// Everything kvbench is told on the command line.
struct BenchConfig {
  std::string host = "127.0.0.1";  // node or broker to load through (-bh)
  uint16_t port = 0;               // its client/control port (-bp); required unless target is set
  int broker_pub_port = -1;        // broker's ring publisher; -1 = port + 1
  std::string target;              // "redis://HOST:PORT" to load Redis instead; empty: -bh/-bp
  std::string workload = "mix";    // run-phase workload (see WorkloadNames)
  std::string distribution;        // zipfian|uniform|latest; empty: the workload's own
  double read_ratio = 0.5;         // mix: fraction of gets
  uint64_t records = 100000;       // key space; the load phase inserts them all
  uint64_t value_size = 100;       // bytes per value
  uint64_t connections = 4;        // connections (per node for a cluster; lanes)
  uint64_t inflight = 32;          // requests outstanding per connection: connections x
                                   // inflight in all, spread over the nodes
  std::chrono::seconds duration{10};  // run phase stops after this long (after the warm-up)...
  uint64_t ops = 0;                   // ...or after this many ops (0: no count bound)
  std::chrono::seconds warmup{0};     // run phase: run this long first, outside every figure
  bool load_phase = true;             // insert all records first (never for seed1/seed2)
  bool run_phase = true;              // then run the workload
  uint64_t seed = 42;                 // key choice and value bytes
  std::chrono::milliseconds request_timeout{3000};    // a request older than this is an error
  bool ordered_reads = false;  // cluster: gets wait for their lane's earlier writes (--ordered)
  std::chrono::milliseconds progress_interval{1000};  // between progress lines
};

Status ValidateConfig(const BenchConfig& config);

struct BenchResult {
  std::string target;    // "node 127.0.0.1:5144", "broker ..., ring v3 with 3 nodes", "redis ..."
  std::string workload;  // the workload's description, e.g. "a: 50% read, 50% update, zipfian"
  std::optional<PhaseResult> load;
  std::optional<PhaseResult> run;
  // The phase the headline numbers describe: run if it ran, else load.
  const PhaseResult* main_phase() const;
};

// Runs the configured phases. `progress` (may be null) gets one line per
// progress_interval. Errors are only for setup failures (bad flags, nothing
// to connect to); failed operations are counted in the result.
Result<BenchResult> RunBench(const BenchConfig& config, std::ostream* progress);

}  // namespace kv::bench

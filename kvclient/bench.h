// kvbench's engine: a closed-loop load generator on the client library. One
// thread drives every Connection with zmq::poll, keeping `inflight` requests
// outstanding on each; a load phase inserts every record, a run phase replays
// a Workload until --ops or --duration, whichever comes first. Results are
// per-phase counts, errors by kind and latency histograms, printed as a table
// or as one JSON object.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>

#include "kvclient/histogram.h"
#include "schema/status.h"

namespace kv::bench {

// Everything kvbench is told on the command line.
struct BenchConfig {
  std::string host = "127.0.0.1";     // node to load (-bh)
  uint16_t port = 0;                  // its client port (-bp); required
  std::string workload = "mix";       // run-phase workload (see WorkloadNames)
  double read_ratio = 0.5;            // mix: fraction of gets
  uint64_t records = 100000;          // key space; the load phase inserts them all
  uint64_t value_size = 100;          // bytes per value
  uint64_t connections = 4;           // DEALER sockets, one node each (same node for now)
  uint64_t inflight = 32;             // requests outstanding per connection
  std::chrono::seconds duration{10};  // run phase stops after this long...
  uint64_t ops = 0;                   // ...or after this many ops (0: no count bound)
  bool load_phase = true;             // insert all records first
  bool run_phase = true;              // then run the workload
  uint64_t seed = 42;                 // key choice and value bytes
  std::chrono::milliseconds request_timeout{3000};    // a request older than this is an error
  std::chrono::milliseconds progress_interval{1000};  // progress lines to stderr
};

Status ValidateConfig(const BenchConfig& config);

// Latency and outcome of one operation type within a phase.
struct OpStats {
  uint64_t ok = 0;      // replies with a success word; their latency is recorded
  uint64_t errors = 0;  // any other outcome
  Histogram latency_us;
};

struct PhaseResult {
  std::string name;                                // "load" or "run"
  uint64_t ops = 0;                                // finished operations, errors included
  uint64_t errors = 0;                             // operations without a success word
  double seconds = 0.0;                            // from the first send to the last completion
  std::map<std::string, uint64_t> errors_by_kind;  // status word, "timeout", "send_failed"
  std::map<std::string, OpStats> by_op;            // "put", "get", ...
  double throughput() const { return seconds > 0 ? ops / seconds : 0.0; }
};

struct BenchResult {
  std::optional<PhaseResult> load;
  std::optional<PhaseResult> run;
  // The phase the headline numbers describe: run if it ran, else load.
  const PhaseResult* main_phase() const;
};

// Runs the configured phases against the node. `progress` (may be null) gets
// one line per progress_interval. Errors are only for setup failures; failed
// operations are counted in the result.
Result<BenchResult> RunBench(const BenchConfig& config, std::ostream* progress);

std::string FormatTable(const BenchConfig& config, const BenchResult& result);
// One JSON object on one line: throughput_ops, ops, errors, seconds,
// errors_by_kind, latency_us.{put,get,...}.{count,p50,p95,p99,p999,max,mean},
// and "load": {...same keys} when a load phase ran before the run phase.
std::string FormatJson(const BenchConfig& config, const BenchResult& result);

}  // namespace kv::bench

// kvbench's engine: a closed-loop load generator on the client library. One
// thread drives every Connection with zmq::poll, keeping connections x
// inflight requests outstanding in all; each request goes to its key's node
// through a Router (a node or a broker at -bh/-bp), on one of `connections`
// lanes per node. A load phase inserts every record, a run phase replays a
// Workload until --ops or --duration, whichever comes first. A request
// answered server_not_responsible is resent after a ring refresh (at most
// kMaxRedirects times). Results are per-phase counts, errors by kind and
// latency histograms (first send to final reply), as a table or one JSON object.
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
  std::string host = "127.0.0.1";                   // node or broker to load through (-bh)
  uint16_t port = 0;                                // its client/control port (-bp); required
  int broker_pub_port = -1;                         // broker's ring publisher; -1 = port + 1
  std::string workload = "mix";                     // run-phase workload (see WorkloadNames)
  double read_ratio = 0.5;                          // mix: fraction of gets
  uint64_t records = 100000;                        // key space; the load phase inserts them all
  uint64_t value_size = 100;                        // bytes per value
  uint64_t connections = 4;                         // DEALER sockets per node (lanes)
  uint64_t inflight = 32;                           // requests outstanding per lane: connections x
                                                    // inflight in all, spread over the nodes
  std::chrono::seconds duration{10};                // run phase stops after this long...
  uint64_t ops = 0;                                 // ...or after this many ops (0: no count bound)
  bool load_phase = true;                           // insert all records first
  bool run_phase = true;                            // then run the workload
  uint64_t seed = 42;                               // key choice and value bytes
  std::chrono::milliseconds request_timeout{3000};  // a request older than this is an error
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
  std::map<std::string, uint64_t> errors_by_kind;  // status word, "timeout", "send_failed",
                                                   // "no_route"
  uint64_t redirects = 0;                // resends after server_not_responsible (not errors)
  std::map<std::string, OpStats> by_op;  // "put", "get", ...
  double throughput() const { return seconds > 0 ? ops / seconds : 0.0; }
};

// Resends one operation may get after server_not_responsible.
constexpr int kMaxRedirects = 3;

struct BenchResult {
  std::string target;  // "node 127.0.0.1:5144" or "broker ..., ring v3 with 3 nodes"
  std::optional<PhaseResult> load;
  std::optional<PhaseResult> run;
  // The phase the headline numbers describe: run if it ran, else load.
  const PhaseResult* main_phase() const;
};

// Runs the configured phases against the node or cluster. `progress` (may be null) gets
// one line per progress_interval. Errors are only for setup failures; failed
// operations are counted in the result.
Result<BenchResult> RunBench(const BenchConfig& config, std::ostream* progress);

std::string FormatTable(const BenchConfig& config, const BenchResult& result);
// One JSON object on one line: throughput_ops, ops, errors, seconds,
// errors_by_kind, redirects, latency_us.{put,get,...}.{count,p50,p95,p99,p999,max,mean},
// and "load": {...same keys} when a load phase ran before the run phase.
std::string FormatJson(const BenchConfig& config, const BenchResult& result);

}  // namespace kv::bench

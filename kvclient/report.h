// kvbench's output: a table for people (stdout) and one JSON object on one
// line for scripts (--json). JSON keys:
//   workload, target, description, phase, connections, inflight, records,
//   value_size, then the headline phase (run, or load with --load-only):
//   throughput_ops (per second), ops, errors, seconds, redirects, retries,
//   errors_by_kind {kind: n}, latency_us {op: {count, errors, p50, p95, p99,
//   p999, max, mean}} with every op type the workload has (count 0 when none
//   ran), and "load": {the same phase keys} when a load phase ran before the run.
#pragma once

#include <string>

#include "kvclient/bench.h"

namespace kv::bench {

std::string FormatTable(const BenchConfig& config, const BenchResult& result);
std::string FormatJson(const BenchConfig& config, const BenchResult& result);

}  // namespace kv::bench

#include "kvclient/bench.h"

#include <memory>
#include <random>

#include "kvclient/target.h"
#include "kvclient/workload.h"

namespace kv::bench {

Status ValidateConfig(const BenchConfig& c) {
  if (c.target.empty()) {
    if (c.port == 0) {
      return Status::InvalidArgument(
          "a node or broker port is required (-bp PORT), or --target redis://HOST:PORT");
    }
    if (c.host.empty()) {
      return Status::InvalidArgument("a node or broker host is required (-bh HOST)");
    }
  } else if (auto url = ParseRedisUrl(c.target); !url.ok()) {
    return url.status();
  }
  if (!c.load_phase && !c.run_phase) {
    return Status::InvalidArgument("--load-only and --run-only exclude each other");
  }
  if (!c.run_phase && !HasLoadPhase(c.workload)) {
    return Status::InvalidArgument("--load-only: " + c.workload +
                                   " inserts its own keys and has no load phase");
  }
  if (c.records == 0) return Status::InvalidArgument("--records must be at least 1");
  if (c.connections == 0) return Status::InvalidArgument("--connections must be at least 1");
  if (c.inflight == 0) return Status::InvalidArgument("--inflight must be at least 1");
  if (c.run_phase && c.duration.count() <= 0) {
    return Status::InvalidArgument("--duration must be at least 1 second");
  }
  if (c.warmup.count() < 0) return Status::InvalidArgument("--warmup must not be negative");
  if (c.read_ratio < 0.0 || c.read_ratio > 1.0) {
    return Status::InvalidArgument("--read-ratio must be within [0, 1]");
  }
  if (!c.distribution.empty()) {
    if (auto d = ParseDistribution(c.distribution); !d.ok()) return d.status();
  }
  bool known = false;
  for (const auto& name : WorkloadNames()) known = known || name == c.workload;
  if (!known) return Status::InvalidArgument("unknown workload '" + c.workload + "'");
  return Status::Ok();
}

const PhaseResult* BenchResult::main_phase() const {
  if (run) return &*run;
  if (load) return &*load;
  return nullptr;
}

Result<BenchResult> RunBench(const BenchConfig& config, std::ostream* progress) {
  if (Status valid = ValidateConfig(config); !valid.ok()) return valid;
  WorkloadOptions workload_options{config.records, config.read_ratio, std::nullopt};
  if (!config.distribution.empty()) {
    workload_options.distribution = *ParseDistribution(config.distribution);
  }
  auto workload = MakeWorkload(config.workload, workload_options);
  if (!workload.ok()) return workload.status();

  TargetOptions target_options{config.connections, config.request_timeout, config.broker_pub_port,
                               config.ordered_reads};
  Result<std::unique_ptr<Target>> target =
      config.target.empty() ? MakeClusterTarget(config.host, config.port, target_options)
                            : MakeRedisTarget(*ParseRedisUrl(config.target), target_options);
  if (!target.ok()) return target.status();

  BenchResult result;
  result.target = (*target)->Describe();
  result.workload = (*workload)->Describe();
  PhaseRunner runner(**target, RunnerOptions{config.connections, config.inflight,
                                             config.value_size, config.seed,
                                             config.progress_interval, progress});
  std::mt19937_64 rng(config.seed);
  if (config.load_phase && HasLoadPhase(config.workload)) {
    std::unique_ptr<Workload> load = MakeLoadWorkload(config.records);
    result.load = runner.Run("load", *load, rng, PhaseLimits{});
  }
  if (config.run_phase) {
    PhaseLimits limits{std::chrono::duration_cast<std::chrono::milliseconds>(config.duration),
                       config.ops,
                       std::chrono::duration_cast<std::chrono::milliseconds>(config.warmup)};
    result.run = runner.Run("run", **workload, rng, limits);
  }
  return result;
}

}  // namespace kv::bench

// kvbench: load generator for a kvnode, a cluster (through its kvbroker) or
// Redis. Parses flags into a BenchConfig, runs the phases (kvclient/bench.h)
// and prints a table or one JSON object on stdout (kvclient/report.h);
// progress lines go to stderr when it is a terminal or with --progress.
#include <unistd.h>

#include <iostream>
#include <string>

#include "kvclient/bench.h"
#include "kvclient/report.h"
#include "kvclient/workload.h"
#include "schema/flags.h"
#include "schema/logging.h"

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

}  // namespace

int main(int argc, char** argv) {
  kv::bench::BenchConfig config;
  // FlagParser fills int64_t; these mirror the unsigned config fields.
  int64_t records = config.records, value_size = config.value_size,
          connections = config.connections, inflight = config.inflight,
          duration_s = config.duration.count(), ops = config.ops,
          seed = static_cast<int64_t>(config.seed), timeout_ms = config.request_timeout.count(),
          broker_pub_port = config.broker_pub_port, warmup_s = config.warmup.count();
  bool load_only = false, run_only = false, json = false, progress = false;
  std::string log_level = "WARNING";

  kv::FlagParser flags(
      "kvbench",
      "Closed-loop load generator for our store (-bh/-bp: a node or a broker) or Redis\n"
      "(--target redis://HOST:PORT): inserts --records keys (load phase), then runs a\n"
      "workload (run phase) for --warmup + --duration seconds or until --ops, keeping\n"
      "--connections x --inflight requests outstanding. Workloads: a (50% read, 50% update),\n"
      "b (95/5), c (read only), d (95% read, 5% insert, latest keys), f (50% read, 50%\n"
      "read-modify-write), all zipfian unless told otherwise; mix (get/put by --read-ratio,\n"
      "uniform); seed1 (per key put, get, update, delete) and seed2 (the four in four loops\n"
      "over all keys), which insert their own keys and skip the load phase.");
  flags.String({"-bh", "--host"}, "HOST", "node, or broker of a cluster, to load", &config.host);
  flags.Port({"-bp", "--port"},
             "client port of that node or control port of that broker (required without --target)",
             &config.port);
  flags.Int({"--broker-pub-port"}, "PORT", "the broker's ring publisher (-1: -bp + 1)",
            &broker_pub_port, -1, 65535);
  flags.String({"--target"}, "URL", "redis://HOST:PORT: load Redis instead of -bh/-bp",
               &config.target);
  flags.Choice({"--workload"}, "run-phase workload", &config.workload,
               kv::bench::WorkloadNames());
  flags.Add(
      {"--distribution"}, "D",
      "key choice instead of the workload's own: zipfian|uniform|latest",
      [&](const std::string& v) {
        config.distribution = v;
        return kv::bench::ParseDistribution(v).status();
      },
      "the workload's");
  flags.Add(
      {"--read-ratio"}, "F", "mix: fraction of gets, the rest are puts",
      [&](const std::string& v) {
        try {
          size_t used = 0;
          config.read_ratio = std::stod(v, &used);
          if (used == v.size() && config.read_ratio >= 0 && config.read_ratio <= 1) {
            return kv::Status::Ok();
          }
        } catch (const std::exception&) {
        }
        return kv::Status::InvalidArgument("'" + v + "' is not a fraction in [0, 1]");
      },
      "0.5");
  flags.Int({"--records"}, "N", "number of keys", &records, 1, int64_t{1} << 40);
  flags.Int({"--value-size"}, "B", "bytes per value", &value_size, 0, 64 << 20);
  flags.Int({"--connections"}, "C", "connections to each node (to Redis: in all)", &connections, 1,
            4096);
  flags.Int({"--inflight"}, "K", "operations outstanding per connection (C x K in all)", &inflight,
            1, 100000);
  flags.Int({"--duration"}, "S", "stop the run phase after S measured seconds", &duration_s, 1,
            86400);
  flags.Int({"--warmup"}, "S", "run S seconds before measuring (left out of every figure)",
            &warmup_s, 0, 3600);
  flags.Int({"--ops"}, "N", "stop the run phase after N ops (0: no count bound)", &ops, 0,
            int64_t{1} << 50);
  flags.AddSwitch({"--load-only"}, "only insert the records", &load_only);
  flags.AddSwitch({"--run-only"}, "only run the workload (records already loaded)", &run_only);
  flags.Int({"--seed"}, "N", "seed for key choice and values", &seed, 0, INT64_MAX);
  flags.Int({"--timeout-ms"}, "N", "a request without a reply by then is an error", &timeout_ms, 1,
            3'600'000);
  flags.AddSwitch({"--ordered"},
                  "cluster: a get waits for its connection's earlier writes of its key, as the "
                  "protocol orders them by default (kvbench's in-flight slots are independent "
                  "clients, so by default their gets are sent unordered; Redis keeps order anyway)",
                  &config.ordered_reads);
  flags.AddSwitch({"--json"}, "print one JSON object instead of the table", &json);
  flags.AddSwitch({"--progress"}, "a progress line a second on stderr even if not a terminal",
                  &progress);
  flags.String({"-ll", "--log-level"}, "LEVEL", "ALL|FINE|INFO|WARNING|SEVERE|OFF (stderr)",
               &log_level);

  kv::Status parsed = flags.Parse(argc, argv);
  if (!parsed.ok()) {
    std::cerr << "kvbench: " << parsed.message() << std::endl;
    return kExitUsage;
  }
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  if (!flags.positional().empty()) {
    std::cerr << "kvbench: unexpected argument '" << flags.positional()[0] << "' (see -h)\n";
    return kExitUsage;
  }
  auto level = kv::ParseLogLevel(log_level);
  if (!level.ok()) {
    std::cerr << "kvbench: -ll: " << level.status().message() << std::endl;
    return kExitUsage;
  }
  if (kv::Status s = kv::SetupLogging("kvbench", "", *level); !s.ok()) {
    std::cerr << "kvbench: " << s.ToString() << std::endl;
    return kExitFailure;
  }
  config.records = records;
  config.value_size = value_size;
  config.connections = connections;
  config.inflight = inflight;
  config.duration = std::chrono::seconds(duration_s);
  config.ops = ops;
  config.seed = static_cast<uint64_t>(seed);
  config.request_timeout = std::chrono::milliseconds(timeout_ms);
  config.broker_pub_port = static_cast<int>(broker_pub_port);
  config.warmup = std::chrono::seconds(warmup_s);
  config.load_phase = !run_only;
  config.run_phase = !load_only;
  if (!config.target.empty() && config.port != 0) {
    std::cerr << "kvbench: -bp and --target exclude each other\n";
    return kExitUsage;
  }
  if (kv::Status s = kv::bench::ValidateConfig(config); !s.ok()) {
    std::cerr << "kvbench: " << s.message() << std::endl;
    return kExitUsage;
  }

  const bool show_progress = progress || ::isatty(STDERR_FILENO);
  auto result = kv::bench::RunBench(config, show_progress ? &std::cerr : nullptr);
  if (!result.ok()) {
    std::cerr << "kvbench: " << result.status().ToString() << std::endl;
    return kExitFailure;
  }
  if (json) {
    std::cout << kv::bench::FormatJson(config, *result) << std::endl;
  } else {
    std::cout << kv::bench::FormatTable(config, *result) << std::flush;
  }
  // Exit 1 when a phase got nothing done (e.g. nothing at that address).
  for (const auto* phase : {&result->load, &result->run}) {
    if (*phase && (*phase)->ops > 0 && (*phase)->errors == (*phase)->ops) return kExitFailure;
  }
  return 0;
}

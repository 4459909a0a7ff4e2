// kvecs: parses flags into an EcsConfig, sets up logging and signals, runs
// the EcsServer until SIGINT/SIGTERM. Protocol: ecs/server.h; decisions:
// ecs/coordinator.h; state: ecs/ring_store.h.

#include "ecs/config.h"
#include "ecs/server.h"
#include "schema/flags.h"
#include "schema/server_main.h"
#include "schema/stop_signals.h"

int main(int argc, char** argv) {
  kv::BlockStopSignals();  // before any thread starts: see stop_signals.h

  kv::EcsConfig c;
  kv::FlagParser flags("kvecs",
                       "The external configuration service: owns the ring, turns join and leave "
                       "requests from the broker into ring versions, one transition at a "
                       "time, with data hand-off between nodes; fails over at once on "
                       "nodeFailed and re-replicates what the failure left short.");
  flags.String({"-bh", "--broker-host"}, "HOST", "broker host (required)", &c.broker_host);
  flags.Port({"-bp", "--broker-port"}, "broker control port (required)", &c.broker_port);
  flags.OptionalPort({"--broker-sub-port"}, "broker XSUB port the ring is published to",
                     &c.broker_sub_port, "broker port + 2");
  flags.String({"-d", "--data-dir"}, "DIR", "state directory (LMDB), created if missing",
               &c.data_dir);
  flags.Int({"--replication-factor"}, "N",
            "copies of each range: its primary and the next N-1 nodes clockwise (with fewer "
            "nodes, every node holds everything); a stored ring keeps its own",
            &c.replication_factor, 1, 255);
  flags.Int({"--batch-window-ms"}, "MS",
            "wait this long after the first queued request, so a storm lands in one transition",
            &c.batch_window_ms, 0, 3600000);
  flags.Int({"--transfer-timeout-ms"}, "MS", "abort a transition whose hand-offs take longer",
            &c.transfer_timeout_ms, 1, 86400000);
  flags.Int({"--repair-timeout-ms"}, "MS",
            "an attempt of a re-replication transfer after a failure fails after this long",
            &c.repair_timeout_ms, 1, 86400000);
  flags.Int({"--repair-retry-ms"}, "MS",
            "wait before retrying a failed re-replication transfer; doubles per attempt",
            &c.repair_retry_ms, 1, 3600000);
  flags.Int({"--repair-retry-cap-ms"}, "MS", "longest wait between re-replication attempts",
            &c.repair_retry_cap_ms, 1, 3600000);
  flags.Int({"--repair-attempts"}, "N",
            "attempts per re-replication transfer before it is given up (logged as an error)",
            &c.repair_attempts, 1, 1000);
  flags.Int({"--repair-report-ms"}, "MS", "log the ranges still under-replicated this often",
            &c.repair_report_ms, 1, 3600000);
  flags.Int({"--republish-ms"}, "MS", "publish the current ring again this often", &c.republish_ms,
            1, 3600000);
  flags.Int({"--credit"}, "N", "most requests the ECS holds unanswered", &c.credit, 1, 1000000);
  kv::AddLogFlags(flags, &c.log_file, &c.log_level);

  if (auto code = kv::ParseServerFlags("kvecs", flags, argc, argv,
                                       [&] { return kv::ResolveConfig(&c); })) {
    return *code;
  }
  if (auto code = kv::StartLogging("kvecs", c.log_file, c.log_level)) return *code;
  kv::EcsServer server(c);
  return kv::StartAndRun("kvecs", server);
}

// kvecs: parses flags into an EcsConfig, sets up logging and signals, runs
// the EcsServer until SIGINT/SIGTERM. Protocol: ecs/server.h; decisions:
// ecs/coordinator.h; state: ecs/ring_store.h.
#include <signal.h>

#include <iostream>
#include <optional>
#include <string>

#include "ecs/config.h"
#include "ecs/server.h"
#include "schema/flags.h"
#include "schema/logging.h"
#include "schema/stop_signals.h"

namespace {

kv::EcsServer* g_server = nullptr;  // for the signal handler only
void OnSignal(int) {
  if (g_server != nullptr) g_server->RequestStop();
}

int Fail(const std::string& message, int code) {
  std::cerr << "kvecs: " << message << "\n";
  return code;
}

}  // namespace

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
  flags.String({"-l", "--log-file"}, "FILE", "log file (default: stderr)", &c.log_file);
  flags.String({"-ll", "--log-level"}, "LEVEL",
               "ALL|FINE|INFO|WARNING|SEVERE|OFF or trace|debug|info|warn|error|off", &c.log_level);

  kv::Status s = flags.Parse(argc, argv);
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  if (s.ok() && !flags.positional().empty()) {
    s = kv::Status::InvalidArgument("unexpected argument '" + flags.positional()[0] + "'");
  }
  if (s.ok()) s = kv::ResolveConfig(&c);
  if (!s.ok()) return Fail(s.message() + " (-h for help)", 2);
  auto level = kv::ParseLogLevel(c.log_level);
  if (!level.ok()) return Fail(level.status().message(), 2);
  s = kv::SetupLogging("kvecs", c.log_file, *level);
  if (!s.ok()) return Fail(s.message(), 1);

  kv::EcsServer server(c);
  s = server.Start();
  if (!s.ok()) {
    spdlog::critical("cannot start: {}", s.ToString());
    return Fail("cannot start: " + s.ToString(), 1);
  }
  g_server = &server;
  kv::InstallStopHandler(OnSignal);

  s = server.Run();
  g_server = nullptr;
  if (!s.ok()) {
    spdlog::critical("stopped with error: {}", s.ToString());
    return 1;
  }
  return 0;
}

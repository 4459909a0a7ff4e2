// kvbroker: parses flags into a BrokerConfig, sets up logging and signals,
// runs the Broker until SIGINT/SIGTERM. Protocol: broker/broker.h.
#include <pthread.h>
#include <signal.h>

#include <iostream>
#include <optional>
#include <string>

#include "broker/broker.h"
#include "broker/config.h"
#include "schema/flags.h"
#include "schema/logging.h"
#include "schema/stop_signals.h"

namespace {

kv::Broker* g_broker = nullptr;  // for the signal handler only
void OnSignal(int) {
  if (g_broker != nullptr) g_broker->RequestStop();
}

}  // namespace

int main(int argc, char** argv) {
  // The port file announces readiness, so a SIGTERM may follow at once: hold
  // the stop signals until the handler and its pipe exist. Blocked before any
  // thread starts (spdlog's flusher, ZeroMQ's I/O threads), so those threads
  // keep them blocked and only this one takes them once they are let in.
  kv::BlockStopSignals();  // before any thread starts: see stop_signals.h

  kv::BrokerConfig c;
  kv::FlagParser flags("kvbroker",
                       "The control-plane broker: queues membership requests for the ECS, "
                       "answers getRing and heartbeats, and relays ring updates to subscribers.");
  flags.String({"-a", "--address"}, "ADDR", "address all sockets bind to", &c.address);
  flags.Port({"-p", "--port"}, "control port (ROUTER); 0 = any free port, also for pub and sub",
             &c.port);
  flags.OptionalPort({"--pub-port"}, "event-plane XPUB port nodes and clients subscribe to",
                     &c.pub_port, "control port + 1");
  flags.OptionalPort({"--sub-port"}, "event-plane XSUB port the ECS publishes to", &c.sub_port,
                     "control port + 2");
  flags.Int({"--max-queue"}, "N", "queued join/leave/nodeFailed requests before overloaded",
            &c.max_queue, 1, 10000000);
  flags.Int({"--failure-timeout-ms"}, "N",
            "report a ring member to the ECS as failed after N ms without a heartbeat, and "
            "again every N ms while it stays in the ring (0 = never; keep above the nodes' "
            "--lease-ms)",
            &c.failure_timeout_ms, 0, 3'600'000);
  flags.String({"--port-file"}, "FILE",
               "write \"CONTROL PUB SUB\" ports to FILE once all are bound", &c.port_file);
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
  if (s.ok()) s = kv::ResolvePorts(&c);
  if (!s.ok()) {
    std::cerr << "kvbroker: " << s.message() << "\n";
    return 2;
  }
  auto level = kv::ParseLogLevel(c.log_level);
  if (!level.ok()) {
    std::cerr << "kvbroker: " << level.status().message() << "\n";
    return 2;
  }
  s = kv::SetupLogging("kvbroker", c.log_file, *level);
  if (!s.ok()) {
    std::cerr << "kvbroker: " << s.message() << "\n";
    return 1;
  }

  kv::Broker broker(c);
  s = broker.Start();
  if (!s.ok()) {
    spdlog::critical("cannot start: {}", s.ToString());
    std::cerr << "kvbroker: cannot start: " << s.ToString() << "\n";
    return 1;
  }
  g_broker = &broker;
  kv::InstallStopHandler(OnSignal);

  s = broker.Run();
  g_broker = nullptr;
  if (!s.ok()) {
    spdlog::critical("stopped with error: {}", s.ToString());
    return 1;
  }
  return 0;
}

// kvbroker: parses flags into a BrokerConfig, sets up logging and signals,
// runs the Broker until SIGINT/SIGTERM. Protocol: broker/broker.h.

#include "broker/broker.h"
#include "broker/config.h"
#include "schema/flags.h"
#include "schema/server_main.h"
#include "schema/stop_signals.h"

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
  kv::AddLogFlags(flags, &c.log_file, &c.log_level);

  if (auto code = kv::ParseServerFlags("kvbroker", flags, argc, argv,
                                       [&] { return kv::ResolvePorts(&c); })) {
    return *code;
  }
  if (auto code = kv::StartLogging("kvbroker", c.log_file, c.log_level)) return *code;
  kv::Broker broker(c);
  return kv::StartAndRun("kvbroker", broker);
}

// Configuration of one kvbroker process: every field, its flag and its default.
// main.cpp fills it from flags; ResolvePorts derives the event-plane ports;
// the Broker gets it through its constructor.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "schema/status.h"

namespace kv {

struct BrokerConfig {
  std::string address = "127.0.0.1";  // -a: interface all three sockets bind to
  uint16_t port = 5150;                // -p: control ROUTER port; 0 = ephemeral
  std::optional<uint16_t> pub_port;    // --pub-port: XPUB (nodes/clients SUB here);
                                       //   unset = port + 1, or ephemeral when port is 0
  std::optional<uint16_t> sub_port;    // --sub-port: XSUB (the ECS's PUB connects here);
                                       //   unset = port + 2, or ephemeral when port is 0
  int64_t max_queue = 1000;            // --max-queue: queued join/leave/nodeFailed requests
                                       //   before new ones are answered overloaded
  std::string port_file;               // --port-file: "CONTROL PUB SUB\n" once all are bound
  std::string log_file;                // -l: log file; empty = stderr
  std::string log_level = "INFO";      // -ll: spdlog or seed level name
  int64_t max_frame_bytes = 1 << 20;   // cap on one incoming message (a ring of ~10k nodes);
                                       //   a peer sending more is disconnected by ZeroMQ
  int64_t failure_timeout_ms = 1500;   // --failure-timeout-ms: a ring member not heard from
                                       //   (heartbeat) this long is reported to the ECS as
                                       //   nodeFailed, again every this long while it stays in
                                       //   the ring; 0 = no failure detection. Keep it above
                                       //   the nodes' --lease-ms.
  int64_t failure_check_ms = 100;      // longest the event loop sleeps between looks at the
                                       //   clock for silent members (no flag; tests driving a
                                       //   fake clock rely on it)
};

// Fills pub_port and sub_port when unset: control port + 1 and + 2, or 0
// (ephemeral) when the control port is 0. InvalidArgument when a derived port
// would pass 65535 or two fixed ports collide.
Status ResolvePorts(BrokerConfig* config);

}  // namespace kv

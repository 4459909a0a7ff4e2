// Configuration of one kvecs process: every field, its flag and its default.
// main.cpp fills it from flags; ResolveConfig checks it and derives the
// broker's sub port; the EcsServer gets it through its constructor.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "ecs/coordinator.h"
#include "schema/status.h"

namespace kv {

struct EcsConfig {
  std::string broker_host;                  // -bh: broker host (required)
  uint16_t broker_port = 0;                 // -bp: broker control port (required)
  std::optional<uint16_t> broker_sub_port;  // --broker-sub-port: broker XSUB our PUB
                                            //   connects to; unset = broker_port + 2
  std::string data_dir = "ecs-data";        // -d: LMDB state dir, created if missing
  int64_t replication_factor = 3;           // --replication-factor: copies of each range
                                            //   (primary + next N-1 nodes), stored in
                                            //   every new ring
  int64_t batch_window_ms = 100;            // --batch-window-ms: wait after the first
                                            //   queued request before a transition
  int64_t transfer_timeout_ms = 30000;      // --transfer-timeout-ms: abort a transition
                                            //   whose transfers take longer
  int64_t repair_timeout_ms = 300000;       // --repair-timeout-ms: one attempt of a
                                            //   re-replication transfer fails after this
  int64_t repair_retry_ms = 1000;           // --repair-retry-ms: wait before retrying a
                                            //   failed repair transfer; doubles per attempt
  int64_t repair_retry_cap_ms = 30000;      // --repair-retry-cap-ms: longest such wait
  int64_t repair_attempts = 5;              // --repair-attempts: attempts per repair
                                            //   transfer before it is given up
  int64_t repair_report_ms = 5000;          // --repair-report-ms: log what is still
                                            //   under-replicated this often
  int64_t republish_ms = 1000;              // --republish-ms: publish the ring again this
                                            //   often (late subscribers, broker restarts)
  int64_t credit = 64;                      // --credit: most requests held unanswered
  std::string log_file;                     // -l: log file; empty = stderr
  std::string log_level = "INFO";           // -ll: spdlog or seed level name
  int64_t max_frame_bytes = 1 << 20;        // cap on one incoming message (broker, nodes)
  int64_t shutdown_linger_ms = 500;         // on stop, how long unsent aborts and replies
                                            //   may delay exit
};

// InvalidArgument when -bh or -bp is missing or the derived sub port would
// pass 65535; fills broker_sub_port.
Status ResolveConfig(EcsConfig* config);

CoordinatorConfig ToCoordinatorConfig(const EcsConfig& config);

}  // namespace kv

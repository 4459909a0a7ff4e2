// kvnotifybench: measures key subscriptions on a running cluster (see
// docs/subscriptions.md#numbers). Latency: from the moment the key's primary
// acknowledged a write (Notification.publishedMicros) to the moment a
// subscriber's Poll handed out the event, on one host. Throughput: closed-loop
// puts to busy keys with no subscriber, then with many. Each writer and the
// subscribers run in threads of their own, each with its own client objects.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "schema/status.h"

namespace kv::bench {

struct NotifyBenchConfig {
  std::string host;  // broker control port or any node
  uint16_t port = 0;
  int broker_pub_port = -1;           // -1: control port + 1
  std::string mode = "latency";       // latency | throughput
  int64_t keys = 16;                  // keys written (and subscribed to)
  int64_t value_bytes = 100;          // bytes per value
  std::chrono::seconds duration{10};  // per measured run
  int64_t rate = 2000;                // latency: puts per second (paced)
  int64_t writers = 8;                // throughput: writer threads
  int64_t subscribers = 100;          // throughput: subscribers in the second run
};

struct NotifyBenchResult {
  // latency (µs)
  uint64_t events = 0, gaps = 0;
  uint64_t p50_us = 0, p90_us = 0, p99_us = 0, max_us = 0;
  // throughput (puts per second)
  double puts_per_s_alone = 0, puts_per_s_subscribed = 0;
  uint64_t puts_alone = 0, puts_subscribed = 0;
};

// Runs the configured measurement and prints a summary line per run to stdout.
Result<NotifyBenchResult> RunNotifyBench(const NotifyBenchConfig& config);

}  // namespace kv::bench

// kvnotifybench: latency and write throughput of key subscriptions on a
// running cluster (kvclient/notify_bench.h). Flags fill NotifyBenchConfig.
#include <iostream>

#include "kvclient/notify_bench.h"
#include "schema/flags.h"
#include "schema/logging.h"

int main(int argc, char** argv) {
  kv::bench::NotifyBenchConfig c;
  int64_t duration_s = c.duration.count();
  int64_t pub = c.broker_pub_port;
  std::string log_level = "WARNING";
  kv::FlagParser flags("kvnotifybench",
                       "Measures key subscriptions: notification latency from commit to "
                       "delivery, and put throughput with many subscribers versus none.");
  flags.String({"-bh", "--host"}, "HOST", "broker or node to connect to", &c.host);
  flags.Port({"-bp", "--port"}, "its control (broker) or client (node) port", &c.port);
  flags.Int({"--broker-pub-port"}, "PORT", "the broker's ring publisher (-1: -bp + 1)", &pub, -1,
            65535);
  flags.Choice({"--mode"}, "latency or throughput", &c.mode, {"latency", "throughput"});
  flags.Int({"--keys"}, "N", "busy keys written and subscribed to", &c.keys, 1, 1 << 20);
  flags.Int({"--value-size"}, "B", "bytes per value", &c.value_bytes, 0, 1 << 20);
  flags.Int({"--duration"}, "S", "seconds per measured run", &duration_s, 1, 3600);
  flags.Int({"--rate"}, "N", "latency: puts per second", &c.rate, 1, 1'000'000);
  flags.Int({"--writers"}, "N", "throughput: writer threads", &c.writers, 1, 1024);
  flags.Int({"--subscribers"}, "N", "throughput: subscribers in the second run", &c.subscribers, 0,
            10000);
  flags.String({"-ll", "--log-level"}, "LEVEL", "log level (stderr)", &log_level);
  if (kv::Status s = flags.Parse(argc, argv); !s.ok()) {
    std::cerr << "kvnotifybench: " << s.message() << std::endl;
    return 2;
  }
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  if (c.host.empty() || c.port == 0) {
    std::cerr << "kvnotifybench: -bh and -bp are required" << std::endl;
    return 2;
  }
  auto level = kv::ParseLogLevel(log_level);
  if (!level.ok() || !kv::SetupLogging("kvnotifybench", "", *level).ok()) {
    std::cerr << "kvnotifybench: bad log level" << std::endl;
    return 2;
  }
  c.duration = std::chrono::seconds(duration_s);
  c.broker_pub_port = static_cast<int>(pub);
  auto result = kv::bench::RunNotifyBench(c);
  if (!result.ok()) {
    std::cerr << "kvnotifybench: " << result.status().ToString() << std::endl;
    return 1;
  }
  return 0;
}

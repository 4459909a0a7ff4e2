// kvnode: parses flags into a NodeConfig, sets up logging and signals, runs
// the Server until SIGINT/SIGTERM.
#include <signal.h>

#include <cstdio>
#include <iostream>

#include "kvnode/cache.h"
#include "kvnode/config.h"
#include "kvnode/server.h"
#include "schema/flags.h"
#include "schema/logging.h"

namespace {
kv::Server* g_server = nullptr;  // for the signal handler only
void OnSignal(int) {
  if (g_server != nullptr) g_server->RequestStop();
}
}  // namespace

int main(int argc, char** argv) {
  kv::NodeConfig c;
  kv::FlagParser flags("kvnode", "A storage node of the key-value store: serves clients from LMDB.");
  flags.String({"-a", "--address"}, "ADDR", "address to listen on", &c.address);
  flags.Port({"-p", "--port"}, "port to listen on; 0 = any free port (logged)", &c.port);
  flags.String({"-d", "--data-dir"}, "DIR", "data directory, created if missing", &c.data_dir);
  flags.String({"-l", "--log-file"}, "FILE", "log file (default: stderr)", &c.log_file);
  flags.String({"-ll", "--log-level"}, "LEVEL",
               "ALL|FINE|INFO|WARNING|SEVERE|OFF or trace|debug|info|warn|error|off",
               &c.log_level);
  flags.Int({"-c", "--cache-size"}, "N", "cache capacity in entries; 0 disables the cache",
            &c.cache_entries, 0, 100000000);
  flags.Choice({"-s", "--cache-strategy"}, "cache eviction strategy", &c.cache_strategy,
               {"FIFO", "LRU", "LFU"});
  flags.String({"-bh", "--broker-host"}, "HOST",
               "broker to join (cluster mode; not available in this version)", &c.broker_host);
  flags.Port({"-bp", "--broker-port"}, "broker port (cluster mode)", &c.broker_port);
  flags.Choice({"--sync"},
               "always: a write is acknowledged after fsync; none: no fsync (a crash of the "
               "machine may lose acknowledged writes)",
               &c.sync, {"always", "none"});
  flags.Int({"--max-value-bytes"}, "N", "largest value accepted", &c.max_value_bytes, 0,
            256 << 20);
  flags.Int({"--max-batch"}, "N", "most requests taken into one group commit", &c.max_batch, 1,
            1 << 20);
  flags.Int({"--map-size-mb"}, "N", "LMDB map size: the most data this node can hold",
            &c.map_size_mb, 16, 1 << 30);
  flags.Int({"--memtable-mb"}, "N",
            "write-ahead log data held in memory before it is flushed into LMDB",
            &c.memtable_mb, 1, 1 << 20);
  flags.String({"--port-file"}, "FILE", "write the bound port to FILE once listening",
               &c.port_file);

  kv::Status s = flags.Parse(argc, argv);
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  if (s.ok() && !flags.positional().empty()) {
    s = kv::Status::InvalidArgument("unexpected argument '" + flags.positional()[0] + "'");
  }
  if (!s.ok()) {
    std::cerr << "kvnode: " << s.message() << "\n";
    return 2;
  }
  if (!c.broker_host.empty() || c.broker_port != 0) {
    std::cerr << "kvnode: cluster mode (-bh/-bp) is not available in this version; "
                 "run without them for a standalone node\n";
    return 2;
  }
  auto level = kv::ParseLogLevel(c.log_level);
  if (!level.ok()) {
    std::cerr << "kvnode: " << level.status().message() << "\n";
    return 2;
  }
  s = kv::SetupLogging("kvnode", c.log_file, *level);
  if (!s.ok()) {
    std::cerr << "kvnode: " << s.message() << "\n";
    return 1;
  }

  kv::Server server(c);
  s = server.Start();
  if (!s.ok()) {
    spdlog::critical("cannot start: {}", s.ToString());
    std::cerr << "kvnode: cannot start: " << s.ToString() << "\n";
    return 1;
  }
  g_server = &server;
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  s = server.Run();
  g_server = nullptr;
  if (!s.ok()) {
    spdlog::critical("stopped with error: {}", s.ToString());
    return 1;
  }
  return 0;
}

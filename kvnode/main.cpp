// kvnode: parses flags into a NodeConfig, sets up logging and signals, runs
// the Server until SIGINT/SIGTERM.

#include "kvnode/cache.h"
#include "kvnode/config.h"
#include "kvnode/server.h"
#include "schema/flags.h"
#include "schema/server_main.h"
#include "schema/stop_signals.h"

int main(int argc, char** argv) {
  kv::BlockStopSignals();  // before any thread starts: see stop_signals.h

  kv::NodeConfig c;
  kv::FlagParser flags("kvnode",
                       "A storage node of the key-value store: serves clients from LMDB.");
  flags.String({"-a", "--address"}, "ADDR", "address to listen on", &c.address);
  flags.Port({"-p", "--port"}, "port to listen on; 0 = any free port (logged)", &c.port);
  flags.String({"-d", "--data-dir"}, "DIR", "data directory, created if missing", &c.data_dir);
  kv::AddLogFlags(flags, &c.log_file, &c.log_level);
  flags.Int({"-c", "--cache-size"}, "N", "cache capacity in entries; 0 disables the cache",
            &c.cache_entries, 0, 100000000);
  flags.Choice({"-s", "--cache-strategy"}, "cache eviction strategy", &c.cache_strategy,
               {"FIFO", "LRU", "LFU"});
  flags.String({"-bh", "--broker-host"}, "HOST",
               "broker to join; without it the node runs standalone and owns the whole ring",
               &c.broker_host);
  flags.Port({"-bp", "--broker-port"}, "broker control port (cluster mode)", &c.broker_port);
  flags.String({"--advertise"}, "HOST",
               "address other processes use to reach this node "
               "(default: -a)",
               &c.advertise);
  flags.Int({"--peer-port"}, "PORT", "hand-off port; -1 = -p + 1 (any free port with -p 0)",
            &c.peer_port, -1, 65535);
  flags.Int({"--notify-port"}, "PORT",
            "key-change notification (XPUB) port; -1 = -p + 2 when free, else any free port",
            &c.notify_port, -1, 65535);
  flags.Int({"--notify-hwm"}, "N",
            "notifications queued per subscriber before newer ones are dropped for it",
            &c.notify_hwm, 1, 10000000);
  flags.Int({"--broker-pub-port"}, "PORT", "broker's ring-update port; -1 = -bp + 1",
            &c.broker_pub_port, -1, 65535);
  flags.Int({"--join-retry-ms"}, "MS", "re-send an unanswered join or leave after this",
            &c.join_retry_ms, 10, 600000);
  flags.Int({"--leave-timeout-ms"}, "MS",
            "on SIGTERM, exit after this even if the leave "
            "has not completed",
            &c.leave_timeout_ms, 100, 86400000);
  flags.Int({"--handoff-chunk-kb"}, "KB", "keys and values per hand-off chunk", &c.handoff_chunk_kb,
            1, 65536);
  flags.Int({"--handoff-window"}, "N", "unacknowledged hand-off chunks per transfer",
            &c.handoff_window, 1, 1024);
  flags.Int({"--forward-timeout-ms"}, "MS",
            "a write forwarded during hand-off fails if the "
            "target has not confirmed it by then",
            &c.forward_timeout_ms, 10, 600000);
  flags.Int({"--heartbeat-ms"}, "MS", "heartbeat to the broker this often", &c.heartbeat_ms, 10,
            60000);
  flags.Int({"--lease-ms"}, "MS",
            "stop serving (server_stopped) when no heartbeat sent within this was answered; "
            "keep it below the broker's --failure-timeout-ms",
            &c.lease_ms, 50, 600000);
  flags.Int({"--replica-retry-ms"}, "MS", "re-send replication a replica has not acknowledged",
            &c.replica_retry_ms, 10, 600000);
  flags.Int({"--repair-rate-mb"}, "MB", "MB/s cap on re-replication streams; 0 = no cap",
            &c.repair_rate_mb, 0, 1 << 20);
  flags.Choice({"--sync"},
               "always: a write is acknowledged after fsync; none: no fsync (a crash of the "
               "machine may lose acknowledged writes)",
               &c.sync, {"always", "none"});
  flags.Int({"--max-value-bytes"}, "N", "largest value accepted", &c.max_value_bytes, 0, 256 << 20);
  flags.Int({"--max-batch"}, "N", "most requests taken into one group commit", &c.max_batch, 1,
            1 << 20);
  flags.Int({"--map-size-mb"}, "N", "LMDB map size: the most data this node can hold",
            &c.map_size_mb, 16, 1 << 30);
  flags.Int({"--memtable-mb"}, "N",
            "write-ahead log data held in memory before it is flushed into LMDB", &c.memtable_mb, 1,
            1 << 20);
  flags.String({"--port-file"}, "FILE", "write \"CLIENT_PORT PEER_PORT\" to FILE once listening",
               &c.port_file);

  if (auto code = kv::ParseServerFlags("kvnode", flags, argc, argv, [&] {
        if (c.broker_host.empty() != (c.broker_port == 0)) {
          return kv::Status::InvalidArgument("cluster mode needs both -bh and -bp");
        }
        return kv::Status::Ok();
      })) {
    return *code;
  }
  if (auto code = kv::StartLogging("kvnode", c.log_file, c.log_level)) return *code;
  kv::Server server(c);
  return kv::StartAndRun("kvnode", server);
}

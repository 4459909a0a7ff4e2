// Configuration of one kvnode process: every field, its flag and its default.
// main.cpp fills it from flags; the Server gets it through its constructor.
#pragma once

#include <cstdint>
#include <string>

namespace kv {

struct NodeConfig {
  std::string address = "127.0.0.1";  // -a: interface the client socket binds to
  uint16_t port = 0;                   // -p: client port; 0 = ephemeral (logged, see port_file)
  std::string data_dir = "data";       // -d: LMDB environment, created if missing
  std::string log_file;                // -l: log file; empty = stderr
  std::string log_level = "INFO";      // -ll: spdlog or seed level name
  int64_t cache_entries = 10000;       // -c: cached values; 0 disables the cache
  std::string cache_strategy = "LRU";  // -s: FIFO | LRU | LFU
  std::string broker_host;             // -bh: broker to join (cluster mode, next issue)
  uint16_t broker_port = 0;            // -bp
  std::string sync = "always";         // --sync: always = fdatasync the WAL per group commit; none = no fsync
  int64_t max_value_bytes = 1 << 20;   // --max-value-bytes: larger puts get put_error
  int64_t max_batch = 1024;            // --max-batch: requests taken per group commit
  int64_t map_size_mb = 65536;         // --map-size-mb: LMDB map size (upper bound on data size)
  int64_t memtable_mb = 64;            // --memtable-mb: flush the write-ahead log into LMDB past this
  std::string port_file;               // --port-file: "CLIENT PEER\n" ports once listening
  int64_t notify_port = -1;    // --notify-port: key-change XPUB; -1 = -p + 2 if free, else any
  int64_t notify_hwm = 10000;  // --notify-hwm: notifications queued per subscriber, then dropped

  // Cluster mode (with -bh/-bp).
  std::string advertise;               // --advertise: address others use to reach this node (default -a)
  int64_t peer_port = -1;              // --peer-port: hand-off port; -1 = -p + 1 (ephemeral with -p 0)
  int64_t broker_pub_port = -1;        // --broker-pub-port: broker's ring updates; -1 = -bp + 1
  int64_t join_retry_ms = 1000;        // --join-retry-ms: re-send an unanswered join/leave after this
  int64_t leave_timeout_ms = 60000;    // --leave-timeout-ms: give up leaving gracefully after this
  int64_t handoff_chunk_kb = 256;      // --handoff-chunk-kb: bytes of keys+values per hand-off chunk
  int64_t handoff_window = 4;          // --handoff-window: unacknowledged chunks per transfer
  int64_t forward_timeout_ms = 5000;   // --forward-timeout-ms: a forwarded write not acked by then fails
  int64_t heartbeat_ms = 200;          // --heartbeat-ms: heartbeat to the broker this often
  int64_t lease_ms = 1000;             // --lease-ms: serve only this long after the last answered
                                       //   heartbeat was sent (keep below the broker's failure timeout)
  int64_t replica_retry_ms = 300;      // --replica-retry-ms: re-send unacknowledged replication after this
  int64_t repair_rate_mb = 32;         // --repair-rate-mb: MB/s cap on re-replication streams; 0 = none
};

// Largest key the node stores, in bytes (keys are 1..kMaxKeyBytes).
constexpr size_t kMaxKeyBytes = 250;

}  // namespace kv

// What kvbench drives: a store behind one interface, so the runner, the
// workloads and the report are the same for every target. Two kinds:
//
//   cluster  -bh/-bp: a kvnode or a kvbroker, routed like kvclient (Router),
//            one ROUTER socket for every node, connected `lanes` times to
//            each node and naming each TCP connection, the requests issued
//            between two Polls packed into one frame per node, replies matched
//            by request id;
//            server_not_responsible is resent after a ring refresh, and
//            server_stopped/write_lock/overloaded after a back-off (not errors)
//   redis    --target redis://HOST:PORT: `lanes` hiredis connections, requests
//            pipelined on each (replies come back in order); GET, SET, DEL
//
// Send never blocks; Poll waits for replies. Both keep any number of
// requests in flight per lane: the runner decides how many.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kvclient/workload.h"
#include "schema/status.h"

namespace kv::bench {

// One request that finished: answered with success, or failed.
struct TargetReply {
  uint64_t tag = 0;        // as given to Send
  bool ok = false;         // a success word (cluster), a value/OK/1 (redis)
  std::string error_kind;  // when !ok: a status word (get_error, server_stopped, ...),
                           // "not_found" (redis), "timeout", "no_route", "send_failed",
                           // "disconnected", "redis_error", "client_error"
};

// Not thread-safe: one thread (the runner) owns a Target.
class Target {
 public:
  virtual ~Target() = default;
  // "node 127.0.0.1:5144", "broker ..., ring v3 with 3 nodes", "redis 127.0.0.1:6379".
  virtual std::string Describe() const = 0;
  // Queues one request on lane (taken modulo the lane count). A request that
  // cannot be sent is reported failed by the next Poll.
  virtual void Send(size_t lane, uint64_t tag, Action action, std::string_view key,
                    std::string_view value) = 0;
  // Waits up to `wait` for something to finish and appends every finished
  // request (replies, timeouts, failed sends) to *out.
  virtual void Poll(std::chrono::milliseconds wait, std::vector<TargetReply>* out) = 0;
  // Requests resent after server_not_responsible so far (always 0 for redis).
  virtual uint64_t redirects() const { return 0; }
  // Requests resent after a back-off (server_stopped, server_write_lock,
  // overloaded) so far (always 0 for redis).
  virtual uint64_t retries() const { return 0; }
};

struct TargetOptions {
  size_t lanes = 4;                                 // connections (per node for a cluster)
  std::chrono::milliseconds request_timeout{3000};  // a request unanswered by then fails
  int broker_pub_port = -1;                         // cluster: broker's ring publisher;
                                                    // -1 = control port + 1
  // cluster: a get waits for its lane's earlier, unacknowledged writes of
  // its key (the protocol's default order). Off: gets are sent unordered
  // (Request.unordered), since a lane's in-flight slots are independent
  // clients, each sending its next operation only after its last finished.
  // Redis keeps a connection's order whatever this says.
  bool ordered_reads = false;
};

// Probes host:port (node or broker) and loads the routing table. Fails when
// the address cannot be used or a broker has no nodes in its ring.
Result<std::unique_ptr<Target>> MakeClusterTarget(const std::string& host, uint16_t port,
                                                  const TargetOptions& options);

struct RedisAddress {
  std::string host;
  uint16_t port = 6379;
};

// "redis://HOST:PORT", "redis://HOST" (port 6379), "redis://[::1]:6380".
// InvalidArgument for another scheme, an empty host, a bad port or a path.
Result<RedisAddress> ParseRedisUrl(const std::string& url);

// Connects `lanes` connections and checks each answers PING.
Result<std::unique_ptr<Target>> MakeRedisTarget(const RedisAddress& address,
                                                const TargetOptions& options);

}  // namespace kv::bench

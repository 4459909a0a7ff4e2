// The client library's synchronous API: KvClient puts, gets and deletes keys
// on a cluster (or a standalone node) through a Router, which sends each
// request straight to the node responsible for the key, and applies the retry
// policy. Connection (one DEALER to one node) is in connection.h, routing in
// router.h and routing_table.h, node/broker detection in discovery.h.
//
// Connect(host, port) accepts a kvnode or a kvbroker and tells them apart by
// asking: a kv `keyrange` request first; a kv Reply means a node, and its
// keyrange text is the first routing table. A control-protocol reply (the
// broker refusing a kv frame) or no reply within request_timeout means: send a
// control getRing; a control reply means a broker, its ring is the routing
// table, and the client also subscribes to the broker's pub port (port + 1
// unless broker_pub_port says otherwise) for newer rings. An address where
// nothing answers either is treated as a node that is not up yet.
//
// Reads come in two modes (ReadMode). kPrimary, the default, sends a get to
// the key's primary: linearizable. kAny sends it, flagged staleOk, to any
// node holding a copy (keyrange_read ranges), the least loaded one: it may
// miss writes acknowledged recently. A replica that refuses such a read
// (server_not_responsible from a node without replica reads, or any other
// refusal or a timeout) is not asked again for it: the read goes to the
// primary at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>

#include "kvclient/connection.h"
#include "kvclient/router.h"
#include "kvclient/subscriber.h"
#include "schema/status.h"
#include "schema/wire.h"

namespace kv::client {

enum class ReadMode {
  kPrimary,  // linearizable: the key's primary answers
  kAny,      // stale-OK: any node with a copy may answer (may miss recent writes)
};
const char* ReadModeName(ReadMode mode);  // "primary", "any"

struct ClientOptions {
  // Per-request timeout; also bounds each probe, getRing and keyrange refresh.
  std::chrono::milliseconds request_timeout{3000};
  // The broker's ring publisher (kvbroker --pub-port); -1 = its control port + 1.
  int broker_pub_port = -1;
  // Back-off before retrying server_stopped, server_write_lock, overloaded or
  // a timed-out get: starts here, doubles per retry up to the cap, jittered.
  std::chrono::milliseconds retry_initial_backoff{10};
  std::chrono::milliseconds retry_max_backoff{500};
  // A request that still cannot be served after this long gives up with an
  // error naming the last problem ("gave up after 10 s: server_stopped from
  // 127.0.0.1:5144"). 0 = one attempt, no retries.
  std::chrono::milliseconds retry_budget{10000};
  // Ring refreshes one request may trigger on server_not_responsible (each is
  // followed by an immediate resend); later redirects only back off.
  int max_refreshes = 3;
  // How Get(key) reads; Get(key, mode) overrides it per call.
  ReadMode read_mode = ReadMode::kPrimary;
};

// Synchronous key-value API: each call routes one request to the node
// responsible for the key and waits for its reply, retrying as ClientOptions
// describes. A Result is ok when a node gave a definite answer, whatever its
// status word (put_error, get_error, ...); a key request never returns
// server_not_responsible, server_stopped, server_write_lock or overloaded as
// a reply: it retries, and once the budget is spent returns an error. Other
// errors: not connected, a put or delete that timed out (outcome unknown),
// send queue full. Not thread-safe; one thread owns a KvClient.
class KvClient {
 public:
  explicit KvClient(ClientOptions options = {});
  ~KvClient();
  KvClient(const KvClient&) = delete;
  KvClient& operator=(const KvClient&) = delete;

  // Replaces any current connection; detects node or broker (see above).
  [[nodiscard]] Status Connect(const std::string& host, uint16_t port);
  void Disconnect();
  bool connected() const { return router_.connected(); }
  // "host:port" as given to Connect, empty when not connected.
  std::string address() const { return router_.address(); }
  bool via_broker() const { return router_.via_broker(); }
  // The routing state, for status displays and tests.
  const Router& router() const { return router_; }

  void set_request_timeout(std::chrono::milliseconds timeout);
  std::chrono::milliseconds request_timeout() const { return options_.request_timeout; }
  // Highest ring version seen in any reply or routing table (0 before any).
  uint64_t ring_version() const;

  Result<KvReply> Put(std::string_view key, std::string_view value);
  Result<KvReply> Get(std::string_view key);  // in read_mode()
  Result<KvReply> Get(std::string_view key, ReadMode mode);
  ReadMode read_mode() const { return options_.read_mode; }
  void set_read_mode(ReadMode mode) { options_.read_mode = mode; }
  Result<KvReply> Delete(std::string_view key);
  // From the connected node; through a broker, built from its current ring
  // (Ring::KeyrangeText / KeyrangeReadText) with the ring's version.
  Result<KvReply> Keyrange();
  Result<KvReply> KeyrangeRead();

  // Key subscriptions that follow this client's ring (subscriber.h); made on
  // first use. Poll it (or its PollItem) for notifications.
  Subscriber& subscriptions();

 private:
  // stale_ok: a get any replica may answer (ReadMode::kAny).
  Result<KvReply> Call(Op op, std::string_view key, std::string_view value, bool stale_ok = false);
  Result<KvReply> CallKeyless(Op op);
  Result<KvReply> KeyrangeFromRing(Op op);

  ClientOptions options_;
  zmq::context_t ctx_;
  Router router_;
  uint64_t reply_ring_version_ = 0;
  std::mt19937_64 seeds_;  // seeds each request's back-off jitter
  std::unique_ptr<Subscriber> subscriber_;  // declared after router_: destroyed first
};

}  // namespace kv::client

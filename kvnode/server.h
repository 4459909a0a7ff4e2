// The kvnode server: one event loop (zmq_poll over the client ROUTER socket
// the store's flush events and a stop pipe) that owns the store and the cache.
// Requests are taken in batches; reads of keys the batch does not write are
// answered at once from the cache or the store, writes go to the store as one
// group commit (one WAL append and fdatasync per batch) and are answered only
// after it returns, as are reads of keys the batch writes. Framing:
// schema/framing.h.
// Not thread-safe except RequestStop(), which is async-signal-safe.
#pragma once

#include <memory>
#include <string>
#include <unordered_set>
#include <vector>
#include <zmq.hpp>

#include "kvnode/cache.h"
#include "kvnode/config.h"
#include "kvnode/storage.h"
#include "schema/hash.h"
#include "schema/status.h"
#include "schema/wire.h"

namespace kv {

class Server {
 public:
  explicit Server(NodeConfig config);
  ~Server();

  // Opens the store and binds the socket; after it, port() is the bound port.
  Status Start();
  // Runs until RequestStop(); returns after in-flight writes are committed
  // and answered and the store is closed.
  Status Run();
  // Safe to call from a signal handler or another thread.
  void RequestStop();

  uint16_t port() const { return port_; }

 private:
  // A request held until its batch commits.
  // Key and value are copied: frames may point into buffers ZeroMQ reuses.
  struct Pending {
    zmq::message_t identity;
    Op op = Op::kGet;
    uint64_t request_id = 0;
    std::string key;
    std::string value;
  };

  void ProcessIncoming();
  void HandleFrames(std::vector<zmq::message_t>& frames, size_t total);
  // Answers requests that need no write transaction; returns false if the
  // request must join the write batch.
  bool TryAnswerNow(const zmq::message_t& identity, const Request& request);
  void CommitBatch();
  void Send(const zmq::message_t& identity, const Reply& reply);
  void SendBadRequest(const zmq::message_t& identity, uint64_t request_id,
                      const std::string& reason);
  Status Validate(const Request& request) const;
  std::string KeyrangeText() const;

  NodeConfig config_;
  zmq::context_t ctx_{1};
  zmq::socket_t socket_;
  std::unique_ptr<Store> store_;
  ValueCache cache_;
  uint16_t port_ = 0;
  Hash128 position_;
  int stop_pipe_[2] = {-1, -1};

  std::vector<Pending> batch_;
  std::unordered_set<std::string> batch_keys_;  // keys written by batch_
  std::vector<zmq::message_t> frames_;          // reused receive buffer
  DecodeScratch scratch_;
  std::string value_buf_;                       // reused read buffer
};

}  // namespace kv

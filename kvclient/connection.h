// One client-protocol link to one kvnode: a DEALER with many requests in
// flight, matched to replies by client-chosen request ids, with per-request
// timeouts. Framing as in schema/framing.h: Request frames out (one request
// each, or packed when the connection coalesces), Reply frames back (each
// may pack several replies). Also the reply type the client library hands out (KvReply) and
// the mapping of status words to Status codes.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "kvclient/request_window.h"
#include "schema/status.h"
#include "schema/wire.h"

namespace kv::client {

using Clock = std::chrono::steady_clock;

// A reply that owns its bytes (wire::Reply only views the frame).
struct KvReply {
  uint64_t request_id = 0;
  WireStatus status = WireStatus::BAD_REQUEST;
  std::string key;
  std::string value;
  std::string reason;
  std::string metadata;       // keyrange text "<from>,<to>,<ip>:<port>;..."
  uint64_t ring_version = 0;  // the answering node's ring version
  uint16_t notify_port = 0;   // the node's notification port (0 = none)
};

// Maps a reply's status word to a Status a program can branch on: OK for the
// success words, NotFound for get_error/delete_error without another reason,
// NotResponsible, Overloaded, Unavailable (write lock, stopped) and
// InvalidArgument (bad_request, put_error) otherwise.
Status ToStatus(const KvReply& reply);

// The protocol version a one-frame Cap'n Proto message declares in its first
// field (kv Request/Reply and ControlMessage all keep `version` at ordinal 0,
// so the same read works for all): 1 for the client protocol, 101 for the
// control protocol. nullopt when the frame is not a readable message.
std::optional<uint16_t> ProtocolVersionOf(const zmq::message_t& frame);

class Connection;

// One ROUTER socket that many Connections send and receive through, so a
// poll loop over many nodes polls and reads one socket per turn (kvbench:
// ZeroMQ costs system calls per socket polled and per empty read). Each
// Connection names its TCP connections on it (ZMQ_CONNECT_ROUTING_ID); Pump()
// reads every frame waiting and hands it to the Connection that owns its
// link. Not thread-safe; must outlive the Connections that use it.
class SharedSocket {
 public:
  explicit SharedSocket(zmq::context_t& ctx);
  zmq::socket_t& socket() { return socket_; }
  zmq::pollitem_t PollItem() { return zmq::pollitem_t{socket_.handle(), 0, ZMQ_POLLIN, 0}; }
  // A link name no other connection on this socket has had.
  std::string NewLinkId();
  void Register(const std::string& link, Connection* owner) { owners_[link] = owner; }
  void Unregister(const std::string& link) { owners_.erase(link); }
  // Reads what is waiting and delivers it; frames of unknown links are dropped.
  void Pump();

 private:
  zmq::socket_t socket_;
  std::map<std::string, Connection*> owners_;
  uint64_t next_link_ = 1;
  std::vector<zmq::message_t> frames_;
};

struct ConnectionOptions {
  // How long a request may wait for its reply before it counts as timed out.
  std::chrono::milliseconds request_timeout{3000};
  // Keep requests until Flush() (or until kMaxPackedBytes are waiting) and
  // send them as one packed frame: one ZeroMQ message for many requests.
  // Off: every Send goes out at once (the shell). kvbench turns it on and
  // flushes once per turn of its loop.
  bool coalesce = false;
  // TCP connections the one socket opens to the node (ZeroMQ spreads the
  // frames it sends over them; replies come back on the one they came by).
  // One socket with several connections costs the poll loop as little as a
  // single connection (kvbench --connections).
  int links = 1;
  // Send and receive through this socket instead of one of the connection's
  // own (not owned; it must outlive the connection).
  SharedSocket* shared = nullptr;
};

// One finished request: a reply arrived (result ok) or the request expired
// (result is Status::Timeout).
struct Completion {
  uint64_t request_id = 0;
  Op op = Op::kGet;
  Clock::time_point sent_at;
  Result<KvReply> result = Status::Timeout("");
};

// One DEALER socket connected to one node, with any number of requests in
// flight. Request ids are chosen here (1, 2, 3, ... per connection); a reply
// whose id is not in flight (late after a timeout, duplicated, or id 0 from an
// unreadable request) is counted in stale_replies() and dropped. A frame of
// the control protocol (the peer is a kvbroker, not a node) cannot be matched
// to a request: it is counted in control_replies() and dropped. Not
// thread-safe: one thread owns a Connection. The context must outlive it.
class Connection {
 public:
  Connection(zmq::context_t& ctx, std::string host, uint16_t port, ConnectionOptions options = {});
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Creates the socket and starts connecting (ZeroMQ connects in the
  // background, so an absent node shows up later as timeouts).
  [[nodiscard]] Status Open();

  // "host:port", as used in messages.
  const std::string& address() const { return address_; }
  const ConnectionOptions& options() const { return options_; }
  // Applies to requests already in flight too.
  void set_request_timeout(std::chrono::milliseconds timeout) {
    options_.request_timeout = timeout;
  }
  size_t in_flight() const { return pending_.size(); }
  // Nothing in flight and no completion waiting to be collected.
  bool idle() const { return pending_.empty() && ready_.empty(); }
  uint64_t stale_replies() const { return stale_replies_; }
  uint64_t control_replies() const { return control_replies_; }

  // Queues one request without blocking and returns its request id.
  // Overloaded when the socket's send queue is full (with coalesce: when a
  // full frame could not be sent either). stale_ok (gets only):
  // any replica may answer, see Request.staleOk in schema/kv.capnp.
  // unordered (gets only): need not wait for this connection's
  // unacknowledged writes of the key, see Request.unordered there.
  Result<uint64_t> Send(Op op, std::string_view key = {}, std::string_view value = {},
                        uint64_t ring_version = 0, bool stale_ok = false, bool unordered = false);

  // Sends the requests a coalescing connection is holding, as one frame.
  // Overloaded when the socket's send queue is full (they stay held, for the
  // next Flush); a no-op when nothing is held.
  [[nodiscard]] Status Flush();
  size_t held() const { return out_.count(); }

  // Appends every completion available now (replies already received, and
  // requests older than the timeout at `now`) to *out; never blocks.
  // readable = false skips reading the socket (a poll said nothing is
  // waiting; each empty read costs ZeroMQ system calls) and only expires.
  void Collect(Clock::time_point now, std::vector<Completion>* out, bool readable = true);

  // Flushes, then blocks until the reply to `request_id` arrives or its timeout passes.
  // Other completions that arrive meanwhile are kept for the next Collect.
  Result<KvReply> Await(uint64_t request_id);

  // Stops waiting for a request; a reply that still arrives is stale.
  void Forget(uint64_t request_id) { (void)pending_.Remove(request_id); }

  // When the oldest request in flight times out (nullopt if none in flight).
  std::optional<Clock::time_point> NextDeadline() const;

  // For zmq::poll over several connections (single-threaded event loops).
  // With a SharedSocket, its item (poll it once, not once per connection).
  zmq::pollitem_t PollItem();

  // One reply frame that arrived for this connection (SharedSocket::Pump).
  void Deliver(const zmq::message_t& body);

 private:
  struct Pending {
    Op op;
    Clock::time_point sent_at;
  };
  // Reads replies already waiting on the socket into ready_.
  void ReadAvailable();
  zmq::socket_t* sock() { return options_.shared ? &options_.shared->socket() : &*socket_; }
  bool open() const { return options_.shared ? !link_ids_.empty() : socket_.has_value(); }
  void ExpireBefore(Clock::time_point now);

  zmq::context_t& ctx_;
  std::string host_;
  uint16_t port_;
  std::string address_;
  ConnectionOptions options_;
  std::optional<zmq::socket_t> socket_;
  uint64_t next_request_id_ = 1;
  // By id, which is also send order, so the oldest is first.
  RequestWindow<Pending> pending_;
  std::vector<Completion> ready_;  // handed out by Collect; keeps its capacity
  uint64_t stale_replies_ = 0;
  uint64_t control_replies_ = 0;
  DecodeScratch scratch_;
  PackedWriter out_;                      // requests held for Flush (coalesce)
  std::vector<std::string> link_ids_;     // links > 1: the ROUTER's connection names
  size_t next_link_ = 0;
  std::vector<zmq::message_t> frames_;    // reused receive buffer
};

}  // namespace kv::client

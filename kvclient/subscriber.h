// Key subscriptions for the client library: one SUB socket connected to the
// notification port of every node in the client's ring (learned from the
// notifyPort every node reply carries, asked for with keyrange), subscribed
// to each key as its topic. Notifications: schema/notify.capnp, framing in
// schema/notification.h, the design in docs/subscriptions.md.
//
// Following the ring: the node set comes from the Router (the broker's rings,
// or keyrange text); a notification or a "moved" from a node with a newer
// ring than the client's makes it refresh its ring. Because the SUB is
// connected to every node, a key's notifications keep coming when its range
// moves (join, leave, fail-over): its new primary already has the
// subscription and publishes a snapshot of the key when the range arrives.
// ZeroMQ re-sends subscriptions after a reconnect, and the node answers with a
// snapshot too.
//
// Versions (key_tracker.h): every event says whether changes of its key may
// have been missed before it (a full queue on the node or here, a reconnect,
// a fail-over); such an event carries the key's current state. The node drops
// what a slow subscriber cannot take (its --notify-hwm), so a subscriber never
// slows writers; Resync() asks every primary for a fresh snapshot, which
// reveals a loss that no later change has shown yet.
//
// Not thread-safe: the thread that owns the KvClient owns its Subscriber.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "kvclient/connection.h"
#include "kvclient/key_tracker.h"
#include "kvclient/router.h"
#include "schema/notification.h"
#include "schema/status.h"

namespace kv::client {

struct SubscriberOptions {
  // Notifications queued in the client's socket (per node) before ZeroMQ
  // stops reading from that node; past that, the node drops for this client.
  int recv_hwm = 10000;
  // Events waiting in the pollable queue (no callback); past that, new events
  // are dropped and the next event of their key says changes were missed.
  size_t max_queue = 100000;
  // How long asking a node for its notification port may take, and how long
  // to wait before asking a node that did not answer again.
  std::chrono::milliseconds probe_timeout{3000};
  std::chrono::milliseconds probe_retry{1000};
  // Ask every primary for a snapshot of every subscribed key this often, so a
  // loss at the tail of a burst is found without a later change; 0 = never.
  std::chrono::milliseconds resync_every{0};
  // At most one ring refresh per this interval, when a notification names a
  // newer ring than the client's.
  std::chrono::milliseconds refresh_interval{250};
};

// A change of a subscribed key, as the application sees it.
struct KeyEvent {
  enum class Kind { kUpdate, kDelete };
  Kind kind = Kind::kUpdate;
  std::string key;
  std::string value;              // kUpdate: the value
  uint64_t version = 0;           // the change's version (after a gap: the current value's)
  bool missed_before = false;     // changes of key before this one may have been missed
  uint64_t published_micros = 0;  // the node's wall clock when it published
  uint64_t received_micros = 0;   // this process's wall clock when it arrived
};

// The state of a key when its subscription was confirmed.
struct KeyState {
  bool present = false;
  std::string value;
  uint64_t version = 0;  // 0 when absent (or written before versions were stored)
};

class Subscriber {
 public:
  // The context and router must outlive the subscriber.
  Subscriber(zmq::context_t& ctx, Router& router, SubscriberOptions options = {});
  ~Subscriber();
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  // Subscribes to key and waits up to `wait` for its primary to confirm with
  // the key's current state. Timeout: the subscription stands, but no primary
  // answered yet (notifications follow once one does). InvalidArgument for a
  // key outside 1..250 bytes. Subscribing again to a key returns its state.
  Result<KeyState> Subscribe(std::string_view key, std::chrono::milliseconds wait);
  // NotFound when not subscribed. Events of key already queued stay queued.
  Status Unsubscribe(std::string_view key);
  bool Subscribed(std::string_view key) const { return keys_.count(std::string(key)) != 0; }
  size_t size() const { return keys_.size(); }
  std::vector<std::string> Keys() const;

  // With a callback, Poll hands every event to it; without, events wait in a
  // queue for Next().
  void set_callback(std::function<void(const KeyEvent&)> callback) {
    callback_ = std::move(callback);
  }
  // Reads what has arrived, follows ring changes and asks new nodes for their
  // notification port; waits up to `wait` for something to arrive. Returns the
  // number of events produced.
  size_t Poll(std::chrono::milliseconds wait = std::chrono::milliseconds(0));
  // The oldest queued event, if any (queue mode).
  std::optional<KeyEvent> Next();
  size_t queued() const { return queue_.size(); }
  // The SUB socket, for an application's own zmq_poll; call Poll() when it is
  // readable (and now and then anyway, to follow the ring).
  zmq::pollitem_t PollItem();

  // Asks every node for a fresh snapshot of every subscribed key.
  void Resync();

  // Counters, for tests and status lines.
  uint64_t received() const { return received_; }
  uint64_t gaps() const { return gaps_; }  // events with missed_before
  uint64_t malformed() const { return malformed_; }
  // Nodes whose notification port is known (the SUB is connected to them).
  size_t connected_nodes() const;

 private:
  struct Key {
    KeyTracker tracker;
    bool lost_locally = false;      // an event of it was dropped from a full queue
    std::optional<KeyState> first;  // the baseline, for Subscribe
  };
  struct Node {
    std::string host;
    uint16_t port = 0;
    uint16_t notify_port = 0;  // 0 = not known yet
    std::string endpoint;      // what the SUB is connected to ("" = nothing)
    std::unique_ptr<Connection> probe;
    std::optional<uint64_t> probe_id;
    Clock::time_point next_probe;
  };
  void EnsureSocket();
  // Makes the node set match the router's table.
  void SyncNodes();
  void PumpProbes(Clock::time_point now);
  void ConnectNode(Node& node, uint16_t notify_port);
  size_t Drain();
  void Handle(const zmq::message_t& topic, const zmq::message_t& body);
  void Deliver(KeyEvent event, Key& key);
  void MaybeRefresh(Clock::time_point now);

  zmq::context_t& ctx_;
  Router& router_;
  SubscriberOptions options_;
  std::optional<zmq::socket_t> sub_;
  std::map<std::string, Key> keys_;
  std::map<std::string, Node> nodes_;     // by "host:port" (client port)
  uint64_t synced_version_ = UINT64_MAX;  // router table version SyncNodes last saw
  size_t synced_size_ = 0;
  std::function<void(const KeyEvent&)> callback_;
  std::deque<KeyEvent> queue_;
  uint64_t newest_ring_seen_ = 0;
  Clock::time_point last_refresh_;
  Clock::time_point last_resync_;
  uint64_t received_ = 0, delivered_ = 0, gaps_ = 0, malformed_ = 0;
};

}  // namespace kv::client

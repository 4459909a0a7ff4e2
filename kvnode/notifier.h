// Key-change notifications of one kvnode: an XPUB socket on --notify-port
// that publishes, for keys someone subscribed to, every acknowledged put and
// delete (schema/notify.capnp; framing in schema/notification.h). Only the
// key's primary publishes, and only when the write is acknowledged: durable on
// every replica and hand-off target it must reach (Hold, then Settle), never
// before. Each change carries its entry version and the version it replaced,
// so a subscriber that missed one (a full queue, a reconnect, a fail-over)
// sees the mismatch.
//
// Subscriptions arrive as the XPUB's subscribe messages (XPUB_VERBOSE: every
// subscribe, also repeated ones): the topics are kept, and for a key this node
// serves a snapshot of its acknowledged state is published at once, or once
// its unacknowledged writes settle. When a ring makes this node the primary of
// a subscribed key it publishes a snapshot too; when a ring takes one away it
// publishes "moved", so node-mode clients refresh their ring. A slow
// subscriber never slows the node: the XPUB drops what does not fit under its
// high-water mark (per subscriber), and the version chain shows the loss.
// Owned by the node's event loop; not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <zmq.hpp>

#include "schema/notification.h"
#include "schema/status.h"

namespace kv {

// What the notifier asks the node; every hook runs on the event loop.
struct NotifierHooks {
  // This node is the key's primary in its ring (standalone: always).
  std::function<bool(std::string_view key)> serves;
  // No write of the key is waiting for acknowledgements.
  std::function<bool(std::string_view key)> quiet;
  // The key's value and entry version; NotFound when absent.
  std::function<Status(std::string_view key, std::string* value, uint64_t* version)> read;
  // Every entry version this node has given out or holds is <= this.
  std::function<uint64_t()> version_clock;
  std::function<uint64_t()> ring_version;
};

// One committed change of a key (an update or a delete of a present key).
struct KeyChange {
  bool deleted = false;
  std::string key;
  std::string value;
  uint64_t version = 0;
  uint64_t prev_version = 0;
};

class Notifier {
 public:
  Notifier(zmq::context_t& ctx, NotifierHooks hooks);

  // Binds the XPUB; send_hwm bounds what is queued per subscriber.
  Status Bind(const std::string& address, uint16_t port, int send_hwm);
  uint16_t port() const { return port_; }
  zmq::pollitem_t PollItem();
  // Reads the subscriptions waiting on the socket.
  void OnReadable();

  // True when someone subscribed to exactly this key.
  bool Wanted(std::string_view key) const { return topics_.count(std::string(key)) != 0; }
  // An acknowledged change: published now.
  void Publish(const KeyChange& change);
  // A committed change waiting for acks under hold_id: published by
  // Settle(hold_id, true), dropped by Settle(hold_id, false).
  void Hold(uint64_t hold_id, KeyChange change);
  void Settle(uint64_t hold_id, bool acknowledged);
  // The key's last unacknowledged write has settled: a snapshot waiting for
  // that goes out.
  void OnKeyQuiet(std::string_view key);
  // A new ring is applied: snapshots for subscribed keys that arrived here,
  // "moved" for those that left.
  void OnRing();

  size_t topics() const { return topics_.size(); }
  uint64_t published() const { return published_; }

 private:
  struct Topic {
    bool served = false;            // this node served the key when last checked
    bool snapshot_pending = false;  // publish a snapshot once the key is quiet
  };
  void Snapshot(const std::string& key, Topic& topic);
  void Send(const Notification& n);

  zmq::context_t& ctx_;
  NotifierHooks hooks_;
  zmq::socket_t socket_;  // XPUB, made by Bind
  uint16_t port_ = 0;
  std::unordered_map<std::string, Topic> topics_;
  std::unordered_map<uint64_t, KeyChange> held_;  // by the node's hold id
  uint64_t published_ = 0;
};

}  // namespace kv

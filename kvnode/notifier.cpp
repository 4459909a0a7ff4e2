#include "kvnode/notifier.h"

#include <spdlog/spdlog.h>

#include "schema/socket.h"

namespace kv {

Notifier::Notifier(zmq::context_t& ctx, NotifierHooks hooks)
    : ctx_(ctx), hooks_(std::move(hooks)) {}

Status Notifier::Bind(const std::string& address, uint16_t port, int send_hwm) {
  SocketOptions options;
  options.send_hwm = send_hwm;
  // Subscription frames are a byte and a key; anything much larger is not one.
  options.max_msg_bytes = 4096;
  socket_ = MakeSocket(ctx_, zmq::socket_type::xpub, options);
  // Every subscribe reaches OnReadable, also for a topic already subscribed:
  // a subscriber asks for a fresh snapshot by subscribing again.
  socket_.set(zmq::sockopt::xpub_verbose, 1);
  try {
    socket_.bind(TcpEndpoint(address, port));
  } catch (const zmq::error_t& e) {
    return Status::Unavailable("cannot bind notification port " + address + ":" +
                               std::to_string(port) + ": " + e.what());
  }
  auto bound = BoundPort(socket_);
  if (!bound.ok()) return bound.status();
  port_ = *bound;
  return Status::Ok();
}

zmq::pollitem_t Notifier::PollItem() { return {static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0}; }

void Notifier::OnReadable() {
  for (int i = 0; i < 4096; ++i) {
    zmq::message_t msg;
    if (!socket_.recv(msg, zmq::recv_flags::dontwait)) return;
    if (msg.size() < 2 || msg.more()) continue;  // not a subscription for a key
    const char* data = static_cast<const char*>(msg.data());
    std::string key(data + 1, msg.size() - 1);
    if (data[0] == 0) {
      // ZeroMQ reports an unsubscribe only when no subscriber is left.
      topics_.erase(key);
      continue;
    }
    if (data[0] != 1) continue;
    Topic& topic = topics_[key];
    topic.served = hooks_.serves(key);
    if (topic.served) Snapshot(key, topic);
  }
}

void Notifier::Snapshot(const std::string& key, Topic& topic) {
  if (!hooks_.quiet(key)) {
    // Its newest write is not acknowledged yet: showing it could show a value
    // a fail-over then loses. The snapshot waits for OnKeyQuiet.
    topic.snapshot_pending = true;
    return;
  }
  topic.snapshot_pending = false;
  Notification n;
  n.kind = NotificationKind::SNAPSHOT;
  n.key = key;
  Status s = hooks_.read(key, &n.value, &n.version);
  if (s.ok()) {
    n.present = true;
  } else if (s.IsNotFound()) {
    n.value.clear();
    n.version = 0;
  } else {
    spdlog::warn("notification snapshot of a key failed: {}", s.ToString());
    return;
  }
  n.as_of = hooks_.version_clock();
  Send(n);
}

void Notifier::Publish(const KeyChange& change) {
  Notification n;
  n.kind = change.deleted ? NotificationKind::DELETE : NotificationKind::UPDATE;
  n.key = change.key;
  if (!change.deleted) n.value = change.value;
  n.version = change.version;
  n.prev_version = change.prev_version;
  Send(n);
}

void Notifier::Hold(uint64_t hold_id, KeyChange change) { held_[hold_id] = std::move(change); }

void Notifier::Settle(uint64_t hold_id, bool acknowledged) {
  auto it = held_.find(hold_id);
  if (it == held_.end()) return;
  if (acknowledged) Publish(it->second);
  held_.erase(it);
}

void Notifier::OnKeyQuiet(std::string_view key) {
  if (topics_.empty()) return;
  auto it = topics_.find(std::string(key));
  if (it == topics_.end() || !it->second.snapshot_pending) return;
  if (!hooks_.serves(key)) {
    it->second.snapshot_pending = false;
    return;
  }
  Snapshot(it->first, it->second);
}

void Notifier::OnRing() {
  for (auto& [key, topic] : topics_) {
    bool serves = hooks_.serves(key);
    if (serves && !topic.served) {
      topic.served = true;
      Snapshot(key, topic);
    } else if (!serves && topic.served) {
      topic.served = false;
      topic.snapshot_pending = false;
      Notification n;
      n.kind = NotificationKind::MOVED;
      n.key = key;
      Send(n);
    }
  }
}

void Notifier::Send(const Notification& in) {
  Notification n = in;
  n.ring_version = hooks_.ring_version();
  n.published_micros = WallMicros();
  zmq::message_t topic = EncodeNotificationTopic(n);
  zmq::message_t body = EncodeNotificationBody(n);
  // An XPUB never blocks: a subscriber over its high-water mark loses this
  // message, and sees the gap in the versions of the next one.
  (void)socket_.send(topic, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
  (void)socket_.send(body, zmq::send_flags::dontwait);
  ++published_;
}

}  // namespace kv

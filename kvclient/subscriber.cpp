#include "kvclient/subscriber.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "schema/socket.h"

namespace kv::client {
namespace {

constexpr size_t kMaxKeyBytes = 250;  // as kvnode: keys are 1..250 bytes
constexpr size_t kDrainBatch = 10000;
// While waiting in Poll, look at probes and the ring at least this often.
constexpr std::chrono::milliseconds kPollSlice{50};

bool SplitAddress(const std::string& address, std::string* host, uint16_t* port) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  try {
    int p = std::stoi(address.substr(colon + 1));
    if (p <= 0 || p > 65535) return false;
    *host = address.substr(0, colon);
    *port = static_cast<uint16_t>(p);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

Subscriber::Subscriber(zmq::context_t& ctx, Router& router, SubscriberOptions options)
    : ctx_(ctx), router_(router), options_(options) {}

Subscriber::~Subscriber() = default;

void Subscriber::EnsureSocket() {
  if (sub_) return;
  SocketOptions options;
  options.recv_hwm = options_.recv_hwm;
  sub_ = MakeSocket(ctx_, zmq::socket_type::sub, options);
}

std::vector<std::string> Subscriber::Keys() const {
  std::vector<std::string> out;
  for (const auto& [key, state] : keys_) out.push_back(key);
  return out;
}

size_t Subscriber::connected_nodes() const {
  size_t n = 0;
  for (const auto& [address, node] : nodes_) n += node.endpoint.empty() ? 0 : 1;
  return n;
}

zmq::pollitem_t Subscriber::PollItem() {
  EnsureSocket();
  return {static_cast<void*>(*sub_), 0, ZMQ_POLLIN, 0};
}

Result<KeyState> Subscriber::Subscribe(std::string_view key, std::chrono::milliseconds wait) {
  if (key.empty() || key.size() > kMaxKeyBytes) {
    return Status::InvalidArgument("key is " + std::to_string(key.size()) + " bytes; keys are 1.." +
                                   std::to_string(kMaxKeyBytes));
  }
  EnsureSocket();
  auto [it, inserted] = keys_.try_emplace(std::string(key));
  if (inserted) sub_->set(zmq::sockopt::subscribe, key);
  Key& state = it->second;
  const auto deadline = Clock::now() + wait;
  for (;;) {
    if (state.tracker.synced) {
      if (state.first) return *state.first;
      return KeyState{state.tracker.present, {}, state.tracker.value_version};
    }
    auto now = Clock::now();
    if (now >= deadline) break;
    Poll(std::min(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now),
                  kPollSlice));
  }
  return Status::Timeout("subscribed, but no node serving the key confirmed it within " +
                         std::to_string(wait.count()) +
                         " ms; its notifications follow once one does");
}

Status Subscriber::Unsubscribe(std::string_view key) {
  auto it = keys_.find(std::string(key));
  if (it == keys_.end()) return Status::NotFound("not subscribed to that key");
  keys_.erase(it);
  sub_->set(zmq::sockopt::unsubscribe, key);
  return Status::Ok();
}

void Subscriber::Resync() {
  if (!sub_) return;
  // A subscribe reaches every node again (ZeroMQ passes repeated ones on, and
  // the nodes' XPUB_VERBOSE hands them to the node), so each primary answers
  // with a snapshot; the unsubscribe only takes back the extra reference
  // here and sends nothing.
  for (const auto& [key, state] : keys_) {
    sub_->set(zmq::sockopt::subscribe, key);
    sub_->set(zmq::sockopt::unsubscribe, key);
  }
}

std::optional<KeyEvent> Subscriber::Next() {
  if (queue_.empty()) return std::nullopt;
  KeyEvent e = std::move(queue_.front());
  queue_.pop_front();
  return e;
}

void Subscriber::SyncNodes() {
  std::map<std::string, std::pair<std::string, uint16_t>> want;
  if (!keys_.empty()) {
    for (const Route& r : router_.table().routes()) want[r.address] = {r.host, r.port};
    if (want.empty() && router_.connected() && !router_.via_broker()) {
      // A node that has not answered keyrange yet: it is all we know.
      std::string host;
      uint16_t port = 0;
      if (SplitAddress(router_.address(), &host, &port)) want[router_.address()] = {host, port};
    }
  }
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    if (want.count(it->first) != 0) {
      ++it;
      continue;
    }
    if (!it->second.endpoint.empty()) {
      try {
        sub_->disconnect(it->second.endpoint);
      } catch (const zmq::error_t& e) {
        spdlog::debug("disconnecting from {}: {}", it->second.endpoint, e.what());
      }
    }
    spdlog::debug("notifications: {} left the ring", it->first);
    it = nodes_.erase(it);
  }
  for (const auto& [address, where] : want) {
    if (nodes_.count(address) != 0) continue;
    Node& node = nodes_[address];
    node.host = where.first;
    node.port = where.second;
    node.next_probe = Clock::time_point{};
  }
}

void Subscriber::ConnectNode(Node& node, uint16_t notify_port) {
  node.notify_port = notify_port;
  node.endpoint = TcpEndpoint(node.host, notify_port);
  EnsureSocket();
  try {
    sub_->connect(node.endpoint);
    spdlog::debug("notifications: subscribed at {}", node.endpoint);
  } catch (const zmq::error_t& e) {
    spdlog::warn("cannot connect to notifications at {}: {}", node.endpoint, e.what());
    node.endpoint.clear();
  }
  node.probe.reset();
  node.probe_id.reset();
}

void Subscriber::PumpProbes(Clock::time_point now) {
  std::vector<Completion> done;
  for (auto& [address, node] : nodes_) {
    if (node.notify_port != 0) continue;
    if (!node.probe_id) {
      if (now < node.next_probe) continue;
      if (!node.probe) {
        node.probe = std::make_unique<Connection>(ctx_, node.host, node.port,
                                                  ConnectionOptions{options_.probe_timeout});
        if (Status s = node.probe->Open(); !s.ok()) {
          spdlog::debug("notifications: cannot reach {}: {}", address, s.ToString());
          node.probe.reset();
          node.next_probe = now + options_.probe_retry;
          continue;
        }
      }
      auto id = node.probe->Send(Op::kKeyrange);
      if (!id.ok()) {
        node.next_probe = now + options_.probe_retry;
        continue;
      }
      node.probe_id = *id;
    }
    done.clear();
    node.probe->Collect(now, &done);
    for (const Completion& c : done) {
      if (c.request_id != *node.probe_id) continue;
      node.probe_id.reset();
      if (c.result.ok() && c.result->notify_port != 0) {
        ConnectNode(node, c.result->notify_port);
        break;
      }
      spdlog::debug("notifications: {} did not name its notification port ({})", address,
                    c.result.ok() ? "a node without one" : c.result.status().ToString());
      node.next_probe = now + options_.probe_retry;
    }
  }
}

size_t Subscriber::Drain() {
  if (!sub_) return 0;
  size_t handled = 0;
  for (; handled < kDrainBatch; ++handled) {
    zmq::message_t topic;
    if (!sub_->recv(topic, zmq::recv_flags::dontwait)) break;
    if (!topic.more()) {
      ++malformed_;
      continue;
    }
    zmq::message_t body;
    (void)sub_->recv(body, zmq::recv_flags::none);  // the rest of a message is already here
    if (body.more()) {  // more frames than the protocol has: skip them all
      zmq::message_t extra;
      do {
        (void)sub_->recv(extra, zmq::recv_flags::none);
      } while (extra.more());
      ++malformed_;
      continue;
    }
    Handle(topic, body);
  }
  return handled;
}

void Subscriber::Handle(const zmq::message_t& topic, const zmq::message_t& body) {
  ++received_;
  auto decoded = DecodeNotification(topic, body, kMaxKeyBytes);
  if (!decoded.ok()) {
    ++malformed_;
    spdlog::debug("dropping a malformed notification: {}", decoded.status().message());
    return;
  }
  const Notification& n = *decoded;
  newest_ring_seen_ = std::max(newest_ring_seen_, n.ring_version);
  auto it = keys_.find(n.key);
  if (it == keys_.end()) return;  // a topic that only starts with a subscribed key
  Key& key = it->second;
  Verdict verdict = Track(&key.tracker, n);
  spdlog::trace("notification {} v{} (prev {}): {}", NotificationKindName(n.kind), n.version,
                n.prev_version, VerdictName(verdict));
  if (verdict == Verdict::kDrop) return;
  const bool present =
      n.kind == NotificationKind::UPDATE || (n.kind == NotificationKind::SNAPSHOT && n.present);
  if (!key.first) key.first = KeyState{present, present ? n.value : std::string(), n.version};
  if (verdict == Verdict::kBaseline) return;
  KeyEvent e;
  e.kind = present ? KeyEvent::Kind::kUpdate : KeyEvent::Kind::kDelete;
  e.key = n.key;
  if (present) e.value = n.value;
  e.version = n.version;
  e.missed_before = verdict == Verdict::kDeliverAfterGap;
  e.published_micros = n.published_micros;
  e.received_micros = WallMicros();
  Deliver(std::move(e), key);
}

void Subscriber::Deliver(KeyEvent event, Key& key) {
  event.missed_before = event.missed_before || key.lost_locally;
  if (!callback_ && queue_.size() >= options_.max_queue) {
    key.lost_locally = true;
    return;
  }
  key.lost_locally = false;
  ++delivered_;
  if (event.missed_before) ++gaps_;
  if (callback_) {
    callback_(event);
  } else {
    queue_.push_back(std::move(event));
  }
}

void Subscriber::MaybeRefresh(Clock::time_point now) {
  if (newest_ring_seen_ <= router_.version() || !router_.connected()) return;
  if (now - last_refresh_ < options_.refresh_interval) return;
  last_refresh_ = now;
  // A node already works with a newer ring: the key may have moved to a node
  // this client does not know yet.
  if (Status s = router_.Refresh(); !s.ok()) {
    spdlog::debug("notifications: ring refresh failed: {}", s.ToString());
  }
  SyncNodes();
}

size_t Subscriber::Poll(std::chrono::milliseconds wait) {
  if (keys_.empty() && nodes_.empty()) {
    if (wait.count() > 0) std::this_thread::sleep_for(wait);
    return 0;
  }
  const uint64_t received_before = received_;
  const uint64_t delivered_before = delivered_;
  const auto deadline = Clock::now() + wait;
  for (;;) {
    auto now = Clock::now();
    router_.PollUpdates();
    SyncNodes();
    PumpProbes(now);
    Drain();
    MaybeRefresh(now);
    if (options_.resync_every.count() > 0 && now - last_resync_ >= options_.resync_every) {
      last_resync_ = now;
      Resync();
    }
    if (received_ != received_before || now >= deadline) break;
    std::vector<zmq::pollitem_t> items{PollItem()};
    for (auto& [address, node] : nodes_) {
      if (node.probe && node.probe_id) items.push_back(node.probe->PollItem());
    }
    auto slice =
        std::min(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now), kPollSlice);
    try {
      zmq::poll(items.data(), items.size(), slice);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    }
  }
  return static_cast<size_t>(delivered_ - delivered_before);
}

}  // namespace kv::client

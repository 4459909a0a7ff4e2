// kvbench's target for our own store: a node or a broker at -bh/-bp, routed
// through kvclient's Router (one coalescing Connection per node, all on one
// SharedSocket that opens --connections TCP connections to each node), all driven
// by zmq::poll from the runner's thread. Like KvClient (client.h), a request
// answered server_not_responsible is resent at once after a ring refresh (at
// most kMaxRedirects times, counted in redirects()), and one answered
// server_stopped, server_write_lock or overloaded (nothing was applied) is
// resent after a back-off (10 ms doubling to 500 ms, jittered) while its
// request timeout allows, counted in retries(); neither is an error. Requests
// issued between two Polls are packed, one frame per connection (the same
// pipelining the Redis target gets from hiredis).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <random>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "kvclient/router.h"
#include "kvclient/target.h"

namespace kv::bench {
namespace {

using client::Clock;
using client::Completion;
using client::Connection;

// Resends one request may get after server_not_responsible.
constexpr int kMaxRedirects = 3;
// Back-off before resending after server_stopped, server_write_lock or overloaded.
constexpr std::chrono::milliseconds kBackoffStart{10};
constexpr std::chrono::milliseconds kBackoffCap{500};

// Answers after which the same request may be sent again later: the node applied nothing.
bool RetryLater(WireStatus status) {
  return status == WireStatus::SERVER_STOPPED || status == WireStatus::SERVER_WRITE_LOCK ||
         status == WireStatus::OVERLOADED;
}

Op WireOp(Action action) {
  switch (action) {
    case Action::kGet:
      return Op::kGet;
    case Action::kPut:
      return Op::kPut;
    case Action::kDelete:
      return Op::kDelete;
  }
  return Op::kGet;
}

class ClusterTarget : public Target {
 public:
  explicit ClusterTarget(const TargetOptions& options)
      : router_(ctx_, client::RouterOptions{options.request_timeout, options.broker_pub_port,
                                            /*lanes=*/1, /*coalesce=*/true,
                                            /*links=*/static_cast<int>(options.lanes),
                                            /*shared_socket=*/true}),
        timeout_(options.request_timeout),
        ordered_reads_(options.ordered_reads) {}

  Status Connect(const std::string& host, uint16_t port) {
    if (Status s = router_.Connect(host, port); !s.ok()) return s;
    if (router_.via_broker()) {
      if (router_.table().empty()) (void)router_.Refresh();
      if (router_.table().empty()) {
        return Status::Unavailable("the broker at " + router_.address() +
                                   " has no nodes in its ring");
      }
    }
    return Status::Ok();
  }

  std::string Describe() const override {
    std::string kind = router_.via_broker() ? "broker " : "node ";
    const char* order = ordered_reads_ ? " (ordered gets)" : "";
    if (!router_.via_broker() && router_.table().size() <= 1) {
      return kind + router_.address() + order;
    }
    return kind + router_.address() + ", ring v" + std::to_string(router_.version()) + " with " +
           std::to_string(router_.table().size()) + " nodes" + order;
  }

  void Send(size_t lane, uint64_t tag, Action action, std::string_view key,
            std::string_view value) override {
    Issue(Request{tag, action, std::string(key), value, lane, 0, 0, Clock::now()});
  }

  void Poll(std::chrono::milliseconds wait, std::vector<TargetReply>* out) override {
    if (!failed_.empty()) {  // something to report already: do not sleep
      wait = std::chrono::milliseconds(0);
    }
    std::vector<Connection*> connections = router_.Connections();
    // Everything sent since the last Poll leaves now, one frame per connection.
    // A full send queue keeps the requests held for the next Poll.
    for (Connection* c : connections) (void)c->Flush();
    const Clock::time_point now = Clock::now();
    Clock::time_point wake = now + wait;
    if (!delayed_.empty()) wake = std::min(wake, delayed_.begin()->first);
    for (Connection* c : connections) {
      if (auto d = c->NextDeadline()) wake = std::min(wake, *d);
    }
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(wake - now);
    items_.clear();
    const auto shared = router_.SharedPollItem();
    if (shared) {
      items_.push_back(*shared);  // every connection's replies arrive there
    } else {
      for (Connection* c : connections) items_.push_back(c->PollItem());
    }
    if (auto updates = router_.UpdatesPollItem()) items_.push_back(*updates);
    try {
      zmq::poll(items_.data(), items_.size(), std::max(ms, std::chrono::milliseconds(0)));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) spdlog::warn("poll failed: {}", e.what());
    }

    router_.PollUpdates();
    std::vector<Redirect> redirects;
    const Clock::time_point collected = Clock::now();
    if (shared && (items_[0].revents & ZMQ_POLLIN) != 0) router_.PumpShared();
    for (size_t i = 0; i < connections.size(); ++i) {
      Connection* c = connections[i];
      completions_.clear();
      const bool readable = !shared && (items_[i].revents & ZMQ_POLLIN) != 0;
      c->Collect(collected, &completions_, readable);
      for (auto& completion : completions_) Account(c, completion, out, &redirects);
    }
    Resend(redirects);
    while (!delayed_.empty() && delayed_.begin()->first <= collected) {
      Issue(std::move(delayed_.begin()->second));
      delayed_.erase(delayed_.begin());
    }
    router_.ReapRetired();
    out->insert(out->end(), std::make_move_iterator(failed_.begin()),
                std::make_move_iterator(failed_.end()));
    failed_.clear();
  }

  uint64_t redirects() const override { return redirects_; }
  uint64_t retries() const override { return retries_; }

 private:
  // What the target keeps about a request in flight, to resend it.
  struct Request {
    uint64_t tag;
    Action action;
    std::string key;
    std::string_view value;  // into the runner's value buffer, which outlives the run
    size_t lane;
    int redirects;
    int retries;
    Clock::time_point first_sent;  // resends stop once the request timeout has passed
  };
  struct Redirect {
    Request request;
    std::string from;       // the node that refused
    uint64_t ring_version;  // its ring version
  };
  using Key = std::pair<Connection*, uint64_t>;  // connection, request id

  void Issue(Request request) {
    auto connection = router_.ConnectionFor(request.key, request.lane);
    if (!connection.ok()) {
      spdlog::warn("no route for {}: {}", request.key, connection.status().ToString());
      failed_.push_back(TargetReply{request.tag, false, "no_route"});
      return;
    }
    auto id = (*connection)->Send(WireOp(request.action), request.key, request.value,
                                  router_.version(), /*stale_ok=*/false,
                                  /*unordered=*/!ordered_reads_);
    if (!id.ok()) {
      spdlog::warn("send to {} failed: {}", (*connection)->address(), id.status().ToString());
      failed_.push_back(TargetReply{request.tag, false, "send_failed"});
      return;
    }
    // A recycled node when there is one: a request in flight then allocates
    // no map node (the key string moves in with the request).
    if (spare_.empty()) {
      in_flight_.emplace(Key{*connection, *id}, std::move(request));
      return;
    }
    auto node = std::move(spare_.back());
    spare_.pop_back();
    node.key() = Key{*connection, *id};
    node.mapped() = std::move(request);
    in_flight_.insert(std::move(node));
  }

  void Account(Connection* connection, Completion& c, std::vector<TargetReply>* out,
               std::vector<Redirect>* redirects) {
    auto it = in_flight_.find(Key{connection, c.request_id});
    if (it == in_flight_.end()) return;  // a router refresh (keyrange), not ours
    auto node = in_flight_.extract(it);
    Request request = std::move(node.mapped());
    if (spare_.size() < kSpareNodes) spare_.push_back(std::move(node));
    if (!c.result.ok()) {
      out->push_back(TargetReply{request.tag, false,
                                 c.result.status().IsTimeout() ? "timeout" : "client_error"});
      return;
    }
    const WireStatus status = c.result->status;
    if (status == WireStatus::SERVER_NOT_RESPONSIBLE && request.redirects < kMaxRedirects) {
      redirects->push_back(
          Redirect{std::move(request), connection->address(), c.result->ring_version});
      return;
    }
    if (RetryLater(status)) {
      auto ceiling = std::min(kBackoffCap, kBackoffStart * (1 << std::min(request.retries, 6)));
      auto pause = std::chrono::milliseconds(
          std::uniform_int_distribution<int64_t>(ceiling.count() / 2, ceiling.count())(rng_));
      const Clock::time_point at = Clock::now() + pause;
      if (at < request.first_sent + timeout_) {
        ++retries_;
        ++request.retries;
        delayed_.emplace(at, std::move(request));
        return;
      }
    }
    if (!IsSuccess(status)) {
      out->push_back(TargetReply{request.tag, false, StatusWord(status)});
      return;
    }
    out->push_back(TargetReply{request.tag, true, {}});
  }

  // Refreshes the ring once for the newest version any redirecting node
  // reported, then resends.
  void Resend(std::vector<Redirect>& redirects) {
    if (redirects.empty()) return;
    const Redirect* newest = &redirects.front();
    for (const auto& r : redirects) {
      if (r.ring_version > newest->ring_version) newest = &r;
    }
    // A node on the same ring version as ours lags behind; refreshing would
    // not help, and the resend gives it a moment.
    if (newest->ring_version > router_.version() || router_.table().empty()) {
      if (Status s = router_.Refresh(newest->from); !s.ok()) {
        spdlog::warn("ring refresh failed: {}", s.ToString());
      }
    }
    for (auto& r : redirects) {
      ++redirects_;
      ++r.request.redirects;
      Issue(std::move(r.request));
    }
  }

  zmq::context_t ctx_;
  client::Router router_;
  struct KeyHash {
    size_t operator()(const Key& k) const {
      return std::hash<const void*>{}(k.first) ^ (std::hash<uint64_t>{}(k.second) * 0x9E3779B97F4A7C15ull);
    }
  };
  std::unordered_map<Key, Request, KeyHash> in_flight_;
  static constexpr size_t kSpareNodes = 4096;
  std::vector<std::unordered_map<Key, Request, KeyHash>::node_type> spare_;  // kept for Issue
  std::chrono::milliseconds timeout_;
  bool ordered_reads_;               // else gets go unordered (TargetOptions::ordered_reads)
  std::vector<TargetReply> failed_;  // sends that failed, reported by the next Poll
  std::multimap<Clock::time_point, Request> delayed_;  // to resend after a back-off, by when
  std::vector<Completion> completions_;
  std::vector<zmq::pollitem_t> items_;
  std::mt19937_64 rng_{0x5EED};  // back-off jitter
  uint64_t redirects_ = 0;
  uint64_t retries_ = 0;
};

}  // namespace

Result<std::unique_ptr<Target>> MakeClusterTarget(const std::string& host, uint16_t port,
                                                  const TargetOptions& options) {
  auto target = std::make_unique<ClusterTarget>(options);
  if (Status s = target->Connect(host, port); !s.ok()) return s;
  return std::unique_ptr<Target>(std::move(target));
}

}  // namespace kv::bench

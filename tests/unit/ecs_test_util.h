// A Coordinator on a temporary LMDB store, driven by a fake clock, for the
// ECS unit tests (ecs_coordinator_test.cpp, ecs_failover_test.cpp): test
// nodes, requests, and a filter for the commands it produced.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "ecs/coordinator.h"
#include "ecs/ring_store.h"

namespace ecstest {

using namespace std::chrono_literals;

inline kv::NodeAddress Node(int i) {
  return kv::NodeAddress{"10.0.0." + std::to_string(i), static_cast<uint16_t>(5000 + i),
                         static_cast<uint16_t>(6000 + i)};
}

inline kv::MembershipRequest Request(kv::RequestKind kind, int node, uint64_t request_id) {
  return kv::MembershipRequest{"client-" + std::to_string(request_id), request_id, kind,
                               Node(node)};
}

inline bool Has(const std::vector<kv::NodeAddress>& list, const kv::NodeAddress& a) {
  return std::find(list.begin(), list.end(), a) != list.end();
}

// The commands of type T, in order.
template <typename T>
std::vector<T> All(const kv::Commands& commands) {
  std::vector<T> out;
  for (const auto& c : commands) {
    if (auto* t = std::get_if<T>(&c)) out.push_back(*t);
  }
  return out;
}

// Index of the first command of type T; commands.size() when there is none.
template <typename T>
size_t FirstIndex(const kv::Commands& commands) {
  for (size_t i = 0; i < commands.size(); ++i) {
    if (std::holds_alternative<T>(commands[i])) return i;
  }
  return commands.size();
}

inline kv::CoordinatorConfig Config(int rf = 1) {
  kv::CoordinatorConfig c;
  c.replication_factor = rf;
  c.batch_window = 100ms;
  c.transfer_timeout = 1000ms;
  c.max_held = 64;
  c.repair.transfer_timeout = 1000ms;
  c.repair.retry_backoff = 100ms;
  c.repair.retry_backoff_cap = 400ms;
  c.repair.max_attempts = 3;
  c.repair.report_interval = 500ms;
  return c;
}

// One ECS lifetime: a Coordinator on the store in dir, recovered at t = 0.
class Ecs {
 public:
  explicit Ecs(const std::string& dir, kv::CoordinatorConfig config = Config()) {
    auto store = kv::RingStore::Open(dir);
    REQUIRE(store.ok());
    store_ = std::move(*store);
    coordinator_ =
        std::make_unique<kv::Coordinator>(config, store_.get(), [this] { return now_; });
    REQUIRE(coordinator_->Recover(&out).ok());
  }

  kv::Coordinator& operator*() { return *coordinator_; }
  kv::Coordinator* operator->() { return coordinator_.get(); }
  kv::RingStore& store() { return *store_; }

  void Submit(kv::RequestKind kind, int node, uint64_t request_id) {
    coordinator_->Submit(Request(kind, node, request_id), &out);
  }
  void Advance(std::chrono::milliseconds d) {
    now_ += d;
    coordinator_->Tick(&out);
  }
  // The broker reports node failed; the next tick handles it.
  void FailNode(int node, uint64_t request_id) {
    Submit(kv::RequestKind::kNodeFailed, node, request_id);
    Advance(0ms);
  }
  void Done(uint64_t transfer_id, bool ok = true, const std::string& reason = "") {
    coordinator_->OnTransferDone(kv::TransferResult{transfer_id, ok, reason, 10, 100}, &out);
  }
  // Every transfer in out reports ok.
  void AllDone() {
    for (const auto& s : All<kv::StartTransfer>(out)) Done(s.transfer.transfer_id);
  }
  // Joins nodes 1..n into an empty ring: version 1.
  void Bootstrap(int n) {
    for (int i = 1; i <= n; ++i) Submit(kv::RequestKind::kJoin, i, 1000 + i);
    Advance(100ms);
    REQUIRE(coordinator_->ring()->version() == 1);
    REQUIRE(coordinator_->ring()->size() == static_cast<size_t>(n));
    out.clear();
  }

  kv::Commands out;

 private:
  std::chrono::steady_clock::time_point now_{};
  std::unique_ptr<kv::RingStore> store_;
  std::unique_ptr<kv::Coordinator> coordinator_;
};

}  // namespace ecstest

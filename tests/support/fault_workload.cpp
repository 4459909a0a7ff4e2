#include "tests/support/fault_workload.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <random>
#include <stdexcept>


namespace kvtest {

using lin::OpKind;
using lin::Outcome;
using lin::Prior;

int64_t MicrosSince(std::chrono::steady_clock::time_point origin) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                               origin)
      .count();
}

namespace {

bool PlainNotFound(const std::string& reason) {
  return reason.empty() || reason.find("not found") != std::string::npos;
}

kv::Op WireOp(OpKind kind) {
  switch (kind) {
    case OpKind::kPut: return kv::Op::kPut;
    case OpKind::kGet: return kv::Op::kGet;
    case OpKind::kDelete: return kv::Op::kDelete;
  }
  return kv::Op::kGet;
}

// One operation through client, timed and classified. Never throws.
lin::Operation Perform(RoutedClient& client, int id, const std::string& key, OpKind kind,
                       std::optional<std::string> value, std::chrono::milliseconds deadline,
                       std::chrono::steady_clock::time_point origin) {
  lin::Operation op;
  op.client = id;
  op.key = key;
  op.kind = kind;
  op.value = std::move(value);
  op.invoke_us = MicrosSince(origin);
  std::optional<OwnedReply> reply;
  try {
    reply = client.Call(WireOp(kind), key, op.value.value_or(""), deadline);
  } catch (const std::exception&) {
    reply.reset();  // an undecodable reply: no definite answer
  }
  op.complete_us = MicrosSince(origin);
  ClassifyReply(reply, &op);
  return op;
}

}  // namespace

void ClassifyReply(const std::optional<OwnedReply>& reply, lin::Operation* op) {
  op->outcome = Outcome::kUnknown;
  op->prior = Prior::kAny;
  if (!reply) {
    if (op->kind == OpKind::kGet) op->value.reset();
    return;
  }
  using kv::WireStatus;
  switch (reply->status) {
    case WireStatus::PUT_SUCCESS:
    case WireStatus::PUT_UPDATE:
      if (op->kind != OpKind::kPut) break;
      op->outcome = Outcome::kOk;
      op->prior = reply->status == WireStatus::PUT_UPDATE ? Prior::kPresent : Prior::kAbsent;
      return;
    case WireStatus::GET_SUCCESS:
      if (op->kind != OpKind::kGet) break;
      op->outcome = Outcome::kOk;
      op->value = reply->value;
      return;
    case WireStatus::GET_ERROR:
      if (op->kind != OpKind::kGet) break;
      op->value.reset();
      op->outcome = PlainNotFound(reply->reason) ? Outcome::kOk : Outcome::kError;
      return;
    case WireStatus::DELETE_SUCCESS:
    case WireStatus::DELETE_ERROR:
      if (op->kind != OpKind::kDelete) break;
      if (reply->status == WireStatus::DELETE_ERROR && !PlainNotFound(reply->reason)) return;
      op->outcome = Outcome::kOk;
      op->prior = reply->status == WireStatus::DELETE_SUCCESS ? Prior::kPresent : Prior::kAbsent;
      return;
    case WireStatus::BAD_REQUEST:
      op->outcome = Outcome::kError;  // refused before anything was done
      break;
    default:
      break;  // put_error, refusals after retries: may or may not have applied
  }
  if (op->kind == OpKind::kGet) {
    op->value.reset();
    if (op->outcome == Outcome::kUnknown) op->outcome = Outcome::kError;
  }
}

bool RingOfRunning(const std::vector<kv::KeyrangeEntry>& entries,
                   const std::vector<uint16_t>& running, bool every_running_node) {
  if (entries.empty() || !kv::CoversWholeRingExactly(entries)) return false;
  std::set<uint16_t> members;
  for (const auto& e : entries) {
    if (std::find(running.begin(), running.end(), e.port) == running.end()) return false;
    members.insert(e.port);
  }
  return !every_running_node || members.size() == std::set<uint16_t>(running.begin(), running.end()).size();
}

void PortBoard::Set(std::vector<uint16_t> ports) {
  std::lock_guard<std::mutex> lock(mu_);
  ports_ = std::move(ports);
}

std::vector<uint16_t> PortBoard::Get() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ports_;
}

std::vector<std::string> WorkloadKeys(int keys) {
  std::vector<std::string> out;
  for (int i = 0; i < keys; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "fk-%03d", i);
    out.push_back(name);
  }
  return out;
}

Workload::Workload(const WorkloadOptions& options, const PortBoard& ports,
                   std::chrono::steady_clock::time_point origin)
    : options_(options), ports_(ports), origin_(origin), keys_(WorkloadKeys(options.keys)) {
  for (int c = 0; c < options_.clients; ++c) threads_.emplace_back([this, c] { Loop(c); });
}

Workload::~Workload() {
  stop_ = true;
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

std::vector<lin::Operation> Workload::Stop() {
  stop_ = true;
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  std::lock_guard<std::mutex> lock(mu_);
  return std::move(history_);
}

void Workload::Loop(int client) {
  std::mt19937_64 rng(options_.seed * 1000003 + client);
  RoutedClient routed([this] { return ports_.Get(); });
  routed.set_attempt_timeout(options_.op_deadline);
  std::vector<lin::Operation> mine;
  const int hot = std::max(1, std::min(options_.hot_keys, options_.keys));
  for (int seq = 0; seq < options_.max_ops_per_client && !stop_; ++seq) {
    bool pick_hot = static_cast<int>(rng() % 100) < options_.hot_percent;
    const std::string& key = keys_[rng() % (pick_hot ? hot : keys_.size())];
    int dice = static_cast<int>(rng() % 100);
    OpKind kind = dice < options_.put_percent                            ? OpKind::kPut
                  : dice < options_.put_percent + options_.delete_percent ? OpKind::kDelete
                                                                          : OpKind::kGet;
    std::optional<std::string> value;
    if (kind == OpKind::kPut) value = "c" + std::to_string(client) + "-" + std::to_string(seq);
    mine.push_back(Perform(routed, client, key, kind, value, options_.op_deadline, origin_));
    ++ops_;
    if (kind != OpKind::kGet && mine.back().outcome == Outcome::kOk) ++ok_writes_;
  }
  std::lock_guard<std::mutex> lock(mu_);
  history_.insert(history_.end(), mine.begin(), mine.end());
}

void Workload::StartProbe(const std::string& key) {
  int id = 2000 + probes_++;
  threads_.emplace_back([this, key, id] {
    std::vector<lin::Operation> mine;
    auto give_up = std::chrono::steady_clock::now() + options_.probe_give_up;
    for (int attempt = 0; !stop_ && std::chrono::steady_clock::now() < give_up; ++attempt) {
      RoutedClient routed([this] { return ports_.Get(); });
      routed.set_attempt_timeout(options_.probe_attempt);
      std::string value = "p" + std::to_string(id) + "-" + std::to_string(attempt);
      mine.push_back(
          Perform(routed, id, key, OpKind::kPut, value, options_.probe_attempt, origin_));
      if (mine.back().outcome == Outcome::kOk) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // back off
    }
    std::lock_guard<std::mutex> lock(mu_);
    history_.insert(history_.end(), mine.begin(), mine.end());
  });
}

std::map<std::string, std::optional<std::string>> Workload::FinalReads(
    const std::vector<std::string>& keys, const PortBoard& ports, int threads,
    std::chrono::milliseconds op_deadline, std::chrono::milliseconds deadline,
    std::chrono::steady_clock::time_point origin, std::vector<lin::Operation>* history) {
  auto end = std::chrono::steady_clock::now() + deadline;
  std::mutex mu;  // guards finals and history
  std::map<std::string, std::optional<std::string>> finals;
  std::vector<std::thread> workers;
  threads = std::max(1, threads);
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      RoutedClient routed([&ports] { return ports.Get(); });
      std::vector<size_t> left;
      for (size_t i = t; i < keys.size(); i += threads) left.push_back(i);
      // Rounds over the keys still unread, with a short attempt timeout first,
      // so unavailable keys do not starve the others. Bounded: an attempt
      // takes about op_deadline at most, and nothing starts after the deadline.
      auto attempt = std::min(op_deadline, std::chrono::milliseconds(300));
      while (!left.empty() && std::chrono::steady_clock::now() < end) {
        routed.set_attempt_timeout(attempt);
        std::vector<size_t> again;
        for (size_t i : left) {
          if (std::chrono::steady_clock::now() >= end) return;
          lin::Operation op = Perform(routed, 1000 + t, keys[i], OpKind::kGet, std::nullopt,
                                      attempt, origin);
          if (op.outcome != Outcome::kOk) {
            again.push_back(i);
            continue;
          }
          std::lock_guard<std::mutex> lock(mu);
          finals[keys[i]] = op.value;
          history->push_back(op);
        }
        left = std::move(again);
        attempt = std::min(op_deadline, attempt * 3);
        if (!left.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
  }
  for (auto& w : workers) w.join();
  return finals;
}

}  // namespace kvtest

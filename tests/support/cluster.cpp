#include "tests/support/cluster.h"

#include <signal.h>

#include <algorithm>
#include <sstream>
#include <thread>

namespace kvtest {

Cluster::Cluster(const std::string& work_dir, std::vector<std::string> ecs_flags)
    : Cluster(work_dir, std::move(ecs_flags), {}) {}

Cluster::Cluster(const std::string& work_dir, std::vector<std::string> ecs_flags,
                 std::vector<std::string> broker_flags)
    : work_dir_(work_dir), ecs_flags_(std::move(ecs_flags)), broker_flags_(std::move(broker_flags)) {
  StartBroker(0);
  if (broker_ports_.control != 0) StartEcs();
}

Cluster::~Cluster() {
  for (auto& n : nodes_) {
    if (n) n->process().Kill9();
  }
  if (ecs_) ecs_->Kill9();
  if (broker_) broker_->Kill9();
}

void Cluster::StartBroker(uint16_t port) {
  std::string port_file = work_dir_ + "/broker.port";
  std::remove(port_file.c_str());
  std::vector<std::string> argv = {Bin("kvbroker"), "-a", "127.0.0.1", "-p", std::to_string(port),
                                   "--port-file", port_file, "-ll", "debug"};
  if (port != 0) {
    argv.push_back("--pub-port");
    argv.push_back(std::to_string(broker_ports_.pub));
    argv.push_back("--sub-port");
    argv.push_back(std::to_string(broker_ports_.sub));
  }
  argv.insert(argv.end(), broker_flags_.begin(), broker_flags_.end());
  broker_ = std::make_unique<Process>(
      argv, work_dir_ + "/broker-" + std::to_string(++broker_starts_) + ".log");
  WaitFor(
      [&] {
        std::string text = ReadFile(port_file);
        if (text.empty() || text.back() != '\n') return !broker_->running();
        std::istringstream in(text);
        in >> broker_ports_.control >> broker_ports_.pub >> broker_ports_.sub;
        return true;
      },
      std::chrono::seconds(15));
}

void Cluster::RestartBroker() {
  uint16_t port = broker_ports_.control;
  broker_->Kill9();
  StartBroker(port);
}

void Cluster::KillBroker() { broker_->Kill9(); }

void Cluster::ReviveBroker() { StartBroker(broker_ports_.control); }

void Cluster::StartEcs() {
  std::vector<std::string> argv = {Bin("kvecs"), "-bh", "127.0.0.1", "-bp",
                                   std::to_string(broker_ports_.control), "--broker-sub-port",
                                   std::to_string(broker_ports_.sub), "-d", work_dir_ + "/ecs",
                                   "-ll", "debug", "--batch-window-ms", "100"};
  argv.insert(argv.end(), ecs_flags_.begin(), ecs_flags_.end());
  ecs_ = std::make_unique<Process>(argv,
                                   work_dir_ + "/ecs-" + std::to_string(++ecs_starts_) + ".log");
}

void Cluster::KillEcs() { ecs_->Kill9(); }

size_t Cluster::StartNode(std::vector<std::string> extra_flags) {
  size_t index = nodes_.size();
  node_flags_.push_back(std::move(extra_flags));
  nodes_.emplace_back();
  LaunchNode(index);
  return index;
}

void Cluster::RestartNode(size_t i, bool same_port) {
  std::vector<std::string> ports;
  if (nodes_[i]) {
    nodes_[i]->process().Kill9();
    if (same_port) {
      ports = {"-p", std::to_string(nodes_[i]->port()), "--peer-port",
               std::to_string(nodes_[i]->peer_port())};
    }
  }
  LaunchNode(i, ports);
}

void Cluster::LaunchNode(size_t index, std::vector<std::string> more_flags) {
  std::vector<std::string> flags = {"-bh", "127.0.0.1", "-bp",
                                    std::to_string(broker_ports_.control), "--broker-pub-port",
                                    std::to_string(broker_ports_.pub), "-ll", "debug",
                                    "--join-retry-ms", "300"};
  flags.insert(flags.end(), node_flags_[index].begin(), node_flags_[index].end());
  flags.insert(flags.end(), more_flags.begin(), more_flags.end());  // later flags win
  nodes_[index] = std::make_unique<NodeProcess>(node_data_dir(index), work_dir_, flags);
}

std::vector<uint16_t> Cluster::LivePorts() {
  std::vector<uint16_t> ports;
  for (auto& n : nodes_) {
    if (n && n->started() && n->process().running()) ports.push_back(n->port());
  }
  return ports;
}

std::vector<kv::KeyrangeEntry> Cluster::Keyrange() {
  for (uint16_t port : LivePorts()) {
    RawClient c(port);
    auto r = c.Call(kv::Op::kKeyrange);
    if (!r || r->status != kv::WireStatus::KEYRANGE_SUCCESS) continue;
    auto parsed = kv::Ring::ParseKeyrange(r->metadata);
    if (parsed.ok()) return *parsed;
  }
  return {};
}

bool Cluster::WaitForRingSize(size_t n, std::chrono::milliseconds deadline) {
  return WaitFor(
      [&] {
        // Every live node must report the same complete ring.
        std::vector<kv::KeyrangeEntry> first;
        auto ports = LivePorts();
        if (ports.size() < n) return false;
        for (uint16_t port : ports) {
          RawClient c(port);
          auto r = c.Call(kv::Op::kKeyrange);
          if (!r || r->status != kv::WireStatus::KEYRANGE_SUCCESS) return false;
          uint64_t& last = last_version_[port];
          if (r->ring_version < last) versions_only_grew_ = false;
          last = std::max(last, r->ring_version);
          auto parsed = kv::Ring::ParseKeyrange(r->metadata);
          if (!parsed.ok() || parsed->size() != n || !kv::CoversWholeRingExactly(*parsed)) {
            return false;
          }
          if (first.empty()) {
            first = *parsed;
          } else if (first != *parsed) {
            return false;
          }
        }
        return true;
      },
      deadline);
}

uint16_t PrimaryPort(const std::vector<kv::KeyrangeEntry>& ring, const std::string& key) {
  kv::Hash128 pos = kv::KeyPosition(key);
  for (const auto& e : ring) {
    bool in = e.from_inclusive <= e.to_inclusive
                  ? (pos >= e.from_inclusive && pos <= e.to_inclusive)
                  : (pos >= e.from_inclusive || pos <= e.to_inclusive);
    if (in) return e.port;
  }
  return 0;
}

RoutedClient::RoutedClient(std::function<std::vector<uint16_t>()> live_ports)
    : live_ports_(std::move(live_ports)) {}

bool RoutedClient::Refresh() {
  for (uint16_t port : live_ports_()) {
    auto& conn = conns_[port];
    if (!conn) conn = std::make_unique<RawClient>(port);
    kv::Request r;
    r.request_id = next_id_++;
    r.op = kv::Op::kKeyrange;
    conn->Send(r);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (std::chrono::steady_clock::now() < deadline) {
      auto reply = conn->Receive(std::chrono::milliseconds(200));
      if (!reply) continue;
      if (reply->request_id != r.request_id) continue;  // a late answer to an earlier call
      if (reply->status != kv::WireStatus::KEYRANGE_SUCCESS) break;
      auto parsed = kv::Ring::ParseKeyrange(reply->metadata);
      if (parsed.ok() && !parsed->empty()) {
        ring_ = *parsed;
        return true;
      }
      break;
    }
  }
  return false;
}

std::optional<OwnedReply> RoutedClient::Call(kv::Op op, const std::string& key,
                                             const std::string& value,
                                             std::chrono::milliseconds deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  auto backoff = std::chrono::milliseconds(5);
  while (std::chrono::steady_clock::now() < end) {
    if (ring_.empty() && !Refresh()) {
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(200));
      continue;
    }
    uint16_t port = PrimaryPort(ring_, key);
    auto& conn = conns_[port];
    if (!conn) conn = std::make_unique<RawClient>(port);
    kv::Request r;
    r.request_id = next_id_++;
    r.op = op;
    r.key = key;
    r.value = value;
    conn->Send(r);
    std::optional<OwnedReply> reply;
    auto wait_end = std::min(std::chrono::steady_clock::now() + attempt_timeout_, end);
    while (std::chrono::steady_clock::now() < wait_end) {
      auto got = conn->Receive(std::chrono::milliseconds(100));
      if (got && got->request_id == r.request_id) {
        reply = got;
        break;
      }
    }
    bool retry = !reply || reply->status == kv::WireStatus::SERVER_NOT_RESPONSIBLE ||
                 reply->status == kv::WireStatus::SERVER_STOPPED ||
                 reply->status == kv::WireStatus::SERVER_WRITE_LOCK ||
                 reply->status == kv::WireStatus::OVERLOADED;
    if (!reply) {
      // No answer: the outcome of a write is unknown; the caller decides.
      conns_.erase(port);
      ring_.clear();
      return std::nullopt;
    }
    if (!retry) return reply;
    ring_.clear();
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(200));
  }
  return std::nullopt;
}

}  // namespace kvtest

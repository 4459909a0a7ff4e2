// Test support: a whole cluster on 127.0.0.1 (kvbroker, kvecs, kvnodes on
// ephemeral ports) and a routing test client that finds each key's node from
// the keyrange text and retries on server_not_responsible / server_stopped /
// timeouts, like kvclient does. Not thread-safe: one test thread drives it,
// except that separate RoutedClient objects may be used from separate threads.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "schema/ring.h"
#include "tests/support/process.h"
#include "tests/support/raw_client.h"

namespace kvtest {

struct BrokerPorts {
  uint16_t control = 0, pub = 0, sub = 0;
};

class Cluster {
 public:
  // Starts a broker and an ECS (extra ECS flags appended) in work_dir.
  explicit Cluster(const std::string& work_dir, std::vector<std::string> ecs_flags = {});
  // The same, with extra kvbroker flags appended to every broker start.
  Cluster(const std::string& work_dir, std::vector<std::string> ecs_flags,
          std::vector<std::string> broker_flags);
  ~Cluster();

  bool started() const { return broker_ports_.control != 0 && ecs_ != nullptr; }
  const BrokerPorts& broker_ports() const { return broker_ports_; }

  // Starts a node that joins through the broker; returns its index.
  size_t StartNode(std::vector<std::string> extra_flags = {});
  NodeProcess& node(size_t i) { return *nodes_[i]; }
  // Starts node i again (kill -9 first if it still runs) with its old data
  // directory and flags, on a new ephemeral port or (same_port) on the ports
  // it had, keeping its identity in the ring; its log is a new file.
  void RestartNode(size_t i, bool same_port = false);
  std::string node_data_dir(size_t i) const { return work_dir_ + "/node" + std::to_string(i); }
  size_t node_count() const { return nodes_.size(); }
  // Client ports of the nodes that are running.
  std::vector<uint16_t> LivePorts();

  void StartEcs();
  void KillEcs();  // kill -9
  Process& ecs() { return *ecs_; }
  void RestartBroker();  // kill -9, then start again on the same ports
  void KillBroker();     // kill -9, leaving it down
  void ReviveBroker();   // after KillBroker: start again on the same ports
  bool broker_running() { return broker_ && broker_->running(); }

  // The ring as one live node reports it (keyrange), or empty.
  std::vector<kv::KeyrangeEntry> Keyrange();
  // Waits until keyrange shows exactly n nodes covering the ring exactly.
  bool WaitForRingSize(size_t n, std::chrono::milliseconds deadline = std::chrono::seconds(30));
  // False once a node's keyrange reply carried a lower ring version than an
  // earlier reply of the same node.
  bool versions_only_grew() const { return versions_only_grew_; }

 private:
  void StartBroker(uint16_t port);
  void LaunchNode(size_t index, std::vector<std::string> more_flags = {});
  std::string work_dir_;
  std::vector<std::string> ecs_flags_;
  std::vector<std::string> broker_flags_;
  std::vector<std::vector<std::string>> node_flags_;  // per node, as given to StartNode
  std::unique_ptr<Process> broker_;
  std::unique_ptr<Process> ecs_;
  BrokerPorts broker_ports_;
  std::vector<std::unique_ptr<NodeProcess>> nodes_;
  std::map<uint16_t, uint64_t> last_version_;  // per node client port
  bool versions_only_grew_ = true;
  int broker_starts_ = 0;
  int ecs_starts_ = 0;
};

// The client port of the node whose range holds key, or 0 if none does.
uint16_t PrimaryPort(const std::vector<kv::KeyrangeEntry>& ring, const std::string& key);

// Routes requests by the keyrange text it fetches from any of the given
// ports, retrying with back-off until the deadline.
class RoutedClient {
 public:
  explicit RoutedClient(std::function<std::vector<uint16_t>()> live_ports);
  // nullopt when no definite answer arrived before the deadline.
  std::optional<OwnedReply> Call(kv::Op op, const std::string& key, const std::string& value = "",
                                 std::chrono::milliseconds deadline = std::chrono::seconds(20));
  // How long one attempt waits for its reply before the outcome is unknown
  // (and Call returns nullopt). Default 3 s.
  void set_attempt_timeout(std::chrono::milliseconds timeout) { attempt_timeout_ = timeout; }

 private:
  bool Refresh();
  std::function<std::vector<uint16_t>()> live_ports_;
  std::vector<kv::KeyrangeEntry> ring_;
  std::map<uint16_t, std::unique_ptr<RawClient>> conns_;
  uint64_t next_id_ = 1;
  std::chrono::milliseconds attempt_timeout_{3000};
};

}  // namespace kvtest

// Test support for the fault harness: the client load (threads doing puts,
// gets and deletes on a fixed key set, each through its own RoutedClient),
// the recording of every operation as a kvtest::lin::Operation, and the
// mapping from a reply to an outcome. Times are microseconds since the
// harness's origin on steady_clock.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "schema/ring.h"
#include "tests/support/cluster.h"
#include "tests/support/linearizability.h"
#include "tests/support/raw_client.h"

namespace kvtest {

// Microseconds from origin to now on steady_clock.
int64_t MicrosSince(std::chrono::steady_clock::time_point origin);

// Fills op's outcome, value and prior from a reply (nullopt = no definite
// answer). Conservative where the protocol is: a put_error or a delete_error
// with a reason may have been applied (a failed group commit says "outcome
// unknown"), so they are kUnknown; a get_error with a reason is kError.
void ClassifyReply(const std::optional<OwnedReply>& reply, lin::Operation* op);

// True if entries cover the ring exactly, every entry is one of the running
// ports, and (with every_running_node) every running port has an entry.
bool RingOfRunning(const std::vector<kv::KeyrangeEntry>& entries,
                   const std::vector<uint16_t>& running, bool every_running_node);

// The client ports clients may ask for the ring. Thread-safe (a mutex guards
// the list); the harness's thread sets it, client threads read it.
class PortBoard {
 public:
  void Set(std::vector<uint16_t> ports);
  std::vector<uint16_t> Get() const;

 private:
  mutable std::mutex mu_;  // guards ports_
  std::vector<uint16_t> ports_;
};

struct WorkloadOptions {
  int clients = 4;               // threads, each with its own RoutedClient
  int keys = 200;                // keys "fk-000" ...
  int hot_keys = 8;              // the first hot_keys keys get hot_percent of the ops
  int hot_percent = 30;
  int put_percent = 45;          // of the ops; deletes next, the rest are gets
  int delete_percent = 5;
  std::chrono::milliseconds op_deadline{3000};  // then the outcome is unknown
  int max_ops_per_client = 1000000;
  uint64_t seed = 0;             // 0: the harness picks one (and prints it)
  // Probes (see StartProbe): one attempt's timeout, and when to give up.
  std::chrono::milliseconds probe_attempt{300};
  std::chrono::milliseconds probe_give_up{15000};
};

// The key names the workload uses, in order (the hot ones first).
std::vector<std::string> WorkloadKeys(int keys);

// Runs the client threads from construction until Stop(). One thread owns
// the object (StartProbe, Stop); the counters are atomics and each thread's
// history is merged under a mutex when it ends.
class Workload {
 public:
  Workload(const WorkloadOptions& options, const PortBoard& ports,
           std::chrono::steady_clock::time_point origin);
  ~Workload();
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;

  // Stops the threads (each finishes its operation in flight) and returns the
  // history of every operation, in no particular order. Call once.
  std::vector<lin::Operation> Stop();
  // Measures how soon `key` takes writes again after a fault: puts to it
  // through a fresh client per attempt (so each routes by a fresh ring) until
  // one is acknowledged, probe_give_up passes or Stop(). Its own thread; the
  // puts go into the history like any other (clients 2000 and up).
  void StartProbe(const std::string& key);
  int64_t ok_writes() const { return ok_writes_; }
  int64_t ops() const { return ops_; }

  // Reads every key once more through `threads` fresh clients, retrying a key
  // without a definite answer until `deadline`. Appends the reads (as clients
  // 1000 + t) to history; returns the final values of the keys read.
  static std::map<std::string, std::optional<std::string>> FinalReads(
      const std::vector<std::string>& keys, const PortBoard& ports, int threads,
      std::chrono::milliseconds op_deadline, std::chrono::milliseconds deadline,
      std::chrono::steady_clock::time_point origin, std::vector<lin::Operation>* history);

 private:
  void Loop(int client);
  WorkloadOptions options_;
  const PortBoard& ports_;
  std::chrono::steady_clock::time_point origin_;
  std::vector<std::string> keys_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> ok_writes_{0}, ops_{0};
  std::mutex mu_;  // guards history_
  std::vector<lin::Operation> history_;
  std::vector<std::thread> threads_;  // clients, then probes
  int probes_ = 0;                     // StartProbe calls (the caller's thread only)
};

}  // namespace kvtest

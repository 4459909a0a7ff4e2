#include "tests/support/fault_harness.h"

#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace kvtest {
namespace {

std::string Ms(int64_t us) { return std::to_string(us / 1000) + " ms"; }

std::string LastLine(const Process& p) {
  std::string log = p.Log();
  while (!log.empty() && log.back() == '\n') log.pop_back();
  return log.substr(log.rfind('\n') == std::string::npos ? 0 : log.rfind('\n') + 1);
}

}  // namespace

bool FaultRunResult::ok() const {
  return started && linearizability.verdict == lin::Verdict::kOk && lost_writes.empty() &&
         missing_final.empty();
}

std::string FaultRunResult::Summary() const {
  std::ostringstream out;
  out << "seed " << seed << ": ops " << counts.total << " (ok " << counts.ok << ", error "
      << counts.error << ", unknown " << counts.unknown << "), faults " << faults.size()
      << ", max unavailability ";
  if (unavailability.max_ms < 0) {
    out << "n/a";
  } else {
    out << unavailability.max_ms << " ms [" << unavailability.worst << "]";
  }
  out << ", max write gap " << max_write_gap_ms << " ms, final reads "
      << final_values.size() << "/" << final_values.size() + missing_final.size() << ", "
      << linearizability.Summary() << ", lost writes " << lost_writes.size()
      << ", awaits timed out " << awaits_timed_out;
  if (!started) out << ", CLUSTER DID NOT START";
  return out.str();
}

std::string FaultRunResult::Report(size_t max_chars) const {
  std::string text = Summary() + "\nschedule:\n";
  for (const auto& line : log) text += "  " + line + "\n";
  if (!missing_final.empty()) {
    text += std::to_string(missing_final.size()) + " key(s) without a final read, e.g. " +
            missing_final.front() + "\n";
  }
  for (size_t i = 0; i < lost_writes.size() && i < 10; ++i) text += lost_writes[i] + "\n";
  if (lost_writes.size() > 10) {
    text += "... " + std::to_string(lost_writes.size() - 10) + " more lost-write reports\n";
  }
  if (linearizability.verdict != lin::Verdict::kOk) {
    text += linearizability.Report(max_chars > text.size() ? max_chars - text.size() : 0);
  }
  if (text.size() > max_chars) text.resize(max_chars);
  return text;
}

FaultHarness::FaultHarness(std::string work_dir, FaultOptions options)
    : work_dir_(std::move(work_dir)), options_(std::move(options)) {
  if (options_.workload.seed == 0) options_.workload.seed = std::random_device{}() | 1;
  rng_.seed(options_.workload.seed);
}

FaultRunResult FaultHarness::Run() {
  FaultRunResult result;
  result.seed = options_.workload.seed;
  origin_ = std::chrono::steady_clock::now();
  std::vector<std::string> ecs_flags = {"--replication-factor",
                                        std::to_string(options_.replication_factor)};
  ecs_flags.insert(ecs_flags.end(), options_.ecs_flags.begin(), options_.ecs_flags.end());
  cluster_ = std::make_unique<Cluster>(work_dir_, ecs_flags, options_.broker_flags);
  if (!cluster_->started()) {
    Note(&result, "broker or ECS did not start");
    return result;
  }
  for (size_t i = 0; i < options_.nodes; ++i) cluster_->StartNode(options_.node_flags);
  killed_.assign(options_.nodes, false);
  if (!AwaitRing(true, Millis(30000))) {
    Note(&result, "the ring never showed all " + std::to_string(options_.nodes) + " nodes");
    if (!cluster_->ecs().running()) Note(&result, "the ECS exited: " + LastLine(cluster_->ecs()));
    std::printf("fault run: %s\n", result.Summary().c_str());
    return result;
  }
  result.started = true;
  PublishPorts();
  Note(&result, "cluster up, load starting (seed " + std::to_string(result.seed) + ")");

  Workload workload(options_.workload, ports_, origin_);
  workload_ = &workload;
  WaitFor([&] { return workload.ok_writes() >= 20; }, Millis(10000));
  std::this_thread::sleep_for(options_.load_before_faults);  // load before faults: a duration
  int64_t fault_start = MicrosSince(origin_);
  auto phase_end = std::chrono::steady_clock::now() + options_.max_fault_phase;
  for (const auto& step : options_.schedule) {
    auto wake = std::min(std::chrono::steady_clock::now() + step.after, phase_end);
    std::this_thread::sleep_until(wake);
    if (std::chrono::steady_clock::now() >= phase_end) {
      Note(&result, "schedule cut off after " + Ms(MicrosSince(origin_) - fault_start));
      break;
    }
    Step(step, &result);
  }
  std::this_thread::sleep_for(options_.load_after_faults);
  int64_t fault_end = MicrosSince(origin_);
  std::vector<lin::Operation> history = workload.Stop();
  workload_ = nullptr;
  result.counts = CountOutcomes(history);
  result.unavailability = MaxUnavailability(history, result.faults, fault_end);
  result.max_write_gap_ms = MaxWriteGapMs(history, fault_start, fault_end);
  Note(&result, "load stopped");

  // Quiescence needs the control plane: start what the schedule left down,
  // and say so if it went down by itself.
  if (!cluster_->broker_running()) {
    Note(&result, broker_killed_ ? "starting the broker the schedule left down"
                                 : "THE BROKER EXITED BY ITSELF; starting it");
    cluster_->ReviveBroker();
  }
  if (!cluster_->ecs().running()) {
    Note(&result, ecs_killed_ ? "starting the ECS the schedule left down"
                              : "THE ECS EXITED BY ITSELF: " + LastLine(cluster_->ecs()));
    cluster_->StartEcs();
  }
  for (size_t i = 0; i < cluster_->node_count(); ++i) {
    if (!killed_[i] && !cluster_->node(i).process().running()) {
      Note(&result, "node " + std::to_string(i) + " exited by itself, status " +
                        std::to_string(cluster_->node(i).process().Wait(Millis(0)).value_or(-1)));
    }
  }
  if (!AwaitRing(false, options_.quiescence_timeout)) {
    ++result.awaits_timed_out;
    Note(&result, "quiescence: no complete ring of running nodes within " +
                      std::to_string(options_.quiescence_timeout.count()) + " ms");
  }
  PublishPorts();
  auto keys = WorkloadKeys(options_.workload.keys);
  keys.insert(keys.end(), probe_keys_.begin(), probe_keys_.end());
  result.final_values = Workload::FinalReads(keys, ports_, std::max(options_.workload.clients, 8),
                                             options_.workload.op_deadline,
                                             options_.final_read_timeout, origin_, &history);
  for (const auto& key : keys) {
    if (result.final_values.count(key) == 0) result.missing_final.push_back(key);
  }
  Note(&result, "final reads done, checking");
  result.linearizability = lin::CheckHistory(history, options_.check);
  result.lost_writes = lin::CheckNoLostWrites(history, result.final_values);
  result.history = std::move(history);

  std::ofstream(work_dir_ + "/history.txt") << lin::FormatHistory(result.history, SIZE_MAX);
  std::ofstream(work_dir_ + "/report.txt") << result.Report(1 << 20);
  std::printf("fault run: %s\n", result.Summary().c_str());
  std::fflush(stdout);
  return result;
}

void FaultHarness::Step(const FaultStep& step, FaultRunResult* result) {
  const size_t running = RunningNodes().size();
  auto event = [&](const std::string& what, std::vector<std::string> keys = {}) {
    result->faults.push_back({MicrosSince(origin_), what, std::move(keys)});
  };
  switch (step.kind) {
    case FaultKind::kKillRandomNode:
    case FaultKind::kKillBusyPrimary: {
      if (running <= options_.min_running_nodes) {
        Note(result, "kill skipped: only " + std::to_string(running) + " nodes run");
        return;
      }
      std::optional<size_t> victim;
      if (step.kind == FaultKind::kKillBusyPrimary) {
        victim = BusyPrimary();
      } else {
        auto nodes = RunningNodes();
        victim = nodes[rng_() % nodes.size()];
      }
      if (!victim) return Note(result, "kill skipped: no primary found for a hot key");
      KillNode(*victim, step.kind == FaultKind::kKillBusyPrimary ? "busy primary" : "random",
               step.wipe_data, result);
      return;
    }
    case FaultKind::kPauseBusyPrimary: {
      auto victim = BusyPrimary();
      if (!victim) return Note(result, "pause skipped: no primary found for a hot key");
      Process& p = cluster_->node(*victim).process();
      std::string what = HitNode(*victim, "SIGSTOP node", [&] { p.Signal(SIGSTOP); }, result);
      paused_ = victim;
      PublishPorts();
      Note(result, what + " for " + std::to_string(step.duration.count()) + " ms");
      std::this_thread::sleep_for(step.duration);  // the fault's length, not a wait
      p.Signal(SIGCONT);
      paused_.reset();
      PublishPorts();
      return Note(result, "SIGCONT node " + std::to_string(*victim));
    }
    case FaultKind::kRestartKilledNodes:
      for (size_t i = 0; i < killed_.size(); ++i) {
        if (!killed_[i]) continue;
        cluster_->RestartNode(i, step.same_port);
        killed_[i] = false;
        Note(result, "restarted node " + std::to_string(i) + " with its data dir on port " +
                         std::to_string(cluster_->node(i).port()));
      }
      return PublishPorts();
    case FaultKind::kKillEcs:
      event("kill -9 ECS");
      cluster_->KillEcs();
      ecs_killed_ = true;
      return Note(result, "kill -9 ECS");
    case FaultKind::kStartEcs:
      cluster_->StartEcs();
      ecs_killed_ = false;
      return Note(result, "started ECS");
    case FaultKind::kKillBroker:
      event("kill -9 broker");
      cluster_->KillBroker();
      broker_killed_ = true;
      return Note(result, "kill -9 broker");
    case FaultKind::kStartBroker:
      cluster_->ReviveBroker();
      broker_killed_ = false;
      return Note(result, "started broker");
    case FaultKind::kAwaitRing:
    case FaultKind::kAwaitFailOver:
    case FaultKind::kAwait: {
      auto start = std::chrono::steady_clock::now();
      bool ok = step.kind == FaultKind::kAwait
                    ? WaitFor([&] { return step.condition(*cluster_); }, step.duration)
                    : AwaitRing(step.kind == FaultKind::kAwaitRing, step.duration);
      std::string what = step.kind == FaultKind::kAwait          ? step.label
                         : step.kind == FaultKind::kAwaitRing ? "ring of the running nodes"
                                                                : "fail-over";
      auto took = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - start);
      if (!ok) ++result->awaits_timed_out;
      return Note(result, (ok ? "awaited " : "TIMED OUT awaiting ") + what + " (" +
                              std::to_string(took.count()) + " ms)");
    }
  }
}

std::string FaultHarness::HitNode(size_t node, const std::string& what,
                                  const std::function<void()>& hit, FaultRunResult* result) {
  uint16_t port = cluster_->node(node).port();
  std::string probe;
  std::vector<std::string> keys = KeysOf(port, &probe);
  std::string text = what + " " + std::to_string(node) + " (port " + std::to_string(port) +
                     ", primary of " + std::to_string(keys.size()) + " keys)";
  if (!probe.empty()) keys.push_back(probe);
  hit();
  // Timed after the signal, so no write that beat it counts as "resumed".
  result->faults.push_back({MicrosSince(origin_), text, keys});
  if (workload_ != nullptr && !probe.empty()) workload_->StartProbe(probe);
  return text;
}

void FaultHarness::KillNode(size_t node, const std::string& why, bool wipe,
                            FaultRunResult* result) {
  uint16_t port = cluster_->node(node).port();
  std::string what = HitNode(
      node, "kill -9 (" + why + ") node", [&] { cluster_->node(node).process().Kill9(); },
      result);
  if (wipe) {
    std::error_code ec;
    std::filesystem::remove_all(cluster_->node_data_dir(node), ec);
    what += ", data directory deleted";
  }
  killed_[node] = true;
  probes_.erase(port);
  PublishPorts();
  Note(result, what);
}

void FaultHarness::Note(FaultRunResult* result, const std::string& line) {
  result->log.push_back("[" + std::to_string(MicrosSince(origin_) / 1000) + " ms] " + line);
}

std::vector<size_t> FaultHarness::RunningNodes() {
  std::vector<size_t> out;
  for (size_t i = 0; i < cluster_->node_count(); ++i) {
    if (!killed_[i] && cluster_->node(i).started() && cluster_->node(i).process().running()) {
      out.push_back(i);
    }
  }
  return out;
}

std::vector<uint16_t> FaultHarness::RunningPorts() {
  std::vector<uint16_t> ports;
  for (size_t i : RunningNodes()) {
    if (paused_ != i) ports.push_back(cluster_->node(i).port());
  }
  return ports;
}

void FaultHarness::PublishPorts() { ports_.Set(RunningPorts()); }

std::optional<size_t> FaultHarness::NodeOfPort(uint16_t port) {
  for (size_t i : RunningNodes()) {
    if (cluster_->node(i).port() == port) return i;
  }
  return std::nullopt;
}

std::vector<kv::KeyrangeEntry> FaultHarness::NewestRing() {
  std::vector<kv::KeyrangeEntry> newest;
  uint64_t newest_version = 0;
  for (uint16_t port : RunningPorts()) {
    auto& probe = probes_[port];
    if (!probe) probe = std::make_unique<RawClient>(port);
    kv::Request r;
    r.request_id = rng_();
    r.op = kv::Op::kKeyrange;
    probe->Send(r);
    std::optional<OwnedReply> reply;
    for (int i = 0; i < 5 && !reply; ++i) {  // skip late replies to earlier probes
      auto got = probe->Receive(Millis(100));
      if (!got) break;
      if (got->request_id == r.request_id) reply = got;
    }
    if (!reply) {
      probes_.erase(port);
      continue;
    }
    if (reply->status != kv::WireStatus::KEYRANGE_SUCCESS) continue;
    auto parsed = kv::Ring::ParseKeyrange(reply->metadata);
    if (parsed.ok() && (newest.empty() || reply->ring_version > newest_version)) {
      newest = *parsed;
      newest_version = reply->ring_version;
    }
  }
  return newest;
}

bool FaultHarness::AwaitRing(bool every_running_node, Millis deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  do {
    if (RingOfRunning(NewestRing(), RunningPorts(), every_running_node)) return true;
    std::this_thread::sleep_for(Millis(50));
  } while (std::chrono::steady_clock::now() < end);
  return false;
}

std::optional<size_t> FaultHarness::BusyPrimary() {
  auto hot = WorkloadKeys(std::max(1, std::min(options_.workload.hot_keys,
                                               options_.workload.keys)));
  std::optional<size_t> node;
  // Right after a kill or restart the newest ring may still name a dead
  // port; give it a few seconds to name a running node.
  WaitFor([&] {
    node = NodeOfPort(PrimaryPort(NewestRing(), hot[rng_() % hot.size()]));
    return node.has_value();
  }, Millis(5000));
  return node;
}

std::vector<std::string> FaultHarness::KeysOf(uint16_t port, std::string* probe) {
  auto ring = NewestRing();
  std::vector<std::string> out;
  for (const auto& key : WorkloadKeys(options_.workload.keys)) {
    if (PrimaryPort(ring, key) == port) out.push_back(key);
  }
  // A probe key of its own, so the probe's writes do not crowd a workload key.
  for (int tries = 0; tries < 10000 && !ring.empty(); ++tries) {
    std::string name = "probe-" + std::to_string(probe_keys_.size()) + "-" +
                       std::to_string(tries);
    if (PrimaryPort(ring, name) != port) continue;
    probe_keys_.push_back(name);
    *probe = name;
    break;
  }
  return out;
}

}  // namespace kvtest

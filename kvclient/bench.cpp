#include "kvclient/bench.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <vector>

#include "kvclient/router.h"
#include "kvclient/workload.h"

namespace kv::bench {
namespace {

using client::Clock;
using client::Completion;
using client::Connection;

// Returns the next operation to issue, or nullopt when the phase has issued all.
using NextOp = std::function<std::optional<OpChoice>()>;

struct Percentiles {
  double q;
  const char* json_name;
  const char* table_name;
};
constexpr Percentiles kPercentiles[] = {
    {50, "p50", "p50"}, {95, "p95", "p95"}, {99, "p99", "p99"}, {99.9, "p999", "p99.9"}};

// Bytes for put values: value_size bytes starting at a per-record offset of a
// buffer twice that long, so values differ without allocating per put.
std::string MakeValueBuffer(uint64_t value_size, uint64_t seed) {
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::mt19937_64 rng(seed ^ 0x9E3779B97F4A7C15ull);
  std::uniform_int_distribution<size_t> pick(0, sizeof(kAlphabet) - 2);
  std::string buffer(value_size * 2 + 1, 'x');
  for (auto& c : buffer) c = kAlphabet[pick(rng)];
  return buffer;
}

class PhaseRunner {
 public:
  PhaseRunner(const BenchConfig& config, client::Router& router, const std::string& values,
              std::ostream* progress)
      : config_(config), router_(router), values_(values), progress_(progress) {}

  // Issues operations from next_op until it runs out or the deadline passes,
  // then waits for everything in flight (each request is bounded by its
  // timeout and its resends by kMaxRedirects, so this ends).
  PhaseResult Run(const std::string& name, const NextOp& next_op,
                  std::optional<Clock::time_point> deadline) {
    PhaseResult result;
    result.name = name;
    const Clock::time_point start = Clock::now();
    Clock::time_point last_completion = start;
    Clock::time_point next_progress = start + config_.progress_interval;
    bool issuing = true;
    std::vector<Completion> completions;
    std::vector<zmq::pollitem_t> items;
    std::vector<Redirect> redirects;

    for (;;) {
      Clock::time_point now = Clock::now();
      if (deadline && now >= *deadline) issuing = false;
      if (issuing) issuing = Refill(next_op, &result);
      if (!issuing && in_flight_.empty()) break;

      // Sleep in poll until a reply, a ring update, the next timeout,
      // progress line or deadline.
      std::vector<Connection*> connections = router_.Connections();
      Clock::time_point wake = next_progress;
      if (issuing && deadline) wake = std::min(wake, *deadline);
      for (Connection* c : connections) {
        if (auto d = c->NextDeadline()) wake = std::min(wake, *d);
      }
      auto wait = std::chrono::ceil<std::chrono::milliseconds>(wake - now);
      wait = std::clamp(wait, std::chrono::milliseconds(0), std::chrono::milliseconds(1000));
      items.clear();
      for (Connection* c : connections) items.push_back(c->PollItem());
      if (auto updates = router_.UpdatesPollItem()) items.push_back(*updates);
      try {
        zmq::poll(items.data(), items.size(), wait);
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) spdlog::warn("poll failed: {}", e.what());
      }

      router_.PollUpdates();
      now = Clock::now();
      redirects.clear();
      for (Connection* c : connections) {
        completions.clear();
        c->Collect(now, &completions);
        for (auto& completion : completions) Account(c, completion, now, &result, &redirects);
        if (!completions.empty()) last_completion = now;
      }
      Resend(redirects, &result);
      router_.ReapRetired();

      if (progress_ && now >= next_progress) {
        double elapsed = std::chrono::duration<double>(now - start).count();
        char line[160];
        std::snprintf(line, sizeof(line), "kvbench %s: %.1f s, %llu ops, %.0f ops/s, %llu errors\n",
                      name.c_str(), elapsed, static_cast<unsigned long long>(result.ops),
                      elapsed > 0 ? result.ops / elapsed : 0.0,
                      static_cast<unsigned long long>(result.errors));
        *progress_ << line << std::flush;
        next_progress = now + config_.progress_interval;
      }
    }
    result.seconds = std::chrono::duration<double>(last_completion - start).count();
    return result;
  }

 private:
  // What kvbench remembers about a request in flight, to resend it.
  struct InFlight {
    Op op;
    uint64_t record;
    Clock::time_point first_sent;  // latency runs from here, across resends
    int redirects;
  };
  struct Redirect {
    InFlight op;
    std::string from;       // the node that refused
    uint64_t ring_version;  // its ring version
  };
  using Key = std::pair<Connection*, uint64_t>;  // connection, request id

  // Tops the total in flight up to connections x inflight. Returns false once
  // next_op has nothing more to issue.
  bool Refill(const NextOp& next_op, PhaseResult* result) {
    const uint64_t limit = config_.connections * config_.inflight;
    while (in_flight_.size() < limit) {
      std::optional<OpChoice> choice = next_op();
      if (!choice) return false;
      if (!Issue(InFlight{choice->op, choice->record, Clock::now(), 0}, result)) break;
    }
    return true;
  }

  // Sends one operation to its key's node; counts an error when it cannot.
  bool Issue(const InFlight& op, PhaseResult* result) {
    std::string key = KeyFor(op.record);
    std::string_view value;
    if (op.op == Op::kPut) {
      value = std::string_view(values_).substr(op.record % (config_.value_size + 1),
                                               config_.value_size);
    }
    auto connection = router_.ConnectionFor(key, next_lane_++);
    if (!connection.ok()) {
      spdlog::warn("no route for {}: {}", key, connection.status().ToString());
      CountError(OpName(op.op), "no_route", result);
      return false;
    }
    auto id = (*connection)->Send(op.op, key, value, router_.version());
    if (!id.ok()) {
      spdlog::warn("send to {} failed: {}", (*connection)->address(), id.status().ToString());
      CountError(OpName(op.op), "send_failed", result);
      return false;  // that connection is full; let replies drain first
    }
    in_flight_.emplace(Key{*connection, *id}, op);
    return true;
  }

  // Refreshes the ring once for the newest version any redirecting node
  // reported, then resends.
  void Resend(const std::vector<Redirect>& redirects, PhaseResult* result) {
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
    for (const auto& r : redirects) {
      ++result->redirects;
      InFlight again = r.op;
      ++again.redirects;
      Issue(again, result);
    }
  }

  void CountError(const std::string& op, const std::string& kind, PhaseResult* result) {
    ++result->ops;
    ++result->errors;
    ++result->errors_by_kind[kind];
    ++result->by_op[op].errors;
  }

  void Account(Connection* connection, const Completion& c, Clock::time_point now,
               PhaseResult* result, std::vector<Redirect>* redirects) {
    auto it = in_flight_.find(Key{connection, c.request_id});
    if (it == in_flight_.end()) return;  // a router refresh (keyrange), not ours
    InFlight op = it->second;
    in_flight_.erase(it);
    std::string name = OpName(op.op);
    if (!c.result.ok()) {
      CountError(name, c.result.status().IsTimeout() ? "timeout" : "client_error", result);
      return;
    }
    if (c.result->status == WireStatus::SERVER_NOT_RESPONSIBLE && op.redirects < kMaxRedirects) {
      redirects->push_back(Redirect{op, connection->address(), c.result->ring_version});
      return;
    }
    if (!IsSuccess(c.result->status)) {
      CountError(name, StatusWord(c.result->status), result);
      return;
    }
    ++result->ops;
    OpStats& stats = result->by_op[name];
    ++stats.ok;
    stats.latency_us.Record(
        std::chrono::duration_cast<std::chrono::microseconds>(now - op.first_sent).count());
  }

  const BenchConfig& config_;
  client::Router& router_;
  const std::string& values_;
  std::ostream* progress_;
  std::map<Key, InFlight> in_flight_;
  uint64_t next_lane_ = 0;
};

std::string Num(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

std::string PhaseJson(const PhaseResult& phase) {
  std::ostringstream out;
  out << "\"throughput_ops\":" << Num(phase.throughput()) << ",\"ops\":" << phase.ops
      << ",\"errors\":" << phase.errors << ",\"seconds\":" << Num(phase.seconds, 3)
      << ",\"redirects\":" << phase.redirects << ",\"errors_by_kind\":{";
  bool first = true;
  for (const auto& [kind, n] : phase.errors_by_kind) {
    out << (first ? "" : ",") << '"' << kind << "\":" << n;
    first = false;
  }
  out << "},\"latency_us\":{";
  // put and get always appear, so consumers need not test for them.
  std::map<std::string, OpStats> ops = phase.by_op;
  ops["put"];
  ops["get"];
  first = true;
  for (const auto& [name, stats] : ops) {
    const Histogram& h = stats.latency_us;
    out << (first ? "" : ",") << '"' << name << "\":{\"count\":" << stats.ok
        << ",\"errors\":" << stats.errors;
    for (const auto& p : kPercentiles) out << ",\"" << p.json_name << "\":" << h.Percentile(p.q);
    out << ",\"max\":" << h.max() << ",\"mean\":" << Num(h.mean()) << "}";
    first = false;
  }
  out << "}";
  return out.str();
}

std::string PhaseTable(const PhaseResult& phase) {
  std::ostringstream out;
  char line[256];
  std::snprintf(line, sizeof(line), "%s: %llu ops in %.2f s = %.0f ops/s, %llu errors\n",
                phase.name.c_str(), static_cast<unsigned long long>(phase.ops), phase.seconds,
                phase.throughput(), static_cast<unsigned long long>(phase.errors));
  out << line;
  std::snprintf(line, sizeof(line), "  %-14s %10s %8s %9s %9s %9s %9s %9s   (latency in us)\n",
                "op", "count", "errors", "p50", "p95", "p99", "p99.9", "max");
  out << line;
  for (const auto& [name, stats] : phase.by_op) {
    const Histogram& h = stats.latency_us;
    std::snprintf(line, sizeof(line), "  %-14s %10llu %8llu %9llu %9llu %9llu %9llu %9llu\n",
                  name.c_str(), static_cast<unsigned long long>(stats.ok),
                  static_cast<unsigned long long>(stats.errors),
                  static_cast<unsigned long long>(h.Percentile(50)),
                  static_cast<unsigned long long>(h.Percentile(95)),
                  static_cast<unsigned long long>(h.Percentile(99)),
                  static_cast<unsigned long long>(h.Percentile(99.9)),
                  static_cast<unsigned long long>(h.max()));
    out << line;
  }
  out << "  errors:";
  if (phase.errors_by_kind.empty()) out << " none";
  for (const auto& [kind, n] : phase.errors_by_kind) out << ' ' << kind << '=' << n;
  if (phase.redirects > 0) out << " (" << phase.redirects << " requests redirected)";
  out << '\n';
  return out.str();
}

}  // namespace

Status ValidateConfig(const BenchConfig& c) {
  if (c.port == 0) return Status::InvalidArgument("a node or broker port is required (-bp PORT)");
  if (c.host.empty())
    return Status::InvalidArgument("a node or broker host is required (-bh HOST)");
  if (!c.load_phase && !c.run_phase) {
    return Status::InvalidArgument("--load-only and --run-only exclude each other");
  }
  if (c.records == 0) return Status::InvalidArgument("--records must be at least 1");
  if (c.connections == 0) return Status::InvalidArgument("--connections must be at least 1");
  if (c.inflight == 0) return Status::InvalidArgument("--inflight must be at least 1");
  if (c.run_phase && c.duration.count() <= 0) {
    return Status::InvalidArgument("--duration must be at least 1 second");
  }
  if (c.read_ratio < 0.0 || c.read_ratio > 1.0) {
    return Status::InvalidArgument("--read-ratio must be within [0, 1]");
  }
  return Status::Ok();
}

const PhaseResult* BenchResult::main_phase() const {
  if (run) return &*run;
  if (load) return &*load;
  return nullptr;
}

Result<BenchResult> RunBench(const BenchConfig& config, std::ostream* progress) {
  Status valid = ValidateConfig(config);
  if (!valid.ok()) return valid;
  auto workload = MakeWorkload(config.workload, {config.records, config.read_ratio});
  if (!workload.ok()) return workload.status();

  zmq::context_t ctx;
  client::Router router(ctx, client::RouterOptions{config.request_timeout, config.broker_pub_port,
                                                   config.connections});
  if (Status s = router.Connect(config.host, config.port); !s.ok()) return s;
  BenchResult result;
  if (router.via_broker()) {
    if (router.table().empty()) (void)router.Refresh();
    if (router.table().empty()) {
      return Status::Unavailable("the broker at " + router.address() + " has no nodes in its ring");
    }
    result.target = "broker " + router.address() + ", ring v" + std::to_string(router.version()) +
                    " with " + std::to_string(router.table().size()) + " nodes";
  } else if (router.table().size() > 1) {
    result.target = "node " + router.address() + ", ring v" + std::to_string(router.version()) +
                    " with " + std::to_string(router.table().size()) + " nodes";
  } else {
    result.target = "node " + router.address();
  }
  const std::string values = MakeValueBuffer(config.value_size, config.seed);
  PhaseRunner runner(config, router, values, progress);

  if (config.load_phase) {
    uint64_t next = 0;
    NextOp load = [&]() -> std::optional<OpChoice> {
      if (next >= config.records) return std::nullopt;
      return OpChoice{Op::kPut, next++};
    };
    result.load = runner.Run("load", load, std::nullopt);
  }
  if (config.run_phase) {
    std::mt19937_64 rng(config.seed);
    uint64_t issued = 0;
    NextOp run = [&]() -> std::optional<OpChoice> {
      if (config.ops != 0 && issued >= config.ops) return std::nullopt;
      ++issued;
      return (*workload)->Next(rng);
    };
    result.run = runner.Run("run", run, Clock::now() + config.duration);
  }
  return result;
}

std::string FormatTable(const BenchConfig& config, const BenchResult& result) {
  std::ostringstream out;
  out << "kvbench: " << result.target << ", workload " << config.workload << " (read ratio "
      << config.read_ratio << "), " << config.records << " records of " << config.value_size
      << " B, " << config.connections << " connections x " << config.inflight << " in flight, seed "
      << config.seed << '\n';
  if (result.load) out << PhaseTable(*result.load);
  if (result.run) out << PhaseTable(*result.run);
  return out.str();
}

std::string FormatJson(const BenchConfig& config, const BenchResult& result) {
  const PhaseResult* main = result.main_phase();
  std::ostringstream out;
  out << "{\"workload\":\"" << config.workload << "\",\"phase\":\"" << (main ? main->name : "none")
      << "\",\"connections\":" << config.connections << ",\"inflight\":" << config.inflight
      << ",\"records\":" << config.records << ",\"value_size\":" << config.value_size;
  if (main) out << ',' << PhaseJson(*main);
  if (result.load && result.run) out << ",\"load\":{" << PhaseJson(*result.load) << '}';
  out << '}';
  return out.str();
}

}  // namespace kv::bench

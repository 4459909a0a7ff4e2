#include "kvclient/runner.h"

#include <algorithm>
#include <cstdio>

namespace kv::bench {
namespace {

// The longest one poll of the target sleeps.
constexpr std::chrono::milliseconds kMaxPollWait{1000};

// value_size bytes from any offset in [0, value_size] of a buffer twice that
// long, drawn once from the seed.
std::string MakeValueBuffer(uint64_t value_size, uint64_t seed) {
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::mt19937_64 rng(seed ^ 0x9E3779B97F4A7C15ull);
  std::uniform_int_distribution<size_t> pick(0, sizeof(kAlphabet) - 2);
  std::string buffer(value_size * 2 + 1, 'x');
  for (auto& c : buffer) c = kAlphabet[pick(rng)];
  return buffer;
}

}  // namespace

PhaseRunner::PhaseRunner(Target& target, const RunnerOptions& options)
    : target_(target), options_(options), values_(MakeValueBuffer(options.value_size, options.seed)) {}

std::string_view PhaseRunner::ValueFor(uint64_t record) const {
  return std::string_view(values_).substr(record % (options_.value_size + 1), options_.value_size);
}

PhaseResult PhaseRunner::Run(const std::string& name, Workload& workload, std::mt19937_64& rng,
                             const PhaseLimits& limits) {
  PhaseResult result;
  result.name = name;
  names_ = &workload.op_names();
  for (const std::string& op : *names_) result.by_op[op];
  active_.clear();
  issued_ = 0;
  barrier_ = false;
  const uint64_t redirects_before = target_.redirects();
  const uint64_t retries_before = target_.retries();

  const Clock::time_point start = Clock::now();
  measure_from_ = start + limits.warmup;
  std::optional<Clock::time_point> deadline;
  if (limits.duration) deadline = measure_from_ + *limits.duration;
  Clock::time_point last_completion = measure_from_;
  Clock::time_point next_progress = start + options_.progress_interval;
  bool issuing = true;
  std::vector<TargetReply> replies;

  for (;;) {
    Clock::time_point now = Clock::now();
    if (deadline && now >= *deadline) issuing = false;
    if (issuing) issuing = Refill(workload, rng, limits);
    if (!issuing && active_.empty()) break;

    // Sleep in the target's poll until a reply, the next progress line (when
    // they are shown), the end of the warm-up or the deadline. A wake time
    // left in the past would make every poll return at once: the thread
    // would spin and take a core from the servers it measures.
    Clock::time_point wake = now + kMaxPollWait;
    if (options_.progress) wake = std::min(wake, next_progress);
    if (issuing && deadline) wake = std::min(wake, *deadline);
    if (now < measure_from_) wake = std::min(wake, measure_from_);
    auto wait = std::chrono::ceil<std::chrono::milliseconds>(wake - now);
    replies.clear();
    target_.Poll(std::clamp(wait, std::chrono::milliseconds(0), kMaxPollWait), &replies);
    now = Clock::now();
    for (const TargetReply& reply : replies) Complete(reply, now, workload, &result);
    if (!replies.empty() && now > measure_from_) last_completion = now;

    if (options_.progress && now >= next_progress) {
      const double elapsed = std::chrono::duration<double>(now - start).count();
      const double measured = std::chrono::duration<double>(now - measure_from_).count();
      char line[200];
      std::snprintf(line, sizeof(line), "kvbench %s: %.1f s%s, %llu ops, %.0f ops/s, %llu errors\n",
                    name.c_str(), elapsed, measured < 0 ? " (warm-up)" : "",
                    static_cast<unsigned long long>(result.ops),
                    measured > 0 ? result.ops / measured : 0.0,
                    static_cast<unsigned long long>(result.errors));
      *options_.progress << line << std::flush;
      next_progress = now + options_.progress_interval;
    }
  }
  result.seconds = std::chrono::duration<double>(last_completion - measure_from_).count();
  result.redirects = target_.redirects() - redirects_before;
  result.retries = target_.retries() - retries_before;
  names_ = nullptr;
  return result;
}

bool PhaseRunner::Refill(Workload& workload, std::mt19937_64& rng, const PhaseLimits& limits) {
  const uint64_t limit = options_.connections * options_.inflight;
  // One clock read for the whole refill: the requests leave together at the
  // target's next poll anyway.
  const Clock::time_point now = Clock::now();
  const bool measured = now >= measure_from_;
  while (active_.size() < limit) {
    if (barrier_) {
      if (!active_.empty()) return true;
      barrier_ = false;
    }
    if (measured && limits.ops != 0 && issued_ >= limits.ops) return false;
    Pick pick = workload.Next(rng);
    if (pick.kind == Pick::kDone) return false;
    if (pick.kind == Pick::kWait) {
      barrier_ = true;
      continue;
    }
    if (measured) ++issued_;
    const uint64_t tag = next_tag_++;
    auto [it, _] = active_.emplace(tag, Active{pick.op, 0, now, now, measured});
    SendStep(tag, it->second);
  }
  return true;
}

void PhaseRunner::SendStep(uint64_t tag, const Active& active) {
  const Step& step = active.op.steps[active.step];
  std::string_view value = step.action == Action::kPut ? ValueFor(active.op.record + active.step)
                                                       : std::string_view();
  target_.Send(next_lane_++ % options_.connections, tag, step.action, KeyFor(active.op.record),
               value);
}

void PhaseRunner::Complete(const TargetReply& reply, Clock::time_point now, Workload& workload,
                           PhaseResult* result) {
  auto it = active_.find(reply.tag);
  if (it == active_.end()) return;
  Active& a = it->second;
  const Step& step = a.op.steps[a.step];
  const bool last = !reply.ok || a.step + 1 == a.op.step_count;
  if (a.measured) {
    if (step.label >= 0) Record(step.label, reply.ok, reply.error_kind, now - a.step_start, result);
    // A failed step fails the whole operation; the steps after it are not sent.
    if (a.op.label >= 0 && last) Record(a.op.label, reply.ok, reply.error_kind, now - a.start, result);
  }
  if (last) {
    workload.Finished(a.op);
    active_.erase(it);
    return;
  }
  ++a.step;
  a.step_start = now;
  SendStep(reply.tag, a);
}

void PhaseRunner::Record(int label, bool ok, const std::string& kind, Clock::duration latency,
                         PhaseResult* result) {
  OpStats& stats = result->by_op[(*names_)[label]];
  ++result->ops;
  if (!ok) {
    ++result->errors;
    ++result->errors_by_kind[kind];
    ++stats.errors;
    return;
  }
  ++stats.ok;
  stats.latency_us.Record(std::chrono::duration_cast<std::chrono::microseconds>(latency).count());
}

}  // namespace kv::bench

#include "kvclient/workload.h"

#include <cstdio>

namespace kv::bench {
namespace {

// "95%" for 0.95.
std::string Percent(double share) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%g%%", share * 100);
  return buf;
}

OpChoice Single(uint64_t record, Action action, int label) {
  OpChoice op;
  op.record = record;
  op.steps[0] = Step{action, label};
  op.step_count = 1;
  return op;
}

// put/get mix over records chosen uniformly (or by --distribution).
class MixWorkload : public Workload {
 public:
  explicit MixWorkload(const WorkloadOptions& o)
      : Workload({"get", "put"}),
        records_(o.records),
        distribution_(o.distribution.value_or(Distribution::kUniform)),
        read_(o.read_ratio),
        keys_(MakeKeyChooser(distribution_, o.records)) {}

  Pick Next(std::mt19937_64& rng) override {
    bool get = read_(rng);
    return {Pick::kOp, Single(keys_->Next(rng, records_), get ? Action::kGet : Action::kPut,
                              get ? 0 : 1)};
  }
  std::string Describe() const override {
    return "mix: " + Percent(read_.p()) + " get, " + Percent(1 - read_.p()) + " put, " +
           DistributionName(distribution_);
  }

 private:
  uint64_t records_;
  Distribution distribution_;
  std::bernoulli_distribution read_;
  std::unique_ptr<KeyChooser> keys_;
};

// A YCSB core workload: each operation is a read, an update, an insert of a
// new record or a read-modify-write, by the given proportions.
struct CoreMix {
  const char* name;
  double read, update, insert, rmw;
  Distribution distribution;
};
constexpr CoreMix kCoreMixes[] = {
    {"a", 0.5, 0.5, 0, 0, Distribution::kZipfian},  {"b", 0.95, 0.05, 0, 0, Distribution::kZipfian},
    {"c", 1.0, 0, 0, 0, Distribution::kZipfian},    {"d", 0.95, 0, 0.05, 0, Distribution::kLatest},
    {"f", 0.5, 0, 0, 0.5, Distribution::kZipfian},
};

class CoreWorkload : public Workload {
 public:
  CoreWorkload(const CoreMix& mix, const WorkloadOptions& o)
      : Workload(Names(mix)),
        mix_(mix),
        distribution_(o.distribution.value_or(mix.distribution)),
        keys_(MakeKeyChooser(distribution_, o.records)),
        inserted_(o.records) {}

  Pick Next(std::mt19937_64& rng) override {
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    const uint64_t existing = inserted_.limit();
    if (u < mix_.read) return {Pick::kOp, Single(keys_->Next(rng, existing), Action::kGet, 0)};
    if (u < mix_.read + mix_.update) {
      return {Pick::kOp, Single(keys_->Next(rng, existing), Action::kPut, 1)};
    }
    if (u < mix_.read + mix_.update + mix_.insert) {
      OpChoice op = Single(inserted_.Issue(), Action::kPut, 1);
      op.insert = true;
      return {Pick::kOp, op};
    }
    // Read-modify-write: reported once, from the get's send to the put's reply.
    OpChoice op = Single(keys_->Next(rng, existing), Action::kGet, -1);
    op.steps[1] = Step{Action::kPut, -1};
    op.step_count = 2;
    op.label = 1;
    return {Pick::kOp, op};
  }

  void Finished(const OpChoice& op) override {
    if (op.insert) inserted_.Acknowledge(op.record);
  }

  std::string Describe() const override {
    std::string out = std::string(mix_.name) + ":";
    for (auto [share, name] : {std::pair{mix_.read, "read"}, {mix_.update, "update"},
                               {mix_.insert, "insert"}, {mix_.rmw, "read_modify_write"}}) {
      if (share > 0) out.append(" ").append(Percent(share)).append(" ").append(name).append(",");
    }
    return out.append(" ").append(DistributionName(distribution_));
  }

 private:
  // "read" is label 0, the other op type (update, insert or read_modify_write) label 1.
  static std::vector<std::string> Names(const CoreMix& mix) {
    if (mix.update > 0) return {"read", "update"};
    if (mix.insert > 0) return {"read", "insert"};
    if (mix.rmw > 0) return {"read", "read_modify_write"};
    return {"read"};
  }

  CoreMix mix_;
  Distribution distribution_;
  std::unique_ptr<KeyChooser> keys_;
  AcknowledgedCounter inserted_;
};

// The seed system's test. seed1: for each key put, get, update, delete, each
// step after the one before it. seed2: put every key, then get every key,
// then update, then delete, each loop starting once the one before it has
// been answered completely.
class SeedWorkload : public Workload {
 public:
  SeedWorkload(bool one_loop, uint64_t records)
      : Workload({"put", "get", "update", "delete"}), one_loop_(one_loop), records_(records) {}

  Pick Next(std::mt19937_64&) override {
    static constexpr Action kActions[] = {Action::kPut, Action::kGet, Action::kPut,
                                          Action::kDelete};
    if (one_loop_) {
      if (next_ >= records_) return {};
      OpChoice op;
      op.record = next_++;
      for (int i = 0; i < 4; ++i) op.steps[i] = Step{kActions[i], i};
      op.step_count = 4;
      return {Pick::kOp, op};
    }
    if (next_ >= records_) {
      if (++loop_ >= 4) return {};
      next_ = 0;
      return {Pick::kWait, {}};
    }
    return {Pick::kOp, Single(next_++, kActions[loop_], loop_)};
  }

  std::string Describe() const override {
    return one_loop_ ? "seed1: per key put, get, update, delete in one loop"
                     : "seed2: put, get, update, delete in four loops over all keys";
  }

 private:
  bool one_loop_;
  uint64_t records_;
  uint64_t next_ = 0;
  int loop_ = 0;
};

// Inserts records 0 .. records-1, once each.
class LoadWorkload : public Workload {
 public:
  explicit LoadWorkload(uint64_t records) : Workload({"insert"}), records_(records) {}
  Pick Next(std::mt19937_64&) override {
    if (next_ >= records_) return {};
    return {Pick::kOp, Single(next_++, Action::kPut, 0)};
  }
  std::string Describe() const override { return "load: insert every record"; }

 private:
  uint64_t records_;
  uint64_t next_ = 0;
};

}  // namespace

const std::vector<std::string>& WorkloadNames() {
  static const std::vector<std::string> names = {"a", "b", "c", "d", "f", "mix", "seed1", "seed2"};
  return names;
}

Result<std::unique_ptr<Workload>> MakeWorkload(const std::string& name,
                                               const WorkloadOptions& options) {
  if (options.records == 0) return Status::InvalidArgument("records must be at least 1");
  if (options.read_ratio < 0.0 || options.read_ratio > 1.0) {
    return Status::InvalidArgument("read ratio must be within [0, 1]");
  }
  if (name == "mix") return std::unique_ptr<Workload>(new MixWorkload(options));
  if (name == "seed1" || name == "seed2") {
    return std::unique_ptr<Workload>(new SeedWorkload(name == "seed1", options.records));
  }
  for (const CoreMix& mix : kCoreMixes) {
    if (name == mix.name) return std::unique_ptr<Workload>(new CoreWorkload(mix, options));
  }
  return Status::InvalidArgument("unknown workload '" + name + "'");
}

std::unique_ptr<Workload> MakeLoadWorkload(uint64_t records) {
  return std::make_unique<LoadWorkload>(records);
}

bool HasLoadPhase(const std::string& workload) {
  return workload != "seed1" && workload != "seed2";
}

std::string KeyFor(uint64_t record) {
  // "user" and at least 12 digits, zero-padded (printf's "user%012llu"), by
  // hand: this runs once per request.
  char digits[20];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + record % 10);
    record /= 10;
  } while (record != 0);
  std::string key = "user";
  key.append(n < 12 ? static_cast<size_t>(12 - n) : 0, '0');
  while (n > 0) key.push_back(digits[--n]);
  return key;
}

}  // namespace kv::bench

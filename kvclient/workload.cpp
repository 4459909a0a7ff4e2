#include "kvclient/workload.h"

#include <cstdio>

namespace kv::bench {
namespace {

// put/get mix over uniformly chosen records.
class MixWorkload : public Workload {
 public:
  explicit MixWorkload(const WorkloadOptions& options)
      : read_(options.read_ratio), record_(0, options.records - 1) {}

  OpChoice Next(std::mt19937_64& rng) override {
    return OpChoice{read_(rng) ? Op::kGet : Op::kPut, record_(rng)};
  }

 private:
  std::bernoulli_distribution read_;
  std::uniform_int_distribution<uint64_t> record_;
};

}  // namespace

const std::vector<std::string>& WorkloadNames() {
  // TODO(ycsb): add "a", "b", "c", "d", "f" with zipfian/latest key choice.
  static const std::vector<std::string> names = {"mix"};
  return names;
}

Result<std::unique_ptr<Workload>> MakeWorkload(const std::string& name,
                                               const WorkloadOptions& options) {
  if (options.records == 0) return Status::InvalidArgument("records must be at least 1");
  if (options.read_ratio < 0.0 || options.read_ratio > 1.0) {
    return Status::InvalidArgument("read ratio must be within [0, 1]");
  }
  if (name == "mix") return std::unique_ptr<Workload>(new MixWorkload(options));
  return Status::InvalidArgument("unknown workload '" + name + "'");
}

std::string KeyFor(uint64_t record) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "user%012llu", static_cast<unsigned long long>(record));
  return buf;
}

}  // namespace kv::bench

// kvbench workloads: which operation to issue next and on which record. Keys
// are "user" plus the record number zero-padded to 12 digits, so the load
// phase and every workload agree on the key space. Only "mix" (put/get with
// a read ratio, uniform keys) exists so far; YCSB a/b/c/d/f plug in here.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "schema/status.h"
#include "schema/wire.h"

namespace kv::bench {

struct OpChoice {
  Op op = Op::kGet;
  uint64_t record = 0;  // index into [0, records)
};

// The workload names MakeWorkload accepts, for flag help and validation.
const std::vector<std::string>& WorkloadNames();

// Chooses operations for the run phase. Not thread-safe; owned by the runner.
class Workload {
 public:
  virtual ~Workload() = default;
  virtual OpChoice Next(std::mt19937_64& rng) = 0;
};

struct WorkloadOptions {
  uint64_t records = 100000;  // size of the key space
  double read_ratio = 0.5;    // mix: fraction of gets, the rest are puts
};

Result<std::unique_ptr<Workload>> MakeWorkload(const std::string& name,
                                               const WorkloadOptions& options);

// "user000000000042" for record 42.
std::string KeyFor(uint64_t record);

}  // namespace kv::bench

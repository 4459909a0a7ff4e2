// kvbench workloads: which operation to issue next and on which record. Keys
// are "user" plus the record number zero-padded to 12 digits, so the load
// phase and every workload agree on the key space.
//
//   a, b, c, d, f  YCSB core workloads (read/update 50/50, 95/5, read only,
//                  read/insert 95/5 on the latest records, read/read-modify-write 50/50)
//   mix            get/put by --read-ratio over uniformly chosen records
//   seed1, seed2   the seed system's performance test: per key put, get,
//                  update, delete in one loop; or the four in four loops
//
// An operation is up to four steps on one record, each sent after the one
// before it has been answered: one step for most, get then put for a
// read-modify-write, put/get/put/delete for seed1.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "kvclient/key_chooser.h"
#include "schema/status.h"

namespace kv::bench {

// What one step sends. Insert and update are both puts on the wire (SET on Redis).
enum class Action { kGet, kPut, kDelete };

struct Step {
  Action action = Action::kGet;
  int label = -1;  // index into Workload::op_names() it is reported as; -1: not on its own
};

struct OpChoice {
  uint64_t record = 0;  // index into the key space
  std::array<Step, 4> steps{};
  int step_count = 0;
  int label = -1;       // the whole operation is reported as this op (read-modify-write)
  bool insert = false;  // a new record: acknowledge it to the workload when done
};

// The next thing to do: an operation, wait until nothing is in flight (a
// barrier between the loops of seed2), or nothing more (finite workloads).
struct Pick {
  enum Kind { kOp, kWait, kDone } kind = kDone;
  OpChoice op;
};

// Chooses operations for one phase. Not thread-safe; owned by the runner.
class Workload {
 public:
  explicit Workload(std::vector<std::string> op_names) : op_names_(std::move(op_names)) {}
  virtual ~Workload() = default;
  virtual Pick Next(std::mt19937_64& rng) = 0;
  // An operation chosen by Next has finished (whatever its outcome).
  virtual void Finished(const OpChoice& /*op*/) {}
  // Every name a label may refer to, so reports list each op type even at count 0.
  const std::vector<std::string>& op_names() const { return op_names_; }
  // One line for the report, e.g. "a: 50% read, 50% update, zipfian".
  virtual std::string Describe() const = 0;

 private:
  std::vector<std::string> op_names_;
};

// The workload names MakeWorkload accepts, for flag help and validation.
const std::vector<std::string>& WorkloadNames();

struct WorkloadOptions {
  uint64_t records = 100000;  // size of the key space (records loaded before the run)
  double read_ratio = 0.5;    // mix: fraction of gets, the rest are puts
  // Overrides the workload's own key choice (zipfian for a/b/c/f, latest for
  // d, uniform for mix); ignored by seed1/seed2, which walk the keys in order.
  std::optional<Distribution> distribution = std::nullopt;
};

Result<std::unique_ptr<Workload>> MakeWorkload(const std::string& name,
                                               const WorkloadOptions& options);

// The load phase: inserts records 0 .. records-1 in order.
std::unique_ptr<Workload> MakeLoadWorkload(uint64_t records);

// seed1/seed2 insert and delete their own keys: they have no load phase.
bool HasLoadPhase(const std::string& workload);

// "user000000000042" for record 42.
std::string KeyFor(uint64_t record);

}  // namespace kv::bench

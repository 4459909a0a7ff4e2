// kvbench's key choosers: which record a workload operation touches, as in
// YCSB's core generators. Uniform over the records; zipfian as YCSB's
// ScrambledZipfianGenerator (a zipfian rank over 10^10 items with constant
// 0.99, FNV-64 hashed onto the records, so the popular keys are spread over
// the key space); latest as YCSB's SkewedLatestGenerator (zipfian distance
// back from the newest acknowledged record). Pure logic, no I/O.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>

#include "schema/status.h"

namespace kv::bench {

// YCSB's zipfian constant and the item count the scrambled generator draws ranks from.
constexpr double kZipfianConstant = 0.99;
constexpr uint64_t kScrambledItemCount = 10'000'000'000ull;

// YCSB's FNV-1 64-bit hash of the eight bytes of v, least significant first,
// made non-negative as Java's Math.abs would.
uint64_t FnvHash64(uint64_t v);

// Zipfian ranks in [0, items): rank 0 the most popular. Gray et al.'s
// algorithm as YCSB's ZipfianGenerator; the item count may grow between draws
// (zeta is extended incrementally, never recomputed from scratch). Not
// thread-safe; value type.
class ZipfianGenerator {
 public:
  // zetan: precomputed zeta(items, theta) when known (0: compute it, O(items)).
  ZipfianGenerator(uint64_t items, double theta = kZipfianConstant, double zetan = 0.0);

  uint64_t Next(std::mt19937_64& rng) { return Next(rng, items_); }
  // Draws over `items` items; items must never shrink below the largest used.
  uint64_t Next(std::mt19937_64& rng, uint64_t items);

  uint64_t items() const { return items_; }

 private:
  void Grow(uint64_t items);
  double theta_;
  double alpha_;
  double zeta2_;
  uint64_t items_;
  double zetan_;
  double eta_;
};

// Tracks which inserted records are acknowledged, so the latest distribution
// never picks a record whose insert is still in flight (YCSB's
// AcknowledgedCounterGenerator). Not thread-safe.
class AcknowledgedCounter {
 public:
  // Records [0, start) exist already (the load phase inserted them).
  explicit AcknowledgedCounter(uint64_t start) : next_(start), limit_(start) {}

  // The next record number to insert.
  uint64_t Issue() { return next_++; }
  // An insert of `record` finished (successfully or not: it was attempted).
  void Acknowledge(uint64_t record);
  // Every record below this has been inserted and acknowledged.
  uint64_t limit() const { return limit_; }

 private:
  uint64_t next_;
  uint64_t limit_;
  std::set<uint64_t> done_above_limit_;
};

enum class Distribution { kUniform, kZipfian, kLatest };

// "uniform", "zipfian", "latest"; InvalidArgument for anything else.
Result<Distribution> ParseDistribution(const std::string& name);
const char* DistributionName(Distribution d);

// Picks a record among those that exist: [0, counter.limit()). Not thread-safe.
class KeyChooser {
 public:
  virtual ~KeyChooser() = default;
  virtual uint64_t Next(std::mt19937_64& rng, uint64_t existing) = 0;
};

// `records` is the count at the start; latest and zipfian follow `existing`
// as it grows.
std::unique_ptr<KeyChooser> MakeKeyChooser(Distribution d, uint64_t records);

}  // namespace kv::bench

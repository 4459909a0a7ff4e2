// A latency histogram in the HDR style: log-linear buckets over whole
// microseconds, exact below 256 and within 1/128 (0.8%) of the true value
// above, in fixed memory (4096 counters, 32 KiB) whatever is recorded. kvbench keeps
// one per operation type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kv::bench {

// Not thread-safe; value type, owned by whoever records into it.
class Histogram {
 public:
  // Values above this are recorded as this (about 76 hours in µs).
  static constexpr uint64_t kMaxValue = (uint64_t{1} << 38) - 1;

  Histogram();

  void Record(uint64_t value);
  void Merge(const Histogram& other);
  void Reset();

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0.0; }

  // The smallest recorded value v such that at least `percentile` percent of
  // the values are <= v, up to the bucket's resolution (reported as the
  // bucket's highest value, never above max()). 0 when empty. percentile is
  // clamped to [0, 100].
  uint64_t Percentile(double percentile) const;

  // Exposed for tests: the bucket a value falls in and that bucket's range.
  static size_t BucketIndex(uint64_t value);
  static uint64_t BucketLow(size_t index);
  static uint64_t BucketHigh(size_t index);

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t min_ = 0;
  uint64_t max_ = 0;
  uint64_t sum_ = 0;
};

}  // namespace kv::bench

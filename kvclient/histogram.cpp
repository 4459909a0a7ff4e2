#include "kvclient/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace kv::bench {
namespace {

// Values below 2^kSubBits get a bucket each. Above, each power of two
// [2^m, 2^(m+1)) is split into kHalf = 2^(kSubBits-1) equal buckets of width
// 2^e with e = m - kSubBits + 1, so a bucket is at most 1/kHalf of its values.
constexpr unsigned kSubBits = 8;
constexpr uint64_t kSub = uint64_t{1} << kSubBits;  // 256
constexpr uint64_t kHalf = kSub / 2;                // 128

size_t IndexOf(uint64_t v) {
  if (v < kSub) return static_cast<size_t>(v);
  unsigned m = 63 - static_cast<unsigned>(std::countl_zero(v));
  unsigned e = m - kSubBits + 1;
  // v >> e lies in [kHalf, kSub); e * kHalf shifts each octave past the last.
  return static_cast<size_t>(e * kHalf + (v >> e));
}

}  // namespace

Histogram::Histogram() : counts_(IndexOf(kMaxValue) + 1, 0) {}

size_t Histogram::BucketIndex(uint64_t value) { return IndexOf(std::min(value, kMaxValue)); }

uint64_t Histogram::BucketLow(size_t index) {
  if (index < kSub) return index;
  uint64_t e = index / kHalf - 1;
  uint64_t s = index % kHalf + kHalf;
  return s << e;
}

uint64_t Histogram::BucketHigh(size_t index) {
  if (index < kSub) return index;
  uint64_t e = index / kHalf - 1;
  uint64_t s = index % kHalf + kHalf;
  return ((s + 1) << e) - 1;
}

void Histogram::Record(uint64_t value) {
  value = std::min(value, kMaxValue);
  ++counts_[IndexOf(value)];
  if (count_ == 0 || value < min_) min_ = value;
  max_ = std::max(max_, value);
  ++count_;
  sum_ += value;
}

void Histogram::Merge(const Histogram& other) {
  if (other.count_ == 0) return;
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  min_ = count_ == 0 ? other.min_ : std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  count_ += other.count_;
  sum_ += other.sum_;
}

void Histogram::Reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = min_ = max_ = sum_ = 0;
}

uint64_t Histogram::Percentile(double percentile) const {
  if (count_ == 0) return 0;
  percentile = std::clamp(percentile, 0.0, 100.0);
  auto rank = static_cast<uint64_t>(std::ceil(percentile / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(BucketHigh(i), min_, max_);
  }
  return max_;
}

}  // namespace kv::bench

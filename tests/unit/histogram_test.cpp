// kvbench's latency histogram: bucket layout and percentile accuracy against
// exact percentiles of the same samples.
#include "kvclient/histogram.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

using kv::bench::Histogram;

namespace {

// The exact value at rank ceil(q/100 * n) of sorted samples (the definition
// Histogram::Percentile approximates).
uint64_t ExactPercentile(std::vector<uint64_t> sorted, double q) {
  std::sort(sorted.begin(), sorted.end());
  auto rank = static_cast<size_t>(std::ceil(q / 100.0 * sorted.size()));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

bool WithinOnePercent(uint64_t approx, uint64_t exact) {
  return std::abs(static_cast<double>(approx) - static_cast<double>(exact)) <=
         0.01 * static_cast<double>(exact) + 1.0;
}

}  // namespace

TEST_CASE("an empty histogram reports zero for every percentile", "[histogram]") {
  Histogram h;
  CHECK(h.count() == 0);
  CHECK(h.Percentile(50) == 0);
  CHECK(h.Percentile(100) == 0);
  CHECK(h.max() == 0);
  CHECK(h.min() == 0);
}

TEST_CASE("values below 256 microseconds are kept exactly", "[histogram]") {
  for (uint64_t v = 0; v < 256; ++v) {
    CHECK(Histogram::BucketLow(Histogram::BucketIndex(v)) == v);
    CHECK(Histogram::BucketHigh(Histogram::BucketIndex(v)) == v);
  }
}

TEST_CASE("buckets tile the value range with no gaps and are at most 1/128 of their values wide",
          "[histogram]") {
  const size_t last = Histogram::BucketIndex(Histogram::kMaxValue);
  CHECK(Histogram::BucketLow(0) == 0);
  CHECK(Histogram::BucketHigh(last) == Histogram::kMaxValue);
  for (size_t i = 0; i < last; ++i) {
    REQUIRE(Histogram::BucketHigh(i) + 1 == Histogram::BucketLow(i + 1));
    uint64_t width = Histogram::BucketHigh(i) - Histogram::BucketLow(i) + 1;
    REQUIRE(width <= std::max<uint64_t>(1, Histogram::BucketLow(i) / 128));
  }
  std::mt19937_64 rng(7);
  for (int n = 0; n < 100000; ++n) {
    uint64_t v = rng() >> (rng() % 64);
    v = std::min(v, Histogram::kMaxValue);
    size_t i = Histogram::BucketIndex(v);
    REQUIRE(Histogram::BucketLow(i) <= v);
    REQUIRE(v <= Histogram::BucketHigh(i));
  }
}

TEST_CASE("percentiles of uniform latencies are within 1% of the exact ones", "[histogram]") {
  std::vector<uint64_t> samples;
  for (uint64_t v = 1; v <= 100000; ++v) samples.push_back(v);
  std::shuffle(samples.begin(), samples.end(), std::mt19937_64(1));
  Histogram h;
  for (uint64_t v : samples) h.Record(v);
  for (double q : {50.0, 95.0, 99.0, 99.9}) {
    INFO("p" << q);
    CHECK(WithinOnePercent(h.Percentile(q), ExactPercentile(samples, q)));
  }
  CHECK(h.Percentile(100) == 100000);
  CHECK(h.max() == 100000);
  CHECK(h.min() == 1);
  CHECK(h.count() == 100000);
  CHECK(h.mean() == Approx(50000.5));
}

TEST_CASE("percentiles of long-tailed latencies are within 1% of the exact ones", "[histogram]") {
  std::mt19937_64 rng(2);
  std::lognormal_distribution<double> latency(6.0, 1.5);  // median ~400 µs, tail to seconds
  std::vector<uint64_t> samples;
  Histogram h;
  for (int i = 0; i < 200000; ++i) {
    auto v = static_cast<uint64_t>(latency(rng));
    samples.push_back(v);
    h.Record(v);
  }
  for (double q : {1.0, 50.0, 95.0, 99.0, 99.9, 99.99}) {
    INFO("p" << q);
    CHECK(WithinOnePercent(h.Percentile(q), ExactPercentile(samples, q)));
  }
  CHECK(h.max() == *std::max_element(samples.begin(), samples.end()));
}

TEST_CASE("a single value is every percentile", "[histogram]") {
  Histogram h;
  h.Record(12345);
  for (double q : {0.0, 50.0, 99.9, 100.0}) CHECK(h.Percentile(q) == 12345);
}

TEST_CASE("merging histograms gives what recording into one would", "[histogram]") {
  Histogram a, b, both;
  for (uint64_t v = 1; v <= 1000; ++v) {
    (v % 3 ? a : b).Record(v * 37);
    both.Record(v * 37);
  }
  a.Merge(b);
  CHECK(a.count() == both.count());
  CHECK(a.min() == both.min());
  CHECK(a.max() == both.max());
  for (double q : {50.0, 90.0, 99.0}) CHECK(a.Percentile(q) == both.Percentile(q));
  a.Reset();
  CHECK(a.count() == 0);
  CHECK(a.Percentile(50) == 0);
}

TEST_CASE("values beyond the range are clamped rather than lost", "[histogram]") {
  Histogram h;
  h.Record(UINT64_MAX);
  CHECK(h.count() == 1);
  CHECK(h.max() == Histogram::kMaxValue);
  CHECK(h.Percentile(50) == Histogram::kMaxValue);
}

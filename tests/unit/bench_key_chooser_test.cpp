// kvbench's key choosers: every draw within the records that exist, and the
// skew each distribution promises (with fixed seeds, so the counts are stable).
#include "kvclient/key_chooser.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <random>
#include <vector>

using namespace kv::bench;

namespace {

constexpr int kDraws = 200000;

// How often each record was drawn.
std::vector<uint64_t> Draws(KeyChooser& chooser, uint64_t existing, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> counts(existing, 0);
  for (int i = 0; i < kDraws; ++i) {
    uint64_t record = chooser.Next(rng, existing);
    REQUIRE(record < existing);
    ++counts[record];
  }
  return counts;
}

// The share of draws that went to the `top` most drawn records.
double TopShare(std::vector<uint64_t> counts, size_t top) {
  std::sort(counts.rbegin(), counts.rend());
  uint64_t sum = 0;
  for (size_t i = 0; i < top && i < counts.size(); ++i) sum += counts[i];
  return static_cast<double>(sum) / kDraws;
}

}  // namespace

TEST_CASE("zipfian ranks stay below the item count and rank 0 gets about 1 over zeta of n",
          "[kvbench][key_chooser]") {
  const uint64_t items = 1000;
  ZipfianGenerator zipf(items);
  std::mt19937_64 rng(1);
  std::vector<uint64_t> counts(items, 0);
  for (int i = 0; i < kDraws; ++i) {
    uint64_t rank = zipf.Next(rng);
    REQUIRE(rank < items);
    ++counts[rank];
  }
  double zeta = 0;
  for (uint64_t i = 1; i <= items; ++i) zeta += 1.0 / std::pow(i, kZipfianConstant);
  CHECK(static_cast<double>(counts[0]) / kDraws == Approx(1.0 / zeta).epsilon(0.05));
  CHECK(counts[0] > counts[1]);
  CHECK(counts[1] > counts[10]);
  CHECK(counts[10] > counts[500]);
}

TEST_CASE("a zipfian generator grown to more items draws exactly like one built for them",
          "[kvbench][key_chooser]") {
  ZipfianGenerator grown(100);
  ZipfianGenerator built(5000);
  std::mt19937_64 a(3), b(3);
  (void)grown.Next(a, 5000);
  (void)built.Next(b);
  for (int i = 0; i < 1000; ++i) REQUIRE(grown.Next(a) == built.Next(b));
  CHECK(grown.items() == 5000);
}

TEST_CASE("scrambled zipfian concentrates on a few keys spread over the whole key space",
          "[kvbench][key_chooser]") {
  const uint64_t records = 100000;
  auto chooser = MakeKeyChooser(Distribution::kZipfian, records);
  std::vector<uint64_t> counts = Draws(*chooser, records, 7);
  // One record in a thousand takes a large share of the draws (uniform: 0.1%).
  CHECK(TopShare(counts, records / 1000) > 0.15);
  // The popular records are hashed over the key space, not the low numbers.
  uint64_t low_half = 0;
  for (uint64_t r = 0; r < records / 2; ++r) low_half += counts[r];
  CHECK(static_cast<double>(low_half) / kDraws == Approx(0.5).margin(0.15));
}

TEST_CASE("latest favours the newest records and never picks one that does not exist",
          "[kvbench][key_chooser]") {
  const uint64_t records = 10000;
  auto chooser = MakeKeyChooser(Distribution::kLatest, records);
  std::vector<uint64_t> counts = Draws(*chooser, records, 11);
  CHECK(std::max_element(counts.begin(), counts.end()) - counts.begin() == records - 1);
  uint64_t newest_tenth = 0;
  for (uint64_t r = records - records / 10; r < records; ++r) newest_tenth += counts[r];
  CHECK(static_cast<double>(newest_tenth) / kDraws > 0.6);

  // As records are inserted the favourite moves with them.
  std::vector<uint64_t> grown = Draws(*chooser, records + 500, 12);
  CHECK(std::max_element(grown.begin(), grown.end()) - grown.begin() == records + 499);
}

TEST_CASE("uniform key choice is flat within a few percent", "[kvbench][key_chooser]") {
  const uint64_t records = 100;
  auto chooser = MakeKeyChooser(Distribution::kUniform, records);
  std::vector<uint64_t> counts = Draws(*chooser, records, 5);
  for (uint64_t c : counts) REQUIRE(c == Approx(kDraws / records).epsilon(0.1));
}

TEST_CASE("the acknowledged counter advances only over inserts acknowledged without gaps",
          "[kvbench][key_chooser]") {
  AcknowledgedCounter counter(10);
  CHECK(counter.limit() == 10);
  uint64_t a = counter.Issue(), b = counter.Issue(), c = counter.Issue();
  CHECK(a == 10);
  CHECK(c == 12);
  counter.Acknowledge(b);
  CHECK(counter.limit() == 10);  // 10 still in flight
  counter.Acknowledge(c);
  CHECK(counter.limit() == 10);
  counter.Acknowledge(a);
  CHECK(counter.limit() == 13);
}

TEST_CASE("distribution names parse and unknown ones are refused", "[kvbench][key_chooser]") {
  for (auto d : {Distribution::kUniform, Distribution::kZipfian, Distribution::kLatest}) {
    auto parsed = ParseDistribution(DistributionName(d));
    REQUIRE(parsed.ok());
    CHECK(*parsed == d);
  }
  CHECK_FALSE(ParseDistribution("hotspot").ok());
}

TEST_CASE("the FNV-64 hash spreads consecutive ranks and is never negative as a Java long",
          "[kvbench][key_chooser]") {
  std::map<uint64_t, int> buckets;
  for (uint64_t v = 0; v < 1000; ++v) {
    uint64_t h = FnvHash64(v);
    REQUIRE(h <= static_cast<uint64_t>(INT64_MAX));
    ++buckets[h % 10];
  }
  CHECK(buckets.size() == 10);
  for (const auto& [bucket, n] : buckets) CHECK(n > 50);
}

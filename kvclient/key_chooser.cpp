#include "kvclient/key_chooser.h"

#include <algorithm>
#include <cmath>

namespace kv::bench {
namespace {

// zeta(n, theta) extended from `from` items (whose sum is `sum`) to `to` items.
double ExtendZeta(uint64_t from, uint64_t to, double theta, double sum) {
  for (uint64_t i = from; i < to; ++i) sum += 1.0 / std::pow(static_cast<double>(i + 1), theta);
  return sum;
}

// zeta(10^10 + 1, 0.99) as YCSB hard-codes it, so the scrambled generator
// needs no 10^10-term sum.
constexpr double kScrambledZetan = 26.46902820178302;

double UnitDouble(std::mt19937_64& rng) {
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

class UniformChooser : public KeyChooser {
 public:
  uint64_t Next(std::mt19937_64& rng, uint64_t existing) override {
    return std::uniform_int_distribution<uint64_t>(0, existing - 1)(rng);
  }
};

// A zipfian rank over 10^10 items, hashed onto the records that exist.
class ScrambledZipfianChooser : public KeyChooser {
 public:
  ScrambledZipfianChooser()
      : ranks_(kScrambledItemCount + 1, kZipfianConstant, kScrambledZetan) {}
  uint64_t Next(std::mt19937_64& rng, uint64_t existing) override {
    return FnvHash64(ranks_.Next(rng)) % existing;
  }

 private:
  ZipfianGenerator ranks_;
};

// The newest record is the most popular, then the one before it, and so on.
class LatestChooser : public KeyChooser {
 public:
  explicit LatestChooser(uint64_t records) : distance_(std::max<uint64_t>(records, 1)) {}
  uint64_t Next(std::mt19937_64& rng, uint64_t existing) override {
    uint64_t back = distance_.Next(rng, std::max(existing, distance_.items()));
    return back < existing ? existing - 1 - back : existing - 1;
  }

 private:
  ZipfianGenerator distance_;
};

}  // namespace

uint64_t FnvHash64(uint64_t v) {
  constexpr uint64_t kOffsetBasis = 0xCBF29CE484222325ull;
  constexpr uint64_t kPrime = 1099511628211ull;
  uint64_t hash = kOffsetBasis;
  for (int i = 0; i < 8; ++i) {
    hash ^= v & 0xff;
    hash *= kPrime;
    v >>= 8;
  }
  // Java's Math.abs on the signed value (Long.MIN_VALUE stays as it is).
  auto s = static_cast<int64_t>(hash);
  return s < 0 && s != INT64_MIN ? static_cast<uint64_t>(-s) : static_cast<uint64_t>(s);
}

ZipfianGenerator::ZipfianGenerator(uint64_t items, double theta, double zetan)
    : theta_(theta),
      alpha_(1.0 / (1.0 - theta)),
      zeta2_(ExtendZeta(0, 2, theta, 0.0)),
      items_(std::max<uint64_t>(items, 1)),
      zetan_(zetan > 0 ? zetan : ExtendZeta(0, items_, theta, 0.0)) {
  eta_ = (1 - std::pow(2.0 / static_cast<double>(items_), 1 - theta_)) / (1 - zeta2_ / zetan_);
}

void ZipfianGenerator::Grow(uint64_t items) {
  zetan_ = ExtendZeta(items_, items, theta_, zetan_);
  items_ = items;
  eta_ = (1 - std::pow(2.0 / static_cast<double>(items_), 1 - theta_)) / (1 - zeta2_ / zetan_);
}

uint64_t ZipfianGenerator::Next(std::mt19937_64& rng, uint64_t items) {
  if (items > items_) Grow(items);
  const double u = UnitDouble(rng);
  const double uz = u * zetan_;
  if (uz < 1.0) return 0;
  if (uz < 1.0 + std::pow(0.5, theta_)) return std::min<uint64_t>(1, items_ - 1);
  auto rank = static_cast<uint64_t>(static_cast<double>(items_) *
                                    std::pow(eta_ * u - eta_ + 1, alpha_));
  return std::min(rank, items_ - 1);
}

void AcknowledgedCounter::Acknowledge(uint64_t record) {
  if (record < limit_) return;
  done_above_limit_.insert(record);
  while (!done_above_limit_.empty() && *done_above_limit_.begin() == limit_) {
    done_above_limit_.erase(done_above_limit_.begin());
    ++limit_;
  }
}

Result<Distribution> ParseDistribution(const std::string& name) {
  if (name == "uniform") return Distribution::kUniform;
  if (name == "zipfian") return Distribution::kZipfian;
  if (name == "latest") return Distribution::kLatest;
  return Status::InvalidArgument("unknown distribution '" + name +
                                 "' (zipfian, uniform or latest)");
}

const char* DistributionName(Distribution d) {
  switch (d) {
    case Distribution::kUniform:
      return "uniform";
    case Distribution::kZipfian:
      return "zipfian";
    case Distribution::kLatest:
      return "latest";
  }
  return "?";
}

std::unique_ptr<KeyChooser> MakeKeyChooser(Distribution d, uint64_t records) {
  switch (d) {
    case Distribution::kUniform:
      return std::make_unique<UniformChooser>();
    case Distribution::kZipfian:
      return std::make_unique<ScrambledZipfianChooser>();
    case Distribution::kLatest:
      return std::make_unique<LatestChooser>(records);
  }
  return nullptr;
}

}  // namespace kv::bench

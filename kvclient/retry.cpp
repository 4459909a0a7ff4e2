#include "kvclient/retry.h"

#include <algorithm>

namespace kv::client {

Backoff::Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds cap, uint64_t seed)
    : cap_(std::max(cap, std::chrono::milliseconds(1))),
      ceiling_(std::clamp(initial, std::chrono::milliseconds(1), cap_)),
      rng_(seed) {}

std::chrono::milliseconds Backoff::Next() {
  const int64_t d = ceiling_.count();
  std::uniform_int_distribution<int64_t> pick(std::max<int64_t>(d / 2, 1), d);
  std::chrono::milliseconds pause(pick(rng_));
  ceiling_ = std::min(ceiling_ * 2, cap_);
  return pause;
}

std::string FormatDuration(std::chrono::milliseconds d) {
  if (d.count() != 0 && d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + " s";
  return std::to_string(d.count()) + " ms";
}

}  // namespace kv::client

// Retry timing for the client library: capped exponential back-off with
// jitter, deterministic for a given seed so tests can check it.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>
#include <string>

namespace kv::client {

// The n-th pause (n = 0, 1, ...) is drawn uniformly from [d/2, d] with
// d = min(cap, initial * 2^n) ("equal jitter"): it grows like plain
// exponential back-off but clients that failed together spread out instead of
// retrying in lock step. Not thread-safe; one per retried request.
class Backoff {
 public:
  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds cap, uint64_t seed);

  // The next pause; at least 1 ms.
  std::chrono::milliseconds Next();
  // The ceiling d of the next pause (before jitter).
  std::chrono::milliseconds ceiling() const { return ceiling_; }

 private:
  std::chrono::milliseconds cap_;
  std::chrono::milliseconds ceiling_;
  std::mt19937_64 rng_;
};

// "10 s" for whole seconds, else "250 ms": durations in messages.
std::string FormatDuration(std::chrono::milliseconds d);

}  // namespace kv::client

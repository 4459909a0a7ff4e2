// The client's back-off: capped, exponential, jittered, deterministic by seed.
#include <catch2/catch.hpp>
#include <vector>

#include "kvclient/retry.h"

using kv::client::Backoff;
using namespace std::chrono_literals;

TEST_CASE("back-off doubles from its start up to the cap, each pause jittered between half and all of it",
          "[client][retry]") {
  Backoff backoff(10ms, 500ms, 1);
  std::vector<std::chrono::milliseconds> ceilings = {10ms,  20ms,  40ms,  80ms, 160ms,
                                                     320ms, 500ms, 500ms, 500ms};
  for (auto d : ceilings) {
    CHECK(backoff.ceiling() == d);
    auto pause = backoff.Next();
    CHECK(pause >= d / 2);
    CHECK(pause <= d);
  }
}

TEST_CASE("the same seed gives the same pauses, different seeds spread out", "[client][retry]") {
  Backoff a(10ms, 500ms, 7), b(10ms, 500ms, 7), c(10ms, 500ms, 8);
  bool differs = false;
  for (int i = 0; i < 12; ++i) {
    auto pa = a.Next();
    CHECK(pa == b.Next());
    if (pa != c.Next()) differs = true;
  }
  CHECK(differs);
}

TEST_CASE("durations in messages read as seconds when whole", "[client][retry]") {
  CHECK(kv::client::FormatDuration(10000ms) == "10 s");
  CHECK(kv::client::FormatDuration(300ms) == "300 ms");
  CHECK(kv::client::FormatDuration(1500ms) == "1500 ms");
}

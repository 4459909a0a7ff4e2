#include "kvclient/request_window.h"

#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <stdexcept>
#include <string>

TEST_CASE("a request window finds, removes and keeps the oldest request like an ordered map",
          "[client][request_window]") {
  // Random completion order over a window up to 3000 deep, growing and
  // wrapping around its ring many times; a std::map is the reference.
  kv::client::RequestWindow<std::string> window;
  std::map<uint64_t, std::string> model;
  std::mt19937_64 rng(7);
  uint64_t next = 1;
  for (int step = 0; step < 60000; ++step) {
    const bool add = model.size() < 3000 && (model.empty() || rng() % 2 == 0);
    if (add) {
      if (rng() % 50 == 0) next += 1 + rng() % 5;  // ids never sent leave gaps
      window.Add(next, "value " + std::to_string(next));
      model.emplace(next, "value " + std::to_string(next));
      ++next;
    } else {
      // Mostly the recent requests, sometimes the oldest (a timeout), sometimes one not in flight.
      uint64_t id = rng() % 10 == 0 ? model.begin()->first : next - 1 - rng() % (model.size() + 3);
      const bool in_model = model.erase(id) == 1;
      REQUIRE(window.Remove(id) == in_model);
    }
    REQUIRE(window.size() == model.size());
    if (!model.empty()) {
      REQUIRE(window.front_id() == model.begin()->first);
      REQUIRE(window.front() == model.begin()->second);
    }
    if (step % 211 == 0) {
      for (uint64_t id = next > 4000 ? next - 4000 : 0; id < next + 2; ++id) {
        auto it = model.find(id);
        std::string* found = window.Find(id);
        REQUIRE((found != nullptr) == (it != model.end()));
        if (found != nullptr) REQUIRE(*found == it->second);
      }
    }
  }
}

TEST_CASE("a request window refuses an id that does not increase", "[client][request_window]") {
  kv::client::RequestWindow<int> window;
  CHECK(window.empty());
  CHECK(window.Find(1) == nullptr);
  CHECK_FALSE(window.Remove(1));
  window.Add(5, 50);
  window.Add(6, 60);
  CHECK_THROWS_AS(window.Add(6, 61), std::logic_error);
  CHECK_THROWS_AS(window.Add(2, 20), std::logic_error);
  CHECK(window.Remove(5));
  CHECK(window.front_id() == 6);
  CHECK(window.Remove(6));
  CHECK(window.empty());
  CHECK_THROWS_AS(window.Add(6, 62), std::logic_error);  // also once empty
  window.Add(9, 90);
  CHECK(window.front_id() == 9);
  CHECK(*window.Find(9) == 90);
}

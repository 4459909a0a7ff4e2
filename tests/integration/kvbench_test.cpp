// kvbench as a real process against a real kvnode on 127.0.0.1.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

#include "tests/support/process.h"

using kvtest::Bin;
using kvtest::NodeProcess;
using kvtest::Run;
using kvtest::TempDir;

namespace {

// The number after the first "key": in a flat scan of the JSON text; the
// headline (run phase) keys come before the nested "load" object.
double JsonNumber(const std::string& json, const std::string& key) {
  auto at = json.find("\"" + key + "\":");
  REQUIRE(at != std::string::npos);
  return std::strtod(json.c_str() + at + key.size() + 3, nullptr);
}

}  // namespace

TEST_CASE("kvbench loads and runs a bounded mix and reports it as one JSON object",
          "[kvbench][integration]") {
  TempDir work;
  NodeProcess node(work / "data", work.path());
  REQUIRE(node.started());
  auto result =
      Run({Bin("kvbench"), "-bh", "127.0.0.1", "-bp", std::to_string(node.port()), "--records",
           "500", "--ops", "2000", "--connections", "2", "--inflight", "16", "--json"},
          "", std::chrono::seconds(60));
  INFO(result.out << result.err);
  REQUIRE(result.exit_status == 0);
  const std::string& json = result.out;
  CHECK(json.front() == '{');
  CHECK(json.find('\n') == json.size() - 1);  // exactly one line
  CHECK(JsonNumber(json, "throughput_ops") > 0);
  CHECK(JsonNumber(json, "ops") == 2000);
  CHECK(JsonNumber(json, "errors") == 0);
  CHECK(json.find("\"latency_us\":{\"get\":{\"count\":") != std::string::npos);
  CHECK(json.find("\"put\":{\"count\":") != std::string::npos);
  CHECK(json.find("\"p999\":") != std::string::npos);
  CHECK(json.find("\"load\":{\"throughput_ops\":") != std::string::npos);
}

TEST_CASE("kvbench prints a table with throughput and latency percentiles by default",
          "[kvbench][integration]") {
  TempDir work;
  NodeProcess node(work / "data", work.path());
  REQUIRE(node.started());
  auto result = Run({Bin("kvbench"), "-bh", "127.0.0.1", "-bp", std::to_string(node.port()),
                     "--records", "100", "--ops", "300", "--read-ratio", "0.9"},
                    "", std::chrono::seconds(60));
  INFO(result.out << result.err);
  REQUIRE(result.exit_status == 0);
  CHECK(result.out.find("run: 300 ops in ") != std::string::npos);
  CHECK(result.out.find("ops/s, 0 errors") != std::string::npos);
  CHECK(result.out.find("p99.9") != std::string::npos);
  CHECK(result.out.find("errors: none") != std::string::npos);
}

TEST_CASE("kvbench refuses contradictory or missing flags with exit status 2",
          "[kvbench][integration]") {
  CHECK(Run({Bin("kvbench"), "-bp", "1", "--load-only", "--run-only"}).exit_status == 2);
  CHECK(Run({Bin("kvbench"), "--ops", "10"}).exit_status == 2);  // no port
  CHECK(Run({Bin("kvbench"), "-bp", "1", "--workload", "z"}).exit_status == 2);
  CHECK(Run({Bin("kvbench"), "-bp", "1", "--read-ratio", "1.5"}).exit_status == 2);
}

#include "schema/flags.h"

#include <catch2/catch.hpp>

#include "schema/logging.h"

namespace {
kv::Status ParseArgs(kv::FlagParser& p, std::vector<std::string> args, bool stop = false) {
  std::vector<char*> argv;
  static std::string prog = "prog";
  argv.push_back(prog.data());
  for (auto& a : args) argv.push_back(a.data());
  return p.Parse(static_cast<int>(argv.size()), argv.data(), stop);
}
}  // namespace

TEST_CASE("seed-style and long flags both parse", "[flags]") {
  std::string host = "127.0.0.1", level = "INFO", sync = "always";
  uint16_t port = 0;
  int64_t n = 5;
  kv::FlagParser p("prog", "test");
  p.String({"-bh"}, "HOST", "host", &host);
  p.Port({"-bp"}, "port", &port);
  p.String({"-ll", "--log-level"}, "LEVEL", "level", &level);
  p.Int({"-c"}, "N", "count", &n, 0, 10);
  p.Choice({"--sync"}, "sync", &sync, {"always", "none"});
  REQUIRE(ParseArgs(p, {"-bh", "10.0.0.1", "-bp", "5000", "--log-level=FINE", "-c", "7",
                        "--sync", "NONE"})
              .ok());
  CHECK(host == "10.0.0.1");
  CHECK(port == 5000);
  CHECK(level == "FINE");
  CHECK(n == 7);
  CHECK(sync == "none");
}

TEST_CASE("bad flags give clear errors", "[flags]") {
  uint16_t port = 0;
  int64_t n = 0;
  kv::FlagParser p("prog", "test");
  p.Port({"-p"}, "port", &port);
  p.Int({"-c"}, "N", "count", &n, 0, 10);
  CHECK(ParseArgs(p, {"-p", "70000"}).message().find("port") != std::string::npos);
  CHECK(ParseArgs(p, {"-c", "11"}).message().find("out of range") != std::string::npos);
  CHECK(ParseArgs(p, {"-c", "x"}).message().find("whole number") != std::string::npos);
  CHECK(ParseArgs(p, {"--nope"}).message().find("unknown flag") != std::string::npos);
  CHECK(ParseArgs(p, {"-p"}).message().find("needs a value") != std::string::npos);
}

TEST_CASE("help is requested and positional arguments are kept", "[flags]") {
  std::string host;
  kv::FlagParser p("prog", "test");
  p.String({"-bh"}, "HOST", "host", &host);
  REQUIRE(ParseArgs(p, {"-bh", "h", "put", "-k", "v"}, /*stop=*/true).ok());
  CHECK(p.positional() == std::vector<std::string>{"put", "-k", "v"});
  kv::FlagParser q("prog", "test");
  REQUIRE(ParseArgs(q, {"-h"}).ok());
  CHECK(q.help_requested());
  CHECK(q.Usage().find("--help") != std::string::npos);
}

TEST_CASE("log levels accept seed and spdlog names", "[flags][logging]") {
  CHECK(*kv::ParseLogLevel("ALL") == spdlog::level::trace);
  CHECK(*kv::ParseLogLevel("FINE") == spdlog::level::debug);
  CHECK(*kv::ParseLogLevel("WARNING") == spdlog::level::warn);
  CHECK(*kv::ParseLogLevel("severe") == spdlog::level::err);
  CHECK(*kv::ParseLogLevel("off") == spdlog::level::off);
  CHECK(*kv::ParseLogLevel("debug") == spdlog::level::debug);
  CHECK_FALSE(kv::ParseLogLevel("LOUD").ok());
}

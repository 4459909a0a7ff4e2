// kvecs's configuration checks.
#include <catch2/catch.hpp>

#include "ecs/config.h"

TEST_CASE("the ECS needs a broker host and control port", "[ecs][config]") {
  kv::EcsConfig c;
  CHECK(kv::ResolveConfig(&c).IsInvalidArgument());
  c.broker_host = "127.0.0.1";
  CHECK(kv::ResolveConfig(&c).IsInvalidArgument());
  c.broker_port = 5150;
  CHECK(kv::ResolveConfig(&c).ok());
}

TEST_CASE("the ECS publishes to the broker's control port + 2 unless told otherwise",
          "[ecs][config]") {
  kv::EcsConfig c;
  c.broker_host = "localhost";
  c.broker_port = 5150;
  REQUIRE(kv::ResolveConfig(&c).ok());
  CHECK(*c.broker_sub_port == 5152);

  kv::EcsConfig fixed;
  fixed.broker_host = "localhost";
  fixed.broker_port = 5150;
  fixed.broker_sub_port = 7000;
  REQUIRE(kv::ResolveConfig(&fixed).ok());
  CHECK(*fixed.broker_sub_port == 7000);

  kv::EcsConfig top;
  top.broker_host = "localhost";
  top.broker_port = 65535;
  CHECK(kv::ResolveConfig(&top).IsInvalidArgument());
}

TEST_CASE("the ECS's timings and credit reach the coordinator", "[ecs][config]") {
  kv::EcsConfig c;
  c.replication_factor = 2;
  c.batch_window_ms = 7;
  c.transfer_timeout_ms = 900;
  c.credit = 5;
  kv::CoordinatorConfig cc = kv::ToCoordinatorConfig(c);
  CHECK(cc.replication_factor == 2);
  CHECK(cc.batch_window == std::chrono::milliseconds(7));
  CHECK(cc.transfer_timeout == std::chrono::milliseconds(900));
  CHECK(cc.max_held == 5);
}

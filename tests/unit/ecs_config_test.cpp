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
  c.repair_timeout_ms = 800;
  c.repair_retry_ms = 11;
  c.repair_retry_cap_ms = 44;
  c.repair_attempts = 2;
  c.repair_report_ms = 300;
  kv::CoordinatorConfig cc = kv::ToCoordinatorConfig(c);
  CHECK(cc.replication_factor == 2);
  CHECK(cc.batch_window == std::chrono::milliseconds(7));
  CHECK(cc.transfer_timeout == std::chrono::milliseconds(900));
  CHECK(cc.max_held == 5);
  CHECK(cc.repair.transfer_timeout == std::chrono::milliseconds(800));
  CHECK(cc.repair.retry_backoff == std::chrono::milliseconds(11));
  CHECK(cc.repair.retry_backoff_cap == std::chrono::milliseconds(44));
  CHECK(cc.repair.max_attempts == 2);
  CHECK(cc.repair.report_interval == std::chrono::milliseconds(300));
}

TEST_CASE("the ECS keeps three copies of each range unless told otherwise", "[ecs][config]") {
  kv::EcsConfig c;
  CHECK(c.replication_factor == 3);
  CHECK(kv::ToCoordinatorConfig(c).replication_factor == 3);
  CHECK(kv::CoordinatorConfig{}.replication_factor == 3);
}

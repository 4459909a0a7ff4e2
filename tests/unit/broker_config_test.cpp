// kvbroker's derived event-plane ports.
#include <catch2/catch.hpp>

#include "broker/config.h"

using kv::BrokerConfig;

TEST_CASE("the event-plane ports default to the control port plus one and two",
          "[broker][config]") {
  BrokerConfig c;
  c.port = 6000;
  REQUIRE(kv::ResolvePorts(&c).ok());
  CHECK(*c.pub_port == 6001);
  CHECK(*c.sub_port == 6002);
}

TEST_CASE("an ephemeral control port makes the event-plane ports ephemeral too",
          "[broker][config]") {
  BrokerConfig c;
  c.port = 0;
  REQUIRE(kv::ResolvePorts(&c).ok());
  CHECK(*c.pub_port == 0);
  CHECK(*c.sub_port == 0);
}

TEST_CASE("explicit event-plane ports are kept", "[broker][config]") {
  BrokerConfig c;
  c.port = 6000;
  c.pub_port = 7000;
  REQUIRE(kv::ResolvePorts(&c).ok());
  CHECK(*c.pub_port == 7000);
  CHECK(*c.sub_port == 6002);
}

TEST_CASE("a derived port past 65535 or two equal ports are refused", "[broker][config]") {
  BrokerConfig high;
  high.port = 65534;
  CHECK(kv::ResolvePorts(&high).IsInvalidArgument());
  BrokerConfig clash;
  clash.port = 6000;
  clash.sub_port = 6001;
  CHECK(kv::ResolvePorts(&clash).IsInvalidArgument());
}

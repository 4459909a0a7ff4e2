// The one place ZeroMQ sockets are created, so socket-wide options (high-water
// marks, linger, maximum message size, later CurveZMQ keys) are set together.
// Also endpoint helpers. Sockets are not thread-safe; contexts are.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <zmq.hpp>

#include "schema/status.h"

namespace kv {

struct SocketOptions {
  int send_hwm = 100000;        // messages queued per peer before send blocks/drops
  int recv_hwm = 100000;        // messages queued per peer on receive
  int linger_ms = 0;            // do not hang at close waiting for unsent messages
  int64_t max_msg_bytes = -1;   // hard cap; a peer sending more is disconnected (-1: none)
  bool router_mandatory = false;  // ROUTER: fail instead of silently dropping to unknown peers
  int reconnect_ivl_ms = 100;     // first reconnect delay
  int reconnect_ivl_max_ms = 2000;  // reconnect back-off cap
};

zmq::socket_t MakeSocket(zmq::context_t& ctx, zmq::socket_type type,
                         const SocketOptions& options = {});

// "tcp://host:port"; port 0 becomes "*" (ephemeral) for bind.
std::string TcpEndpoint(std::string_view host, uint16_t port);

// The TCP port a socket actually bound (after binding port 0).
Result<uint16_t> BoundPort(zmq::socket_t& socket);

}  // namespace kv

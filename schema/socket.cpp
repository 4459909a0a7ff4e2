#include "schema/socket.h"

namespace kv {

zmq::socket_t MakeSocket(zmq::context_t& ctx, zmq::socket_type type,
                         const SocketOptions& options) {
  zmq::socket_t s(ctx, type);
  s.set(zmq::sockopt::sndhwm, options.send_hwm);
  s.set(zmq::sockopt::rcvhwm, options.recv_hwm);
  s.set(zmq::sockopt::linger, options.linger_ms);
  s.set(zmq::sockopt::reconnect_ivl, options.reconnect_ivl_ms);
  s.set(zmq::sockopt::reconnect_ivl_max, options.reconnect_ivl_max_ms);
  if (options.max_msg_bytes > 0) s.set(zmq::sockopt::maxmsgsize, options.max_msg_bytes);
  if (options.router_mandatory && type == zmq::socket_type::router) {
    s.set(zmq::sockopt::router_mandatory, 1);
  }
  return s;
}

std::string TcpEndpoint(std::string_view host, uint16_t port) {
  std::string ep = "tcp://";
  ep += host;
  ep += ':';
  ep += port == 0 ? std::string("*") : std::to_string(port);
  return ep;
}

Result<uint16_t> BoundPort(zmq::socket_t& socket) {
  std::string ep = socket.get(zmq::sockopt::last_endpoint);
  auto colon = ep.rfind(':');
  if (colon == std::string::npos) return Status::InvalidArgument("no port in endpoint " + ep);
  try {
    int port = std::stoi(ep.substr(colon + 1));
    if (port <= 0 || port > 65535) return Status::InvalidArgument("bad port in " + ep);
    return static_cast<uint16_t>(port);
  } catch (const std::exception&) {
    return Status::InvalidArgument("bad port in " + ep);
  }
}

}  // namespace kv

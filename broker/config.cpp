#include "broker/config.h"

namespace kv {

Status ResolvePorts(BrokerConfig* c) {
  auto derive = [&](std::optional<uint16_t>* target, int offset, const char* flag) -> Status {
    if (target->has_value()) return Status::Ok();
    if (c->port == 0) {
      *target = 0;
      return Status::Ok();
    }
    int derived = static_cast<int>(c->port) + offset;
    if (derived > 65535) {
      return Status::InvalidArgument("control port " + std::to_string(c->port) + " + " +
                                     std::to_string(offset) + " is not a port; give " + flag);
    }
    *target = static_cast<uint16_t>(derived);
    return Status::Ok();
  };
  Status s = derive(&c->pub_port, 1, "--pub-port");
  if (!s.ok()) return s;
  s = derive(&c->sub_port, 2, "--sub-port");
  if (!s.ok()) return s;
  uint16_t ports[] = {c->port, *c->pub_port, *c->sub_port};
  for (int i = 0; i < 3; ++i) {
    for (int j = i + 1; j < 3; ++j) {
      if (ports[i] != 0 && ports[i] == ports[j]) {
        return Status::InvalidArgument("control, pub and sub ports must differ (" +
                                       std::to_string(ports[i]) + " given twice)");
      }
    }
  }
  return Status::Ok();
}

}  // namespace kv

// Small helpers shared by the broker's source files (broker.cpp,
// event_plane.cpp, failure_reports.cpp): frame and identity formatting and
// NodeAddress building. Internal to broker/; not part of its interface.
#pragma once

#include <cstddef>
#include <string>
#include <zmq.hpp>

#include "control.capnp.h"
#include "schema/ring.h"

namespace kv::broker_util {

// Frames read per message: two (identity + body, or topic + ring) and one
// more to detect extras.
constexpr size_t kMaxFrames = 3;
// Messages taken from one socket per poll round.
constexpr int kDrainLimit = 1024;

inline std::string RingTopic() { return std::string(wire::RING_TOPIC.get().cStr()); }

inline std::string ToString(const zmq::message_t& m) {
  return std::string(m.data<char>(), m.size());
}

// Printable form of a ZeroMQ identity for logs (ROUTER identities are binary).
inline std::string Printable(const std::string& identity) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : identity) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

inline void SetAddress(wire::NodeAddress::Builder b, const NodeAddress& a) {
  b.setHost(a.host);
  b.setPort(a.port);
  b.setPeerPort(a.peer_port);
}

}  // namespace kv::broker_util

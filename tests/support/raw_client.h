// Test support: a bare DEALER speaking the client protocol frame by frame, so
// tests can send exactly what they want (including garbage) to a node.
// Not thread-safe.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "schema/wire.h"

namespace kvtest {

// A reply with owned fields.
struct OwnedReply {
  uint64_t request_id = 0;
  kv::WireStatus status = kv::WireStatus::BAD_REQUEST;
  std::string key, value, reason, metadata;
  uint64_t ring_version = 0;
};

class RawClient {
 public:
  explicit RawClient(uint16_t port);
  // Sends raw frames as one multipart message.
  void SendFrames(const std::vector<std::string>& frames);
  void Send(const kv::Request& request);
  // Sends the requests packed into one frame (schema/framing.h).
  void SendPacked(const std::vector<kv::Request>& requests);
  // Next reply (a packed reply frame yields its replies one by one), or
  // nullopt after the deadline. Undecodable replies fail the test.
  std::optional<OwnedReply> Receive(std::chrono::milliseconds deadline = std::chrono::seconds(5));
  // The next `count` replies by request id; fewer when one does not arrive
  // within the deadline (callers check the size).
  std::map<uint64_t, OwnedReply> ReceiveById(
      size_t count, std::chrono::milliseconds deadline = std::chrono::seconds(5));
  // Request/reply in one step with a fresh request id.
  std::optional<OwnedReply> Call(kv::Op op, const std::string& key = "",
                                 const std::string& value = "");

 private:
  zmq::context_t ctx_{1};
  zmq::socket_t socket_;
  uint64_t next_id_ = 1;
  std::deque<OwnedReply> queued_;  // the rest of the last packed frame
  uint64_t frames_received_ = 0;

 public:
  // Reply frames received so far (a packed frame counts once).
  uint64_t frames_received() const { return frames_received_; }
};

}  // namespace kvtest

// What the Coordinator (ecs/coordinator.h) asks its caller to do, and what a
// source reports back: the vocabulary between the ECS's decisions and its
// sockets (ecs/server.h carries the commands out, in order).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "control.capnp.h"
#include "ecs/transition.h"
#include "schema/ring.h"

namespace kv {

// Send transfer.source a TransferStart (transferId doubles as requestId;
// TransferStart.repair = transfer.repair).
struct StartTransfer {
  Transfer transfer;
  uint64_t prepares_version = 0;  // the ring it prepares; repair: the ring in force
};
// Send source a transferAbort(transfer_id); no reply is expected.
struct AbortTransfer {
  NodeAddress source;
  uint64_t transfer_id = 0;
};
// Publish ring on the event plane.
struct PublishRing {
  std::shared_ptr<const Ring> ring;
};
// Answer a requester through the broker (workDone).
struct ReplyTo {
  std::string client;
  uint64_t request_id = 0;
  wire::ControlStatus status = wire::ControlStatus::OK;
  std::string reason;
  std::shared_ptr<const Ring> ring;  // the current ring after the change (may be version 0)
};
// node has left the ring: close any connection to it.
struct ForgetNode {
  NodeAddress node;
};
using Command = std::variant<StartTransfer, AbortTransfer, PublishRing, ReplyTo, ForgetNode>;
using Commands = std::vector<Command>;

// A source's TransferDone.
struct TransferResult {
  uint64_t transfer_id = 0;
  bool ok = false;
  std::string reason;
  uint64_t entries = 0;
  uint64_t bytes = 0;
};

}  // namespace kv

# Control plane and event plane: what nodes, clients, the broker and the ECS
# say to each other about membership and the ring. Framing is in
# control_framing.h. Append-only: new fields get new ordinals.
@0x845b467d6e96965b;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("kv::wire");

# Bumped when a change is not wire compatible; peers refuse other versions.
# The three protocols' versions live in disjoint ranges (client 1..99,
# control 101..199, peer 201..299), so a message sent to the wrong port fails
# the version check instead of being misread as another protocol's message.
const controlVersion :UInt16 = 101;

# Topic of ring updates on the event plane (first frame of each publication).
const ringTopic :Text = "ring";

# How a node is reached. Its ring position is MD5("<host>:<port>").
struct NodeAddress {
  host @0 :Text;        # advertised address (kvnode --advertise, default -a)
  port @1 :UInt16;      # client port
  peerPort @2 :UInt16;  # node-to-node and ECS-to-node port
}

# A versioned ring: every membership change makes a new one with a higher
# version; nodes and clients ignore versions older than the one they hold.
struct Ring {
  version @0 :UInt64;
  replicationFactor @1 :UInt8;    # copies of each range (primary + successors)
  nodes @2 :List(RingNode);       # sorted by position, no duplicates
}

struct RingNode {
  address @0 :NodeAddress;
  position @1 :Data;              # 16 bytes, big-endian MD5("<host>:<port>")
}

# A request from a node or client to the control plane (through the broker).
struct ControlRequest {
  requestId @0 :UInt64;          # chosen by the sender, echoed in the reply
  union {
    join @1 :NodeAddress;        # add this node to the ring (queued for the ECS)
    leave @2 :NodeAddress;       # remove this node after handing its data off (queued)
    getRing @3 :Void;            # the latest ring, answered by the broker from its cache
    heartbeat @4 :NodeAddress;   # liveness (answered by the broker, never queued)
    nodeFailed @5 :NodeAddress;  # broker -> ECS: a node missed its heartbeats
  }
}

enum ControlStatus {
  ok @0;           # done; ring holds the ring that includes the change
  overloaded @1;   # broker queue full: back off, then retry
  badRequest @2;   # malformed or not allowed; reason says why
  unavailable @3;  # no ECS or no ring yet: retry later
  rejected @4;     # refused by the ECS; reason says why
}

struct ControlReply {
  requestId @0 :UInt64;
  status @1 :ControlStatus;
  reason @2 :Text;
  ring @3 :Ring;                 # current ring when known (version 0 = none)
}

# A request routed through the broker to the ECS, and the ECS's answer.
struct RoutedRequest {
  client @0 :Data;               # ZeroMQ identity of the requester at the broker
  request @1 :ControlRequest;
}

struct RoutedReply {
  client @0 :Data;               # copied from the RoutedRequest
  reply @1 :ControlReply;
}

# Everything on the broker's control ROUTER socket is one ControlMessage frame.
struct ControlMessage {
  version @0 :UInt16;            # must equal controlVersion
  union {
    request @1 :ControlRequest;  # node/client -> broker
    reply @2 :ControlReply;      # broker -> node/client
    ecsReady @3 :UInt32;         # ECS -> broker: credit for this many more requests
    work @4 :RoutedRequest;      # broker -> ECS: the next queued request
    workDone @5 :RoutedReply;    # ECS -> broker: route this reply to its requester
  }
}

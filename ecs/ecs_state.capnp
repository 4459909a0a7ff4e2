# The ECS's on-disk record of a ring transition in progress (LMDB key
# "transition", see ecs/ring_store.h). Private to ecs/: it never crosses the
# network. Written before the first TransferStart is sent and deleted when the
# transition commits or aborts, so a restarted ECS can roll it back.
# The same struct records a repair in progress (LMDB key "repair"): targetRing
# is the ring already in force, the transfers still unfinished (repair set),
# no requesters; a restarted ECS aborts and re-sends them.
# Append-only: new fields get new ordinals; formatVersion changes only when
# an old reader would misread a new record.
@0xfd05b79e488dde37;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("kv::ecs_state");

using Control = import "/control.capnp";
using Peer = import "/peer.capnp";

const transitionFormat :UInt16 = 1;

# One hand-off the transition asked a source node to run.
struct Transfer {
  transferId @0 :UInt64;
  source @1 :Control.NodeAddress;   # where transferAbort goes (peerPort included)
  target @2 :Control.NodeAddress;
  ranges @3 :List(Peer.HashRange);
  repair @4 :Bool;                  # re-replication of the ring in force (TransferStart.repair)
}

enum RequestKind {
  join @0;
  leave @1;
  nodeFailed @2;
}

# Who asked for the transition (for logs after a restart; the requesters
# retry on their own).
struct Requester {
  client @0 :Data;                   # ZeroMQ identity at the broker
  requestId @1 :UInt64;
  kind @2 :RequestKind;
  node @3 :Control.NodeAddress;
}

struct Transition {
  formatVersion @0 :UInt16;          # must equal transitionFormat
  targetRing @1 :Control.Ring;       # the ring the transition would commit
  transfers @2 :List(Transfer);
  requesters @3 :List(Requester);
}

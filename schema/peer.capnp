# Peer protocol: what the ECS says to nodes and what nodes say to each other
# during hand-off (and, later, replication). Every message is one PeerMessage
# frame sent by a DEALER to the receiving node's peer ROUTER port (kvnode
# --peer-port); replies go back on the same connection. Append-only.
@0xd3c5a8e07b1f4c92;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("kv::wire");

using Control = import "control.capnp";

const peerVersion :UInt16 = 201;

# A ring interval (from, to]: 16-byte big-endian positions; from == to is the
# whole ring.
struct HashRange {
  from @0 :Data;
  to @1 :Data;
}

struct Entry {
  key @0 :Data;
  value @1 :Data;
  deleted @2 :Bool;   # a delete (value empty)
}

# ECS -> source node: stream these ranges to target, then keep forwarding
# live writes in them until the source applies a ring newer than
# preparesVersion - 1 that no longer gives it the ranges.
struct TransferStart {
  transferId @0 :UInt64;        # unique per ECS transition and (source, target)
  preparesVersion @1 :UInt64;   # the ring version this transfer prepares
  target @2 :Control.NodeAddress;
  ranges @3 :List(HashRange);
}

# Source node -> ECS, reply to TransferStart: the snapshot of every range has
# been acknowledged by the target (ok) or the transfer failed (reason).
struct TransferDone {
  transferId @0 :UInt64;
  ok @1 :Bool;
  reason @2 :Text;
  entries @3 :UInt64;           # entries streamed
  bytes @4 :UInt64;             # key + value bytes streamed
}

# Source -> target: one bounded batch of a transfer. The first chunk (index
# 0) makes the target delete whatever it holds in ranges (stale data from an
# earlier membership) before applying entries.
struct Chunk {
  transferId @0 :UInt64;
  index @1 :UInt64;             # 0, 1, 2, ... in order
  ranges @2 :List(HashRange);   # the transfer's ranges (on every chunk; used on index 0)
  entries @3 :List(Entry);
  last @4 :Bool;                # no more snapshot chunks after this one
}

# Source -> target: a write the source accepted in a moving range after the
# snapshot was taken. The source acknowledges its client only after the
# target's Ack; the target applies it even if it has already applied the new
# ring, and a later snapshot entry for the same key never overwrites it.
struct Forward {
  transferId @0 :UInt64;
  entries @1 :List(Entry);
}

# Target -> source: a Chunk or Forward (matched by requestId) is durable.
struct Ack {
  transferId @0 :UInt64;
  ok @1 :Bool;
  reason @2 :Text;
}

struct PeerMessage {
  version @0 :UInt16;           # must equal peerVersion
  requestId @1 :UInt64;         # chosen by the sender, echoed in the reply
  union {
    transferStart @2 :TransferStart;   # ECS -> source
    transferDone @3 :TransferDone;     # source -> ECS (same requestId)
    transferAbort @4 :UInt64;          # ECS -> source: abort this transferId (no reply)
    chunk @5 :Chunk;                   # source -> target
    forward @6 :Forward;               # source -> target
    ack @7 :Ack;                       # target -> source (same requestId)
  }
}

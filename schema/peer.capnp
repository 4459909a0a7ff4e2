# Peer protocol: what the ECS says to nodes and what nodes say to each other
# during hand-off and replication. Every message is one PeerMessage
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
  version @3 :UInt64; # the write's version from its primary (see Replicate); 0 = none
}

# ECS -> source node: stream these ranges to target, then keep forwarding
# live writes in them until the source applies a ring newer than
# preparesVersion - 1 that no longer gives it the ranges.
struct TransferStart {
  transferId @0 :UInt64;        # unique per ECS transition and (source, target)
  preparesVersion @1 :UInt64;   # the ring version this transfer prepares
  target @2 :Control.NodeAddress;
  ranges @3 :List(HashRange);
  # Re-replication after a failure: the ring that gives target the ranges is
  # already in force and the source is their primary, so live writes reach
  # the target through replication (on the same connection, after chunk 0);
  # the transfer ends when its snapshot is acknowledged.
  repair @4 :Bool;
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

# Primary -> replica: one group commit's writes in the primary's ranges,
# already durable on the primary. Sent on one DEALER per replica, so a stream
# arrives in order; the replica applies seq = last applied + 1 only, acks
# duplicates without applying them, and refuses the rest.
struct Replicate {
  ringVersion @0 :UInt64;          # the sender's ring version (fencing)
  primary @1 :Control.NodeAddress; # the sender, primary of every entry's key
  stream @2 :UInt64;               # random per sender run and replica set
  seq @3 :UInt64;                  # 1, 2, 3, ... within the stream
  ackedThrough @4 :UInt64;         # every seq <= this is acked by all replicas
  entries @5 :List(Entry);         # versions set: (ring version << 40) | counter
  firstSeq @6 :UInt64;             # the stream's first seq: a replica that does
                                   # not know the stream accepts only this one
}

enum ReplicateRefusal {
  none @0;
  staleRing @1;   # the replica's ring is older than the sender's: retry later
  fenced @2;      # in the replica's ring the sender is not primary or the
                  # replica is not a replica of these keys
  gap @3;         # seq is not the next one: resend from the oldest unacked
  error @4;       # the replica could not store the writes (reason)
}

# Replica -> primary, reply to Replicate (same requestId).
struct ReplicateAck {
  stream @0 :UInt64;
  seq @1 :UInt64;                  # ok: every seq <= this is applied; gap: the
                                   # last applied seq (0 = stream unknown)
  refusal @2 :ReplicateRefusal;    # none = durable on the replica
  ringVersion @3 :UInt64;          # the replica's ring version
  reason @4 :Text;
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
    replicate @8 :Replicate;           # primary -> replica
    replicateAck @9 :ReplicateAck;     # replica -> primary (same requestId)
  }
}

# Client protocol: the requests a kvclient sends to a kvnode and the replies
# it gets back. One Request or Reply is one ZeroMQ frame (see framing.h).
# Every field is append-only: new fields get new ordinals, old ones are never
# renumbered, so a node can read any request of the same protocolVersion.
@0xb1fdf871a9f7a4d4;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("kv::wire");

# Bumped when a change is not wire compatible; a node answers a request of
# any other version with badRequest.
const protocolVersion :UInt16 = 1;

struct KeyValue {
  key @0 :Data;    # 1..250 bytes, binary-safe
  value @1 :Data;  # 0..max-value-bytes (1 MiB by default), binary-safe
}

struct Request {
  version @0 :UInt16;      # must equal protocolVersion
  requestId @1 :UInt64;    # chosen by the client, echoed in the Reply
  ringVersion @2 :UInt64;  # ring version the client routed with (0 = unknown)
  union {
    put @3 :KeyValue;      # insert or update
    get @4 :Data;          # key to read
    delete @5 :Data;       # key to delete
    keyrange @6 :Void;     # ask for the write ranges of the ring
    keyrangeRead @7 :Void; # ask for the read ranges (primary plus replicas)
  }
  # get only: any replica of the key may answer (keyrange_read routing). Such
  # a read may miss recent writes; without it only the primary answers and
  # reads are linearizable.
  staleOk @8 :Bool;
  # get only: the read does not depend on this connection's earlier writes
  # that are still unacknowledged (it comes from another caller sharing the
  # connection, such as another of kvbench's in-flight slots), so the node may
  # answer it before them, with the value the key's last acknowledged write
  # left, as it would a read from another connection. Still linearizable:
  # those writes are concurrent with it. Without it a get sees every write of
  # its key sent before it on the connection, and waits until they are
  # acknowledged.
  unordered @9 :Bool;
}

# Status words; the shell prints them with the snake_case spelling given in
# the comment (docs/protocol.md says when each is sent).
enum Status {
  putSuccess @0;            # put_success: a new key was stored durably
  putUpdate @1;             # put_update: an existing key was overwritten durably
  putError @2;              # put_error: nothing was stored; see reason
  getSuccess @3;            # get_success: value holds the stored value
  getError @4;              # get_error: key not found (or reason says why)
  deleteSuccess @5;         # delete_success: key removed durably
  deleteError @6;           # delete_error: key was not there (or reason)
  serverNotResponsible @7;  # server_not_responsible: refresh ring, retry
  serverWriteLock @8;       # server_write_lock: range moving, retry later
  serverStopped @9;         # server_stopped: node not serving, retry later
  badRequest @10;           # bad_request: malformed message; reason says why
  overloaded @11;           # overloaded: back off before retrying
  keyrangeSuccess @12;      # keyrange_success: metadata holds the ranges
  keyrangeReadSuccess @13;  # keyrange_read_success: metadata holds the ranges
}

struct Reply {
  version @0 :UInt16;      # protocolVersion of the sender
  requestId @1 :UInt64;    # echoed from the Request (0 if it was unreadable)
  status @2 :Status;
  key @3 :Data;            # echoed key for put/get/delete
  value @4 :Data;          # value for getSuccess
  reason @5 :Text;         # human-readable detail for errors
  ringVersion @6 :UInt64;  # the node's current ring version
  metadata @7 :Text;       # keyrange text: "<from>,<to>,<ip>:<port>;..."
  # The node's notification port (its XPUB, see notify.capnp), on every reply
  # of a node that publishes; 0 = none. Clients subscribe there.
  notifyPort @8 :UInt16;
}

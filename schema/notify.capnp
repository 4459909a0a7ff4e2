# Notification protocol: what a kvnode publishes about changes of keys on its
# notification port (kvnode --notify-port, an XPUB) to clients' SUB sockets.
# Framing (schema/notification.h):
#   node XPUB -> client SUB:  [topic = the key, exactly][Notification]
#   client SUB -> node XPUB:  ZeroMQ subscribe / unsubscribe for the key
# Only the key's primary publishes, and only what is acknowledged (durable on
# every replica and hand-off target it must be on). Append-only: new fields
# get new ordinals. docs/subscriptions.md says how clients use it.
@0x962e2c5e55f5b35d;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("kv::wire");

# Disjoint from the client (1..99), control (101..199) and peer (201..299)
# protocols; a subscriber drops a Notification of another version.
const notifyVersion :UInt16 = 301;

enum NotificationKind {
  update @0;    # a put was acknowledged: value is the new value
  delete @1;    # a delete of a present key was acknowledged
  snapshot @2;  # the key's current acknowledged state, sent when a subscription
                # arrives, when the key's range arrives at this node (join,
                # leave, fail-over), and when a subscriber asks again
  moved @3;     # this node is no longer the key's primary (ringVersion says
                # from which ring on): subscribers refresh their ring
}

struct Notification {
  version @0 :UInt16;          # must equal notifyVersion
  kind @1 :NotificationKind;
  key @2 :Data;                # 1..250 bytes; the same bytes as the topic frame
  value @3 :Data;              # update: the new value; snapshot: the current
                               # value when present; empty otherwise
  keyVersion @4 :UInt64;       # update/delete: the write's version, (ring
                               # version of its primary << 40) | counter, the
                               # same as in Replicate; snapshot: the version of
                               # the current value (0 = absent, or written
                               # before versions were stored)
  prevVersion @5 :UInt64;      # update/delete: the version of the value this
                               # write replaced (0 = the key was absent); a
                               # subscriber that last saw another version has
                               # missed a change
  present @6 :Bool;            # snapshot: the key has a value
  asOf @7 :UInt64;             # snapshot: the publisher's version clock when
                               # it read the state; every write of the key with
                               # a version <= asOf is reflected in it
  ringVersion @8 :UInt64;      # the publisher's ring version
  publishedMicros @9 :UInt64;  # the publisher's wall clock (microseconds since
                               # the Unix epoch) when it published; for
                               # latency measurements only
}

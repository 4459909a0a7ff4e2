// What a subscriber knows about one subscribed key, and the rule that turns
// each notification (schema/notify.capnp) into a verdict: hand it to the
// application, hand it over flagged "changes may have been missed before
// this one", take it as the starting point, or drop it as a duplicate or
// stale. Pure logic; value type; not thread-safe.
//
// The rule. A change (update/delete) carries its version v and the version p
// of the value it replaced (0 = the key was absent). The tracker holds the
// state it last saw: present or not, the value's version, and the version
// that state was established by. A change whose p is that value's version (0
// when absent) and whose v is newer than the state follows it: delivered. Any
// other change newer than everything seen means changes were missed: handed
// over flagged. The rest are duplicates or older: dropped. (Versions grow for
// a key across primaries: ring version << 40 | counter.) A snapshot (present?,
// version, asOf) is the key's acknowledged state as its primary read it: one
// with an asOf older than what was seen is stale and dropped, one equal to the
// state held confirms it, one that differs means changes were missed and is
// handed over as the key's current value. The first rule also accepts a
// change its old primary acknowledged just before a hand-off, arriving after
// the new primary's snapshot. Not detectable: a put and a delete that are both
// missed while the key was absent before and after them.
#pragma once

#include <cstdint>

#include "schema/notification.h"

namespace kv::client {

struct KeyTracker {
  bool synced = false;         // a snapshot or change has set the starting point
  bool present = false;        // the key has a value, as far as seen
  uint64_t value_version = 0;  // that value's version (0 when absent or unknown)
  uint64_t established = 0;    // the change version (or snapshot value version) behind the state
  uint64_t last_version = 0;   // the highest version or asOf seen
};

enum class Verdict {
  kDeliver,          // a change that follows the last one seen
  kDeliverAfterGap,  // the key's current state; changes before it were missed
  kBaseline,         // the first state seen after subscribing (not a change)
  kDrop,             // duplicate, stale, confirms what is known, or "moved"
};

// Updates *tracker with n (of the tracker's key) and says what n means.
Verdict Track(KeyTracker* tracker, const Notification& n);

const char* VerdictName(Verdict v);

}  // namespace kv::client

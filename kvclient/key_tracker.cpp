#include "kvclient/key_tracker.h"

#include <algorithm>

namespace kv::client {
namespace {

void Set(KeyTracker* t, bool present, uint64_t value_version, uint64_t established, uint64_t seen) {
  t->synced = true;
  t->present = present;
  t->value_version = present ? value_version : 0;
  t->established = established;
  t->last_version = std::max(t->last_version, seen);
}

}  // namespace

Verdict Track(KeyTracker* t, const Notification& n) {
  switch (n.kind) {
    case NotificationKind::UPDATE:
    case NotificationKind::DELETE: {
      const bool present = n.kind == NotificationKind::UPDATE;
      if (!t->synced) {
        // Nothing to compare with: the subscription has only just begun.
        Set(t, present, n.version, n.version, n.version);
        return Verdict::kDeliver;
      }
      const uint64_t expected_prev = t->present ? t->value_version : 0;
      if (n.prev_version == expected_prev && n.version > t->established) {
        Set(t, present, n.version, n.version, n.version);
        return Verdict::kDeliver;
      }
      if (n.version <= t->last_version) return Verdict::kDrop;
      Set(t, present, n.version, n.version, n.version);
      return Verdict::kDeliverAfterGap;
    }
    case NotificationKind::SNAPSHOT: {
      const uint64_t seen = std::max(n.version, n.as_of);
      if (!t->synced) {
        Set(t, n.present, n.version, n.version, seen);
        return Verdict::kBaseline;
      }
      if (n.as_of < t->last_version) return Verdict::kDrop;  // older than what was seen
      const bool same = n.present == t->present && (!n.present || n.version == t->value_version);
      if (same) {
        t->last_version = std::max(t->last_version, seen);
        return Verdict::kDrop;
      }
      Set(t, n.present, n.version, n.version, seen);
      return Verdict::kDeliverAfterGap;
    }
    case NotificationKind::MOVED:
      return Verdict::kDrop;
  }
  return Verdict::kDrop;
}

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kDeliver:
      return "deliver";
    case Verdict::kDeliverAfterGap:
      return "deliver_after_gap";
    case Verdict::kBaseline:
      return "baseline";
    case Verdict::kDrop:
      return "drop";
  }
  return "unknown";
}

}  // namespace kv::client

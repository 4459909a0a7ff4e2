// The notification protocol's encoding (schema/notification.h) and the
// subscriber's version rule (kvclient/key_tracker.h).
#include "schema/notification.h"

#include <catch2/catch.hpp>
#include <string>

#include "kvclient/key_tracker.h"
#include "schema/wire.h"

using kv::Notification;
using kv::NotificationKind;
using kv::client::KeyTracker;
using kv::client::Track;
using kv::client::Verdict;

namespace {

Notification Change(NotificationKind kind, uint64_t version, uint64_t prev,
                    std::string value = "v") {
  Notification n;
  n.kind = kind;
  n.key = "k";
  n.value = kind == NotificationKind::UPDATE ? value : "";
  n.version = version;
  n.prev_version = prev;
  return n;
}

Notification Update(uint64_t version, uint64_t prev) {
  return Change(NotificationKind::UPDATE, version, prev);
}
Notification Delete(uint64_t version, uint64_t prev) {
  return Change(NotificationKind::DELETE, version, prev);
}

Notification Snapshot(bool present, uint64_t version, uint64_t as_of) {
  Notification n;
  n.kind = NotificationKind::SNAPSHOT;
  n.key = "k";
  n.present = present;
  n.value = present ? "current" : "";
  n.version = version;
  n.as_of = as_of;
  return n;
}

kv::Result<Notification> RoundTrip(const Notification& n) {
  zmq::message_t topic = kv::EncodeNotificationTopic(n);
  zmq::message_t body = kv::EncodeNotificationBody(n);
  return kv::DecodeNotification(topic, body);
}

}  // namespace

TEST_CASE("a notification survives encoding with every field and a binary key and value",
          "[notify]") {
  Notification n;
  n.kind = NotificationKind::UPDATE;
  n.key = std::string("k\0ey", 4);
  n.value = std::string("va\0lue", 6);
  n.version = (7ull << 40) | 12;
  n.prev_version = (6ull << 40) | 99;
  n.ring_version = 7;
  n.published_micros = 1234567;
  zmq::message_t topic = kv::EncodeNotificationTopic(n);
  CHECK(std::string(static_cast<const char*>(topic.data()), topic.size()) == n.key);
  auto back = RoundTrip(n);
  REQUIRE(back.ok());
  CHECK(back->kind == NotificationKind::UPDATE);
  CHECK(back->key == n.key);
  CHECK(back->value == n.value);
  CHECK(back->version == n.version);
  CHECK(back->prev_version == n.prev_version);
  CHECK(back->ring_version == 7);
  CHECK(back->published_micros == 1234567);

  Notification s = Snapshot(false, 0, 42);
  auto snap = RoundTrip(s);
  REQUIRE(snap.ok());
  CHECK(snap->kind == NotificationKind::SNAPSHOT);
  CHECK_FALSE(snap->present);
  CHECK(snap->as_of == 42);
}

TEST_CASE(
    "a notification that is garbage or of another version or not under its key's topic is refused",
    "[notify]") {
  Notification n = Update(5, 4);
  zmq::message_t body = kv::EncodeNotificationBody(n);

  zmq::message_t other_topic("x", 1);
  CHECK_FALSE(kv::DecodeNotification(other_topic, body).ok());
  zmq::message_t prefix_topic("", 0);
  CHECK_FALSE(kv::DecodeNotification(prefix_topic, body).ok());

  zmq::message_t topic("k", 1);
  zmq::message_t garbage("not a capnp message!", 20);
  CHECK_FALSE(kv::DecodeNotification(topic, garbage).ok());
  zmq::message_t empty;
  CHECK_FALSE(kv::DecodeNotification(topic, empty).ok());

  // A kv Reply is a valid Cap'n Proto message of version 1, not 301.
  kv::Reply reply;
  reply.status = kv::WireStatus::GET_SUCCESS;
  reply.key = "k";
  zmq::message_t wrong_version = kv::EncodeReply(reply);
  auto decoded = kv::DecodeNotification(topic, wrong_version);
  REQUIRE_FALSE(decoded.ok());
  CHECK(decoded.status().message().find("version") != std::string::npos);

  Notification big = n;
  big.key = std::string(251, 'k');
  zmq::message_t big_topic = kv::EncodeNotificationTopic(big);
  zmq::message_t big_body = kv::EncodeNotificationBody(big);
  CHECK_FALSE(kv::DecodeNotification(big_topic, big_body).ok());
}

TEST_CASE("changes that follow each other by version are delivered without a gap",
          "[notify][versions]") {
  KeyTracker t;
  CHECK(Track(&t, Snapshot(false, 0, 3)) == Verdict::kBaseline);
  CHECK(Track(&t, Update(10, 0)) == Verdict::kDeliver);   // created
  CHECK(Track(&t, Update(11, 10)) == Verdict::kDeliver);  // updated
  CHECK(Track(&t, Delete(15, 11)) == Verdict::kDeliver);
  CHECK(Track(&t, Update(20, 0)) == Verdict::kDeliver);  // created again
  CHECK(t.present);
  CHECK(t.value_version == 20);
}

TEST_CASE("a change whose previous version is not the last one seen reveals a gap",
          "[notify][versions]") {
  KeyTracker t;
  CHECK(Track(&t, Snapshot(true, 5, 5)) == Verdict::kBaseline);
  CHECK(Track(&t, Update(6, 5)) == Verdict::kDeliver);
  // 7 (prev 6) was dropped somewhere.
  CHECK(Track(&t, Update(8, 7)) == Verdict::kDeliverAfterGap);
  CHECK(Track(&t, Update(9, 8)) == Verdict::kDeliver);
  // A missed delete: the key was absent in between.
  CHECK(Track(&t, Update(12, 0)) == Verdict::kDeliverAfterGap);
  // A missed update before a delete.
  CHECK(Track(&t, Delete(14, 13)) == Verdict::kDeliverAfterGap);
  CHECK_FALSE(t.present);
}

TEST_CASE("duplicates and older changes are dropped", "[notify][versions]") {
  KeyTracker t;
  CHECK(Track(&t, Snapshot(true, 5, 9)) == Verdict::kBaseline);
  CHECK(Track(&t, Update(5, 4)) == Verdict::kDrop);  // reflected in the snapshot
  CHECK(Track(&t, Update(10, 5)) == Verdict::kDeliver);
  CHECK(Track(&t, Update(10, 5)) == Verdict::kDrop);  // the same again
  CHECK(Track(&t, Update(8, 5)) == Verdict::kDrop);   // from an older primary
}

TEST_CASE("a snapshot confirms what was seen or reveals what was missed or is stale",
          "[notify][versions]") {
  KeyTracker t;
  CHECK(Track(&t, Snapshot(true, 5, 5)) == Verdict::kBaseline);
  CHECK(Track(&t, Update(6, 5)) == Verdict::kDeliver);
  // The new primary after a fail-over has what was seen: nothing to say.
  CHECK(Track(&t, Snapshot(true, 6, (2ull << 40))) == Verdict::kDrop);
  // A later snapshot with a newer value: changes were missed.
  CHECK(Track(&t, Snapshot(true, (2ull << 40) | 3, (2ull << 40) | 4)) == Verdict::kDeliverAfterGap);
  // One taken before what was seen is stale.
  CHECK(Track(&t, Snapshot(false, 0, 6)) == Verdict::kDrop);
  // The key was deleted meanwhile.
  CHECK(Track(&t, Snapshot(false, 0, (2ull << 40) | 9)) == Verdict::kDeliverAfterGap);
  CHECK_FALSE(t.present);
  // Another of the same absent state changes nothing.
  CHECK(Track(&t, Snapshot(false, 0, (2ull << 40) | 10)) == Verdict::kDrop);
}

TEST_CASE("without a starting point the first change is delivered as it is", "[notify][versions]") {
  KeyTracker t;
  CHECK(Track(&t, Update(7, 3)) == Verdict::kDeliver);
  CHECK(t.synced);
  // The snapshot taken before that change arrives late and is dropped.
  CHECK(Track(&t, Snapshot(true, 3, 5)) == Verdict::kDrop);
  Notification moved;
  moved.kind = NotificationKind::MOVED;
  moved.key = "k";
  CHECK(Track(&t, moved) == Verdict::kDrop);
}

TEST_CASE(
    "a change the old primary acknowledged just before a hand-off follows the new primary's "
    "snapshot",
    "[notify][versions]") {
  KeyTracker t;
  CHECK(Track(&t, Snapshot(true, 5, 5)) == Verdict::kBaseline);
  // The new primary (ring 2) applied the ring and published its snapshot
  // before the old one's last forwarded write (version 6) was acknowledged.
  CHECK(Track(&t, Snapshot(true, 5, (2ull << 40) | 1)) == Verdict::kDrop);
  CHECK(Track(&t, Update(6, 5)) == Verdict::kDeliver);
  CHECK(Track(&t, Update((2ull << 40) | 2, 6)) == Verdict::kDeliver);
  CHECK(t.value_version == ((2ull << 40) | 2));
}

TEST_CASE("an old creation that arrives after the key's deletion is dropped",
          "[notify][versions]") {
  KeyTracker t;
  CHECK(Track(&t, Snapshot(false, 0, 1)) == Verdict::kBaseline);
  CHECK(Track(&t, Update(3, 0)) == Verdict::kDeliver);
  CHECK(Track(&t, Delete(4, 3)) == Verdict::kDeliver);
  CHECK(Track(&t, Update(2, 0)) == Verdict::kDrop);
  CHECK_FALSE(t.present);
}

// The notification protocol (schema/notify.capnp) as plain fields, its
// two-frame ZeroMQ encoding and its untrusted decoding.
//
//   node XPUB -> client SUB:  [topic][Notification]
//     topic = the key's bytes, exactly (a SUB subscribed to the key gets it;
//     ZeroMQ matches topics by prefix, so subscribers compare the key too)
//   client SUB -> node XPUB:  [0x01 key] subscribe, [0x00 key] unsubscribe
//     (ZeroMQ's own subscription frames)
//
// Decoding checks the frame count is up to the caller, then sizes, limits,
// the version and that the topic equals the key, and never throws.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <zmq.hpp>

#include "notify.capnp.h"
#include "schema/status.h"

namespace kv {

using NotificationKind = wire::NotificationKind;

const char* NotificationKindName(NotificationKind kind);  // "update", "delete", ...

// One notification, owning its bytes. Field meanings: notify.capnp.
struct Notification {
  NotificationKind kind = NotificationKind::UPDATE;
  std::string key;
  std::string value;
  uint64_t version = 0;       // keyVersion
  uint64_t prev_version = 0;  // update/delete
  bool present = false;       // snapshot
  uint64_t as_of = 0;         // snapshot
  uint64_t ring_version = 0;
  uint64_t published_micros = 0;
};

// The topic frame and the body frame of n.
zmq::message_t EncodeNotificationTopic(const Notification& n);
zmq::message_t EncodeNotificationBody(const Notification& n);

// InvalidArgument for a malformed body, another version, a key outside
// 1..max_key_bytes or a key that is not the topic.
Result<Notification> DecodeNotification(const zmq::message_t& topic, const zmq::message_t& body,
                                        size_t max_key_bytes = 250);

// Microseconds since the Unix epoch (system clock), for publishedMicros.
uint64_t WallMicros();

}  // namespace kv

#include "schema/notification.h"

#include <capnp/message.h>

#include <chrono>

#include "schema/wire.h"

namespace kv {

const char* NotificationKindName(NotificationKind kind) {
  switch (kind) {
    case NotificationKind::UPDATE:
      return "update";
    case NotificationKind::DELETE:
      return "delete";
    case NotificationKind::SNAPSHOT:
      return "snapshot";
    case NotificationKind::MOVED:
      return "moved";
  }
  return "unknown";
}

zmq::message_t EncodeNotificationTopic(const Notification& n) {
  return zmq::message_t(n.key.data(), n.key.size());
}

zmq::message_t EncodeNotificationBody(const Notification& n) {
  capnp::MallocMessageBuilder b;
  auto root = b.initRoot<wire::Notification>();
  root.setVersion(wire::NOTIFY_VERSION);
  root.setKind(n.kind);
  root.setKey(ToCapnpData(n.key));
  if (!n.value.empty()) root.setValue(ToCapnpData(n.value));
  root.setKeyVersion(n.version);
  root.setPrevVersion(n.prev_version);
  root.setPresent(n.present);
  root.setAsOf(n.as_of);
  root.setRingVersion(n.ring_version);
  root.setPublishedMicros(n.published_micros);
  return ToFrame(b);
}

Result<Notification> DecodeNotification(const zmq::message_t& topic, const zmq::message_t& body,
                                        size_t max_key_bytes) {
  auto reader = FrameReader::Open(body);
  if (!reader.ok()) return reader.status();
  Notification n;
  Status s = ReadUntrusted([&]() -> Status {
    auto root = (*reader)->Root<wire::Notification>();
    if (root.getVersion() != wire::NOTIFY_VERSION) {
      return Status::InvalidArgument("notification version " + std::to_string(root.getVersion()) +
                                     " (expected " + std::to_string(wire::NOTIFY_VERSION) + ")");
    }
    n.kind = root.getKind();
    n.key = FromCapnpData(root.getKey());
    n.value = FromCapnpData(root.getValue());
    n.version = root.getKeyVersion();
    n.prev_version = root.getPrevVersion();
    n.present = root.getPresent();
    n.as_of = root.getAsOf();
    n.ring_version = root.getRingVersion();
    n.published_micros = root.getPublishedMicros();
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (n.kind > NotificationKind::MOVED) return Status::InvalidArgument("unknown notification kind");
  if (n.key.empty() || n.key.size() > max_key_bytes) {
    return Status::InvalidArgument("notification key of " + std::to_string(n.key.size()) +
                                   " bytes");
  }
  if (std::string_view(static_cast<const char*>(topic.data()), topic.size()) != n.key) {
    return Status::InvalidArgument("notification topic is not its key");
  }
  return n;
}

uint64_t WallMicros() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace kv

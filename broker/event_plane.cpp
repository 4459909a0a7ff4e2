// The broker's event plane: the last-value cache of the ring between the
// ECS's PUB (XSUB side) and the subscribers (XPUB side); see broker.h.
#include <spdlog/spdlog.h>

#include <capnp/message.h>

#include "broker/broker.h"
#include "broker/broker_util.h"
#include "schema/framing.h"

namespace kv {
namespace {

using broker_util::kDrainLimit;
using broker_util::kMaxFrames;
using broker_util::RingTopic;
using broker_util::ToString;

// Reads a ring's version and members, walking every pointer so that a ring
// that is cached is a ring that reads. Must run inside ReadUntrusted.
Status ReadRing(wire::Ring::Reader ring, uint64_t* version, std::vector<NodeAddress>* members) {
  *version = ring.getVersion();
  for (auto node : ring.getNodes()) {
    auto address = node.getAddress();
    if (node.getPosition().size() != 16) {
      return Status::InvalidArgument("a node position is not 16 bytes");
    }
    members->push_back(
        NodeAddress{address.getHost().cStr(), address.getPort(), address.getPeerPort()});
  }
  if (*version == 0) return Status::InvalidArgument("ring version 0 means no ring");
  return Status::Ok();
}

}  // namespace

void Broker::ProcessPublications() {
  for (int i = 0; i < kDrainLimit; ++i) {
    size_t total = RecvMultipart(sub_, &frames_, kMaxFrames, zmq::recv_flags::dontwait);
    if (total == 0) break;
    try {
      HandlePublication(frames_, total);
    } catch (const std::exception& e) {
      spdlog::error("internal error handling a publication: {}", e.what());
    }
  }
}

void Broker::HandlePublication(std::vector<zmq::message_t>& frames, size_t total) {
  if (total != 2) {
    spdlog::warn("event plane: dropping a publication of {} frame(s), expected [topic][Ring]",
                 total);
    return;
  }
  std::string topic = ToString(frames[0]);
  if (topic != RingTopic()) {
    spdlog::warn("event plane: dropping a publication on unknown topic '{}' ({} bytes)",
                 topic.substr(0, 64), topic.size());
    return;
  }
  uint64_t version = 0;
  std::vector<NodeAddress> members;
  auto reader = FrameReader::Open(frames[1]);
  Status s = reader.ok() ? Status::Ok() : reader.status();
  if (s.ok()) {
    s = ReadUntrusted([&] { return ReadRing((*reader)->Root<wire::Ring>(), &version, &members); });
  }
  if (!s.ok()) {
    spdlog::warn("event plane: dropping a malformed ring ({} bytes): {}", frames[1].size(),
                 s.message());
    return;
  }
  if (version <= ring_version_) {
    // The ECS republishes its ring every second: the same version is routine;
    // an older one is worth a line.
    if (version == ring_version_) {
      spdlog::debug("event plane: ring version {} republished", version);
    } else {
      spdlog::info("event plane: ignoring ring version {}: already have version {}", version,
                   ring_version_);
    }
    return;
  }
  spdlog::info("event plane: ring version {} with {} nodes", version, members.size());
  zmq::message_t frame;
  frame.copy(frames[1]);
  CacheRing(std::move(frame), version, members);
}

void Broker::CacheRing(zmq::message_t frame, uint64_t version,
                       const std::vector<NodeAddress>& members) {
  ring_frame_ = std::move(frame);
  ring_version_ = version;
  failures_.OnRing(members, clock_());
  std::erase_if(reports_, [&](const auto& r) { return !failures_.IsMember(r.first); });
  SendCachedRing();
}

void Broker::CacheRingFromReply(wire::ControlReply::Reader reply) {
  if (!reply.hasRing() || reply.getRing().getVersion() <= ring_version_) return;
  uint64_t version = 0;
  std::vector<NodeAddress> members;
  Status s = ReadUntrusted([&] { return ReadRing(reply.getRing(), &version, &members); });
  if (!s.ok()) {
    spdlog::warn("the ECS answered with a malformed ring: {}", s.message());
    return;
  }
  // The ECS publishes a committed ring before answering with it, but the
  // two travel on different sockets: the answer may come first. Caching it
  // now keeps the broker's ring at least as new as any ring a node holds
  // (nodes rely on that when their lease lapses; see kvnode/cluster_link.h).
  spdlog::info("ring version {} with {} nodes from an ECS answer, ahead of its publication",
               version, members.size());
  capnp::MallocMessageBuilder builder;
  builder.setRoot(reply.getRing());
  CacheRing(ToFrame(builder), version, members);
}

void Broker::ProcessSubscriptions() {
  for (int i = 0; i < kDrainLimit; ++i) {
    size_t total = RecvMultipart(pub_, &frames_, kMaxFrames, zmq::recv_flags::dontwait);
    if (total == 0) break;
    const zmq::message_t& m = frames_[0];
    const auto* bytes = m.data<unsigned char>();
    if (total != 1 || m.size() == 0 || bytes[0] > 1) {
      spdlog::warn("event plane: ignoring a non-subscription message from a subscriber");
      continue;
    }
    std::string topic(reinterpret_cast<const char*>(bytes) + 1, m.size() - 1);
    bool subscribe = bytes[0] == 1;
    spdlog::debug("event plane: {} '{}'", subscribe ? "subscribe" : "unsubscribe", topic);
    zmq::message_t upstream(m.data(), m.size());
    (void)sub_.send(upstream, zmq::send_flags::dontwait);
    // A subscription to any prefix of the topic (including "") gets the ring.
    if (subscribe && ring_version_ != 0 && RingTopic().compare(0, topic.size(), topic) == 0 &&
        topic.size() <= RingTopic().size()) {
      SendCachedRing();
    }
  }
}

void Broker::SendCachedRing() {
  std::string topic = RingTopic();
  zmq::message_t t(topic.data(), topic.size());
  zmq::message_t body;
  body.copy(ring_frame_);
  // XPUB never blocks: a subscriber over its high-water mark misses this copy
  // and catches up on the next publication or with getRing.
  (void)pub_.send(t, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
  (void)pub_.send(body, zmq::send_flags::dontwait);
}

}  // namespace kv

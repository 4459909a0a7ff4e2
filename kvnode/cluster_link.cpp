#include "kvnode/cluster_link.h"

#include <spdlog/spdlog.h>

#include "schema/framing.h"
#include "schema/socket.h"
#include "schema/wire.h"

namespace kv {
namespace {

void SetAddress(wire::NodeAddress::Builder b, const NodeAddress& a) {
  b.setHost(a.host);
  b.setPort(a.port);
  b.setPeerPort(a.peer_port);
}

const char* KindName(int kind) {
  static const char* kNames[] = {"join", "leave", "getRing"};
  return kNames[kind];
}

}  // namespace

ClusterLink::ClusterLink(zmq::context_t& ctx, ClusterLinkOptions options)
    : options_(std::move(options)),
      control_(MakeSocket(ctx, zmq::socket_type::dealer)),
      ring_sub_(MakeSocket(ctx, zmq::socket_type::sub)),
      lease_(options_.lease) {}

void ClusterLink::Start() {
  control_.connect(TcpEndpoint(options_.broker_host, options_.broker_port));
  ring_sub_.set(zmq::sockopt::subscribe, "ring");
  ring_sub_.connect(TcpEndpoint(options_.broker_host, options_.broker_pub_port));
  Send(Kind::kGetRing);
}

void ClusterLink::RequestJoin() {
  join_done_ = false;
  Send(Kind::kJoin);
}

void ClusterLink::RequestLeave() {
  leave_done_ = false;
  // A leave supersedes a join still waiting for its answer.
  std::erase_if(outstanding_, [](const Outstanding& o) { return o.kind == Kind::kJoin; });
  Send(Kind::kLeave);
}

void ClusterLink::Send(Kind kind) {
  // A re-sent request keeps its id, so a late answer to an earlier copy still
  // counts (the ECS may take longer than the retry interval).
  uint64_t id = 0;
  for (const auto& o : outstanding_) {
    if (o.kind == kind) id = o.request_id;
  }
  std::erase_if(outstanding_, [&](const Outstanding& o) { return o.kind == kind; });
  Outstanding o{kind, id != 0 ? id : next_request_id_++, options_.clock()};
  capnp::MallocMessageBuilder b;
  auto msg = b.initRoot<wire::ControlMessage>();
  msg.setVersion(wire::CONTROL_VERSION);
  auto req = msg.initRequest();
  req.setRequestId(o.request_id);
  switch (kind) {
    case Kind::kJoin: SetAddress(req.initJoin(), options_.self); break;
    case Kind::kLeave: SetAddress(req.initLeave(), options_.self); break;
    case Kind::kGetRing: req.setGetRing(); break;
  }
  zmq::message_t frame = ToFrame(b);
  (void)control_.send(frame, zmq::send_flags::dontwait);
  outstanding_.push_back(o);
  spdlog::debug("sent {} request {} to the broker", KindName(static_cast<int>(kind)),
                o.request_id);
}

void ClusterLink::SendHeartbeat(std::chrono::steady_clock::time_point now) {
  last_heartbeat_ = now;
  Heartbeat h{now, 0, false};
  if (!lease_.Valid(now)) {
    // Lapsed (or never held): the lease resumes only once the broker's ring
    // has come back too, so that a node paused or cut off past its lease
    // learns of a newer ring (another node may have taken over its ranges)
    // before it serves again. The broker answers in order: the ring arrives
    // before the heartbeat's answer, and OnPoll hands it out no later.
    h.ring_check = next_request_id_++;
    capnp::MallocMessageBuilder b;
    auto msg = b.initRoot<wire::ControlMessage>();
    msg.setVersion(wire::CONTROL_VERSION);
    auto req = msg.initRequest();
    req.setRequestId(h.ring_check);
    req.setGetRing();
    zmq::message_t frame = ToFrame(b);
    if (!control_.send(frame, zmq::send_flags::dontwait)) return;
  }
  uint64_t id = next_request_id_++;
  capnp::MallocMessageBuilder b;
  auto msg = b.initRoot<wire::ControlMessage>();
  msg.setVersion(wire::CONTROL_VERSION);
  auto req = msg.initRequest();
  req.setRequestId(id);
  SetAddress(req.initHeartbeat(), options_.self);
  zmq::message_t frame = ToFrame(b);
  // Not sent (no broker connection yet, or its queue is full): this one is
  // simply missed; the next is due one interval later.
  if (!control_.send(frame, zmq::send_flags::dontwait)) return;
  heartbeats_[id] = h;
  spdlog::trace("sent heartbeat {} to the broker{}", id, h.ring_check ? " after a getRing" : "");
}

bool ClusterLink::HandleHeartbeatReply(wire::ControlReply::Reader reply,
                                       std::shared_ptr<const Ring>* ring) {
  const uint64_t id = reply.getRequestId();
  for (auto& [heartbeat_id, h] : heartbeats_) {
    if (h.ring_check != id) continue;
    if (reply.getStatus() == wire::ControlStatus::OK && reply.hasRing()) {
      auto r = Ring::FromCapnp(reply.getRing());
      if (r.ok()) {
        *ring = *r;
        h.ring_checked = true;
      }
    }
    return true;
  }
  auto it = heartbeats_.find(id);
  if (it == heartbeats_.end()) return false;
  const Heartbeat h = it->second;
  heartbeats_.erase(it);
  if (reply.getStatus() != wire::ControlStatus::OK) {
    if (!heartbeat_failing_) {
      spdlog::warn("the broker refused heartbeat {}: {}", id, reply.getReason().cStr());
    }
    heartbeat_failing_ = true;
    return true;
  }
  if (heartbeat_failing_) spdlog::info("heartbeats answered ok again");
  heartbeat_failing_ = false;
  if (h.ring_check != 0 && !h.ring_checked) {
    spdlog::debug("heartbeat {} answered, but the broker had no ring for it: lease not renewed",
                  id);
    return true;
  }
  if (h.ring_check != 0) spdlog::info("lease (re)gained with heartbeat {}", id);
  lease_.OnAnswered(h.sent);
  return true;
}

void ClusterLink::AppendPollItems(std::vector<zmq::pollitem_t>* items) {
  items->push_back({static_cast<void*>(control_), 0, ZMQ_POLLIN, 0});
  items->push_back({static_cast<void*>(ring_sub_), 0, ZMQ_POLLIN, 0});
}

std::shared_ptr<const Ring> ClusterLink::OnPoll(const zmq::pollitem_t* items) {
  std::shared_ptr<const Ring> newest;
  auto keep = [&](std::shared_ptr<const Ring> r) {
    if (r && (!newest || r->version() > newest->version())) newest = std::move(r);
  };
  if (items[0].revents & ZMQ_POLLIN) {
    for (int i = 0; i < 64; ++i) {
      zmq::pollitem_t probe{static_cast<void*>(control_), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&probe, 1, std::chrono::milliseconds(0)) == 0) break;
      keep(HandleControl());
    }
  }
  if (items[1].revents & ZMQ_POLLIN) {
    for (int i = 0; i < 64; ++i) {
      zmq::pollitem_t probe{static_cast<void*>(ring_sub_), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&probe, 1, std::chrono::milliseconds(0)) == 0) break;
      keep(HandleRing());
    }
  }
  return newest;
}

std::shared_ptr<const Ring> ClusterLink::HandleControl() {
  std::vector<zmq::message_t> frames;
  size_t total = RecvMultipart(control_, &frames, 2, zmq::recv_flags::dontwait);
  if (total != 1) {
    if (total > 1) spdlog::warn("broker sent a {}-frame control message; ignored", total);
    return nullptr;
  }
  std::shared_ptr<const Ring> ring;
  auto reader = FrameReader::Open(frames[0]);
  Status s = reader.ok() ? Status::Ok() : reader.status();
  if (s.ok()) {
    s = ReadUntrusted([&]() -> Status {
      auto msg = (*reader)->Root<wire::ControlMessage>();
      if (msg.getVersion() != wire::CONTROL_VERSION) {
        return Status::InvalidArgument("control version " + std::to_string(msg.getVersion()));
      }
      if (!msg.isReply()) return Status::InvalidArgument("expected a reply");
      auto reply = msg.getReply();
      if (HandleHeartbeatReply(reply, &ring)) return Status::Ok();
      auto it = std::find_if(outstanding_.begin(), outstanding_.end(), [&](const Outstanding& o) {
        return o.request_id == reply.getRequestId();
      });
      if (it == outstanding_.end()) return Status::Ok();  // stale answer to a re-sent request
      Kind kind = it->kind;
      if (reply.hasRing() && reply.getRing().getVersion() > 0) {
        auto r = Ring::FromCapnp(reply.getRing());
        if (r.ok()) ring = *r;
      }
      switch (reply.getStatus()) {
        case wire::ControlStatus::OK:
          outstanding_.erase(it);
          if (kind == Kind::kJoin) join_done_ = true;
          if (kind == Kind::kLeave) leave_done_ = true;
          spdlog::info("{} answered ok{}", KindName(static_cast<int>(kind)),
                       ring ? " (ring v" + std::to_string(ring->version()) + ")" : "");
          break;
        case wire::ControlStatus::BAD_REQUEST:
        case wire::ControlStatus::REJECTED:
          outstanding_.erase(it);
          spdlog::error("{} refused: {}", KindName(static_cast<int>(kind)),
                        reply.getReason().cStr());
          if (kind == Kind::kLeave) {
            leave_refusal_ = reply.getReason().size() > 0 ? reply.getReason().cStr() : "refused";
          }
          break;
        default:
          // overloaded / unavailable: Tick re-sends after the retry interval.
          if (kind != Kind::kGetRing || reply.getStatus() != wire::ControlStatus::UNAVAILABLE) {
            spdlog::info("{} not done yet ({}); will retry", KindName(static_cast<int>(kind)),
                         reply.getReason().cStr());
          } else {
            outstanding_.erase(it);  // no ring yet: the subscription will bring it
          }
          break;
      }
      return Status::Ok();
    });
  }
  if (!s.ok()) spdlog::warn("bad control message from the broker: {}", s.message());
  return ring;
}

std::shared_ptr<const Ring> ClusterLink::HandleRing() {
  std::vector<zmq::message_t> frames;
  size_t total = RecvMultipart(ring_sub_, &frames, 3, zmq::recv_flags::dontwait);
  if (total != 2) {
    if (total != 0) spdlog::warn("ring publication with {} frames; ignored", total);
    return nullptr;
  }
  auto ring = Ring::DecodeRing(frames[1]);
  if (!ring.ok()) {
    spdlog::warn("bad ring publication: {}", ring.status().message());
    return nullptr;
  }
  return *ring;
}

void ClusterLink::KeepAlive(std::chrono::steady_clock::time_point now) {
  if (!last_heartbeat_ || now - *last_heartbeat_ >= options_.heartbeat) SendHeartbeat(now);
}

void ClusterLink::Tick(std::chrono::steady_clock::time_point now) {
  const bool lease_valid = lease_.Valid(now);
  if (lease_was_valid_ && !lease_valid) {
    spdlog::warn("lease expired: the broker answered no heartbeat sent in the last {} ms",
                 options_.lease.count());
  }
  lease_was_valid_ = lease_valid;
  std::erase_if(heartbeats_, [&](const auto& h) { return now - h.second.sent >= options_.lease; });
  if (!last_heartbeat_ || now - *last_heartbeat_ >= options_.heartbeat) SendHeartbeat(now);
  std::vector<Kind> due;
  for (const auto& o : outstanding_) {
    if (now - o.sent >= options_.retry) due.push_back(o.kind);
  }
  for (Kind k : due) Send(k);
}

}  // namespace kv

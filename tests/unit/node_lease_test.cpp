// The node's lease (kvnode/lease.h) as pure logic, and ClusterLink's
// heartbeats, lease and rejoin against a fake broker ROUTER on an ephemeral
// 127.0.0.1 port. ClusterLink gets a fake clock and the same fake times in
// Tick, so "time" only moves when the test says so.
#include <capnp/message.h>

#include <catch2/catch.hpp>
#include <deque>
#include <optional>
#include <set>
#include <string>

#include "kvnode/cluster_link.h"
#include "kvnode/lease.h"
#include "schema/framing.h"
#include "schema/socket.h"
#include "schema/wire.h"
#include "tests/support/process.h"

using kv::ClusterLink;
using kv::Lease;
using kv::wire::ControlRequest;
using kv::wire::ControlStatus;
using namespace std::chrono_literals;
using TimePoint = std::chrono::steady_clock::time_point;

namespace {

const TimePoint kT0{std::chrono::hours(1)};

struct Received {
  std::string identity;  // the link's DEALER at the fake broker
  uint64_t request_id = 0;
  ControlRequest::Which kind = ControlRequest::GET_RING;
  std::string address;  // host:port of join/leave/heartbeat
};

// The broker's control ROUTER and its (silent) ring publisher. Requests are
// kept in arrival order until the test takes them.
class FakeBroker {
 public:
  FakeBroker()
      : control_(kv::MakeSocket(ctx_, zmq::socket_type::router)),
        pub_(kv::MakeSocket(ctx_, zmq::socket_type::pub)) {
    control_.bind(kv::TcpEndpoint("127.0.0.1", 0));
    pub_.bind(kv::TcpEndpoint("127.0.0.1", 0));
  }
  uint16_t control_port() { return *kv::BoundPort(control_); }
  uint16_t pub_port() { return *kv::BoundPort(pub_); }

  // The oldest request of `kind` (with `id` when given), waiting up to 5 s.
  std::optional<Received> Next(ControlRequest::Which kind, std::optional<uint64_t> id = {}) {
    auto deadline = std::chrono::steady_clock::now() + 5s;
    do {
      for (auto it = inbox_.begin(); it != inbox_.end(); ++it) {
        if (it->kind == kind && (!id || it->request_id == *id)) {
          Received r = *it;
          inbox_.erase(it);
          return r;
        }
      }
    } while (ReceiveOne(50ms) || std::chrono::steady_clock::now() < deadline);
    return std::nullopt;
  }
  // The next heartbeat; when the link sent a getRing just before it (its
  // lease had lapsed), that one is answered first with `ring_status` and,
  // when ok, a one-node ring of version 7.
  std::optional<Received> NextHeartbeat(ControlStatus ring_status = ControlStatus::OK) {
    auto hb = Next(ControlRequest::HEARTBEAT);
    if (!hb) return hb;
    ring_checked_ = false;
    for (auto it = inbox_.begin(); it != inbox_.end(); ++it) {
      if (it->kind == ControlRequest::GET_RING && it->request_id + 1 == hb->request_id) {
        Answer(*it, ring_status, ring_status == ControlStatus::OK);
        ring_checked_ = true;
        inbox_.erase(it);
        break;
      }
    }
    return hb;
  }
  bool ring_checked() const { return ring_checked_; }

  void Answer(const Received& r, ControlStatus status, bool with_ring = false) {
    capnp::MallocMessageBuilder b;
    auto msg = b.initRoot<kv::wire::ControlMessage>();
    msg.setVersion(kv::wire::CONTROL_VERSION);
    auto reply = msg.initReply();
    reply.setRequestId(r.request_id);
    reply.setStatus(status);
    if (with_ring) (*kv::Ring::Make(7, 1, {kv::NodeAddress{"127.0.0.1", 7001, 7002}}))->ToCapnp(reply.initRing());
    control_.send(zmq::buffer(r.identity), zmq::send_flags::sndmore);
    control_.send(kv::ToFrame(b), zmq::send_flags::none);
  }

 private:
  bool ReceiveOne(std::chrono::milliseconds wait) {
    zmq::pollitem_t item{control_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, wait) == 0) return false;
    std::vector<zmq::message_t> frames;
    if (kv::RecvMultipart(control_, &frames, 2, zmq::recv_flags::dontwait) != 2) return false;
    Received r;
    r.identity.assign(frames[0].data<char>(), frames[0].size());
    auto reader = kv::FrameReader::Open(frames[1]);
    REQUIRE(reader.ok());
    REQUIRE(kv::ReadUntrusted([&] {
              auto req = (*reader)->Root<kv::wire::ControlMessage>().getRequest();
              r.request_id = req.getRequestId();
              r.kind = req.which();
              kv::wire::NodeAddress::Reader a;
              if (req.isJoin()) a = req.getJoin();
              if (req.isHeartbeat()) a = req.getHeartbeat();
              r.address = std::string(a.getHost().cStr()) + ":" + std::to_string(a.getPort());
              return kv::Status::Ok();
            }).ok());
    inbox_.push_back(std::move(r));
    return true;
  }

  zmq::context_t ctx_;
  zmq::socket_t control_;
  zmq::socket_t pub_;
  std::deque<Received> inbox_;
  bool ring_checked_ = false;
};

struct Link {
  explicit Link(FakeBroker& broker) {
    kv::ClusterLinkOptions o;
    o.broker_host = "127.0.0.1";
    o.broker_port = broker.control_port();
    o.broker_pub_port = broker.pub_port();
    o.self = kv::NodeAddress{"127.0.0.1", 7001, 7002};
    o.heartbeat = 200ms;
    o.lease = 1000ms;
    o.retry = 1000ms;
    o.clock = [this] { return now; };
    link = std::make_unique<ClusterLink>(ctx, o);
    link->Start();
  }
  // Handles whatever the broker sent until cond holds (5 s of real time).
  bool PollUntil(const std::function<bool()>& cond) {
    return kvtest::WaitFor([&] {
      std::vector<zmq::pollitem_t> items;
      link->AppendPollItems(&items);
      zmq::poll(items.data(), items.size(), 10ms);
      if (auto ring = link->OnPoll(items.data())) last_ring = ring;
      return cond();
    }, 5s);
  }
  void TickAt(TimePoint t) {
    now = t;
    link->Tick(t);
  }
  zmq::context_t ctx;
  TimePoint now = kT0;
  std::unique_ptr<ClusterLink> link;
  std::shared_ptr<const kv::Ring> last_ring;  // the newest ring OnPoll handed out
};

}  // namespace

TEST_CASE("a lease runs from the send time of the newest answered heartbeat", "[node][lease]") {
  Lease lease(1000ms);
  CHECK_FALSE(lease.Valid(kT0));
  CHECK_FALSE(lease.expiry().has_value());
  lease.OnAnswered(kT0);
  CHECK(lease.Valid(kT0 + 999ms));
  CHECK_FALSE(lease.Valid(kT0 + 1000ms));
  lease.OnAnswered(kT0 + 400ms);
  CHECK(lease.expiry() == kT0 + 1400ms);
  lease.OnAnswered(kT0 + 200ms);  // a late answer to an older heartbeat
  CHECK(lease.expiry() == kT0 + 1400ms);
}

TEST_CASE("the link sends heartbeats every interval and only ok answers extend its lease",
          "[node][lease]") {
  FakeBroker broker;
  Link node(broker);
  CHECK_FALSE(node.link->LeaseValid(kT0));

  node.TickAt(kT0);
  auto first = broker.NextHeartbeat();
  REQUIRE(first.has_value());
  CHECK(broker.ring_checked());  // no lease yet: the ring is asked for too
  CHECK(first->address == "127.0.0.1:7001");
  broker.Answer(*first, ControlStatus::OK);
  REQUIRE(node.PollUntil([&] { return node.link->LeaseValid(kT0); }));
  CHECK(node.link->LeaseValid(kT0 + 999ms));
  CHECK_FALSE(node.link->LeaseValid(kT0 + 1000ms));

  node.TickAt(kT0 + 100ms);  // not due yet: the next one is sent at +200 ms
  node.TickAt(kT0 + 200ms);
  auto second = broker.NextHeartbeat();
  REQUIRE(second.has_value());
  CHECK_FALSE(broker.ring_checked());  // the lease holds: a heartbeat alone
  CHECK(second->request_id != first->request_id);
  node.TickAt(kT0 + 400ms);
  auto third = broker.NextHeartbeat();
  REQUIRE(third.has_value());

  broker.Answer(*third, ControlStatus::BAD_REQUEST);
  broker.Answer(*second, ControlStatus::OK);
  REQUIRE(node.PollUntil([&] { return node.link->lease_expiry() == kT0 + 1200ms; }));
  CHECK_FALSE(node.link->LeaseValid(kT0 + 1200ms));  // the refused +400 ms one did not count
}

TEST_CASE("heartbeats older than the lease are forgotten and their late answers ignored",
          "[node][lease]") {
  FakeBroker broker;
  Link node(broker);
  node.TickAt(kT0);
  auto old = broker.NextHeartbeat();
  REQUIRE(old.has_value());
  node.TickAt(kT0 + 1000ms);  // the first can no longer extend anything: dropped
  auto fresh = broker.NextHeartbeat();
  REQUIRE(fresh.has_value());
  broker.Answer(*old, ControlStatus::OK);
  broker.Answer(*fresh, ControlStatus::OK);
  REQUIRE(node.PollUntil([&] { return node.link->LeaseValid(kT0 + 1000ms); }));
  CHECK(node.link->lease_expiry() == kT0 + 2000ms);
}

TEST_CASE("a lapsed lease comes back only with the broker's ring, handed out no later",
          "[node][lease]") {
  FakeBroker broker;
  Link node(broker);
  node.TickAt(kT0);
  auto refused = broker.NextHeartbeat(ControlStatus::UNAVAILABLE);  // a broker without a ring
  REQUIRE(refused.has_value());
  REQUIRE(broker.ring_checked());
  broker.Answer(*refused, ControlStatus::OK);
  // The answer to the link's first getRing, sent after: once it is handled,
  // so is the heartbeat's.
  auto initial = broker.Next(ControlRequest::GET_RING);
  REQUIRE(initial.has_value());
  broker.Answer(*initial, ControlStatus::OK, /*with_ring=*/true);
  REQUIRE(node.PollUntil([&] { return node.last_ring != nullptr; }));
  CHECK_FALSE(node.link->LeaseValid(kT0));

  node.last_ring = nullptr;
  node.TickAt(kT0 + 200ms);
  auto granted = broker.NextHeartbeat(ControlStatus::OK);
  REQUIRE(granted.has_value());
  REQUIRE(broker.ring_checked());
  broker.Answer(*granted, ControlStatus::OK);
  REQUIRE(node.PollUntil([&] { return node.link->LeaseValid(kT0 + 200ms); }));
  CHECK(node.last_ring != nullptr);
  CHECK(node.last_ring->version() == 7);

  node.TickAt(kT0 + 400ms);
  REQUIRE(broker.NextHeartbeat().has_value());
  CHECK_FALSE(broker.ring_checked());
  node.TickAt(kT0 + 1300ms);  // the lease ended at +1200 ms: the ring is asked for again
  REQUIRE(broker.NextHeartbeat().has_value());
  CHECK(broker.ring_checked());
}

TEST_CASE("a node can join again after a completed join and the new join is re-sent until "
          "answered",
          "[node][lease]") {
  FakeBroker broker;
  Link node(broker);
  node.link->RequestJoin();
  auto join = broker.Next(ControlRequest::JOIN);
  REQUIRE(join.has_value());
  broker.Answer(*join, ControlStatus::OK);
  REQUIRE(node.PollUntil([&] { return node.link->join_done(); }));

  node.link->RequestJoin();  // e.g. the node found itself removed from the ring
  CHECK_FALSE(node.link->join_done());
  auto rejoin = broker.Next(ControlRequest::JOIN);
  REQUIRE(rejoin.has_value());
  CHECK(rejoin->request_id != join->request_id);
  node.TickAt(kT0 + 1000ms);  // unanswered for the retry interval: sent again, same id
  auto resent = broker.Next(ControlRequest::JOIN);
  REQUIRE(resent.has_value());
  CHECK(resent->request_id == rejoin->request_id);
  broker.Answer(*resent, ControlStatus::OK);
  REQUIRE(node.PollUntil([&] { return node.link->join_done(); }));
}

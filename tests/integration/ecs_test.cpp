// kvecs as a real process between a real kvbroker and fake nodes on
// 127.0.0.1: each fake node has a control DEALER on the broker (it sends
// join) and a peer ROUTER on an ephemeral port where the ECS sends
// TransferStart / transferAbort; a SUB on the broker's XPUB watches the rings.
// Every wait has a deadline and pumps all fake sockets while it waits.
#include <capnp/message.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "control.capnp.h"
#include "peer.capnp.h"
#include "schema/framing.h"
#include "schema/ring.h"
#include "schema/socket.h"
#include "schema/wire.h"
#include "tests/support/process.h"

using kv::wire::ControlStatus;
using kvtest::Process;
using kvtest::TempDir;
using namespace std::chrono_literals;

namespace {

struct Ports {
  uint16_t control = 0, pub = 0, sub = 0;
};

// kvbroker -p 0 --port-file; ports read once the file appears.
// With fixed ports given, the broker comes back where an earlier one was.
std::unique_ptr<Process> StartBroker(const TempDir& work, const std::string& name, Ports* ports,
                                     std::optional<Ports> fixed = std::nullopt) {
  std::string port_file = work / (name + ".ports");
  std::vector<std::string> argv = {kvtest::Bin("kvbroker"), "-a", "127.0.0.1", "--port-file",
                                   port_file};
  if (fixed) {
    argv.insert(argv.end(), {"-p", std::to_string(fixed->control), "--pub-port",
                             std::to_string(fixed->pub), "--sub-port", std::to_string(fixed->sub)});
  } else {
    argv.insert(argv.end(), {"-p", "0"});
  }
  auto p = std::make_unique<Process>(argv, work / (name + ".log"));
  REQUIRE(kvtest::WaitFor([&] {
    unsigned c = 0, pu = 0, s = 0;
    std::string text = kvtest::ReadFile(port_file);
    if (std::sscanf(text.c_str(), "%u %u %u", &c, &pu, &s) != 3) return false;
    *ports = Ports{static_cast<uint16_t>(c), static_cast<uint16_t>(pu), static_cast<uint16_t>(s)};
    return true;
  }));
  return p;
}

std::unique_ptr<Process> StartEcs(const TempDir& work, const Ports& broker,
                                  const std::string& data_dir, const std::string& log_name,
                                  std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {kvtest::Bin("kvecs"),
                                   "-bh",
                                   "127.0.0.1",
                                   "-bp",
                                   std::to_string(broker.control),
                                   "--broker-sub-port",
                                   std::to_string(broker.sub),
                                   "-d",
                                   data_dir,
                                   "--batch-window-ms",
                                   "50",
                                   "--republish-ms",
                                   "200",
                                   "-ll",
                                   "debug"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return std::make_unique<Process>(argv, work / log_name);
}

struct Reply {
  uint64_t request_id = 0;
  ControlStatus status = ControlStatus::OK;
  std::string reason;
  uint64_t ring_version = 0;
  size_t ring_nodes = 0;
};

struct PeerEvent {
  bool start = false;  // else abort
  uint64_t transfer_id = 0;
  uint64_t prepares_version = 0;
};

// A node that exists only as its two sockets. With answer_transfers set it
// reports every TransferStart done at once, like a node with no data.
class FakeNode {
 public:
  explicit FakeNode(zmq::context_t& ctx) : ctx_(ctx) {
    peer_ = kv::MakeSocket(ctx_, zmq::socket_type::router);
    peer_.bind("tcp://127.0.0.1:*");
    auto port = kv::BoundPort(peer_);
    REQUIRE(port.ok());
    // The client port is never dialled by the ECS; reuse the peer port so
    // the identity host:port is unique.
    address_ = kv::NodeAddress{"127.0.0.1", *port, *port};
  }

  void AttachBroker(uint16_t control_port) {
    control_ = kv::MakeSocket(ctx_, zmq::socket_type::dealer);
    control_.connect(kv::TcpEndpoint("127.0.0.1", control_port));
  }

  void SendJoin(uint64_t request_id) {
    capnp::MallocMessageBuilder b;
    auto msg = b.initRoot<kv::wire::ControlMessage>();
    msg.setVersion(kv::wire::CONTROL_VERSION);
    auto req = msg.initRequest();
    req.setRequestId(request_id);
    auto join = req.initJoin();
    join.setHost(address_.host);
    join.setPort(address_.port);
    join.setPeerPort(address_.peer_port);
    zmq::message_t frame = kv::ToFrame(b);
    REQUIRE(control_.send(frame, zmq::send_flags::dontwait));
  }

  // Takes whatever has arrived on both sockets.
  void Pump() {
    std::vector<zmq::message_t> frames;
    while (control_ && kv::RecvMultipart(control_, &frames, 2, zmq::recv_flags::dontwait) == 1) {
      auto reader = kv::FrameReader::Open(frames[0]);
      REQUIRE(reader.ok());
      auto msg = (*reader)->Root<kv::wire::ControlMessage>();
      REQUIRE(msg.isReply());
      auto r = msg.getReply();
      replies.push_back(Reply{r.getRequestId(), r.getStatus(), r.getReason(),
                              r.getRing().getVersion(), r.getRing().getNodes().size()});
    }
    while (kv::RecvMultipart(peer_, &frames, 3, zmq::recv_flags::dontwait) == 2) {
      auto reader = kv::FrameReader::Open(frames[1]);
      REQUIRE(reader.ok());
      auto msg = (*reader)->Root<kv::wire::PeerMessage>();
      REQUIRE(msg.getVersion() == kv::wire::PEER_VERSION);
      if (msg.isTransferStart()) {
        auto st = msg.getTransferStart();
        events.push_back(PeerEvent{true, st.getTransferId(), st.getPreparesVersion()});
        if (garbage_first) SendGarbage(frames[0]);
        if (answer_transfers) AnswerDone(frames[0], msg.getRequestId(), st.getTransferId());
      } else {
        REQUIRE(msg.isTransferAbort());
        events.push_back(PeerEvent{false, msg.getTransferAbort(), 0});
      }
    }
  }

  std::optional<Reply> ReplyTo(uint64_t request_id) const {
    for (const auto& r : replies) {
      if (r.request_id == request_id) return r;
    }
    return std::nullopt;
  }
  std::optional<PeerEvent> Find(bool start) const {
    for (const auto& e : events) {
      if (e.start == start) return e;
    }
    return std::nullopt;
  }
  const kv::NodeAddress& address() const { return address_; }

  bool answer_transfers = true;
  bool garbage_first = false;  // answer a TransferStart with junk before the real reply
  std::vector<Reply> replies;
  std::vector<PeerEvent> events;

  void SendGarbage(const zmq::message_t& identity) {
    for (std::string junk : {std::string("not a message"), std::string(64, '\x7f'),
                             std::string(16, '\0')}) {
      zmq::message_t id(identity.data(), identity.size());
      zmq::message_t body(junk.data(), junk.size());
      REQUIRE(peer_.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait));
      REQUIRE(peer_.send(body, zmq::send_flags::dontwait));
    }
  }

 private:
  void AnswerDone(const zmq::message_t& identity, uint64_t request_id, uint64_t transfer_id) {
    capnp::MallocMessageBuilder b;
    auto msg = b.initRoot<kv::wire::PeerMessage>();
    msg.setVersion(kv::wire::PEER_VERSION);
    msg.setRequestId(request_id);
    auto done = msg.initTransferDone();
    done.setTransferId(transfer_id);
    done.setOk(true);
    zmq::message_t id(identity.data(), identity.size());
    zmq::message_t body = kv::ToFrame(b);
    REQUIRE(peer_.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait));
    REQUIRE(peer_.send(body, zmq::send_flags::dontwait));
  }

  zmq::context_t& ctx_;
  zmq::socket_t control_;
  zmq::socket_t peer_;
  kv::NodeAddress address_;
};

// A SUB on the broker's XPUB, collecting every ring it sees.
class RingWatcher {
 public:
  RingWatcher(zmq::context_t& ctx, uint16_t pub_port) {
    sub_ = kv::MakeSocket(ctx, zmq::socket_type::sub);
    sub_.set(zmq::sockopt::subscribe, "ring");
    sub_.connect(kv::TcpEndpoint("127.0.0.1", pub_port));
  }
  void Pump() {
    std::vector<zmq::message_t> frames;
    while (kv::RecvMultipart(sub_, &frames, 3, zmq::recv_flags::dontwait) == 2) {
      auto ring = kv::Ring::DecodeRing(frames[1]);
      REQUIRE(ring.ok());
      rings.push_back(*ring);
    }
  }
  std::shared_ptr<const kv::Ring> Latest() const { return rings.empty() ? nullptr : rings.back(); }

  std::vector<std::shared_ptr<const kv::Ring>> rings;

 private:
  zmq::socket_t sub_;
};

// Pumps every fake socket until cond holds or the deadline passes.
bool PumpUntil(std::vector<FakeNode*> nodes, RingWatcher* watcher,
               const std::function<bool()>& cond, std::chrono::milliseconds deadline = 10s) {
  return kvtest::WaitFor(
      [&] {
        for (auto* n : nodes) n->Pump();
        if (watcher != nullptr) watcher->Pump();
        return cond();
      },
      deadline);
}

}  // namespace

TEST_CASE("nodes that join through the broker appear in the rings the ECS publishes",
          "[ecs][integration]") {
  TempDir work;
  Ports ports;
  auto broker = StartBroker(work, "broker", &ports);
  auto ecs = StartEcs(work, ports, work / "ecs-data", "ecs.log");
  zmq::context_t ctx(1);
  RingWatcher watcher(ctx, ports.pub);
  FakeNode a(ctx), b(ctx), c(ctx);
  for (FakeNode* n : {&a, &b, &c}) n->AttachBroker(ports.control);
  std::vector<FakeNode*> all = {&a, &b, &c};

  a.SendJoin(1);
  REQUIRE(PumpUntil(all, &watcher, [&] { return a.ReplyTo(1).has_value(); }));
  CHECK(a.ReplyTo(1)->status == ControlStatus::OK);
  CHECK(a.ReplyTo(1)->ring_version == 1);

  b.SendJoin(2);
  c.SendJoin(3);
  REQUIRE(PumpUntil(all, &watcher, [&] { return b.ReplyTo(2) && c.ReplyTo(3); }));
  CHECK(b.ReplyTo(2)->status == ControlStatus::OK);
  CHECK(c.ReplyTo(3)->status == ControlStatus::OK);
  CHECK(b.ReplyTo(2)->ring_nodes >= 2);
  // The data of version 2 came from a, the only member of version 1.
  auto start = a.Find(true);
  REQUIRE(start.has_value());
  CHECK(start->prepares_version == 2);

  REQUIRE(PumpUntil(all, &watcher, [&] {
    auto latest = watcher.Latest();
    return latest && latest->size() == 3;
  }));
  auto latest = watcher.Latest();
  CHECK(latest->Contains(a.address()));
  CHECK(latest->Contains(b.address()));
  CHECK(latest->Contains(c.address()));
  CHECK(latest->replication_factor() == 1);
  for (size_t i = 1; i < watcher.rings.size(); ++i) {
    CHECK(watcher.rings[i]->version() >= watcher.rings[i - 1]->version());
  }
  CHECK(watcher.rings.front()->version() >= 1);

  ecs->Signal(SIGTERM);
  auto status = ecs->Wait();
  REQUIRE(status.has_value());
  CHECK(*status == 0);
}

TEST_CASE("a source that never answers makes the transition time out and the joiner retry",
          "[ecs][integration]") {
  TempDir work;
  Ports ports;
  auto broker = StartBroker(work, "broker", &ports);
  auto ecs = StartEcs(work, ports, work / "ecs-data", "ecs.log", {"--transfer-timeout-ms", "500"});
  zmq::context_t ctx(1);
  FakeNode a(ctx), b(ctx);
  a.AttachBroker(ports.control);
  b.AttachBroker(ports.control);
  std::vector<FakeNode*> all = {&a, &b};
  a.SendJoin(1);
  REQUIRE(PumpUntil(all, nullptr, [&] { return a.ReplyTo(1).has_value(); }));
  REQUIRE(a.ReplyTo(1)->status == ControlStatus::OK);

  a.answer_transfers = false;
  b.SendJoin(2);
  REQUIRE(PumpUntil(all, nullptr, [&] { return b.ReplyTo(2).has_value(); }));
  CHECK(b.ReplyTo(2)->status == ControlStatus::UNAVAILABLE);
  CHECK(b.ReplyTo(2)->reason.find("timed out") != std::string::npos);
  CHECK(b.ReplyTo(2)->ring_version == 1);
  auto start = a.Find(true);
  REQUIRE(start.has_value());
  REQUIRE(PumpUntil(all, nullptr, [&] { return a.Find(false).has_value(); }));
  CHECK(a.Find(false)->transfer_id == start->transfer_id);
}

TEST_CASE("after kill -9 mid-transition a restarted ECS keeps the old ring and aborts the transfer",
          "[ecs][integration]") {
  TempDir work;
  Ports ports;
  auto broker = StartBroker(work, "broker", &ports);
  auto ecs = StartEcs(work, ports, work / "ecs-data", "ecs.log");
  zmq::context_t ctx(1);
  FakeNode a(ctx), b(ctx);
  a.AttachBroker(ports.control);
  b.AttachBroker(ports.control);
  std::vector<FakeNode*> all = {&a, &b};
  a.SendJoin(1);
  REQUIRE(PumpUntil(all, nullptr, [&] { return a.ReplyTo(1).has_value(); }));
  REQUIRE(a.ReplyTo(1)->status == ControlStatus::OK);

  a.answer_transfers = false;
  b.SendJoin(2);
  REQUIRE(PumpUntil(all, nullptr, [&] { return a.Find(true).has_value(); }));
  uint64_t transfer_id = a.Find(true)->transfer_id;
  ecs->Kill9();

  // A fresh broker has no cached ring: whatever its subscribers see now the
  // restarted ECS published.
  broker->Signal(SIGTERM);
  REQUIRE(broker->Wait().has_value());
  Ports fresh;
  auto broker2 = StartBroker(work, "broker2", &fresh);
  RingWatcher watcher(ctx, fresh.pub);
  auto restarted = StartEcs(work, fresh, work / "ecs-data", "ecs2.log");
  REQUIRE(PumpUntil(all, &watcher, [&] { return a.Find(false) && watcher.Latest(); }));
  CHECK(a.Find(false)->transfer_id == transfer_id);
  CHECK(watcher.Latest()->version() == 1);
  CHECK(watcher.Latest()->size() == 1);
  CHECK(watcher.Latest()->Contains(a.address()));

  SECTION("and the joiner's retry commits version 2") {
    a.answer_transfers = true;
    b.AttachBroker(fresh.control);
    b.SendJoin(3);
    REQUIRE(PumpUntil(all, &watcher, [&] { return b.ReplyTo(3).has_value(); }));
    CHECK(b.ReplyTo(3)->status == ControlStatus::OK);
    CHECK(b.ReplyTo(3)->ring_version == 2);
    REQUIRE(PumpUntil(all, &watcher, [&] { return watcher.Latest()->version() == 2; }));
    CHECK(watcher.Latest()->size() == 2);
  }
}

TEST_CASE("a broker that restarts gets the ECS's credit and ring again", "[ecs][integration]") {
  TempDir work;
  Ports ports;
  auto broker = StartBroker(work, "broker", &ports);
  auto ecs = StartEcs(work, ports, work / "ecs-data", "ecs.log");
  zmq::context_t ctx(1);
  FakeNode a(ctx), b(ctx);
  a.AttachBroker(ports.control);
  std::vector<FakeNode*> all = {&a, &b};
  a.SendJoin(1);
  REQUIRE(PumpUntil(all, nullptr, [&] { return a.ReplyTo(1).has_value(); }));
  REQUIRE(a.ReplyTo(1)->status == ControlStatus::OK);

  broker->Signal(SIGTERM);
  REQUIRE(broker->Wait().has_value());
  Ports again;
  auto broker2 = StartBroker(work, "broker2", &again, ports);
  REQUIRE(again.control == ports.control);
  RingWatcher watcher(ctx, ports.pub);
  REQUIRE(PumpUntil(all, &watcher, [&] { return watcher.Latest() != nullptr; }));
  CHECK(watcher.Latest()->version() == 1);  // republished into the new broker's cache

  b.AttachBroker(ports.control);
  b.SendJoin(2);
  REQUIRE(PumpUntil(all, &watcher, [&] { return b.ReplyTo(2).has_value(); }));
  CHECK(b.ReplyTo(2)->status == ControlStatus::OK);
  CHECK(b.ReplyTo(2)->ring_version == 2);
}

TEST_CASE("kvecs refuses to start without a broker", "[ecs][integration]") {
  auto result = kvtest::Run({kvtest::Bin("kvecs"), "-bp", "5150"});
  CHECK(result.exit_status == 2);
  CHECK(result.err.find("-bh") != std::string::npos);
}

TEST_CASE("garbage from a node on the ECS's peer connection is logged and changes nothing",
          "[ecs][integration]") {
  TempDir work;
  Ports ports;
  auto broker = StartBroker(work, "broker", &ports);
  auto ecs = StartEcs(work, ports, work / "ecs-data", "ecs.log");
  zmq::context_t ctx(1);
  FakeNode a(ctx), b(ctx);
  a.AttachBroker(ports.control);
  b.AttachBroker(ports.control);
  std::vector<FakeNode*> all = {&a, &b};
  a.SendJoin(1);
  REQUIRE(PumpUntil(all, nullptr, [&] { return a.ReplyTo(1).has_value(); }));
  a.garbage_first = true;
  b.SendJoin(2);
  REQUIRE(PumpUntil(all, nullptr, [&] { return b.ReplyTo(2).has_value(); }));
  CHECK(b.ReplyTo(2)->status == ControlStatus::OK);
  CHECK(b.ReplyTo(2)->ring_version == 2);
  CHECK(ecs->running());
  std::string log = kvtest::ReadFile(work / "ecs.log");
  CHECK(log.find("dropping a bad message") != std::string::npos);
}

// Fakes for testing kvecs as a real process between a real kvbroker and
// fake nodes on 127.0.0.1 (ecs_test.cpp, ecs_failover_test.cpp): each fake
// node has a control DEALER on the broker (it sends join, or nodeFailed as
// the broker's failure detector would) and a peer ROUTER on an ephemeral port
// where the ECS sends TransferStart / transferAbort; a SUB on the broker's
// XPUB watches the rings. Every wait has a deadline and pumps all fake
// sockets while it waits.
#pragma once

#include <capnp/message.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "control.capnp.h"
#include "peer.capnp.h"
#include "schema/framing.h"
#include "schema/ring.h"
#include "schema/socket.h"
#include "schema/wire.h"
#include "tests/support/process.h"

namespace ecsfake {

using kv::wire::ControlStatus;
using kvtest::Process;
using kvtest::TempDir;
using namespace std::chrono_literals;

struct Ports {
  uint16_t control = 0, pub = 0, sub = 0;
};

// kvbroker -p 0 --port-file; ports read once the file appears.
// With fixed ports given, the broker comes back where an earlier one was.
inline std::unique_ptr<Process> StartBroker(const TempDir& work, const std::string& name,
                                            Ports* ports,
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

inline std::unique_ptr<Process> StartEcs(const TempDir& work, const Ports& broker,
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
  bool repair = false;
  std::vector<kv::HashRange> ranges;
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

  void SendJoin(uint64_t request_id) { SendRequest(request_id, address_, false); }
  // What the broker's failure detector sends: nodeFailed{node}.
  void SendNodeFailed(uint64_t request_id, const kv::NodeAddress& node) {
    SendRequest(request_id, node, true);
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
        PeerEvent e{true, st.getTransferId(), st.getPreparesVersion(), st.getRepair(), {}};
        for (auto r : st.getRanges()) e.ranges.push_back(kv::HashRange{Position(r.getFrom()),
                                                                       Position(r.getTo())});
        events.push_back(std::move(e));
        if (garbage_first) SendGarbage(frames[0]);
        if (answer_transfers) AnswerDone(frames[0], msg.getRequestId(), st.getTransferId());
      } else {
        REQUIRE(msg.isTransferAbort());
        events.push_back(PeerEvent{false, msg.getTransferAbort(), 0, false, {}});
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
  static kv::Hash128 Position(capnp::Data::Reader raw) {
    REQUIRE(raw.size() == 16);
    return kv::Hash128::FromBytes(std::string_view(reinterpret_cast<const char*>(raw.begin()), 16));
  }

  void SendRequest(uint64_t request_id, const kv::NodeAddress& node, bool failed) {
    capnp::MallocMessageBuilder b;
    auto msg = b.initRoot<kv::wire::ControlMessage>();
    msg.setVersion(kv::wire::CONTROL_VERSION);
    auto req = msg.initRequest();
    req.setRequestId(request_id);
    auto address = failed ? req.initNodeFailed() : req.initJoin();
    address.setHost(node.host);
    address.setPort(node.port);
    address.setPeerPort(node.peer_port);
    zmq::message_t frame = kv::ToFrame(b);
    REQUIRE(control_.send(frame, zmq::send_flags::dontwait));
  }

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
inline bool PumpUntil(std::vector<FakeNode*> nodes, RingWatcher* watcher,
               const std::function<bool()>& cond, std::chrono::milliseconds deadline = 10s) {
  return kvtest::WaitFor(
      [&] {
        for (auto* n : nodes) n->Pump();
        if (watcher != nullptr) watcher->Pump();
        return cond();
      },
      deadline);
}


}  // namespace ecsfake

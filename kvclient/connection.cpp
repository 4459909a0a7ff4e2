#include "kvclient/connection.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "schema/framing.h"
#include "schema/socket.h"

namespace kv::client {
namespace {

bool IsPlainNotFound(std::string_view reason) {
  return reason.empty() || reason.find("not found") != std::string_view::npos;
}

std::string TimeoutMessage(const std::string& address, std::chrono::milliseconds timeout) {
  return "no reply from " + address + " within " + std::to_string(timeout.count()) + " ms";
}

KvReply Own(const Reply& r) {
  KvReply out;
  out.request_id = r.request_id;
  out.status = r.status;
  out.key.assign(r.key);
  out.value.assign(r.value);
  out.reason.assign(r.reason);
  out.metadata.assign(r.metadata);
  out.ring_version = r.ring_version;
  out.notify_port = r.notify_port;
  return out;
}

}  // namespace

std::optional<uint16_t> ProtocolVersionOf(const zmq::message_t& frame) {
  auto reader = FrameReader::Open(frame);
  if (!reader.ok()) return std::nullopt;
  uint16_t version = 0;
  Status s = ReadUntrusted([&] {
    version = (*reader)->Root<wire::Reply>().getVersion();
    return Status::Ok();
  });
  if (!s.ok()) return std::nullopt;
  return version;
}

Status ToStatus(const KvReply& reply) {
  std::string word = StatusWord(reply.status);
  std::string detail = reply.reason.empty() ? word : word + ": " + reply.reason;
  switch (reply.status) {
    case WireStatus::PUT_SUCCESS:
    case WireStatus::PUT_UPDATE:
    case WireStatus::GET_SUCCESS:
    case WireStatus::DELETE_SUCCESS:
    case WireStatus::KEYRANGE_SUCCESS:
    case WireStatus::KEYRANGE_READ_SUCCESS:
      return Status::Ok();
    case WireStatus::GET_ERROR:
    case WireStatus::DELETE_ERROR:
      if (IsPlainNotFound(reply.reason)) return Status::NotFound(detail);
      return Status::InvalidArgument(detail);
    case WireStatus::SERVER_NOT_RESPONSIBLE:
      return Status::NotResponsible(detail);
    case WireStatus::OVERLOADED:
      return Status::Overloaded(detail);
    case WireStatus::SERVER_WRITE_LOCK:
    case WireStatus::SERVER_STOPPED:
      return Status::Unavailable(detail);
    case WireStatus::PUT_ERROR:
    case WireStatus::BAD_REQUEST:
      return Status::InvalidArgument(detail);
  }
  return Status::InvalidArgument(detail);
}

Connection::Connection(zmq::context_t& ctx, std::string host, uint16_t port,
                       ConnectionOptions options)
    : ctx_(ctx),
      host_(std::move(host)),
      port_(port),
      address_(host_ + ":" + std::to_string(port_)),
      options_(options) {}

Status Connection::Open() {
  if (host_.empty()) return Status::InvalidArgument("empty host");
  if (port_ == 0) return Status::InvalidArgument("port 0 is not a node's port");
  try {
    const std::string endpoint = TcpEndpoint(host_, port_);
    if (options_.shared != nullptr) {
      zmq::socket_t& shared = options_.shared->socket();
      for (int i = 0; i < std::max(options_.links, 1); ++i) {
        std::string id = options_.shared->NewLinkId();
        shared.set(zmq::sockopt::connect_routing_id, id);
        shared.connect(endpoint);
        options_.shared->Register(id, this);
        link_ids_.push_back(std::move(id));
      }
    } else if (options_.links <= 1) {
      socket_.emplace(MakeSocket(ctx_, zmq::socket_type::dealer));
      socket_->connect(endpoint);
    } else {
      // A DEALER connects to one endpoint once; a ROUTER may connect to it
      // many times, naming each connection so frames can be sent on it.
      socket_.emplace(MakeSocket(ctx_, zmq::socket_type::router));
      for (int i = 0; i < options_.links; ++i) {
        std::string id = "link" + std::to_string(i);
        socket_->set(zmq::sockopt::connect_routing_id, id);
        socket_->connect(endpoint);
        link_ids_.push_back(std::move(id));
      }
    }
  } catch (const zmq::error_t& e) {
    socket_.reset();
    return Status::InvalidArgument("cannot connect to " + address_ + ": " + e.what());
  }
  return Status::Ok();
}

Connection::~Connection() {
  if (options_.shared == nullptr || link_ids_.empty()) return;
  for (const auto& id : link_ids_) options_.shared->Unregister(id);
  try {
    options_.shared->socket().disconnect(TcpEndpoint(host_, port_));
  } catch (const zmq::error_t&) {
    // Already gone: nothing to release.
  }
}

SharedSocket::SharedSocket(zmq::context_t& ctx)
    : socket_(MakeSocket(ctx, zmq::socket_type::router)) {}

std::string SharedSocket::NewLinkId() { return "s" + std::to_string(next_link_++); }

void SharedSocket::Pump() {
  for (;;) {
    size_t total = 0;
    try {
      total = RecvMultipart(socket_, &frames_, 2, zmq::recv_flags::dontwait);
    } catch (const zmq::error_t& e) {
      spdlog::warn("receive failed: {}", e.what());
      return;
    }
    if (total == 0) return;
    if (total != 2) continue;  // [link][Replies] only
    auto it = owners_.find(frames_[0].to_string());
    if (it == owners_.end()) continue;  // a connection that has closed
    it->second->Deliver(frames_[1]);
  }
}

Result<uint64_t> Connection::Send(Op op, std::string_view key, std::string_view value,
                                  uint64_t ring_version, bool stale_ok, bool unordered) {
  if (!open()) return Status::Unavailable("connection to " + address_ + " is not open");
  Request request;
  request.request_id = next_request_id_;
  request.ring_version = ring_version;
  request.op = op;
  request.key = key;
  request.value = value;
  request.stale_ok = stale_ok && op == Op::kGet;
  request.unordered = unordered && op == Op::kGet;
  if (!out_.empty() && out_.bytes() + value.size() >= kMaxPackedBytes) {
    // This one would grow the frame past the cap: send what is held first.
    if (Status s = Flush(); !s.ok()) return s;
  }
  out_.Add(request);
  if (!options_.coalesce || out_.bytes() >= kMaxPackedBytes) {
    if (Status s = Flush(); !s.ok() && !options_.coalesce) {
      out_.Clear();
      return s;
    }
  }
  ++next_request_id_;
  pending_.Add(request.request_id, Pending{op, Clock::now()});
  return request.request_id;
}

Status Connection::Flush() {
  if (out_.empty() || !open()) return Status::Ok();
  zmq::message_t frame = out_.Frame();
  try {
    if (!link_ids_.empty()) {
      // Round robin over the connections, a frame at a time. The ROUTER
      // takes the whole message or, at a full queue, none of it.
      const std::string& id = link_ids_[next_link_++ % link_ids_.size()];
      zmq::message_t to(id.data(), id.size());
      if (!sock()->send(to, zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
        return Status::Overloaded("send queue to " + address_ + " is full");
      }
    }
    if (!sock()->send(frame, zmq::send_flags::dontwait)) {
      // Not sent: the requests stay held for the next Flush (their timeouts run).
      return Status::Overloaded("send queue to " + address_ + " is full");
    }
  } catch (const zmq::error_t& e) {
    out_.Clear();  // the requests are lost with the socket; they will time out
    return Status::IOError("send to " + address_ + " failed: " + e.what());
  }
  out_.Clear();
  return Status::Ok();
}

void Connection::ReadAvailable() {
  if (options_.shared != nullptr) {
    options_.shared->Pump();  // delivers to this connection and the others
    return;
  }
  if (!socket_) return;
  for (;;) {
    size_t total = 0;
    try {
      total = RecvMultipart(*socket_, &frames_, 2, zmq::recv_flags::dontwait);
    } catch (const zmq::error_t& e) {
      spdlog::warn("receive from {} failed: {}", address_, e.what());
      return;
    }
    if (total == 0) return;
    const size_t expected = link_ids_.empty() ? 1 : 2;  // a ROUTER sees [link][Replies]
    if (total != expected) {
      spdlog::warn("dropping a {}-frame reply from {} (expected {})", total, address_, expected);
      continue;
    }
    Deliver(frames_[expected - 1]);
  }
}

void Connection::Deliver(const zmq::message_t& body) {
  PackedReader reader(body, scratch_);
  do {
    Reply reply;
    Status s = reader.NextReply(&reply);
    if (!s.ok()) {
      if (reader.decoded() <= 1 && ProtocolVersionOf(body) == wire::CONTROL_VERSION) {
        // A kvbroker answering a kv request: there is no request id to match.
        ++control_replies_;
        spdlog::debug("dropping a control-protocol reply from {} (a kvbroker?)", address_);
        return;
      }
      spdlog::warn("dropping an unreadable reply from {}: {}", address_, s.ToString());
      return;
    }
    const Pending* pending = pending_.Find(reply.request_id);
    if (pending == nullptr) {
      ++stale_replies_;
      spdlog::debug("dropping reply {} from {}: no such request in flight", reply.request_id,
                    address_);
      continue;
    }
    ready_.push_back(Completion{reply.request_id, pending->op, pending->sent_at, Own(reply)});
    (void)pending_.Remove(reply.request_id);
  } while (!reader.done());
}

void Connection::ExpireBefore(Clock::time_point now) {
  while (!pending_.empty()) {
    const Pending& oldest = pending_.front();
    if (now - oldest.sent_at < options_.request_timeout) break;
    const uint64_t id = pending_.front_id();
    ready_.push_back(
        Completion{id, oldest.op, oldest.sent_at,
                   Status::Timeout(TimeoutMessage(address_, options_.request_timeout))});
    (void)pending_.Remove(id);
  }
}

void Connection::Collect(Clock::time_point now, std::vector<Completion>* out, bool readable) {
  if (readable) ReadAvailable();
  ExpireBefore(now);
  for (auto& c : ready_) out->push_back(std::move(c));
  ready_.clear();
}

Result<KvReply> Connection::Await(uint64_t request_id) {
  auto take_ready = [&]() -> std::optional<Result<KvReply>> {
    for (auto it = ready_.begin(); it != ready_.end(); ++it) {
      if (it->request_id == request_id) {
        Result<KvReply> r = std::move(it->result);
        ready_.erase(it);
        return r;
      }
    }
    return std::nullopt;
  };
  const Pending* pending = pending_.Find(request_id);
  if (pending == nullptr) {
    if (auto r = take_ready()) return std::move(*r);
    return Status::InvalidArgument("request " + std::to_string(request_id) + " is not in flight");
  }
  const Clock::time_point deadline = pending->sent_at + options_.request_timeout;
  for (;;) {
    (void)Flush();  // a held request is retried until its deadline
    ReadAvailable();
    if (auto r = take_ready()) return std::move(*r);
    auto now = Clock::now();
    if (now >= deadline) {
      (void)pending_.Remove(request_id);
      return Status::Timeout(TimeoutMessage(address_, options_.request_timeout));
    }
    auto wait = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    zmq::pollitem_t item = PollItem();
    try {
      zmq::poll(&item, 1, wait);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) return Status::IOError("poll failed: " + std::string(e.what()));
    }
  }
}

std::optional<Clock::time_point> Connection::NextDeadline() const {
  if (pending_.empty()) return std::nullopt;
  return pending_.front().sent_at + options_.request_timeout;
}

zmq::pollitem_t Connection::PollItem() {
  // Without a socket, fd -1 with no events makes zmq::poll ignore the item
  // (a null socket with fd 0 would poll stdin).
  if (options_.shared != nullptr) return options_.shared->PollItem();
  if (!socket_) return zmq::pollitem_t{nullptr, -1, 0, 0};
  return zmq::pollitem_t{socket_->handle(), 0, ZMQ_POLLIN, 0};
}

}  // namespace kv::client

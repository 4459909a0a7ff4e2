#include "tests/support/raw_client.h"

#include <stdexcept>

#include "schema/socket.h"

namespace kvtest {

RawClient::RawClient(uint16_t port) {
  kv::SocketOptions options;
  options.linger_ms = 0;
  socket_ = kv::MakeSocket(ctx_, zmq::socket_type::dealer, options);
  socket_.connect(kv::TcpEndpoint("127.0.0.1", port));
}

void RawClient::SendFrames(const std::vector<std::string>& frames) {
  for (size_t i = 0; i < frames.size(); ++i) {
    zmq::message_t m(frames[i].data(), frames[i].size());
    auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
    (void)socket_.send(m, flags);
  }
}

void RawClient::Send(const kv::Request& request) {
  zmq::message_t m = kv::EncodeRequest(request);
  (void)socket_.send(m, zmq::send_flags::none);
}

void RawClient::SendPacked(const std::vector<kv::Request>& requests) {
  kv::PackedWriter writer;
  for (const auto& r : requests) writer.Add(r);
  zmq::message_t m = writer.Take();
  (void)socket_.send(m, zmq::send_flags::none);
}

std::map<uint64_t, OwnedReply> RawClient::ReceiveById(size_t count,
                                                      std::chrono::milliseconds deadline) {
  std::map<uint64_t, OwnedReply> out;
  for (size_t i = 0; i < count; ++i) {
    auto reply = Receive(deadline);
    if (!reply) break;
    out[reply->request_id] = std::move(*reply);
  }
  return out;
}

std::optional<OwnedReply> RawClient::Receive(std::chrono::milliseconds deadline) {
  if (!queued_.empty()) {
    OwnedReply out = std::move(queued_.front());
    queued_.pop_front();
    return out;
  }
  zmq::pollitem_t item{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, deadline) == 0) return std::nullopt;
  zmq::message_t m;
  if (!socket_.recv(m, zmq::recv_flags::dontwait)) return std::nullopt;
  ++frames_received_;
  // A node packs the replies it has for us in one turn into one frame.
  kv::DecodeScratch scratch;
  kv::PackedReader reader(m, scratch);
  do {
    kv::Reply r;
    kv::Status s = reader.NextReply(&r);
    if (!s.ok()) throw std::runtime_error("undecodable reply: " + s.ToString());
    OwnedReply out;
    out.request_id = r.request_id;
    out.status = r.status;
    out.key = r.key;
    out.value = r.value;
    out.reason = r.reason;
    out.metadata = r.metadata;
    out.ring_version = r.ring_version;
    queued_.push_back(std::move(out));
  } while (!reader.done());
  OwnedReply out = std::move(queued_.front());
  queued_.pop_front();
  return out;
}

std::optional<OwnedReply> RawClient::Call(kv::Op op, const std::string& key,
                                          const std::string& value) {
  kv::Request r;
  r.request_id = next_id_++;
  r.op = op;
  r.key = key;
  r.value = value;
  Send(r);
  auto reply = Receive();
  if (reply && reply->request_id != r.request_id) {
    throw std::runtime_error("reply for another request id");
  }
  return reply;
}

}  // namespace kvtest

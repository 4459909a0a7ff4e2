#include "kvnode/replication.h"

#include "schema/wire.h"

#include <array>
#include <cstring>
#include <stdexcept>

namespace kv {
namespace {

capnp::Data::Reader AsData(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

// First segment for the builders below, so that encoding a batch or an ack
// does not allocate (and zero) 8 KiB each time: MallocMessageBuilder zeroes
// what it used when it is destroyed, ready for the next message; larger
// batches spill into segments of their own. Not schema/wire.cpp's scratch:
// two builders alive at once must never share one.
constexpr size_t kScratchWords = 8192;
thread_local std::array<capnp::word, kScratchWords> tls_first_segment{};

kj::ArrayPtr<capnp::word> FirstSegment() {
  return kj::arrayPtr(tls_first_segment.data(), kScratchWords);
}

std::string_view AsView(capnp::Data::Reader d) {
  return {reinterpret_cast<const char*>(d.begin()), d.size()};
}

}  // namespace

void ReplBatch::Reserve(size_t writes, size_t bytes) {
  if (bytes_ != nullptr || !entries.empty()) throw std::logic_error("ReplBatch::Reserve twice");
  entries.reserve(writes);
  if (bytes > 0) bytes_ = std::make_unique_for_overwrite<char[]>(bytes);
  capacity_ = bytes;
}

void ReplBatch::Add(std::string_view key, std::string_view value, bool deleted,
                    uint64_t version) {
  if (key.size() + value.size() > capacity_ - used_) {
    throw std::logic_error("ReplBatch::Add past its reserved bytes");
  }
  char* k = bytes_.get() + used_;
  if (!key.empty()) std::memcpy(k, key.data(), key.size());
  char* v = k + key.size();
  if (!value.empty()) std::memcpy(v, value.data(), value.size());
  used_ += key.size() + value.size();
  entries.push_back(ReplEntry{{k, key.size()}, {v, value.size()}, deleted, version});
}

zmq::message_t EncodeReplicate(uint64_t request_id, uint64_t ring_version,
                               const NodeAddress& primary, const ReplicaStream& stream,
                               uint64_t acked_through, const ReplBatch& batch) {
  capnp::MallocMessageBuilder b(FirstSegment());
  auto msg = b.initRoot<wire::PeerMessage>();
  msg.setVersion(wire::PEER_VERSION);
  msg.setRequestId(request_id);
  auto r = msg.initReplicate();
  r.setRingVersion(ring_version);
  auto p = r.initPrimary();
  p.setHost(primary.host);
  p.setPort(primary.port);
  p.setPeerPort(primary.peer_port);
  r.setStream(stream.id);
  r.setSeq(batch.seq);
  r.setFirstSeq(stream.first_seq);
  r.setAckedThrough(acked_through);
  auto list = r.initEntries(static_cast<unsigned>(batch.entries.size()));
  for (size_t i = 0; i < batch.entries.size(); ++i) {
    const ReplEntry& e = batch.entries[i];
    list[i].setKey(AsData(e.key));
    list[i].setDeleted(e.deleted);
    if (!e.deleted) list[i].setValue(AsData(e.value));
    list[i].setVersion(e.version);
  }
  return ToFrame(b);
}

zmq::message_t EncodeReplicateAck(uint64_t request_id, const ReplicateAckMessage& ack) {
  capnp::MallocMessageBuilder b(FirstSegment());
  auto msg = b.initRoot<wire::PeerMessage>();
  msg.setVersion(wire::PEER_VERSION);
  msg.setRequestId(request_id);
  auto a = msg.initReplicateAck();
  a.setStream(ack.stream);
  a.setSeq(ack.seq);
  a.setRefusal(ack.refusal);
  a.setRingVersion(ack.ring_version);
  if (!ack.reason.empty()) a.setReason(ack.reason);
  return ToFrame(b);
}

Status ReadReplicate(wire::PeerMessage::Reader msg, size_t max_key_bytes, ReplicateMessage* out) {
  auto r = msg.getReplicate();
  out->request_id = msg.getRequestId();
  out->ring_version = r.getRingVersion();
  auto p = r.getPrimary();
  out->primary.host = p.getHost();
  out->primary.port = p.getPort();
  out->primary.peer_port = p.getPeerPort();
  out->stream = r.getStream();
  out->seq = r.getSeq();
  out->first_seq = r.getFirstSeq();
  out->acked_through = r.getAckedThrough();
  // Checked and measured first, then copied into the batch's one buffer.
  auto entries = r.getEntries();
  size_t bytes = 0;
  for (auto e : entries) {
    size_t key_bytes = e.getKey().size();
    if (key_bytes == 0 || key_bytes > max_key_bytes) {
      return Status::InvalidArgument("replicated key of " + std::to_string(key_bytes) + " bytes");
    }
    bytes += key_bytes + (e.getDeleted() ? 0 : e.getValue().size());
  }
  out->batch = std::make_shared<ReplBatch>(out->seq);
  out->batch->Reserve(entries.size(), bytes);
  for (auto e : entries) {
    bool deleted = e.getDeleted();
    out->batch->Add(AsView(e.getKey()), deleted ? std::string_view() : AsView(e.getValue()),
                    deleted, e.getVersion());
  }
  return Status::Ok();
}

ReplicateAckMessage ReadReplicateAck(wire::ReplicateAck::Reader in) {
  ReplicateAckMessage out;
  out.stream = in.getStream();
  out.seq = in.getSeq();
  out.refusal = in.getRefusal();
  out.ring_version = in.getRingVersion();
  out.reason = in.getReason();
  return out;
}

std::vector<WriteOp> OpsOf(const ReplBatch& batch) {
  std::vector<WriteOp> ops;
  ops.reserve(batch.entries.size());
  for (const auto& e : batch.entries) ops.push_back(WriteOp{e.deleted, e.key, e.value, e.version});
  return ops;
}

}  // namespace kv

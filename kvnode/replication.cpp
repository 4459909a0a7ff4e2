#include "kvnode/replication.h"

#include "schema/wire.h"

namespace kv {
namespace {

capnp::Data::Reader AsData(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

std::string AsString(capnp::Data::Reader d) {
  return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
}

}  // namespace

zmq::message_t EncodeReplicate(uint64_t request_id, uint64_t ring_version,
                               const NodeAddress& primary, const ReplicaStream& stream,
                               uint64_t acked_through, const ReplBatch& batch) {
  capnp::MallocMessageBuilder b;
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
  capnp::MallocMessageBuilder b;
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
  out->batch = std::make_shared<ReplBatch>();
  out->batch->seq = out->seq;
  auto entries = r.getEntries();
  out->batch->entries.reserve(entries.size());
  for (auto e : entries) {
    ReplEntry entry;
    entry.key = AsString(e.getKey());
    if (entry.key.empty() || entry.key.size() > max_key_bytes) {
      return Status::InvalidArgument("replicated key of " + std::to_string(entry.key.size()) +
                                     " bytes");
    }
    entry.deleted = e.getDeleted();
    if (!entry.deleted) entry.value = AsString(e.getValue());
    entry.version = e.getVersion();
    out->batch->entries.push_back(std::move(entry));
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

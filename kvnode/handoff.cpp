#include "kvnode/handoff.h"

#include "peer.capnp.h"

namespace kv {
namespace {

capnp::Data::Reader AsData(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

wire::PeerMessage::Builder Init(capnp::MallocMessageBuilder& b, uint64_t request_id) {
  auto msg = b.initRoot<wire::PeerMessage>();
  msg.setVersion(wire::PEER_VERSION);
  msg.setRequestId(request_id);
  return msg;
}

}  // namespace

bool RangesContain(const RangeList& ranges, const Hash128& pos) {
  for (const auto& [from, to] : ranges) {
    if (InRange(pos, from, to)) return true;
  }
  return false;
}

zmq::message_t EncodeChunk(uint64_t request_id, const OutgoingTransfer& t, uint64_t index,
                           const std::vector<std::pair<std::string, std::string>>& entries,
                           bool last, const std::vector<uint64_t>& versions) {
  capnp::MallocMessageBuilder b;
  auto chunk = Init(b, request_id).initChunk();
  chunk.setTransferId(t.id);
  chunk.setIndex(index);
  chunk.setLast(last);
  auto ranges = chunk.initRanges(static_cast<unsigned>(t.ranges.size()));
  for (size_t i = 0; i < t.ranges.size(); ++i) {
    ranges[i].setFrom(AsData(t.ranges[i].first.AsBytes()));
    ranges[i].setTo(AsData(t.ranges[i].second.AsBytes()));
  }
  auto list = chunk.initEntries(static_cast<unsigned>(entries.size()));
  for (size_t i = 0; i < entries.size(); ++i) {
    list[i].setKey(AsData(entries[i].first));
    list[i].setValue(AsData(entries[i].second));
    if (i < versions.size()) list[i].setVersion(versions[i]);
  }
  return ToFrame(b);
}

zmq::message_t EncodeForward(uint64_t request_id, uint64_t transfer_id,
                             const std::vector<WriteOp>& entries) {
  capnp::MallocMessageBuilder b;
  auto fwd = Init(b, request_id).initForward();
  fwd.setTransferId(transfer_id);
  auto list = fwd.initEntries(static_cast<unsigned>(entries.size()));
  for (size_t i = 0; i < entries.size(); ++i) {
    list[i].setKey(AsData(entries[i].key));
    list[i].setDeleted(entries[i].is_delete);
    if (!entries[i].is_delete) list[i].setValue(AsData(entries[i].value));
    list[i].setVersion(entries[i].version);
  }
  return ToFrame(b);
}

zmq::message_t EncodeAck(uint64_t request_id, uint64_t transfer_id, const Status& status) {
  capnp::MallocMessageBuilder b;
  auto ack = Init(b, request_id).initAck();
  ack.setTransferId(transfer_id);
  ack.setOk(status.ok());
  if (!status.ok()) ack.setReason(status.ToString());
  return ToFrame(b);
}

zmq::message_t EncodeTransferDone(uint64_t request_id, const OutgoingTransfer& t,
                                  const Status& status) {
  capnp::MallocMessageBuilder b;
  auto done = Init(b, request_id).initTransferDone();
  done.setTransferId(t.id);
  done.setOk(status.ok());
  if (!status.ok()) done.setReason(status.ToString());
  done.setEntries(t.entries);
  done.setBytes(t.bytes);
  return ToFrame(b);
}

Status ReadRanges(capnp::List<wire::HashRange>::Reader in, RangeList* out) {
  out->clear();
  for (auto r : in) {
    if (r.getFrom().size() != 16 || r.getTo().size() != 16) {
      return Status::InvalidArgument("range position is not 16 bytes");
    }
    std::string_view from(reinterpret_cast<const char*>(r.getFrom().begin()), 16);
    std::string_view to(reinterpret_cast<const char*>(r.getTo().begin()), 16);
    out->emplace_back(Hash128::FromBytes(from), Hash128::FromBytes(to));
  }
  return Status::Ok();
}

}  // namespace kv

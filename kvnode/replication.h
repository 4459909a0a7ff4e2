// Replication state and its peer messages (schema/peer.capnp Replicate and
// ReplicateAck). A primary sends every group commit's writes, already durable
// locally, to each replica of its range as one Replicate on a DEALER shared
// with every other message to that node (so a stream, hand-off chunks and
// forwards to one node arrive in the order they were sent). All streams of a
// primary share one seq space: batch seq n goes to every replica as seq n.
// A replica applies seq = last + 1 only (duplicates are acked, not applied),
// fences by its ring, and keeps the batches the primary has not yet reported
// acknowledged by every replica (ackedThrough), so that if it is promoted it
// can re-send them and every replica ends up with what it has served.
// Owned by the node's event loop; not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "kvnode/storage.h"
#include "peer.capnp.h"
#include "schema/ring.h"
#include "schema/status.h"

namespace kv {

// Bits of an entry version below the ring version: versions are
// (ring version of the primary << kVersionShift) | counter, so a key's versions
// grow across fail-overs (a new primary always holds a newer ring).
constexpr int kVersionShift = 40;

// Views into the bytes of the ReplBatch that holds it.
struct ReplEntry {
  std::string_view key;
  std::string_view value;
  bool deleted = false;
  uint64_t version = 0;
};

// One group commit's writes, shared by the streams that carry it. The keys
// and values are copied into one buffer the batch owns (one allocation per
// batch, not two per write) and the entries view it, so a batch is never
// copied, only shared.
class ReplBatch {
 public:
  explicit ReplBatch(uint64_t seq) : seq(seq) {}
  ReplBatch(const ReplBatch&) = delete;
  ReplBatch& operator=(const ReplBatch&) = delete;

  // Makes room for `writes` entries holding `bytes` bytes of keys and values
  // in all; once, before the first Add.
  void Reserve(size_t writes, size_t bytes);
  // Copies key and value in. Throws std::logic_error past what Reserve made
  // room for (a bug: the entries already added would dangle otherwise).
  void Add(std::string_view key, std::string_view value, bool deleted, uint64_t version);

  const uint64_t seq;
  std::vector<ReplEntry> entries;

 private:
  std::unique_ptr<char[]> bytes_;
  size_t capacity_ = 0;
  size_t used_ = 0;
};

// A batch sent to one replica and not yet acknowledged by it.
struct ReplInFlight {
  std::shared_ptr<const ReplBatch> batch;
  std::vector<uint64_t> hold_ids;  // replies waiting for this replica's ack
  std::chrono::steady_clock::time_point sent;
};

// Primary side: what one replica has not acknowledged yet.
struct ReplicaStream {
  NodeAddress replica;
  uint64_t id = 0;         // random; a new one whenever the stream restarts
  uint64_t first_seq = 1;  // the seq a replica new to this stream starts at
  std::deque<ReplInFlight> unacked;
  std::chrono::steady_clock::time_point retry_at;  // resend unacked from here on
};

// Replica side: the stream of one primary.
struct SourceState {
  NodeAddress primary;
  uint64_t stream = 0;
  uint64_t last_seq = 0;
  // Applied batches the primary has not reported acknowledged by all.
  std::deque<std::shared_ptr<const ReplBatch>> tail;
};

// A decoded Replicate; owns its data.
struct ReplicateMessage {
  uint64_t request_id = 0;
  uint64_t ring_version = 0;
  NodeAddress primary;
  uint64_t stream = 0;
  uint64_t seq = 0;
  uint64_t first_seq = 0;
  uint64_t acked_through = 0;
  std::shared_ptr<ReplBatch> batch;
};

struct ReplicateAckMessage {
  uint64_t stream = 0;
  uint64_t seq = 0;
  wire::ReplicateRefusal refusal = wire::ReplicateRefusal::NONE;
  uint64_t ring_version = 0;
  std::string reason;
};

zmq::message_t EncodeReplicate(uint64_t request_id, uint64_t ring_version,
                               const NodeAddress& primary, const ReplicaStream& stream,
                               uint64_t acked_through, const ReplBatch& batch);
zmq::message_t EncodeReplicateAck(uint64_t request_id, const ReplicateAckMessage& ack);
// From an already opened PeerMessage whose union is replicate. InvalidArgument
// on a key outside 1..max_key_bytes.
Status ReadReplicate(wire::PeerMessage::Reader msg, size_t max_key_bytes, ReplicateMessage* out);
ReplicateAckMessage ReadReplicateAck(wire::ReplicateAck::Reader in);

// The WriteOps of a batch (views into it).
std::vector<WriteOp> OpsOf(const ReplBatch& batch);

}  // namespace kv

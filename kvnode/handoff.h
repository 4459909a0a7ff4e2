// Hand-off state and peer-protocol encoding (schema/peer.capnp). A source node
// streams a snapshot of the moving ranges to the target in bounded chunks
// (at most `window` unacknowledged), and forwards every write it accepts in
// those ranges meanwhile, holding the client's reply until the target's Ack.
// The target deletes what it held in the ranges on chunk 0, applies chunks and
// forwards durably before acking, and never lets a snapshot entry overwrite a
// key a forward already wrote. Owned by the node's event loop; not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "kvnode/storage.h"
#include "schema/hash.h"
#include "schema/ring.h"
#include "peer.capnp.h"
#include "schema/wire.h"

namespace kv {

using RangeList = std::vector<std::pair<Hash128, Hash128>>;  // (from, to] each

bool RangesContain(const RangeList& ranges, const Hash128& pos);

// A client reply waiting for the Acks of the forwards that carry its write.
struct HeldReply {
  zmq::message_t identity;
  uint64_t request_id = 0;
  WireStatus status = WireStatus::PUT_SUCCESS;        // sent when every Ack is in
  WireStatus failure_status = WireStatus::PUT_ERROR;  // sent when a forward fails
  std::string key;
  int waiting = 0;                                    // Acks still missing
  bool silent = false;                                // no client: a promotion replay
  // What the write leaves (CommitBatch's holds): once it settles, a get from
  // another client shows it while later writes of the key are unsettled.
  std::string value;
  bool deleted = false;
};

// A forward on its way: which parked replies it carries and since when.
struct InFlightForward {
  std::vector<uint64_t> hold_ids;
  std::chrono::steady_clock::time_point sent;
};

struct OutgoingTransfer {
  uint64_t id = 0;
  uint64_t prepares_version = 0;
  NodeAddress target;
  RangeList ranges;
  zmq::message_t ecs_identity;       // where TransferDone goes
  uint64_t ecs_request_id = 0;
  zmq::socket_t* socket = nullptr;   // the node's shared link to the target
  bool repair = false;               // re-replication: ring already in force
  uint64_t rate_bytes_per_s = 0;     // repair only; 0 = no cap
  std::unique_ptr<RangeSnapshot> snapshot;
  bool snapshot_exhausted = false;
  uint64_t next_chunk = 0;
  std::unordered_set<uint64_t> chunks_in_flight;  // peer request ids
  bool done_reported = false;
  // Failed after TransferDone: the ECS may commit the ring that gives the
  // ranges to the target, which would then lack further writes. Until this
  // node applies a newer ring (or the ECS aborts), it refuses requests in the
  // ranges with server_write_lock instead of accepting what it cannot forward.
  bool broken = false;
  uint64_t entries = 0, bytes = 0;
  std::chrono::steady_clock::time_point started, last_progress;
  std::map<uint64_t, InFlightForward> forwards;  // by peer request id
  uint64_t next_request_id = 1;

  bool snapshot_acked() const { return snapshot_exhausted && chunks_in_flight.empty(); }
};

struct IncomingTransfer {
  RangeList ranges;
  std::unordered_set<std::string> forwarded;  // keys written by forwards
  bool snapshot_complete = false;
  std::chrono::steady_clock::time_point last_seen;
};

// versions[i] is entries[i]'s entry version (may be empty: none).
zmq::message_t EncodeChunk(uint64_t request_id, const OutgoingTransfer& t, uint64_t index,
                           const std::vector<std::pair<std::string, std::string>>& entries,
                           bool last, const std::vector<uint64_t>& versions = {});
zmq::message_t EncodeForward(uint64_t request_id, uint64_t transfer_id,
                             const std::vector<WriteOp>& entries);
zmq::message_t EncodeAck(uint64_t request_id, uint64_t transfer_id, const Status& status);
zmq::message_t EncodeTransferDone(uint64_t request_id, const OutgoingTransfer& t,
                                  const Status& status);

// Reads a list of capnp HashRange into a RangeList; InvalidArgument when a
// position is not 16 bytes.
Status ReadRanges(capnp::List<wire::HashRange>::Reader in, RangeList* out);

}  // namespace kv

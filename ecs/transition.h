// The vocabulary of a ring transition: the membership requests the ECS takes
// from the broker, the transfers (one per source and target) that hand data
// off, and the record of a transition in progress, with its on-disk encoding
// (one Cap'n Proto message whose root is ecs_state::Transition, see
// ecs/ecs_state.capnp; the format is versioned by transitionFormat).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "schema/ring.h"
#include "schema/status.h"

namespace kv {

enum class RequestKind { kJoin, kLeave, kNodeFailed };
const char* KindName(RequestKind kind);

// A join, leave or nodeFailed request taken from the broker, and who to
// answer. Value type.
struct MembershipRequest {
  std::string client;       // ZeroMQ identity of the requester at the broker
  uint64_t request_id = 0;  // echoed in the reply
  RequestKind kind = RequestKind::kJoin;
  NodeAddress node;
};

// One hand-off: the source streams ranges to the target. Value type.
struct Transfer {
  uint64_t transfer_id = 0;
  NodeAddress source;  // gets TransferStart / transferAbort on its peer port
  NodeAddress target;
  std::vector<HashRange> ranges;
  // Re-replication after a fail-over (TransferStart.repair): the ring giving
  // target the ranges is already in force and source is their primary in it.
  // Otherwise a hand-off that prepares the next ring.
  bool repair = false;
};

// A transition in progress: enough to roll it back after a crash. Also the
// record of a repair in progress (then target is the ring in force, every
// transfer has repair set, and there are no requesters). Value type.
struct TransitionRecord {
  std::shared_ptr<const Ring> target;  // the ring it would commit (repair: in force)
  std::vector<Transfer> transfers;
  std::vector<MembershipRequest> requesters;
};

// Serialized for LMDB. Never fails for a record with a target ring.
std::string EncodeTransition(const TransitionRecord& record);
// Corruption when the bytes are not a valid record of this format.
Result<TransitionRecord> DecodeTransition(std::string_view bytes);

// One Transfer per (source, target) pair, in the order the pair first appears
// in moves, with consecutive ids from *next_id (advanced past the last) and
// the given repair flag.
std::vector<Transfer> GroupMoves(const std::vector<Move>& moves, uint64_t* next_id,
                                 bool repair = false);

// Text for log lines: "a:1 b:2" ("-" for none), "(FROM, TO]" in hex, and
// "ID (SOURCE -> TARGET)".
std::string NodesText(const std::vector<NodeAddress>& nodes);
std::string RangeText(const HashRange& range);
std::string RangesText(const std::vector<HashRange>& ranges);
std::string TransferText(const Transfer& transfer);

}  // namespace kv

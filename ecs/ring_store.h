// The ECS's durable state in its own LMDB environment (-d DIR, created if
// missing). One unnamed database, layout version 2:
//   "format"            "2"; a layout-1 store (no "repair" key yet) is
//                       upgraded on open, any other value is refused
//   "ring"              the current ring: one Cap'n Proto message, root
//                       wire::Ring (Ring::EncodeRing); absent = no ring yet
//   "transition"        the join/leave transition in progress
//                       (EncodeTransition); absent = none
//   "repair"            the re-replication in progress after a fail-over
//                       (EncodeTransition: target = the ring in force, the
//                       unfinished repair transfers); absent = none. Written
//                       with the ring it repairs, in one transaction
//   "next_transfer_id"  8 bytes big-endian: the next unused transferId, so
//                       ids stay unique across restarts
// Every write is one LMDB transaction, durable when it returns. Layout 2 is
// refused by a layout-1 kvecs, which would not resume a repair.
#pragma once

#include <lmdb.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "ecs/transition.h"
#include "schema/ring.h"
#include "schema/status.h"

namespace kv {

// Owned by the ECS's event loop; not thread-safe.
class RingStore {
 public:
  // Creates dir when missing. IOError when LMDB cannot open it, Corruption
  // when it holds another layout version.
  static Result<std::unique_ptr<RingStore>> Open(const std::string& dir);
  ~RingStore();
  RingStore(const RingStore&) = delete;
  RingStore& operator=(const RingStore&) = delete;

  // nullptr when no ring was ever committed.
  Result<std::shared_ptr<const Ring>> LoadRing();
  Result<std::optional<TransitionRecord>> LoadTransition();
  Result<std::optional<TransitionRecord>> LoadRepair();
  // 1 when none was stored.
  Result<uint64_t> LoadNextTransferId();

  // Records a transition about to start, with the next unused transfer id.
  Status SaveTransition(const TransitionRecord& record, uint64_t next_transfer_id);
  // Stores ring as the current one and deletes any transition record, atomically.
  Status CommitRing(const Ring& ring);
  // Deletes the transition record (absent is fine).
  Status DropTransition();

  // A fail-over, atomically: ring becomes the current one, any transition
  // record is deleted, and the repair record is replaced by `repair`
  // (deleted when nullopt), with the next unused transfer id.
  Status CommitFailover(const Ring& ring, const std::optional<TransitionRecord>& repair,
                        uint64_t next_transfer_id);
  // Replaces the repair record (its transfers changed), with the next unused
  // transfer id.
  Status SaveRepair(const TransitionRecord& record, uint64_t next_transfer_id);
  // Deletes the repair record (absent is fine).
  Status DropRepair();

 private:
  explicit RingStore(MDB_env* env, MDB_dbi dbi) : env_(env), dbi_(dbi) {}
  Result<std::optional<std::string>> Get(const std::string& key);
  Result<std::optional<TransitionRecord>> LoadRecord(const std::string& key);
  Status SaveRecord(const std::string& key, const TransitionRecord& record,
                    uint64_t next_transfer_id);
  Status DropRecord(const std::string& key);

  MDB_env* env_;
  MDB_dbi dbi_;
};

}  // namespace kv

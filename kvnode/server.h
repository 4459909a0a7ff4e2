// The kvnode server: one event loop (zmq_poll over the client ROUTER, the
// peer ROUTER, the store's flush events, the control-plane link, hand-off
// sockets and a stop pipe) that owns the store, the cache and the ring.
// Requests are taken in batches (a client frame may pack several, see
// schema/framing.h) and replies leave packed, one frame per client per loop
// turn; reads of keys the batch does not write are
// answered at once from the cache or the store, writes go to the store as one
// group commit (one WAL append and fdatasync per batch) and are answered only
// after it returns (and, for keys in a range being handed off, after the
// hand-off target has them too). Framing: schema/framing.h; hand-off:
// kvnode/handoff.h. Standalone without -bh, else a cluster member.
// Not thread-safe except RequestStop(), which is async-signal-safe.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>
#include <zmq.hpp>

#include "kvnode/cache.h"
#include "kvnode/cluster_link.h"
#include "kvnode/config.h"
#include "kvnode/handoff.h"
#include "kvnode/key_index.h"
#include "kvnode/notifier.h"
#include "kvnode/replication.h"
#include "kvnode/storage.h"
#include "schema/hash.h"
#include "schema/ring.h"
#include "schema/status.h"
#include "schema/wire.h"

namespace kv {

class Server {
 public:
  explicit Server(NodeConfig config);
  ~Server();

  // Opens the store and binds the sockets; after it, port() is the bound port.
  Status Start();
  // Runs until stopped: standalone, at the first RequestStop(); in a cluster,
  // once the node has left the ring (or at a second RequestStop()). Returns
  // after in-flight writes are committed and answered and the store is closed.
  Status Run();
  // Safe to call from a signal handler or another thread.
  void RequestStop();

  uint16_t port() const { return port_; }
  uint16_t peer_port() const { return peer_port_; }
  uint16_t notify_port() const { return notifier_ ? notifier_->port() : 0; }

 private:
  using Clock = std::chrono::steady_clock;
  // Key and value are copied: frames may point into buffers ZeroMQ reuses.
  struct Pending {
    zmq::message_t identity;
    Op op = Op::kGet;
    uint64_t request_id = 0;
    std::string key;
    std::string value;  // a put's value, or a get's answer
    // A get's answer, fixed when it joins the batch: what the batch's last
    // earlier write of its key leaves (requests are taken in order).
    WireStatus answer = WireStatus::GET_ERROR;
  };

  // Client path (server.cpp).
  void ProcessIncoming();
  // Handles one client message; returns how many requests it carried.
  size_t HandleFrames(std::vector<zmq::message_t>& frames, size_t total);
  void HandleRequest(const zmq::message_t& identity, const Request& request);
  bool TryAnswerNow(const zmq::message_t& identity, const Request& request);
  std::optional<WireStatus> CheckResponsible(const Request& request) const;
  void CommitBatch();
  // Registers a held reply for the write p (its status is set once applied);
  // reads of its key wait until it settles. Returns the hold id.
  uint64_t HoldWrite(const Pending& p);
  // Queues a reply in its client's outbox; FlushReplies sends each outbox as
  // one packed frame (a full one leaves at once).
  void Send(const zmq::message_t& identity, const Reply& reply);
  struct Outbox {
    std::string identity;
    PackedWriter frame;
  };
  void SendFrame(Outbox& box);
  void FlushReplies();
  void SendBadRequest(const zmq::message_t& identity, uint64_t request_id,
                      const std::string& reason);
  Status Validate(const Request& request) const;
  std::string KeyrangeText(bool read) const;

  // Cluster path (server_cluster.cpp).
  bool cluster_mode() const { return link_ != nullptr; }
  void ApplyRing(std::shared_ptr<const Ring> ring);
  void ProcessPeer();
  void HandlePeerMessage(const zmq::message_t& identity, const zmq::message_t& frame);
  void StartTransfer(const zmq::message_t& identity, uint64_t request_id, uint64_t transfer_id,
                     uint64_t prepares_version, NodeAddress target, RangeList ranges,
                     bool repair);
  void AbortTransfer(uint64_t transfer_id, const std::string& why, bool by_ecs);
  Status ApplyChunk(uint64_t transfer_id, uint64_t index, RangeList ranges,
                    std::vector<WriteOp> entries, bool last);
  Status ApplyForward(uint64_t transfer_id, std::vector<WriteOp> entries);
  void PumpTransfer(OutgoingTransfer& t);
  void OnTransferAck(OutgoingTransfer& t, uint64_t rid, bool ok, const std::string& reason);
  // The one DEALER to a peer's peer port that hand-off and replication share,
  // so everything sent to one node arrives in the order it was sent.
  zmq::socket_t& PeerLink(const NodeAddress& peer);
  void OnPeerLink(zmq::socket_t& link);
  void ReportIfDone(OutgoingTransfer& t);
  void FinishTransfers();  // drops transfers the applied ring has made obsolete
  // Sends the writes that fall in moving ranges to their targets; each held
  // reply (hold_ids[i] for ops[i]) then waits for those targets' Acks too.
  void ForwardWrites(const std::vector<WriteOp>& ops, const std::vector<uint64_t>& hold_ids);
  // One forward's or replication's Ack (or its failure) for the held replies
  // it carried. A NotResponsible outcome answers server_not_responsible (the
  // client retries at the key's current primary).
  void SettleForward(const std::vector<uint64_t>& hold_ids, const Status& outcome);
  // A held reply has been answered: reads parked on its key may go.
  void ReleaseKey(const std::string& key);

  // Replication (server_replication.cpp).
  // Versions for n writes committed now.
  uint64_t NextVersion();
  // Sends a committed batch to every replica; each held reply then waits for
  // every replica's ack.
  void ReplicateWrites(const std::vector<WriteOp>& ops, const std::vector<uint64_t>& versions,
                       const std::vector<uint64_t>& hold_ids);
  void SendReplicate(ReplicaStream& stream, ReplInFlight& in_flight);
  void OnReplicateAck(const ReplicateAckMessage& ack);
  // Settles every reply the stream is holding with outcome and empties it.
  void DropStreamHolds(ReplicaStream& stream, const Status& outcome);
  // Applies a run of Replicate messages with one group commit and acks each.
  void ApplyReplicates(std::vector<std::pair<zmq::message_t, ReplicateMessage>>& run);
  // The same in two halves around a Write the caller makes, so a replica's
  // writes and its own clients' writes share one group commit (one fsync).
  struct ReplicaApply {
    std::vector<ReplicateAckMessage> acks;      // one per message of the run
    std::vector<WriteOp> ops;                   // views into the run
    std::vector<size_t> applied;                // messages whose entries are in ops
    std::map<std::string, SourceState> updated;  // source states once ops are durable
  };
  ReplicaApply PrepareReplicates(
      const std::vector<std::pair<zmq::message_t, ReplicateMessage>>& run);
  void FinishReplicates(std::vector<std::pair<zmq::message_t, ReplicateMessage>>& run,
                        ReplicaApply& apply, const Status& s);
  // Applies deferred_run_ on its own (when no client batch took it along).
  void ApplyDeferredReplicates();
  // After a ring change: streams to the new replica set, promotion replay.
  void ReconcileReplication(const std::optional<HashRange>& old_write_range);
  void ReplicationTick(Clock::time_point now);
  uint64_t AckedThrough() const;
  // A get the primary may answer now: no write of its key is unacknowledged.
  bool KeyQuiet(std::string_view key) const { return FindUnacked(key) == nullptr; }
  struct UnackedKey;
  const UnackedKey* FindUnacked(std::string_view key) const {
    if (unacked_keys_.empty()) return nullptr;
    auto it = unacked_keys_.find(key);
    return it == unacked_keys_.end() ? nullptr : &it->second;
  }
  // The image of key a get from identity may be answered with now although
  // writes of the key are unsettled, or null when it must wait (parked_reads_).
  // unordered (Request.unordered): identity's own unsettled writes do not
  // make it wait.
  const UnackedKey* AnswerableImage(std::string_view key, const zmq::message_t& identity,
                                    bool unordered = false) const;
  void AnswerGet(const zmq::message_t& identity, uint64_t request_id, std::string_view key);
  // key as this node has it now (recent writes, then the cache, then LMDB):
  // GET_SUCCESS with *value (valid until the next store or cache call), or
  // GET_ERROR with *reason empty for not found.
  WireStatus ReadLatest(std::string_view key, std::string_view* value, std::string* reason);

  // Notifications (server_notify.cpp, kvnode/notifier.h).
  Status StartNotifier();
  // A committed batch's changes: published now (hold_ids null) or held until
  // SettleForward acknowledges hold_ids[i].
  void NotifyCommitted(const std::vector<WriteOp>& ops, const std::vector<bool>& existed,
                       const std::vector<uint64_t>& prev_versions,
                       const std::vector<uint64_t>* hold_ids);
  bool ServesKey(std::string_view key) const;
  void ClusterTick();
  bool ReadyToExit() const;

  NodeConfig config_;
  zmq::context_t ctx_{1};
  zmq::socket_t socket_;
  zmq::socket_t peer_;
  std::unique_ptr<Store> store_;
  ValueCache cache_;
  uint16_t port_ = 0;
  uint16_t peer_port_ = 0;
  Hash128 position_;
  NodeAddress self_;
  int stop_pipe_[2] = {-1, -1};
  int stop_requests_ = 0;

  std::vector<Pending> batch_;
  std::vector<Pending> spare_pending_;  // committed requests kept for their buffers (up to kSpareNodes)
  // Transparent: the read path looks keys up by string_view, allocating nothing.
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using KeySet = std::unordered_set<std::string, StringHash, std::equal_to<>>;
  // Keys written by batch_, each with the index of its last write there.
  KeyIndex batch_keys_;
  auto BatchKeyOf() const {
    return [this](size_t i) { return std::string_view(batch_[i].key); };
  }
  std::optional<size_t> LastWriteInBatch(std::string_view key) const {
    return batch_keys_.Find(key, BatchKeyOf());
  }
  std::vector<zmq::message_t> frames_;          // reused receive buffer
  // Reused by ProcessPeer and OnPeerLink, so that a replicate or an ack read
  // allocates no reader, no scratch and no frame list.
  FrameReader peer_reader_;
  FrameReader link_reader_;
  std::vector<zmq::message_t> link_frames_;
  DecodeScratch scratch_;
  std::string value_buf_;                       // reused read buffer
  // Replies of this loop turn, one outbox per client, in first-reply order;
  // entries past outbox_used_ are spare buffers kept for the next turn.
  std::vector<Outbox> outbox_;
  size_t outbox_used_ = 0;
  std::unordered_map<std::string, size_t> outbox_index_;  // identity -> outbox_ slot

  // Cluster state.
  std::unique_ptr<ClusterLink> link_;
  std::shared_ptr<const Ring> ring_;            // newest applied ring (null: none yet)
  std::optional<HashRange> write_range_;        // set while this node is in ring_
  bool leaving_ = false;
  Clock::time_point leave_deadline_;
  std::map<uint64_t, std::unique_ptr<OutgoingTransfer>> outgoing_;
  std::map<uint64_t, IncomingTransfer> incoming_;
  // Keys replicated here, in the current ring, into ranges this node did not
  // hold in the ring before: a hand-off or repair of those ranges may deliver
  // its first chunk after them, and must neither clear them nor overwrite
  // them with its older snapshot. Recorded only until the ranges' transfers
  // are in (or the next ring).
  std::unordered_set<std::string> early_replicated_;
  // What this node holds in ring_ and held in the ring before (the same for
  // ring v1, into which nothing is transferred).
  std::optional<HashRange> held_now_, held_before_;
  // Transfers into this node completed in this ring, or after the ring
  // before it was applied: a source streams for a ring as soon as it has
  // applied it, so a target often has the whole snapshot before it applies
  // that ring itself.
  RangeList received_ranges_;
  RangeList received_since_ring_;  // completed since the last ApplyRing
  bool early_replicated_full_ = false;  // warned about the bound in this ring
  void NoteReplicated(std::string_view key);
  std::map<uint64_t, HeldReply> held_;          // parked client replies by hold id
  uint64_t next_hold_id_ = 1;
  std::map<std::string, zmq::socket_t> peer_links_;  // by "host:peer_port"
  // Transfers the ECS started for a ring this node has not applied yet.
  struct DeferredStart {
    zmq::message_t identity;
    uint64_t request_id = 0, transfer_id = 0, prepares_version = 0;
    NodeAddress target;
    RangeList ranges;
  };
  std::vector<DeferredStart> deferred_repairs_;

  // Replication state.
  std::vector<std::unique_ptr<ReplicaStream>> streams_;  // as primary, one per replica
  uint64_t repl_seq_ = 1;                                // next batch seq
  uint64_t version_counter_ = 0;                         // within version_ring_
  uint64_t version_ring_ = 0;
  std::map<std::string, SourceState> sources_;           // as replica, by primary host:port
  // The last run of Replicate messages a loop turn read: applied with the
  // turn's client batch (one fsync for both), or alone at the end of the
  // turn, and always before a new ring is applied. Empty between turns.
  std::vector<std::pair<zmq::message_t, ReplicateMessage>> deferred_run_;
  // Keys with a write applied here but not yet acknowledged everywhere it
  // must be. A get must not show such a write (a fail-over could lose it), so
  // it is answered with the key's image, the value the last acknowledged
  // write left, when there is one and the client has no unsettled write of
  // the key itself; otherwise it waits (parked_reads_), which keeps a client's
  // own pipelined put-then-get in order.
  struct UnackedKey {
    int writes = 0;  // holds not yet settled
    // Known for writes CommitBatch took while the key was quiet (taken
    // before the first of them was applied), advanced as they settle; not
    // for a promotion replay, whose older state this node may not have.
    bool has_image = false;
    WireStatus status = WireStatus::GET_ERROR;  // GET_SUCCESS with value, or not found
    std::string value;
    std::string reason;      // a read error when the image was taken
    uint64_t image_hold = 0;  // the settled hold the image shows (0: the state before)
    std::vector<std::string> writers;  // identities of the unsettled writes, one per write
  };
  std::unordered_map<std::string, UnackedKey, StringHash, std::equal_to<>> unacked_keys_;
  // Map nodes of settled holds and quiet keys, kept for the next writes: a
  // write then allocates no node, key, value or writer list for its hold
  // and its key. Bounded; past that, nodes are freed.
  static constexpr size_t kSpareNodes = 1024;
  std::vector<std::map<uint64_t, HeldReply>::node_type> spare_holds_;
  std::vector<std::unordered_map<std::string, UnackedKey, StringHash, std::equal_to<>>::node_type>
      spare_unacked_;
  // A new, empty hold with this id (a recycled node when there is one).
  HeldReply& NewHold(uint64_t id);
  void RetireHold(std::map<uint64_t, HeldReply>::iterator it);
  // key's entry, created empty (from a recycled node) when it has none.
  UnackedKey& UnackedFor(std::string_view key);
  // A read parked until its key is quiet. Its answer is taken when it is
  // parked (the value the writes before it left), so a later write of the
  // key, applied while it waits, does not change what it returns: requests
  // are taken in order (schema/framing.h).
  struct ParkedRead {
    zmq::message_t identity;
    uint64_t request_id = 0;
    WireStatus status = WireStatus::GET_ERROR;
    std::string value;
    std::string reason;
  };
  ParkedRead Park(const zmq::message_t& identity, uint64_t request_id, WireStatus status,
                  std::string_view value, std::string_view reason);
  std::unordered_map<std::string, std::vector<ParkedRead>> parked_reads_;
  // A replica reported a ring newer than ours in which we are not primary:
  // refuse writes until we have applied it.
  uint64_t fenced_until_ring_ = 0;

  std::unique_ptr<Notifier> notifier_;  // key-change publisher (after Start)
};

}  // namespace kv

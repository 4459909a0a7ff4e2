// The notification half of the Server: wiring the Notifier (kvnode/notifier.h)
// to the store, the ring and the acknowledgement of writes.
#include <spdlog/spdlog.h>

#include "kvnode/server.h"

namespace kv {

Status Server::StartNotifier() {
  NotifierHooks hooks;
  hooks.serves = [this](std::string_view key) { return ServesKey(key); };
  hooks.quiet = [this](std::string_view key) { return KeyQuiet(key); };
  hooks.read = [this](std::string_view key, std::string* value, uint64_t* version) {
    return store_->Get(key, value, version);
  };
  hooks.version_clock = [this]() {
    uint64_t ring_version = ring_ ? ring_->version() : 0;
    uint64_t counter = version_ring_ == ring_version ? version_counter_ : 0;
    return (ring_version << kVersionShift) | counter;
  };
  hooks.ring_version = [this]() { return ring_ ? ring_->version() : uint64_t{0}; };
  notifier_ = std::make_unique<Notifier>(ctx_, std::move(hooks));
  const int hwm = static_cast<int>(config_.notify_hwm);
  if (config_.notify_port >= 0) {
    return notifier_->Bind(config_.address, static_cast<uint16_t>(config_.notify_port), hwm);
  }
  if (config_.port != 0 && config_.port < 65534) {
    // -p + 2 by default; clients learn the port from replies, so when it is
    // taken (e.g. -p reused from an earlier ephemeral start) any port will do.
    Status s = notifier_->Bind(config_.address, static_cast<uint16_t>(config_.port + 2), hwm);
    if (s.ok()) return s;
    spdlog::info("{}; taking any free port for notifications", s.message());
  }
  return notifier_->Bind(config_.address, 0, hwm);
}

bool Server::ServesKey(std::string_view key) const {
  if (!cluster_mode()) return true;
  // The lease is left out on purpose: a snapshot skipped while it is not
  // valid would never be sent later. A stale one from a node that has lost
  // its primacy carries an older asOf, which subscribers drop.
  if (!write_range_ || fenced_until_ring_ != 0) return false;
  return write_range_->Contains(KeyPosition(key));
}

void Server::NotifyCommitted(const std::vector<WriteOp>& ops, const std::vector<bool>& existed,
                             const std::vector<uint64_t>& prev_versions,
                             const std::vector<uint64_t>* hold_ids) {
  if (!notifier_ || notifier_->topics() == 0) return;
  for (size_t i = 0; i < ops.size(); ++i) {
    const WriteOp& op = ops[i];
    // A delete of an absent key changes nothing: nothing to tell.
    if ((op.is_delete && !existed[i]) || !notifier_->Wanted(op.key)) continue;
    KeyChange change{op.is_delete, std::string(op.key), std::string(op.value), op.version,
                     prev_versions[i]};
    if (hold_ids == nullptr) {
      notifier_->Publish(change);
    } else {
      notifier_->Hold((*hold_ids)[i], std::move(change));
    }
  }
}

}  // namespace kv

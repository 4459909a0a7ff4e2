#include "ecs/config.h"

namespace kv {

Status ResolveConfig(EcsConfig* c) {
  if (c->broker_host.empty()) return Status::InvalidArgument("-bh BROKER_HOST is required");
  if (c->broker_port == 0) return Status::InvalidArgument("-bp BROKER_CONTROL_PORT is required");
  if (!c->broker_sub_port) {
    if (c->broker_port > 65535 - 2) {
      return Status::InvalidArgument("broker port " + std::to_string(c->broker_port) +
                                     " + 2 is not a port; give --broker-sub-port");
    }
    c->broker_sub_port = static_cast<uint16_t>(c->broker_port + 2);
  }
  if (*c->broker_sub_port == 0) return Status::InvalidArgument("--broker-sub-port must not be 0");
  return Status::Ok();
}

CoordinatorConfig ToCoordinatorConfig(const EcsConfig& c) {
  CoordinatorConfig out;
  out.replication_factor = static_cast<int>(c.replication_factor);
  out.batch_window = std::chrono::milliseconds(c.batch_window_ms);
  out.transfer_timeout = std::chrono::milliseconds(c.transfer_timeout_ms);
  out.max_held = static_cast<size_t>(c.credit);
  out.repair.transfer_timeout = std::chrono::milliseconds(c.repair_timeout_ms);
  out.repair.retry_backoff = std::chrono::milliseconds(c.repair_retry_ms);
  out.repair.retry_backoff_cap = std::chrono::milliseconds(c.repair_retry_cap_ms);
  out.repair.max_attempts = static_cast<int>(c.repair_attempts);
  out.repair.report_interval = std::chrono::milliseconds(c.repair_report_ms);
  return out;
}

}  // namespace kv

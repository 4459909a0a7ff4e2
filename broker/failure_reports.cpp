// The broker's failure reports: turning the failure detector's verdicts
// into nodeFailed work for the ECS (see broker.h, "Failure detection"), and
// how long the event loop may sleep before the next verdict is due.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <capnp/message.h>

#include "broker/broker.h"
#include "broker/broker_util.h"
#include "schema/framing.h"

namespace kv {
namespace {

using broker_util::SetAddress;
using broker_util::ToString;

const char* ControlStatusName(wire::ControlStatus status) {
  switch (status) {
    case wire::ControlStatus::OK: return "ok";
    case wire::ControlStatus::OVERLOADED: return "overloaded";
    case wire::ControlStatus::BAD_REQUEST: return "badRequest";
    case wire::ControlStatus::UNAVAILABLE: return "unavailable";
    case wire::ControlStatus::REJECTED: return "rejected";
  }
  return "unknown";
}

}  // namespace

const std::string& Broker::FailureReporter() {
  static const std::string kIdentity("\0kvbroker-failure-detector", 26);
  return kIdentity;
}

void Broker::ReportFailures() {
  const auto now = clock_();
  for (const NodeAddress& node : failures_.TakeDue(now)) {
    const std::string key = node.ToString();
    auto last = reports_.find(key);
    if (last != reports_.end() && queue_.Contains(FailureReporter(), last->second)) {
      spdlog::debug("{} is still silent; its failure report {} still waits for the ECS", key,
                    last->second);
      continue;
    }
    const uint64_t id = next_report_id_++;
    capnp::MallocMessageBuilder builder;
    auto msg = builder.initRoot<wire::ControlMessage>();
    msg.setVersion(wire::CONTROL_VERSION);
    auto work = msg.initWork();
    const std::string& client = FailureReporter();
    work.setClient(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(client.data()),
                                       client.size()));
    auto request = work.initRequest();
    request.setRequestId(id);
    SetAddress(request.initNodeFailed(), node);
    zmq::message_t frame = ToFrame(builder);
    size_t before = queue_.depth();
    queue_.PushAlways(QueuedRequest{client, id, ToString(frame)});
    reports_[key] = id;
    spdlog::warn("{} sent no heartbeat for {} ms: reporting it failed to the ECS (report {}, "
                 "queue depth {})",
                 key, failures_.timeout().count(), id, queue_.depth());
    LogDepthChange(before, "grew");
  }
  Dispatch();
}

std::chrono::milliseconds Broker::PollTimeout() {
  const std::chrono::milliseconds cap(config_.failure_check_ms);
  auto deadline = failures_.NextDeadline();
  if (!deadline) return std::chrono::milliseconds(-1);  // nothing to time: wait for messages
  auto wait = std::chrono::ceil<std::chrono::milliseconds>(*deadline - clock_());
  return std::clamp(wait, std::chrono::milliseconds(0), cap);
}

void Broker::LogFailureReportDone(wire::ControlReply::Reader reply) {
  spdlog::info("the ECS answered failure report {}: {}{}{}", reply.getRequestId(),
               ControlStatusName(reply.getStatus()), reply.getReason().size() > 0 ? ": " : "",
               reply.getReason().cStr());
}

}  // namespace kv

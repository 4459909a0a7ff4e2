// The broker's work queue: join/leave/nodeFailed requests waiting for the ECS,
// handed out strictly first-in first-out, one per unit of credit the ECS has
// granted (ecsReady(n) adds n), and bounded so a stalled ECS cannot make the
// broker grow without limit. The broker's own failure reports bypass the
// bound (PushAlways): they must never be dropped, and the broker queues at
// most one per ring member at a time. Pure logic: no sockets, no clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <utility>
#include <string>

#include "schema/status.h"

namespace kv {

// One queued request, ready to send to the ECS as it is.
struct QueuedRequest {
  std::string client;      // ZeroMQ identity of the requester at the broker
  uint64_t request_id = 0;  // for logs
  std::string work_frame;  // ControlMessage{work: RoutedRequest} already encoded
};

// Not thread-safe; owned by the broker's event loop.
class WorkQueue {
 public:
  explicit WorkQueue(size_t max_depth) : max_depth_(max_depth) {}

  // Appends at the tail; Overloaded (and nothing changes) when depth() is
  // already max_depth().
  Status Push(QueuedRequest request);
  // Appends at the tail even when full (the broker's failure reports).
  void PushAlways(QueuedRequest request) { items_.push_back(std::move(request)); }
  // True while the request (client, request_id) waits in the queue.
  bool Contains(const std::string& client, uint64_t request_id) const;

  // The ECS asked for n more requests. Credit saturates instead of wrapping.
  void AddCredit(uint32_t n);
  // A different ECS took over: credit granted by the previous one is void.
  void ResetCredit() { credit_ = 0; }

  // True when the head can be handed out: something is queued and credit > 0.
  bool CanTake() const { return credit_ > 0 && !items_.empty(); }
  // Pops the head and spends one credit. Precondition: CanTake().
  QueuedRequest Take();
  // A request from Take() that could not be sent goes back to the head and
  // its credit is refunded, so order and accounting are as if never taken.
  void Return(QueuedRequest request);

  size_t depth() const { return items_.size(); }
  size_t max_depth() const { return max_depth_; }
  uint64_t credit() const { return credit_; }

  // True when a depth change from before to after crosses a multiple of ten
  // (9 -> 10, 10 -> 9, 0 -> 10 ...): the changes worth an info log line.
  static bool CrossesTen(size_t before, size_t after) { return before / 10 != after / 10; }

 private:
  size_t max_depth_;
  uint64_t credit_ = 0;
  std::deque<QueuedRequest> items_;
};

}  // namespace kv

#include "broker/queue.h"

#include <algorithm>
#include <cassert>
#include <limits>

namespace kv {

Status WorkQueue::Push(QueuedRequest request) {
  if (items_.size() >= max_depth_) {
    return Status::Overloaded("broker queue is full: " + std::to_string(items_.size()) +
                              " requests waiting for the ECS (limit " +
                              std::to_string(max_depth_) + ")");
  }
  items_.push_back(std::move(request));
  return Status::Ok();
}

bool WorkQueue::Contains(const std::string& client, uint64_t request_id) const {
  return std::any_of(items_.begin(), items_.end(), [&](const QueuedRequest& r) {
    return r.request_id == request_id && r.client == client;
  });
}

void WorkQueue::AddCredit(uint32_t n) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  credit_ = kMax - credit_ < n ? kMax : credit_ + n;
}

QueuedRequest WorkQueue::Take() {
  assert(CanTake());
  QueuedRequest head = std::move(items_.front());
  items_.pop_front();
  --credit_;
  return head;
}

void WorkQueue::Return(QueuedRequest request) {
  items_.push_front(std::move(request));
  AddCredit(1);
}

}  // namespace kv

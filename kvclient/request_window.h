// The requests one connection has in flight, by request id. A connection
// hands out ids in increasing order, so the window is a ring of slots indexed
// by id minus the oldest id: adding, finding and removing take constant time
// and allocate nothing once the ring has grown to the working depth (a
// std::map allocated and rebalanced a node per request). A request that is
// never answered keeps its slot at the front until it is removed (it times
// out), and the ring grows behind it meanwhile.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <utility>
#include <vector>

namespace kv::client {

// Not thread-safe; owned by its connection.
template <typename T>
class RequestWindow {
 public:
  size_t size() const { return live_; }
  bool empty() const { return live_ == 0; }

  // Adds the request `id`, which must be above every id added before
  // (std::logic_error otherwise: a caller's bug).
  void Add(uint64_t id, T value) {
    if (id < next_) throw std::logic_error("request ids must increase");
    next_ = id + 1;
    if (used_ == 0) first_ = id;
    // Ids skipped (requests that were never sent) are empty slots.
    while (first_ + used_ < id) Push(false, T{});
    Push(true, std::move(value));
    ++live_;
  }

  // The request `id`, or nullptr when it is not in flight.
  T* Find(uint64_t id) {
    if (id < first_ || id >= first_ + used_) return nullptr;
    Slot& s = At(id - first_);
    return s.live ? &s.value : nullptr;
  }

  // Removes the request `id`; false when it was not in flight.
  bool Remove(uint64_t id) {
    if (Find(id) == nullptr) return false;
    At(id - first_).live = false;
    --live_;
    while (used_ > 0 && !At(0).live) {  // the front is always in flight
      head_ = (head_ + 1) & (slots_.size() - 1);
      --used_;
      ++first_;
    }
    return true;
  }

  // The oldest request in flight and its id; the window must not be empty.
  uint64_t front_id() const { return first_; }
  T& front() { return At(0).value; }
  const T& front() const { return At(0).value; }

 private:
  struct Slot {
    bool live = false;
    T value{};
  };

  Slot& At(size_t i) { return slots_[(head_ + i) & (slots_.size() - 1)]; }
  const Slot& At(size_t i) const { return slots_[(head_ + i) & (slots_.size() - 1)]; }

  void Push(bool live, T value) {
    if (used_ == slots_.size()) Grow();
    Slot& s = At(used_);
    s.live = live;
    s.value = std::move(value);
    ++used_;
  }

  // Doubles the ring (a power of two, so indexing is a mask), oldest first.
  void Grow() {
    std::vector<Slot> bigger(slots_.empty() ? 16 : slots_.size() * 2);
    for (size_t i = 0; i < used_; ++i) bigger[i] = std::move(At(i));
    slots_ = std::move(bigger);
    head_ = 0;
  }

  std::vector<Slot> slots_;
  size_t head_ = 0;     // slot of first_
  size_t used_ = 0;     // slots from first_ on, in flight or not
  uint64_t first_ = 0;  // the id at head_ (when used_ > 0)
  size_t live_ = 0;     // requests in flight
  uint64_t next_ = 0;   // the lowest id Add takes
};

}  // namespace kv::client

// The broker's work queue: FIFO hand-out, credit accounting and the bound.
#include <catch2/catch.hpp>
#include <limits>
#include <string>

#include "broker/queue.h"

using kv::QueuedRequest;
using kv::WorkQueue;

namespace {
QueuedRequest Request(uint64_t id) {
  return QueuedRequest{"client-" + std::to_string(id), id, "frame-" + std::to_string(id)};
}
}  // namespace

TEST_CASE("nothing is handed out until the ECS grants credit", "[broker][queue]") {
  WorkQueue q(10);
  REQUIRE(q.Push(Request(1)).ok());
  CHECK_FALSE(q.CanTake());
  q.AddCredit(1);
  CHECK(q.CanTake());
}

TEST_CASE("requests are handed out in arrival order, one per credit", "[broker][queue]") {
  WorkQueue q(10);
  for (uint64_t id = 1; id <= 5; ++id) REQUIRE(q.Push(Request(id)).ok());
  q.AddCredit(3);
  CHECK(q.Take().request_id == 1);
  CHECK(q.Take().request_id == 2);
  CHECK(q.Take().request_id == 3);
  CHECK(q.credit() == 0);
  CHECK_FALSE(q.CanTake());
  CHECK(q.depth() == 2);
  q.AddCredit(1);
  QueuedRequest next = q.Take();
  CHECK(next.request_id == 4);
  CHECK(next.client == "client-4");
  CHECK(next.work_frame == "frame-4");
}

TEST_CASE("credit granted while the queue is empty waits for the next request",
          "[broker][queue]") {
  WorkQueue q(10);
  q.AddCredit(2);
  CHECK_FALSE(q.CanTake());
  REQUIRE(q.Push(Request(7)).ok());
  REQUIRE(q.CanTake());
  CHECK(q.Take().request_id == 7);
  CHECK(q.credit() == 1);
}

TEST_CASE("a request that could not be sent goes back to the head with its credit",
          "[broker][queue]") {
  WorkQueue q(10);
  REQUIRE(q.Push(Request(1)).ok());
  REQUIRE(q.Push(Request(2)).ok());
  q.AddCredit(1);
  QueuedRequest head = q.Take();
  q.Return(std::move(head));
  CHECK(q.credit() == 1);
  CHECK(q.depth() == 2);
  CHECK(q.Take().request_id == 1);
}

TEST_CASE("a new ECS starts with only the credit it grants itself", "[broker][queue]") {
  WorkQueue q(10);
  q.AddCredit(5);
  q.ResetCredit();
  CHECK(q.credit() == 0);
  q.AddCredit(1);
  CHECK(q.credit() == 1);
}

TEST_CASE("credit saturates instead of wrapping around", "[broker][queue]") {
  WorkQueue q(10);
  for (int i = 0; i < 3; ++i) q.AddCredit(std::numeric_limits<uint32_t>::max());
  q.ResetCredit();
  q.AddCredit(std::numeric_limits<uint32_t>::max());
  CHECK(q.credit() == std::numeric_limits<uint32_t>::max());
}

TEST_CASE("a full queue refuses new requests as overloaded and keeps the old ones",
          "[broker][queue]") {
  WorkQueue q(2);
  REQUIRE(q.Push(Request(1)).ok());
  REQUIRE(q.Push(Request(2)).ok());
  kv::Status s = q.Push(Request(3));
  CHECK(s.code() == kv::Status::Code::kOverloaded);
  CHECK(s.message().find("2 requests") != std::string::npos);
  CHECK(q.depth() == 2);
  q.AddCredit(1);
  CHECK(q.Take().request_id == 1);
  CHECK(q.Push(Request(4)).ok());
  q.AddCredit(2);
  CHECK(q.Take().request_id == 2);
  CHECK(q.Take().request_id == 4);
}

TEST_CASE("queue depth changes are worth an info line only across multiples of ten",
          "[broker][queue]") {
  CHECK(WorkQueue::CrossesTen(9, 10));
  CHECK(WorkQueue::CrossesTen(10, 9));
  CHECK(WorkQueue::CrossesTen(19, 20));
  CHECK_FALSE(WorkQueue::CrossesTen(0, 1));
  CHECK_FALSE(WorkQueue::CrossesTen(10, 11));
  CHECK_FALSE(WorkQueue::CrossesTen(11, 10));
}

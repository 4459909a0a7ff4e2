#include "kvclient/client.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "kvclient/retry.h"

namespace kv::client {
namespace {

bool IsWrite(Op op) { return op == Op::kPut || op == Op::kDelete; }

// Answers that say nothing about the key: the request may go elsewhere.
bool IsRefusal(WireStatus status) {
  return status == WireStatus::SERVER_NOT_RESPONSIBLE || status == WireStatus::SERVER_STOPPED ||
         status == WireStatus::SERVER_WRITE_LOCK || status == WireStatus::OVERLOADED;
}

Status WithCode(Status::Code code, std::string message) {
  switch (code) {
    case Status::Code::kNotResponsible:
      return Status::NotResponsible(std::move(message));
    case Status::Code::kOverloaded:
      return Status::Overloaded(std::move(message));
    case Status::Code::kTimeout:
      return Status::Timeout(std::move(message));
    default:
      return Status::Unavailable(std::move(message));
  }
}

// A refusal worth retrying, as "server_stopped from 127.0.0.1:5144".
Status Refusal(const KvReply& reply, const std::string& from) {
  std::string message = std::string(StatusWord(reply.status)) + " from " + from;
  if (!reply.reason.empty()) message += " (" + reply.reason + ")";
  return WithCode(ToStatus(reply).code(), std::move(message));
}

}  // namespace

const char* ReadModeName(ReadMode mode) { return mode == ReadMode::kAny ? "any" : "primary"; }

KvClient::KvClient(ClientOptions options)
    : options_(options),
      router_(ctx_, RouterOptions{options.request_timeout, options.broker_pub_port, 1}),
      seeds_(std::random_device{}()) {}

KvClient::~KvClient() { Disconnect(); }

Status KvClient::Connect(const std::string& host, uint16_t port) {
  reply_ring_version_ = 0;
  return router_.Connect(host, port);
}

void KvClient::Disconnect() { router_.Disconnect(); }

void KvClient::set_request_timeout(std::chrono::milliseconds timeout) {
  options_.request_timeout = timeout;
  router_.set_request_timeout(timeout);
}

uint64_t KvClient::ring_version() const { return std::max(reply_ring_version_, router_.version()); }

Result<KvReply> KvClient::Call(Op op, std::string_view key, std::string_view value,
                               bool stale_ok) {
  if (!router_.connected()) {
    return Status::Unavailable("not connected (use connect <host> <port>)");
  }
  const Clock::time_point give_up_at = Clock::now() + options_.retry_budget;
  Backoff backoff(options_.retry_initial_backoff, options_.retry_max_backoff, seeds_());
  int refreshes = 0;
  bool any_replica = stale_ok;  // cleared once a replica failed to answer
  for (;;) {
    router_.PollUpdates();
    Status problem;  // why this attempt did not get a definite answer
    auto connection = any_replica ? router_.ReplicaConnectionFor(key) : router_.ConnectionFor(key);
    if (!connection.ok()) {
      // No route (a broker without a ring yet): ask again, then back off.
      if (connection.status().code() != Status::Code::kUnavailable) return connection.status();
      problem = connection.status();
      if (refreshes < options_.max_refreshes) {
        ++refreshes;
        if (router_.Refresh().ok() && !router_.table().empty()) continue;
      }
    } else {
      Connection* c = *connection;
      const std::string from = c->address();
      // A replica that gives no definite answer is not asked again: the
      // primary can always answer (a node without replica reads refuses
      // them as server_not_responsible).
      const bool from_replica = any_replica && from != router_.PrimaryAddress(key);
      auto id = c->Send(op, key, value, router_.version(), stale_ok);
      if (!id.ok()) {
        if (id.status().code() != Status::Code::kOverloaded) return id.status();
        problem = id.status();
      } else {
        auto reply = c->Await(*id);
        if (!reply.ok()) {
          if (!reply.status().IsTimeout()) return reply.status();
          if (IsWrite(op)) {
            // Not retried: the node may have applied the write and only the
            // reply was lost. Sent again later, it could overwrite a newer
            // value another client wrote meanwhile with this stale one (or
            // delete a key re-created since). The caller decides.
            return Status::Timeout(reply.status().message() + "; outcome unknown: the " +
                                   OpName(op) + " may have been applied");
          }
          problem = reply.status();  // a get: safe to ask again
          router_.NoteTimeout(from);
          if (from_replica) {
            any_replica = false;
            continue;
          }
        } else {
          reply_ring_version_ = std::max(reply_ring_version_, reply->ring_version);
          if (from_replica && IsRefusal(reply->status)) {
            spdlog::debug("get {}: {} from replica {}; asking the primary", key,
                          StatusWord(reply->status), from);
            any_replica = false;
            continue;
          }
          switch (reply->status) {
            case WireStatus::SERVER_NOT_RESPONSIBLE:
              problem = Refusal(*reply, from);
              if (refreshes < options_.max_refreshes) {
                ++refreshes;
                if (Status s = router_.Refresh(from); !s.ok()) {
                  spdlog::debug("ring refresh failed: {}", s.ToString());
                }
                continue;  // resend at once, by the refreshed table
              }
              break;  // the node lags behind our ring: give it time
            case WireStatus::SERVER_STOPPED:
            case WireStatus::SERVER_WRITE_LOCK:
            case WireStatus::OVERLOADED:
              // Refused before anything was applied, so even writes may retry.
              problem = Refusal(*reply, from);
              break;
            default:
              return reply;
          }
        }
      }
    }
    const Clock::time_point now = Clock::now();
    if (now >= give_up_at) {
      return WithCode(problem.code(), "gave up after " + FormatDuration(options_.retry_budget) +
                                          ": " + problem.message());
    }
    // The last pause is cut short so that one more attempt ends the budget.
    const auto pause =
        std::min(backoff.Next(), std::chrono::ceil<std::chrono::milliseconds>(give_up_at - now));
    spdlog::debug("{} {}: {}; retrying in {} ms", OpName(op), key, problem.message(),
                  pause.count());
    router_.WaitForUpdate(pause);
  }
}

Result<KvReply> KvClient::CallKeyless(Op op) {
  if (!router_.connected()) {
    return Status::Unavailable("not connected (use connect <host> <port>)");
  }
  if (router_.via_broker()) return KeyrangeFromRing(op);
  // One attempt: the answer is about the node asked, whatever it says.
  auto connection = router_.KeylessConnection();
  if (!connection.ok()) return connection.status();
  auto id = (*connection)->Send(op);
  if (!id.ok()) return id.status();
  auto reply = (*connection)->Await(*id);
  if (reply.ok()) reply_ring_version_ = std::max(reply_ring_version_, reply->ring_version);
  return reply;
}

Result<KvReply> KvClient::KeyrangeFromRing(Op op) {
  router_.PollUpdates();
  if (!router_.table().ring()) {
    if (Status s = router_.Refresh(); !s.ok()) return s;
  }
  const auto& ring = router_.table().ring();
  if (!ring) return Status::Unavailable("the broker at " + address() + " has no ring yet");
  KvReply reply;
  reply.ring_version = ring->version();
  if (op == Op::kKeyrange) {
    reply.status = WireStatus::KEYRANGE_SUCCESS;
    reply.metadata = ring->KeyrangeText();
  } else {
    reply.status = WireStatus::KEYRANGE_READ_SUCCESS;
    reply.metadata = ring->KeyrangeReadText();
  }
  return reply;
}

Result<KvReply> KvClient::Put(std::string_view key, std::string_view value) {
  return Call(Op::kPut, key, value);
}
Result<KvReply> KvClient::Get(std::string_view key) { return Get(key, options_.read_mode); }
Result<KvReply> KvClient::Get(std::string_view key, ReadMode mode) {
  return Call(Op::kGet, key, {}, mode == ReadMode::kAny);
}
Result<KvReply> KvClient::Delete(std::string_view key) { return Call(Op::kDelete, key, {}); }
Result<KvReply> KvClient::Keyrange() { return CallKeyless(Op::kKeyrange); }

Subscriber& KvClient::subscriptions() {
  if (!subscriber_) {
    SubscriberOptions options;
    options.probe_timeout = options_.request_timeout;
    subscriber_ = std::make_unique<Subscriber>(ctx_, router_, options);
  }
  return *subscriber_;
}
Result<KvReply> KvClient::KeyrangeRead() { return CallKeyless(Op::kKeyrangeRead); }

}  // namespace kv::client

// kvbench's Redis target: `lanes` non-blocking hiredis connections, each
// with any number of commands pipelined (GET, SET, DEL). Redis answers each
// connection's commands in order, so a lane keeps a FIFO of what it sent and
// pairs every reply with its front. hiredis does the protocol (append,
// buffer write, buffer read, reply parsing); this file does the polling, the
// same way the cluster target polls its ZeroMQ sockets.
#include <hiredis/hiredis.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>

#include "kvclient/connection.h"
#include "kvclient/target.h"

namespace kv::bench {
namespace {

using client::Clock;

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// A reply's outcome for the command that asked for it: "" for success, else the error kind.
const char* Outcome(Action action, const redisReply& reply) {
  if (reply.type == REDIS_REPLY_ERROR) return "redis_error";
  switch (action) {
    case Action::kGet:
      return reply.type == REDIS_REPLY_STRING ? "" : "not_found";
    case Action::kPut:
      return reply.type == REDIS_REPLY_STATUS ? "" : "redis_error";
    case Action::kDelete:
      return reply.type == REDIS_REPLY_INTEGER && reply.integer > 0 ? "" : "not_found";
  }
  return "redis_error";
}

class RedisTarget : public Target {
 public:
  RedisTarget(const RedisAddress& address, const TargetOptions& options)
      : address_(address), timeout_(options.request_timeout), lanes_(options.lanes) {}

  // Opens every lane and waits for each to answer PING.
  Status Connect() {
    for (Lane& lane : lanes_) {
      lane.context.reset(redisConnectNonBlock(address_.host.c_str(), address_.port));
      if (!lane.context || lane.context->err) return Broken(lane);
      const char* ping = "PING";
      if (redisAppendCommandArgv(lane.context.get(), 1, &ping, nullptr) != REDIS_OK) {
        return Broken(lane);
      }
      lane.want_write = true;
      const Clock::time_point deadline = Clock::now() + timeout_;
      ReplyPtr reply;
      while (!reply) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
          return Status::Unavailable("redis at " + Address() + ": no answer to PING within " +
                                     std::to_string(timeout_.count()) + " ms");
        }
        pollfd fd{lane.context->fd, static_cast<short>(POLLIN | (lane.want_write ? POLLOUT : 0)),
                  0};
        if (::poll(&fd, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) {
          return Status::IOError("poll: " + std::string(strerror(errno)));
        }
        if (!Flush(lane) || !Read(lane)) return Broken(lane);
        reply = NextReply(lane);
        if (lane.broken) return Broken(lane);
      }
      if (reply->type == REDIS_REPLY_ERROR) {
        return Status::Unavailable("redis at " + Address() + " refused PING: " +
                                   std::string(reply->str, reply->len));
      }
    }
    return Status::Ok();
  }

  std::string Describe() const override { return "redis " + Address(); }

  void Send(size_t index, uint64_t tag, Action action, std::string_view key,
            std::string_view value) override {
    Lane& lane = lanes_[index % lanes_.size()];
    if (lane.broken) {
      failed_.push_back(TargetReply{tag, false, "disconnected"});
      return;
    }
    static const char* kNames[] = {"GET", "SET", "DEL"};
    const char* argv[3] = {kNames[static_cast<int>(action)], key.data(), value.data()};
    size_t lengths[3] = {3, key.size(), value.size()};
    const int argc = action == Action::kPut ? 3 : 2;
    if (redisAppendCommandArgv(lane.context.get(), argc, argv, lengths) != REDIS_OK) {
      failed_.push_back(TargetReply{tag, false, "send_failed"});
      return;
    }
    lane.pending.push_back(Pending{tag, action, Clock::now(), false});
    lane.want_write = true;
  }

  void Poll(std::chrono::milliseconds wait, std::vector<TargetReply>* out) override {
    if (!failed_.empty()) wait = std::chrono::milliseconds(0);
    // Write what was appended since the last poll before sleeping on replies.
    for (Lane& lane : lanes_) {
      if (!lane.broken && !Flush(lane)) Break(lane, out);
    }
    Clock::time_point now = Clock::now();
    Clock::time_point wake = now + wait;
    fds_.clear();
    for (Lane& lane : lanes_) {
      if (lane.broken) continue;
      for (const Pending& p : lane.pending) {
        if (!p.expired) {
          wake = std::min(wake, p.sent + timeout_);
          break;
        }
      }
      fds_.push_back(
          pollfd{lane.context->fd, static_cast<short>(POLLIN | (lane.want_write ? POLLOUT : 0)), 0});
    }
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(wake - now);
    if (::poll(fds_.data(), fds_.size(), static_cast<int>(std::max<int64_t>(ms.count(), 0))) < 0 &&
        errno != EINTR) {
      spdlog::warn("poll failed: {}", strerror(errno));
    }
    size_t f = 0;
    for (Lane& lane : lanes_) {
      if (lane.broken) continue;
      const short revents = fds_[f++].revents;
      if ((revents & POLLOUT) && !Flush(lane)) Break(lane, out);
      if ((revents & (POLLIN | POLLERR | POLLHUP)) && !lane.broken && !Read(lane)) {
        Break(lane, out);
      }
      while (!lane.broken) {
        ReplyPtr reply = NextReply(lane);
        if (!reply) break;
        Pending p = lane.pending.front();
        lane.pending.pop_front();
        if (p.expired) continue;  // already reported as a timeout
        const char* kind = Outcome(p.action, *reply);
        out->push_back(TargetReply{p.tag, *kind == '\0', kind});
      }
      if (lane.broken) Break(lane, out);
    }
    Expire(Clock::now(), out);
    out->insert(out->end(), std::make_move_iterator(failed_.begin()),
                std::make_move_iterator(failed_.end()));
    failed_.clear();
  }

 private:
  struct Pending {
    uint64_t tag;
    Action action;
    Clock::time_point sent;
    bool expired;  // reported as a timeout; its reply, when it comes, is dropped
  };
  struct Lane {
    std::unique_ptr<redisContext, ContextDeleter> context;
    std::deque<Pending> pending;  // sent, reply not read yet; oldest first
    bool want_write = false;      // the output buffer may hold unsent bytes
    bool broken = false;          // a read or write failed; every send fails from now on
    bool reported = false;        // the failure has been logged and its requests failed
  };

  std::string Address() const { return address_.host + ":" + std::to_string(address_.port); }

  // Writes as much of the output buffer as the socket takes. False on an error.
  static bool Flush(Lane& lane) {
    if (!lane.want_write) return true;
    int done = 0;
    if (redisBufferWrite(lane.context.get(), &done) != REDIS_OK) return false;
    lane.want_write = !done;
    return true;
  }
  static bool Read(Lane& lane) { return redisBufferRead(lane.context.get()) == REDIS_OK; }
  static ReplyPtr NextReply(Lane& lane) {
    void* reply = nullptr;
    if (redisGetReplyFromReader(lane.context.get(), &reply) != REDIS_OK) {
      lane.broken = true;
      return nullptr;
    }
    return ReplyPtr(static_cast<redisReply*>(reply));
  }

  Status Broken(Lane& lane) {
    std::string why = lane.context ? lane.context->errstr : "out of memory";
    return Status::Unavailable("redis at " + Address() + ": " + why);
  }

  // Fails everything the lane still waits for; the lane stays unusable.
  void Break(Lane& lane, std::vector<TargetReply>* out) {
    if (!lane.reported) {
      spdlog::warn("redis connection to {} failed: {}", Address(), lane.context->errstr);
    }
    lane.broken = true;
    lane.reported = true;
    for (const Pending& p : lane.pending) {
      if (!p.expired) out->push_back(TargetReply{p.tag, false, "disconnected"});
    }
    lane.pending.clear();
  }

  void Expire(Clock::time_point now, std::vector<TargetReply>* out) {
    for (Lane& lane : lanes_) {
      for (Pending& p : lane.pending) {
        if (p.sent + timeout_ > now) break;  // sent in order: the rest are younger
        if (!p.expired) out->push_back(TargetReply{p.tag, false, "timeout"});
        p.expired = true;
      }
    }
  }

  RedisAddress address_;
  std::chrono::milliseconds timeout_;
  std::vector<Lane> lanes_;
  std::vector<TargetReply> failed_;  // sends that failed, reported by the next Poll
  std::vector<pollfd> fds_;
};

}  // namespace

Result<RedisAddress> ParseRedisUrl(const std::string& url) {
  static constexpr std::string_view kScheme = "redis://";
  auto invalid = [&](const std::string& why) {
    return Status::InvalidArgument("'" + url + "' is not redis://HOST:PORT: " + why);
  };
  if (url.compare(0, kScheme.size(), kScheme) != 0) return invalid("the scheme must be redis://");
  std::string rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find_first_of("/@?") != std::string::npos) {
    return invalid("no user, database or options are supported");
  }
  RedisAddress address;
  std::string port;
  if (!rest.empty() && rest.front() == '[') {  // [IPv6]:port
    auto close = rest.find(']');
    if (close == std::string::npos) return invalid("no ']' after the IPv6 address");
    address.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return invalid("expected ':' after ']'");
      port = rest.substr(close + 2);
      if (port.empty()) return invalid("empty port");
    }
  } else {
    auto colon = rest.find(':');
    address.host = rest.substr(0, colon);
    if (colon != std::string::npos) {
      port = rest.substr(colon + 1);
      if (port.empty()) return invalid("empty port");
    }
  }
  if (address.host.empty()) return invalid("empty host");
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(port) == 0 || std::stoul(port) > 65535) {
      return invalid("the port must be a number from 1 to 65535");
    }
    address.port = static_cast<uint16_t>(std::stoul(port));
  }
  return address;
}

Result<std::unique_ptr<Target>> MakeRedisTarget(const RedisAddress& address,
                                                const TargetOptions& options) {
  auto target = std::make_unique<RedisTarget>(address, options);
  if (Status s = target->Connect(); !s.ok()) return s;
  return std::unique_ptr<Target>(std::move(target));
}

}  // namespace kv::bench

#include "kvclient/notify_bench.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "kvclient/client.h"
#include "kvclient/histogram.h"
#include "kvclient/subscriber.h"

namespace kv::bench {
namespace {

using client::KvClient;
using Clock = std::chrono::steady_clock;

std::string KeyName(int64_t i) { return "busy-" + std::to_string(i); }

Result<std::unique_ptr<KvClient>> Connect(const NotifyBenchConfig& c) {
  client::ClientOptions options;
  options.broker_pub_port = c.broker_pub_port;
  auto client = std::make_unique<KvClient>(options);
  if (Status s = client->Connect(c.host, c.port); !s.ok()) return s;
  return client;
}

// Closed-loop puts from `writers` threads until `stop`; returns the puts done.
uint64_t RunWriters(const NotifyBenchConfig& c, std::chrono::seconds duration) {
  std::atomic<uint64_t> done{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int64_t w = 0; w < c.writers; ++w) {
    threads.emplace_back([&, w] {
      auto client = Connect(c);
      if (!client.ok()) {
        spdlog::error("writer {}: {}", w, client.status().ToString());
        return;
      }
      std::mt19937_64 rng(static_cast<uint64_t>(w) + 1);
      std::string value(static_cast<size_t>(c.value_bytes), 'v');
      while (!stop.load(std::memory_order_relaxed)) {
        auto r = (*client)->Put(KeyName(static_cast<int64_t>(rng() % c.keys)), value);
        if (r.ok() && IsSuccess(r->status)) done.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  std::this_thread::sleep_for(duration);
  stop = true;
  for (auto& t : threads) t.join();
  return done.load();
}

Status Latency(const NotifyBenchConfig& c, NotifyBenchResult* out) {
  std::atomic<bool> ready{false}, stop{false};
  Histogram histogram;
  uint64_t gaps = 0;
  Status sub_status;
  std::thread subscriber([&] {
    auto client = Connect(c);
    if (!client.ok()) {
      sub_status = client.status();
      ready = true;
      return;
    }
    auto& subs = (*client)->subscriptions();
    for (int64_t k = 0; k < c.keys; ++k) {
      auto state = subs.Subscribe(KeyName(k), std::chrono::seconds(10));
      if (!state.ok()) {
        sub_status = state.status();
        ready = true;
        return;
      }
    }
    ready = true;
    subs.set_callback([&](const client::KeyEvent& e) {
      histogram.Record(
          e.received_micros > e.published_micros ? e.received_micros - e.published_micros : 0);
    });
    while (!stop.load()) subs.Poll(std::chrono::milliseconds(20));
    subs.Poll(std::chrono::milliseconds(200));  // the last ones in flight
    gaps = subs.gaps();
  });
  while (!ready.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (!sub_status.ok()) {
    subscriber.join();
    return sub_status;
  }
  auto writer = Connect(c);
  if (!writer.ok()) {
    stop = true;
    subscriber.join();
    return writer.status();
  }
  std::string value(static_cast<size_t>(c.value_bytes), 'v');
  const auto interval = std::chrono::nanoseconds(1'000'000'000 / std::max<int64_t>(c.rate, 1));
  const auto start = Clock::now();
  auto next = start;
  for (int64_t i = 0; Clock::now() - start < c.duration; ++i) {
    (void)(*writer)->Put(KeyName(i % c.keys), value);
    next += interval;
    std::this_thread::sleep_until(next);
  }
  stop = true;
  subscriber.join();
  out->events = histogram.count();
  out->gaps = gaps;
  out->p50_us = histogram.Percentile(50);
  out->p90_us = histogram.Percentile(90);
  out->p99_us = histogram.Percentile(99);
  out->max_us = histogram.max();
  std::printf(
      "latency commit->delivery: %llu events, %llu gaps, p50 %llu us, p90 %llu us, "
      "p99 %llu us, max %llu us\n",
      static_cast<unsigned long long>(out->events), static_cast<unsigned long long>(out->gaps),
      static_cast<unsigned long long>(out->p50_us), static_cast<unsigned long long>(out->p90_us),
      static_cast<unsigned long long>(out->p99_us), static_cast<unsigned long long>(out->max_us));
  return Status::Ok();
}

Status Throughput(const NotifyBenchConfig& c, NotifyBenchResult* out) {
  const double secs = static_cast<double>(c.duration.count());
  out->puts_alone = RunWriters(c, c.duration);
  out->puts_per_s_alone = static_cast<double>(out->puts_alone) / secs;
  std::printf("puts with no subscriber: %llu in %.0f s = %.0f/s\n",
              static_cast<unsigned long long>(out->puts_alone), secs, out->puts_per_s_alone);
  std::fflush(stdout);

  // The subscribers: one thread, one router, a Subscriber (own SUB socket)
  // each, all subscribed to every busy key.
  std::atomic<bool> ready{false}, stop{false};
  Status sub_status;
  uint64_t events = 0, gaps = 0;
  std::thread drain([&] {
    zmq::context_t ctx(1);
    client::RouterOptions router_options;
    router_options.broker_pub_port = c.broker_pub_port;
    client::Router router(ctx, router_options);
    if (Status s = router.Connect(c.host, c.port); !s.ok()) {
      sub_status = s;
      ready = true;
      return;
    }
    std::vector<std::unique_ptr<client::Subscriber>> subs;
    for (int64_t i = 0; i < c.subscribers && sub_status.ok(); ++i) {
      subs.push_back(std::make_unique<client::Subscriber>(ctx, router));
      subs.back()->set_callback([&](const client::KeyEvent&) { ++events; });
      for (int64_t k = 0; k < c.keys; ++k) {
        auto state = subs.back()->Subscribe(KeyName(k), std::chrono::seconds(10));
        if (!state.ok()) sub_status = state.status();
      }
    }
    ready = true;
    while (!stop.load()) {
      std::vector<zmq::pollitem_t> items;
      for (auto& s : subs) items.push_back(s->PollItem());
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(20));
      for (size_t i = 0; i < subs.size(); ++i) {
        if (items[i].revents & ZMQ_POLLIN) subs[i]->Poll();
      }
    }
    for (auto& s : subs) gaps += s->gaps();
  });
  while (!ready.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (!sub_status.ok()) {
    stop = true;
    drain.join();
    return sub_status;
  }
  out->puts_subscribed = RunWriters(c, c.duration);
  out->puts_per_s_subscribed = static_cast<double>(out->puts_subscribed) / secs;
  stop = true;
  drain.join();
  out->events = events;
  out->gaps = gaps;
  std::printf(
      "puts with %lld subscribers on every busy key: %llu in %.0f s = %.0f/s "
      "(%.1f%% of alone); %llu notifications delivered, %llu gaps\n",
      static_cast<long long>(c.subscribers), static_cast<unsigned long long>(out->puts_subscribed),
      secs, out->puts_per_s_subscribed,
      out->puts_per_s_alone > 0 ? 100.0 * out->puts_per_s_subscribed / out->puts_per_s_alone : 0.0,
      static_cast<unsigned long long>(events), static_cast<unsigned long long>(gaps));
  return Status::Ok();
}

}  // namespace

Result<NotifyBenchResult> RunNotifyBench(const NotifyBenchConfig& config) {
  NotifyBenchResult result;
  Status s = config.mode == "latency" ? Latency(config, &result) : Throughput(config, &result);
  if (!s.ok()) return s;
  return result;
}

}  // namespace kv::bench

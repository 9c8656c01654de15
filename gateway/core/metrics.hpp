// Prometheus text-format metrics. Counters are atomics behind a label map that is read-locked
// on the hot path (a new label set takes the write lock once).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "gateway/core/activity.hpp"

namespace omnigate {

class LabeledCounter {
 public:
  // `type` is the Prometheus type: "counter", or "gauge" for values that go down (set()).
  LabeledCounter(std::string name, std::string help, std::vector<std::string> label_names,
                 std::string type = "counter");
  void inc(const std::vector<std::string>& label_values, uint64_t by = 1);
  void set(const std::vector<std::string>& label_values, uint64_t value);
  uint64_t value(const std::vector<std::string>& label_values) const;
  void render(std::string& out) const;

 private:
  std::string name_, help_, type_;
  std::vector<std::string> label_names_;
  mutable std::shared_mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<std::atomic<uint64_t>>> values_;
};

class Histogram {
 public:
  Histogram(std::string name, std::string help, std::vector<double> bounds_seconds);
  void observe(std::chrono::nanoseconds duration);
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  void render(std::string& out) const;

 private:
  std::string name_, help_;
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // cumulative at render time
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_nanos_{0};
};

class Metrics {
 public:
  Metrics();
  LabeledCounter http_requests;           // route, status
  LabeledCounter interactions_published;  // channel, kind
  LabeledCounter duplicates;              // channel
  LabeledCounter rejected;                // channel, reason (bad payloads, auth failures, spam)
  LabeledCounter ignored_events;          // channel, type (acknowledged but not published)
  LabeledCounter publish_failures;        // reason
  LabeledCounter consent_emails;          // result: queued | sent | retried | failed | no_smtp |
                                          // outbox_unavailable | recipient_limited
  LabeledCounter dropped_values;          // channel, field (schema-invalid optional values)
  LabeledCounter http_refused;            // reason: per_ip_cap, header_timeout, auth_throttled...
  LabeledCounter auth_failures;           // route (401/403 answers)
  LabeledCounter lease_held;       // gauge, channel + account: 1 while this instance polls it
  LabeledCounter lease_takeovers;  // channel, account: leases taken from a holder that went silent
  LabeledCounter poll_failures;    // channel, account, stage (fetch | submit | cursor): back-offs
  LabeledCounter spooled;          // channel: written to the local spool (NATS away)
  LabeledCounter spool_replayed;   // result: published | duplicate
  LabeledCounter media_requests;   // channel, outcome: the media proxy's answers
  LabeledCounter name_lookups;     // channel, result: cached | fetched | unknown | failed | timeout
  Histogram publish_latency;
  std::atomic<int> nats_connected{0};
  std::atomic<uint64_t> nats_reconnects{0};
  // Not Prometheus: the per-account last hour and the pollers GET /status shows, fed where the
  // counters above are counted.
  ActivityRecorder activity;

  // A gauge read when /metrics is scraped (spool depth, dedup index size). The function must
  // stay callable for as long as metrics are rendered.
  void add_gauge(std::string name, std::string help, std::function<double()> read);

  std::string render() const;

 private:
  struct Gauge {
    std::string name, help;
    std::function<double()> read;
  };
  mutable std::mutex gauges_mutex_;
  std::vector<Gauge> gauges_;
};

}  // namespace omnigate

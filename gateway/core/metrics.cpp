#include "gateway/core/metrics.hpp"

#include <cstdio>
#include <mutex>

#include "gateway/core/build_info.hpp"

namespace omnigate {
namespace {

std::string escape_label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void header(std::string& out, const std::string& name, const std::string& help, const char* type) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

std::string format_double(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", value);
  return buffer;
}

}  // namespace

LabeledCounter::LabeledCounter(std::string name, std::string help,
                               std::vector<std::string> label_names, std::string type)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(std::move(type)),
      label_names_(std::move(label_names)) {}

void LabeledCounter::set(const std::vector<std::string>& labels, uint64_t value) {
  {
    std::shared_lock lock(mutex_);
    auto it = values_.find(labels);
    if (it != values_.end()) {
      it->second->store(value, std::memory_order_relaxed);
      return;
    }
  }
  std::unique_lock lock(mutex_);
  auto& slot = values_[labels];
  if (!slot) slot = std::make_unique<std::atomic<uint64_t>>(0);
  slot->store(value, std::memory_order_relaxed);
}

void LabeledCounter::inc(const std::vector<std::string>& labels, uint64_t by) {
  {
    std::shared_lock lock(mutex_);
    auto it = values_.find(labels);
    if (it != values_.end()) {
      it->second->fetch_add(by, std::memory_order_relaxed);
      return;
    }
  }
  std::unique_lock lock(mutex_);
  auto& slot = values_[labels];
  if (!slot) slot = std::make_unique<std::atomic<uint64_t>>(0);
  slot->fetch_add(by, std::memory_order_relaxed);
}

uint64_t LabeledCounter::value(const std::vector<std::string>& labels) const {
  std::shared_lock lock(mutex_);
  auto it = values_.find(labels);
  return it == values_.end() ? 0 : it->second->load(std::memory_order_relaxed);
}

void LabeledCounter::render(std::string& out) const {
  header(out, name_, help_, type_.c_str());
  std::shared_lock lock(mutex_);
  for (const auto& [labels, value] : values_) {
    out += name_ + "{";
    for (size_t i = 0; i < labels.size() && i < label_names_.size(); ++i) {
      if (i) out += ",";
      out += label_names_[i] + "=\"" + escape_label(labels[i]) + "\"";
    }
    out += "} " + std::to_string(value->load(std::memory_order_relaxed)) + "\n";
  }
}

Histogram::Histogram(std::string name, std::string help, std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      bounds_(std::move(bounds)),
      buckets_(new std::atomic<uint64_t>[bounds_.size()]) {
  for (size_t i = 0; i < bounds_.size(); ++i) buckets_[i] = 0;
}

void Histogram::observe(std::chrono::nanoseconds duration) {
  double seconds = std::chrono::duration<double>(duration).count();
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (seconds <= bounds_[i]) {
      buckets_[i].fetch_add(1, std::memory_order_relaxed);
      break;
    }
  }
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_nanos_.fetch_add(static_cast<uint64_t>(duration.count()), std::memory_order_relaxed);
}

void Histogram::render(std::string& out) const {
  header(out, name_, help_, "histogram");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    out += name_ + "_bucket{le=\"" + format_double(bounds_[i]) + "\"} " +
           std::to_string(cumulative) + "\n";
  }
  uint64_t count = count_.load(std::memory_order_relaxed);
  out += name_ + "_bucket{le=\"+Inf\"} " + std::to_string(count) + "\n";
  out += name_ + "_sum " + format_double(sum_nanos_.load(std::memory_order_relaxed) / 1e9) + "\n";
  out += name_ + "_count " + std::to_string(count) + "\n";
}

Metrics::Metrics()
    : http_requests("omnigate_http_requests_total", "HTTP requests by route and status.",
                    {"route", "status"}),
      interactions_published("omnigate_interactions_published_total",
                             "Interactions made durable in JetStream, by channel and kind.",
                             {"channel", "kind"}),
      duplicates("omnigate_duplicates_total",
                 "Deliveries recognised as already published (provider retries, double clicks).",
                 {"channel"}),
      rejected("omnigate_rejected_total",
               "Requests refused before publishing (unparseable, unauthorized, too large, spam).",
               {"channel", "reason"}),
      ignored_events("omnigate_ignored_events_total",
                     "Provider events acknowledged but not published, by type.",
                     {"channel", "type"}),
      publish_failures("omnigate_publish_failures_total",
                       "Publishes that did not reach a PubAck, by reason.", {"reason"}),
      consent_emails("omnigate_consent_emails_total",
                     "Double opt-in confirmation e-mails, by result.", {"result"}),
      dropped_values("omnigate_dropped_values_total",
                     "Optional values a connector filled that interaction.v1 forbids, left out "
                     "of the published interaction, by channel and field.",
                     {"channel", "field"}),
      http_refused("omnigate_http_refused_total",
                   "Connections and requests cut short by the HTTP guard (per-IP cap, header "
                   "deadline and caps, framing, unread bodies, throttled authentication).",
                   {"reason"}),
      auth_failures("omnigate_auth_failures_total",
                    "Answers 401/403 (failed authentication), by route.", {"route"}),
      lease_held("omnigate_lease_held",
                 "1 while this instance holds the poll lease of an account (it polls), else 0.",
                 {"channel", "account"}, "gauge"),
      lease_takeovers("omnigate_lease_takeovers_total",
                      "Poll leases taken over from a holder that stopped renewing.",
                      {"channel", "account"}),
      poll_failures("omnigate_poll_failures_total",
                    "Poll attempts that ended in a back-off: a failed fetch, a batch not "
                    "durable, an unreadable cursor; by channel, account and stage.",
                    {"channel", "account", "stage"}),
      spooled("omnigate_spooled_total",
              "Interactions written to the local spool because NATS was not durable, by channel.",
              {"channel"}),
      spool_replayed("omnigate_spool_replayed_total",
                     "Spooled interactions drained to JetStream, by result (published, duplicate).",
                     {"result"}),
      media_requests("omnigate_media_requests_total",
                     "Media proxy requests by channel and outcome (ok, an error code, "
                     "client_gone, failed_mid_stream).",
                     {"channel", "outcome"}),
      name_lookups("omnigate_name_lookups_total",
                   "Display names of events that carry none, by result: cached (memory or KV), "
                   "fetched (the provider API), unknown (no such name), failed or timeout "
                   "(published without a name).",
                   {"channel", "result"}),
      publish_latency(
          "omnigate_publish_duration_seconds",
          "Time from publish start to JetStream PubAck (including retries).",
          {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}) {}

std::string Metrics::render() const {
  std::string out;
  out.reserve(4096);
  // Which build is running, as Prometheus' *_build_info convention has it: join on it.
  const BuildInfo& build = build_info();
  header(out, "omnigate_build_info", "The running binary: version and git commit; always 1.",
         "gauge");
  out += "omnigate_build_info{version=\"" + escape_label(std::string(build.version)) +
         "\",commit=\"" + escape_label(std::string(build.commit)) + "\"} 1\n";
  http_requests.render(out);
  interactions_published.render(out);
  duplicates.render(out);
  rejected.render(out);
  ignored_events.render(out);
  publish_failures.render(out);
  consent_emails.render(out);
  dropped_values.render(out);
  http_refused.render(out);
  auth_failures.render(out);
  lease_held.render(out);
  lease_takeovers.render(out);
  poll_failures.render(out);
  publish_latency.render(out);
  header(out, "omnigate_nats_connected", "1 when connected to NATS, else 0.", "gauge");
  out += "omnigate_nats_connected " + std::to_string(nats_connected.load()) + "\n";
  header(out, "omnigate_nats_reconnects_total", "Reconnections to NATS since start.", "counter");
  out += "omnigate_nats_reconnects_total " + std::to_string(nats_reconnects.load()) + "\n";
  spooled.render(out);
  spool_replayed.render(out);
  media_requests.render(out);
  name_lookups.render(out);
  std::lock_guard lock(gauges_mutex_);
  for (const auto& gauge : gauges_) {
    header(out, gauge.name, gauge.help, "gauge");
    char value[32];
    std::snprintf(value, sizeof value, "%.15g", gauge.read());  // bytes: every digit
    out += gauge.name + " " + value + "\n";
  }
  return out;
}

void Metrics::add_gauge(std::string name, std::string help, std::function<double()> read) {
  std::lock_guard lock(gauges_mutex_);
  gauges_.push_back({std::move(name), std::move(help), std::move(read)});
}

}  // namespace omnigate

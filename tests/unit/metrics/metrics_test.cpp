// Prometheus text format (gateway/core/metrics.hpp).
#include <catch2/catch.hpp>

#include <chrono>
#include <sstream>
#include <string>
#include <vector>

#include "gateway/core/metrics.hpp"

using namespace std::chrono;
using omnigate::Histogram;
using omnigate::LabeledCounter;
using omnigate::Metrics;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

bool has_line(const std::string& text, const std::string& line) {
  for (const auto& l : lines_of(text)) {
    if (l == line) return true;
  }
  return false;
}

struct Bucket {
  std::string le;
  uint64_t count;
};

std::vector<Bucket> buckets_of(const std::string& text, const std::string& name) {
  std::vector<Bucket> out;
  std::string prefix = name + "_bucket{le=\"";
  for (const auto& line : lines_of(text)) {
    if (line.rfind(prefix, 0) != 0) continue;
    size_t close = line.find("\"} ", prefix.size());
    REQUIRE(close != std::string::npos);
    out.push_back(
        {line.substr(prefix.size(), close - prefix.size()), std::stoull(line.substr(close + 3))});
  }
  return out;
}

uint64_t value_of(const std::string& text, const std::string& series) {
  for (const auto& line : lines_of(text)) {
    if (line.rfind(series + " ", 0) == 0) return std::stoull(line.substr(series.size() + 1));
  }
  FAIL("no line for " << series);
  return 0;
}

}  // namespace

TEST_CASE("every metric family has HELP and TYPE lines", "[metrics]") {
  Metrics metrics;
  std::string text = metrics.render();
  struct Row {
    std::string name, type;
  };
  const std::vector<Row> rows = {
      {"omnigate_http_requests_total", "counter"},
      {"omnigate_interactions_published_total", "counter"},
      {"omnigate_duplicates_total", "counter"},
      {"omnigate_rejected_total", "counter"},
      {"omnigate_ignored_events_total", "counter"},
      {"omnigate_publish_failures_total", "counter"},
      {"omnigate_publish_duration_seconds", "histogram"},
      {"omnigate_nats_connected", "gauge"},
      {"omnigate_nats_reconnects_total", "counter"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    CHECK(text.find("# HELP " + row.name + " ") != std::string::npos);
    CHECK(has_line(text, "# TYPE " + row.name + " " + row.type));
  }
  // Nothing observed yet: no series for unlabelled counters, zero gauges.
  CHECK(has_line(text, "omnigate_nats_connected 0"));
  CHECK(has_line(text, "omnigate_nats_reconnects_total 0"));
  CHECK(text.back() == '\n');
}

TEST_CASE("counters render one line per label set with the labels named", "[metrics]") {
  Metrics metrics;
  metrics.http_requests.inc({"api", "202"});
  metrics.http_requests.inc({"api", "202"}, 2);
  metrics.http_requests.inc({"api", "401"});
  metrics.nats_connected = 1;
  metrics.nats_reconnects = 3;
  CHECK(metrics.http_requests.value({"api", "202"}) == 3);
  CHECK(metrics.http_requests.value({"api", "500"}) == 0);
  std::string text = metrics.render();
  CHECK(has_line(text, R"(omnigate_http_requests_total{route="api",status="202"} 3)"));
  CHECK(has_line(text, R"(omnigate_http_requests_total{route="api",status="401"} 1)"));
  CHECK(has_line(text, "omnigate_nats_connected 1"));
  CHECK(has_line(text, "omnigate_nats_reconnects_total 3"));
}

TEST_CASE("label values escape backslash, double quote and newline", "[metrics]") {
  LabeledCounter counter("test_total", "A test counter.", {"channel", "reason"});
  counter.inc({"api", "say \"hi\" \\ now"});
  counter.inc({"api", "two\nlines"});
  std::string text;
  counter.render(text);
  CHECK(has_line(text, "# HELP test_total A test counter."));
  CHECK(has_line(text, "# TYPE test_total counter"));
  CHECK(has_line(text, R"(test_total{channel="api",reason="say \"hi\" \\ now"} 1)"));
  CHECK(has_line(text, R"(test_total{channel="api",reason="two\nlines"} 1)"));
}

TEST_CASE("histogram buckets are cumulative and end with +Inf equal to _count", "[metrics]") {
  Histogram histogram("latency_seconds", "Latency.", {0.001, 0.01, 0.1, 1});
  histogram.observe(microseconds(300));  // ≤ 0.001
  histogram.observe(milliseconds(1));    // exactly on a bound: le is inclusive
  histogram.observe(milliseconds(5));    // ≤ 0.01
  histogram.observe(milliseconds(500));  // ≤ 1
  histogram.observe(seconds(3));         // above every bound: only +Inf
  histogram.observe(seconds(3));
  CHECK(histogram.count() == 6);
  std::string text;
  histogram.render(text);
  CHECK(has_line(text, "# TYPE latency_seconds histogram"));
  auto buckets = buckets_of(text, "latency_seconds");
  REQUIRE(buckets.size() == 5);
  std::vector<std::string> les;
  std::vector<uint64_t> counts;
  for (const auto& b : buckets) {
    les.push_back(b.le);
    counts.push_back(b.count);
  }
  CHECK(les == std::vector<std::string>{"0.001", "0.01", "0.1", "1", "+Inf"});
  CHECK(counts == std::vector<uint64_t>{2, 3, 3, 4, 6});
  CHECK(value_of(text, "latency_seconds_count") == 6);
  CHECK(buckets.back().count == value_of(text, "latency_seconds_count"));
  // The sum is in seconds: 0.0003 + 0.001 + 0.005 + 0.5 + 6 = 6.5063.
  CHECK(text.find("latency_seconds_sum 6.5063\n") != std::string::npos);
}

TEST_CASE("the publish latency histogram renders cumulative buckets through Metrics::render",
          "[metrics]") {
  Metrics metrics;
  metrics.publish_latency.observe(microseconds(200));
  metrics.publish_latency.observe(milliseconds(3));
  metrics.publish_latency.observe(milliseconds(300));
  metrics.publish_latency.observe(seconds(30));
  std::string text = metrics.render();
  auto buckets = buckets_of(text, "omnigate_publish_duration_seconds");
  REQUIRE(buckets.size() >= 2);
  for (size_t i = 1; i < buckets.size(); ++i) {
    CAPTURE(buckets[i].le);
    CHECK(buckets[i].count >= buckets[i - 1].count);
  }
  CHECK(buckets.front().le == "0.0005");
  CHECK(buckets.front().count == 1);
  CHECK(buckets.back().le == "+Inf");
  CHECK(buckets.back().count == 4);
  CHECK(value_of(text, "omnigate_publish_duration_seconds_count") == 4);
  for (const auto& b : buckets) {
    if (b.le == "0.005") CHECK(b.count == 2);
    if (b.le == "0.5") CHECK(b.count == 3);
    if (b.le == "10") CHECK(b.count == 3);
  }
}

// Log line formats (gateway/core/log.hpp): text for a terminal, one JSON object per line.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "gateway/core/log.hpp"

using omnigate::SysMillis;
namespace logging = omnigate::log;

namespace {
const SysMillis kAt = *omnigate::parse_rfc3339("2026-12-01T09:30:00.125Z");
}

TEST_CASE("json log lines are one object with ts, level, component, msg and the fields", "[log]") {
  std::string line =
      logging::format_line(logging::Format::json, logging::Level::info, "http", "request",
                           {{"method", std::string("POST")},
                            {"route", std::string("/v1/api/:account")},
                            {"status", int64_t{202}},
                            {"latency_ms", 3.25}},
                           kAt);
  REQUIRE(line.back() == '\n');
  REQUIRE(line.find('\n') == line.size() - 1);  // exactly one line
  auto doc = nlohmann::json::parse(line);
  CHECK(doc["ts"] == "2026-12-01T09:30:00.125Z");
  CHECK(doc["level"] == "info");
  CHECK(doc["component"] == "http");
  CHECK(doc["msg"] == "request");
  CHECK(doc["method"] == "POST");
  CHECK(doc["route"] == "/v1/api/:account");
  CHECK(doc["status"] == 202);
  CHECK(doc["latency_ms"].get<double>() == Approx(3.25));
  CHECK(line.rfind(R"({"ts":)", 0) == 0);  // the fixed keys first, in order
}

TEST_CASE("json log lines escape quotes, newlines and invalid UTF-8 instead of breaking", "[log]") {
  std::string message = "stream \"X\"\nsecond line \\ tab\t";
  std::string invalid_utf8 = "bad \xC3\x28 byte";
  std::string line = logging::format_line(logging::Format::json, logging::Level::warn, "nats",
                                          message, {{"detail", invalid_utf8}}, kAt);
  REQUIRE(line.find('\n') == line.size() - 1);
  auto doc = nlohmann::json::parse(line);
  CHECK(doc["msg"] == message);
  CHECK(doc["level"] == "warn");
  CHECK(doc["detail"].get<std::string>().find("bad ") == 0);
}

TEST_CASE("text log lines keep their format and append fields as key=value", "[log]") {
  std::string line =
      logging::format_line(logging::Format::text, logging::Level::error, "main", "stopped",
                           {{"status", int64_t{0}}, {"route", std::string("/x")}}, kAt);
  CHECK(line == "2026-12-01T09:30:00.125Z error main: stopped status=0 route=/x\n");
  CHECK(logging::format_line(logging::Format::text, logging::Level::info, "http", "listening", {},
                             kAt) == "2026-12-01T09:30:00.125Z info http: listening\n");
}

TEST_CASE("the request record holds what one request did, and only inside a request", "[log]") {
  logging::request_interaction("ignored: no request on this thread");
  CHECK_FALSE(logging::request_end().active);

  logging::request_begin();
  logging::request_route("POST /v1/api/:account", "crm");
  logging::request_interaction("id-1");
  logging::request_interaction("id-2");
  auto record = logging::request_end();
  CHECK(record.active);
  CHECK(record.route == "POST /v1/api/:account");
  CHECK(record.account == "crm");
  CHECK(record.first_interaction == "id-1");
  CHECK(record.interactions == 2);
  CHECK(record.latency_ms >= 0);
  CHECK_FALSE(logging::request_end().active);  // ended: the next request starts empty
}

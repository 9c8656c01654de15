// The error table (gateway/core/error.hpp), the JSON error reply (gateway/http/request.hpp) and the
// secret helpers (gateway/core/secrets.hpp).
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <set>
#include <string>
#include <vector>

#include "gateway/core/error.hpp"
#include "gateway/core/secrets.hpp"
#include "gateway/http/request.hpp"
#include "gateway/http/verify.hpp"

using nlohmann::json;
using omnigate::Error;
using omnigate::ErrorCode;
using omnigate::Reply;

namespace {

struct CodeRow {
  ErrorCode code;
  std::string name;
  int status;
};

// ARCHITECTURE's status table.
const std::vector<CodeRow> kCodes = {
    {ErrorCode::bad_request, "bad_request", 400},
    {ErrorCode::invalid_field, "invalid_field", 400},
    {ErrorCode::missing_header, "missing_header", 400},
    {ErrorCode::unauthorized, "unauthorized", 401},
    {ErrorCode::signature_invalid, "signature_invalid", 401},
    {ErrorCode::forbidden, "forbidden", 403},
    {ErrorCode::not_found, "not_found", 404},
    {ErrorCode::unknown_account, "unknown_account", 404},
    {ErrorCode::method_not_allowed, "method_not_allowed", 405},
    {ErrorCode::gone, "gone", 410},
    {ErrorCode::payload_too_large, "payload_too_large", 413},
    {ErrorCode::unsupported_media, "unsupported_media_type", 415},
    {ErrorCode::unprocessable, "unprocessable", 422},
    {ErrorCode::rate_limited, "rate_limited", 429},
    {ErrorCode::internal, "internal", 500},
    {ErrorCode::not_durable, "not_durable", 503},
    {ErrorCode::bad_gateway, "bad_gateway", 502},
    {ErrorCode::overloaded, "overloaded", 503},
    {ErrorCode::upstream_timeout, "upstream_timeout", 504},
};

}  // namespace

TEST_CASE("spec_of maps every ErrorCode to its name and HTTP status", "[errors]") {
  // One row per enumerator: the last one is upstream_timeout.
  REQUIRE(kCodes.size() == static_cast<size_t>(ErrorCode::upstream_timeout) + 1);
  std::set<std::string> names;
  for (const auto& row : kCodes) {
    CAPTURE(row.name);
    const auto& spec = omnigate::spec_of(row.code);
    CHECK(spec.name == row.name);
    CHECK(spec.http_status == row.status);
    Error error = omnigate::make_error(row.code, "route", "detail");
    CHECK(error.name() == row.name);
    CHECK(error.http_status() == row.status);
    names.insert(std::string(spec.name));
  }
  CHECK(names.size() == kCodes.size());  // names are unique metric labels
}

TEST_CASE("Reply::error is {\"error\": {\"code\", \"message\"}} with the code's status",
          "[errors]") {
  for (const auto& row : kCodes) {
    CAPTURE(row.name);
    Error error = omnigate::make_error(row.code, "parse", "message.text: must be a string \"x\"");
    Reply reply = Reply::error(error);
    CHECK(reply.status == row.status);
    CHECK(reply.content_type == "application/json");
    json body = json::parse(reply.body);
    REQUIRE(body.is_object());
    CHECK(body.size() == 1);
    REQUIRE(body.contains("error"));
    CHECK(body["error"].size() == 2);
    CHECK(body["error"]["code"] == row.name);
    CHECK(body["error"]["message"] == "message.text: must be a string \"x\"");
  }
}

TEST_CASE("Retry-After is sent exactly with 429 and 503, with the value given", "[errors]") {
  for (const auto& row : kCodes) {
    CAPTURE(row.name);
    Reply reply =
        Reply::error(omnigate::make_error(row.code, "publish", "d"), std::chrono::seconds(7));
    int retry_after_headers = 0;
    for (const auto& [name, value] : reply.headers) {
      if (omnigate::iequals(name, "Retry-After")) {
        ++retry_after_headers;
        CHECK(value == "7");
      }
    }
    bool expected = row.status == 429 || row.status == 503;
    CHECK(retry_after_headers == (expected ? 1 : 0));
  }
}

TEST_CASE("Reply::error without a retry_after leaves Retry-After to the gateway", "[errors]") {
  // The gateway fills in the configured http.retry_after for 429/503 replies without one, so
  // a connector never hard-codes a value.
  for (auto code : {ErrorCode::rate_limited, ErrorCode::not_durable, ErrorCode::bad_request}) {
    Reply reply = Reply::error(omnigate::make_error(code, "publish", "d"));
    CAPTURE(reply.status);
    CHECK(reply.headers.empty());
  }
}

TEST_CASE("Reply::json survives invalid UTF-8 in a value", "[errors]") {
  Reply reply;
  REQUIRE_NOTHROW(reply = Reply::json(400, {{"bad", std::string("a\xff"
                                                                "b")}}));
  CHECK(json::parse(reply.body)["bad"] ==
        "a\xEF\xBF\xBD"
        "b");  // U+FFFD
}

TEST_CASE("request headers are found case-insensitively, query parameters exactly", "[http]") {
  omnigate::InboundRequest request;
  request.headers = {{"Content-Type", "application/json"},
                     {"idempotency-key", "k1"},
                     {"X-Dup", "first"},
                     {"x-dup", "second"}};
  request.query = {{"Token", "T"}, {"token", "t"}};
  CHECK(request.header("content-type") == "application/json");
  CHECK(request.header("IDEMPOTENCY-KEY") == "k1");
  CHECK(request.header("x-dup") == "first");
  CHECK(request.header("Authorization").empty());
  CHECK(request.has_header("Idempotency-Key"));
  CHECK_FALSE(request.has_header("Authorization"));
  CHECK(request.query_param("token") == "t");
  CHECK(request.query_param("Token") == "T");
  CHECK(request.query_param("missing").empty());
}

TEST_CASE("bearer_token extracts the token of an Authorization header", "[secrets]") {
  struct Row {
    std::string header, token;
  };
  const std::vector<Row> rows = {
      {"Bearer abc123", "abc123"},
      {"bearer abc123", "abc123"},
      {"BEARER abc123", "abc123"},
      {"Bearer   abc123  ", "abc123"},
      {"Bearer ", ""},
      {"Bearer    ", ""},
      {"Bearer", ""},
      {"", ""},
      {"Basic dXNlcjpwYXNz", ""},
      {"Bearerabc123", ""},
      {"Token abc123", ""},
      {" Bearer abc123", ""},
  };
  for (const auto& row : rows) {
    CAPTURE(row.header);
    CHECK(omnigate::verify::bearer_token(row.header) == row.token);
  }
}

TEST_CASE("constant_time_equals matches equal secrets only, and never an empty expected one",
          "[secrets]") {
  struct Row {
    std::string presented, expected;
    bool equal;
  };
  const std::vector<Row> rows = {
      {"0123456789abcdef", "0123456789abcdef", true},
      {"0123456789abcdef", "0123456789abcdeF", false},
      {"0123456789abcde", "0123456789abcdef", false},
      {"0123456789abcdefX", "0123456789abcdef", false},
      {"", "0123456789abcdef", false},
      {"anything", "", false},
      {"", "", false},  // an unconfigured secret must never authenticate an empty token
      {std::string("a\0b", 3), "a", false},
  };
  for (const auto& row : rows) {
    CAPTURE(row.presented, row.expected);
    CHECK(omnigate::constant_time_equals(row.presented, row.expected) == row.equal);
  }
}

TEST_CASE("an empty bearer token never authenticates against an empty configured token",
          "[secrets]") {
  CHECK_FALSE(omnigate::constant_time_equals(omnigate::verify::bearer_token(""), ""));
  CHECK_FALSE(omnigate::constant_time_equals(omnigate::verify::bearer_token("Bearer "), ""));
}

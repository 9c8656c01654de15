// The API channel's pure parse step (connectors/api/api_parse.hpp).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "connectors/api/api_parse.hpp"

using omnigate::ErrorCode;
using omnigate::api::parse_submission;
using omnigate::api::valid_idempotency_key;

namespace {

const std::string kMessageBody =
    R"({"kind":"message","occurred_at":"2026-11-22T12:30:00+03:00",)"
    R"("contact":{"identifiers":[{"type":"phone","raw":"8 (912) 345-67-89"}]},)"
    R"("message":{"native_id":"m-1","text":"Привет"}})";

}  // namespace

TEST_CASE("an Idempotency-Key is 1 to 255 printable ASCII characters", "[api][idempotency]") {
  std::string all_printable;
  for (char c = 0x21; c <= 0x7e; ++c) all_printable += c;
  struct Row {
    std::string what, key;
    bool valid;
  };
  const std::vector<Row> rows = {
      {"empty", "", false},
      {"one character", "k", true},
      {"255 printable characters", std::string(255, 'k'), true},
      {"256 characters", std::string(256, 'k'), false},
      {"every printable ASCII character", all_printable, true},
      {"a space inside", "order 42", false},
      {"a tab", "order\t42", false},
      {"a newline (header injection)", "k\r\nX-Evil: 1", false},
      {"DEL", "k\x7f", false},
      {"NUL", std::string("k\0k", 3), false},
      {"non-ASCII (UTF-8 Cyrillic)", "ключ", false},
      {"a UUID", "4f1c2a9e-0b1d-4c5e-9f00-aa11bb22cc33", true},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    CAPTURE(row.key.size());
    CHECK(valid_idempotency_key(row.key) == row.valid);
  }
}

TEST_CASE(
    "a valid submission becomes channel api, the route's account, keyed by the "
    "Idempotency-Key",
    "[api][parse]") {
  const std::string body = kMessageBody;
  auto submission = parse_submission(body, "crm-import", "order-42");
  INFO((submission ? std::string() : submission.error().detail));
  REQUIRE(submission.ok());
  const auto& in = submission->interaction;
  CHECK(in.channel == "api");
  CHECK(in.account == "crm-import");
  CHECK(in.kind == "message");
  CHECK(submission->native_key == "order-42");
  CHECK(submission->raw_bytes == body);
  CHECK(submission->raw_bytes.data() == body.data());  // a view of the request body, no copy
  CHECK(submission->raw_content_type == "application/json");
  CHECK(in.occurred_at == omnigate::parse_rfc3339("2026-11-22T09:30:00Z"));
  REQUIRE(in.message.has_value());
  CHECK(in.message->text == std::optional<std::string>("Привет"));
  // id and received_at are the pipeline's to fill.
  CHECK(in.id.empty());
  CHECK(in.received_at == omnigate::SysMillis{});
}

TEST_CASE("a submission may repeat its channel and account when they match the route",
          "[api][parse]") {
  std::string body =
      R"({"channel":"api","account":"crm-import","kind":"lead","lead":{"form":"callback"}})";
  auto submission = parse_submission(body, "crm-import", "k");
  INFO((submission ? std::string() : submission.error().detail));
  REQUIRE(submission.ok());
  CHECK(submission->interaction.channel == "api");
  CHECK(submission->interaction.account == "crm-import");
}

TEST_CASE("a submission without occurred_at happened now", "[api][parse]") {
  auto before = omnigate::now_millis();
  auto submission =
      parse_submission(R"({"kind":"action","action":{"type":"button","data":"buy"}})", "a", "k");
  auto after = omnigate::now_millis();
  REQUIRE(submission.ok());
  CHECK(submission->interaction.occurred_at >= before);
  CHECK(submission->interaction.occurred_at <= after);
}

TEST_CASE("malformed JSON is bad_request with line and column", "[api][parse]") {
  auto body = GENERATE(as<std::string>{}, R"({"kind": })", "", "{", "not json",
                       R"({"kind":"message"} trailing)", "{\"kind\":\"message\",}");
  CAPTURE(body);
  auto submission = parse_submission(body, "crm-import", "k");
  REQUIRE_FALSE(submission.ok());
  CAPTURE(submission.error().detail);
  CHECK(submission.error().code == ErrorCode::bad_request);
  CHECK(submission.error().http_status() == 400);
  CHECK(submission.error().detail.find("line 1, column") != std::string::npos);
  CHECK(submission.error().detail.rfind("the body is not valid JSON: ", 0) == 0);
  // The library's "[json.exception.parse_error.101]" prefix is not shown to callers.
  CHECK(submission.error().detail.find("json.exception") == std::string::npos);
}

TEST_CASE("a body that is JSON but not an object is invalid_field, not an exception",
          "[api][parse]") {
  auto body = GENERATE(as<std::string>{}, "[]", "42", "\"text\"", "null");
  CAPTURE(body);
  omnigate::Result<omnigate::Submission> submission =
      omnigate::make_error(ErrorCode::internal, "", "not run");
  REQUIRE_NOTHROW(submission = parse_submission(body, "crm-import", "k"));
  REQUIRE_FALSE(submission.ok());
  CHECK(submission.error().code == ErrorCode::invalid_field);
  CHECK(submission.error().detail.rfind("the document: must be an object", 0) == 0);
}

TEST_CASE("a submission naming another channel is invalid_field naming channel", "[api][parse]") {
  auto submission = parse_submission(
      R"({"channel":"telegram","kind":"message","message":{"native_id":"1"}})", "crm-import", "k");
  REQUIRE_FALSE(submission.ok());
  CAPTURE(submission.error().detail);
  CHECK(submission.error().code == ErrorCode::invalid_field);
  CHECK(submission.error().detail.rfind("channel:", 0) == 0);
  CHECK(submission.error().detail.find("telegram") != std::string::npos);
}

TEST_CASE("a submission naming another account is invalid_field naming account", "[api][parse]") {
  auto submission = parse_submission(
      R"({"account":"other","kind":"message","message":{"native_id":"1"}})", "crm-import", "k");
  REQUIRE_FALSE(submission.ok());
  CAPTURE(submission.error().detail);
  CHECK(submission.error().code == ErrorCode::invalid_field);
  CHECK(submission.error().detail.rfind("account:", 0) == 0);
  CHECK(submission.error().detail.find("'other'") != std::string::npos);
  CHECK(submission.error().detail.find("'crm-import'") != std::string::npos);
}

TEST_CASE("a submission may not set the gateway's own fields id, schema and received_at",
          "[api][parse]") {
  struct Row {
    std::string field, value;
  };
  const std::vector<Row> rows = {
      {"id", R"("98934dfa-a212-5186-9ce6-f319db7b390d")"},
      {"schema", R"("interaction.v1")"},
      {"received_at", R"("2026-11-22T09:30:00Z")"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.field);
    std::string body = R"({")" + row.field + R"(":)" + row.value +
                       R"(,"kind":"message","message":{"native_id":"1"}})";
    auto submission = parse_submission(body, "crm-import", "k");
    REQUIRE_FALSE(submission.ok());
    CAPTURE(submission.error().detail);
    CHECK(submission.error().code == ErrorCode::invalid_field);
    CHECK(submission.error().detail == row.field + ": unknown field");
  }
}

TEST_CASE("a submission without the section its kind needs is invalid_field naming it",
          "[api][parse]") {
  auto submission = parse_submission(R"({"kind":"lead"})", "crm-import", "k");
  REQUIRE_FALSE(submission.ok());
  CHECK(submission.error().code == ErrorCode::invalid_field);
  CHECK(submission.error().detail == "lead: is required when kind is lead");
}

TEST_CASE("a submission with a non-string occurred_at is invalid_field", "[api][parse]") {
  auto submission = parse_submission(
      R"({"kind":"message","occurred_at":5,"message":{"native_id":"1"}})", "a", "k");
  REQUIRE_FALSE(submission.ok());
  CHECK(submission.error().detail.rfind("occurred_at: must be a string", 0) == 0);
}

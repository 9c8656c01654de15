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

// What a hostile client sent, and what the gateway must make of it (issue 7): no crash on one
// request (std::regex recursion, deep JSON), 400 and not 500 on a number past a double, and
// nothing outside interaction.v1 published -- invalid optional values dropped and counted,
// invalid required values of the API channel refused. One test per defect of the issue.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <string>

#include "connectors/api/api_parse.hpp"
#include "connectors/telegram/telegram_parse.hpp"
#include "connectors/webform/webform_form.hpp"
#include "gateway/http/request.hpp"
#include "gateway/model/formats.hpp"
#include "gateway/model/json_input.hpp"
#include "gateway/model/schema_guard.hpp"
#include "gateway/pipeline/pipeline.hpp"

namespace {

using nlohmann::json;
using omnigate::ErrorCode;
using omnigate::Interaction;
using omnigate::Submission;
using omnigate::SysMillis;
namespace formats = omnigate::formats;

std::string nested_arrays(size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

// An API message submission with `key` set to the JSON text `value_json`.
std::string api_body_with(const std::string& key, const std::string& value_json) {
  return R"({"kind":"message","message":{"native_id":"m-1","text":"hi"},")" + key +
         "\":" + value_json + "}";
}

auto parse_api(const std::string& body) {
  return omnigate::api::parse_submission(body, "crm", "key-1");
}

// What the pipeline makes of a submission before publishing: enrich, then the schema guard.
struct Published {
  json document;
  std::vector<std::string> dropped;
};

Published publish(Submission submission) {
  omnigate::IdentityConfig identity;
  identity.default_region = "RU";
  Interaction in = omnigate::enrich(std::move(submission), identity);
  auto dropped = omnigate::make_schema_valid(in);
  REQUIRE(dropped);
  return {json::parse(omnigate::serialize(in)), *dropped};
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

const SysMillis kNow{std::chrono::seconds(1772798400)};

Published telegram(const json& update) {
  omnigate::telegram::BotSettings bot;
  bot.account = "shopbot";
  auto parsed = omnigate::telegram::parse_update(update.dump(), bot, kNow);
  REQUIRE(parsed);
  REQUIRE(parsed->submissions.size() == 1);
  return publish(std::move(parsed->submissions.front()));
}

json telegram_message(json extra) {
  json update = {{"update_id", 1},
                 {"message",
                  {{"message_id", 7},
                   {"date", 1772782485},
                   {"chat", {{"id", 42}, {"type", "private"}}},
                   {"from", {{"id", 42}, {"first_name", "Анна"}, {"language_code", "ru"}}},
                   {"text", "hi"}}}};
  update["message"].update(extra, /*merge_objects=*/true);
  return update;
}

}  // namespace

// ------------------------------------------------------------------------------ crashes

TEST_CASE("hostile: a 150 KB consent channel is a 400, not a std::regex stack overflow",
          "[hostile]") {
  std::string channel(150 * 1024, 'a');
  auto result = parse_api(api_body_with(
      "consent", R"([{"purpose":"marketing","status":"granted","method":"api","channels":[")" +
                     channel + R"("]}])"));
  REQUIRE_FALSE(result);
  CHECK(result.error().code == ErrorCode::invalid_field);
  CHECK_THAT(result.error().detail, Catch::Contains("consent[0].channels[0]"));
}

TEST_CASE("hostile: 60 000 nested arrays in source.ad are refused before anything recurses",
          "[hostile]") {
  auto result = parse_api(api_body_with("source", R"({"ad":{"x":)" + nested_arrays(60000) + "}}"));
  REQUIRE_FALSE(result);
  CHECK(result.error().code == ErrorCode::bad_request);
  CHECK_THAT(result.error().detail, Catch::Contains("nested deeper than 64"));
}

TEST_CASE("hostile: a 40 000-deep document is refused by every JSON reader of the request path",
          "[hostile]") {
  std::string deep = "{\"a\":" + nested_arrays(40000) + "}";
  auto api = parse_api(deep);
  REQUIRE_FALSE(api);
  CHECK(api.error().code == ErrorCode::bad_request);

  auto form = omnigate::webform::read_fields("application/json", deep, {});
  REQUIRE_FALSE(form);
  CHECK(form.error().code == ErrorCode::bad_request);

  omnigate::telegram::BotSettings bot;
  bot.account = "shopbot";
  auto update = omnigate::telegram::parse_update(
      R"({"update_id":1,"message":{"entities":)" + nested_arrays(40000) + "}}", bot, kNow);
  REQUIRE_FALSE(update);
  CHECK(update.error().code == ErrorCode::bad_request);

  // 64 levels is the cap: exactly 64 parses, 65 does not.
  CHECK(omnigate::parse_request_json(nested_arrays(64)));
  CHECK_FALSE(omnigate::parse_request_json(nested_arrays(65)));
  // Brackets inside strings are text, not nesting.
  CHECK(omnigate::json_depth_within("[\"" + std::string(1000, '[') + "\\\"[\"]"));
}

TEST_CASE("hostile: 1e400 is a 400 on the API and the web form, not nlohmann's out_of_range",
          "[hostile]") {
  const std::string body = R"({"phone":"1","n":1e400})";
  auto api = parse_api(body);
  REQUIRE_FALSE(api);
  CHECK(api.error().code == ErrorCode::bad_request);
  CHECK_THAT(api.error().detail, Catch::Contains("number overflow"));

  auto form = omnigate::webform::read_fields("application/json", body, {});
  REQUIRE_FALSE(form);
  CHECK(form.error().code == ErrorCode::bad_request);
  CHECK_THAT(form.error().detail, Catch::Contains("number overflow"));
}

// ------------------------------------------------------------- the API channel is strict

TEST_CASE("hostile: API values outside the schema's formats are 400 invalid_field", "[hostile]") {
  struct Row {
    std::string what, key, value, field;
  };
  const std::vector<Row> rows = {
      {"page_url not a URI", "source", R"({"page_url":"not a uri <script>"})", "source.page_url"},
      {"page_url with a bad escape", "source", R"({"page_url":"https://x.example/%zz"})",
       "source.page_url"},
      {"linked_interaction_id not a UUID", "consent",
       R"([{"purpose":"marketing","status":"granted","channels":["email"],"method":"api",)"
       R"("evidence":{"linked_interaction_id":"12345"}}])",
       "linked_interaction_id"},
      {"language with a line break", "contact", R"({"language":"ru\r\n"})", "contact.language"},
      {"latitude out of range", "message",
       R"({"native_id":"m","attachments":[{"type":"location","location":{"latitude":1000,"longitude":0}}]})",
       "latitude"},
      {"unknown key in a location", "message",
       R"({"native_id":"m","attachments":[{"type":"location","location":{"x":1}}]})", "location.x"},
      {"occurred_at in year 0", "occurred_at", R"("0000-01-01T00:00:00Z")", "occurred_at"},
      {"a purpose with capitals", "consent",
       R"([{"purpose":"Marketing Emails!","status":"granted","channels":["email"],"method":"api"}])",
       "purpose"},
      {"a 70 KB text", "message",
       R"({"native_id":"m","text":")" + std::string(70 * 1024, 'x') + "\"}", "message.text"},
      {"300 tags", "tags", json(std::vector<std::string>(300, "t")).dump(), "tags"},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    std::string body = row.key == "message" ? R"({"kind":"message","message":)" + row.value + "}"
                                            : api_body_with(row.key, row.value);
    auto result = parse_api(body);
    REQUIRE_FALSE(result);
    CHECK(result.error().code == ErrorCode::invalid_field);
    CHECK_THAT(result.error().detail, Catch::Contains(row.field));
  }
  // Real messages fit: a 4096-character Telegram-sized text and 20 000 Cyrillic characters.
  std::string cyrillic;
  for (int i = 0; i < 20000; ++i) cyrillic += "ж";
  CHECK(parse_api(R"({"kind":"message","message":{"native_id":"m","text":")" + cyrillic + "\"}}"));
}

// ------------------------------------------------- connectors: dropped, counted, published

TEST_CASE("hostile: Telegram values outside interaction.v1 are dropped, never published",
          "[hostile]") {
  SECTION("entities that are not objects, forward_origin that is not an object") {
    auto out = telegram(
        telegram_message({{"entities", json::array({1, "x"})}, {"forward_origin", "a string"}}));
    CHECK_FALSE(out.document["message"].contains("entities"));
    CHECK_FALSE(out.document["message"].contains("forwarded"));
    CHECK(contains(out.dropped, "message.entities"));
    CHECK(contains(out.dropped, "message.forwarded"));
  }
  SECTION("language_code \\r\\n") {
    auto out = telegram(telegram_message({{"from", {{"language_code", "\r\n"}}}}));
    CHECK_FALSE(out.document["contact"].contains("language"));
    CHECK(contains(out.dropped, "contact.language"));
  }
  SECTION("latitude out of range") {
    auto out = telegram(telegram_message({{"location", {{"latitude", 1000}, {"longitude", 10}}}}));
    REQUIRE(out.document["message"]["attachments"].size() == 1);
    CHECK_FALSE(out.document["message"]["attachments"][0].contains("location"));
    CHECK(contains(out.dropped, "message.attachments.location"));
  }
  SECTION("a date that overflows to year -32224 falls back to received_at") {
    auto out = telegram(telegram_message({{"date", 1000000000000000LL}}));
    CHECK(out.document["occurred_at"] == out.document["received_at"]);
    CHECK(contains(out.dropped, "occurred_at"));
  }
  SECTION("empty strings where the schema says minLength 1") {
    auto out = telegram(telegram_message(
        {{"from", {{"first_name", ""}, {"username", ""}}}, {"media_group_id", ""}}));
    CHECK_FALSE(out.document["contact"].contains("display_name"));
    for (const auto& id : out.document["contact"]["identifiers"]) {
      CHECK(id.value("value", "x") != "");
    }
    CHECK_FALSE(out.document["message"].contains("group_id"));
  }
}

TEST_CASE("hostile: a web form page_url that is not a URI is dropped and reported", "[hostile]") {
  omnigate::webform::FormConfig form;
  form.account = "main";
  omnigate::ConsentConfig consent;
  omnigate::webform::SubmissionContext context;
  context.now = kNow;
  for (std::string url : {"https://shop.example/{a}[b]", "https://shop.example/%zz",
                          "https://shop.example/%4", "http://shop.example:port/"}) {
    INFO(url);
    auto out = omnigate::webform::normalize_form(
        form, consent, {{"name", "Анна"}, {"_page_url", url}, {"_submission_id", "s-1"}}, context);
    CHECK_FALSE(out.submission.interaction.source->page_url);
    CHECK(contains(out.dropped, "source.page_url"));
  }
}

TEST_CASE("hostile: the schema guard fixes what no connector should send", "[hostile]") {
  Submission s;
  s.native_key = "k";
  Interaction& in = s.interaction;
  in.channel = "webform";
  in.account = "main";
  in.kind = "lead";
  in.lead = omnigate::Lead{"main", {}};
  in.source = omnigate::Source{};
  in.source->page_url = "not a uri <script>";
  in.source->ad = json::array();
  in.contact = omnigate::Contact{};
  in.contact->identifiers.push_back({"phone", std::nullopt, false, ""});
  in.contact->identifiers.push_back({"fax", "1", false, std::nullopt});
  omnigate::Consent c;
  c.purpose = "Marketing Emails!";
  c.status = "granted";
  c.channels = {"email"};
  c.method = "api";
  in.consent.push_back(c);
  in.tags = {"", "ok"};
  auto out = publish(std::move(s));
  CHECK_FALSE(out.document.contains("source"));
  CHECK(out.document["contact"].value("identifiers", json::array()).empty());
  CHECK_FALSE(out.document.contains("consent"));
  CHECK(out.document["tags"] == json::array({"ok"}));

  omnigate::Metrics metrics;
  Interaction bad;
  bad.channel = "api";
  bad.account = "crm";
  bad.kind = "message";
  bad.id = omnigate::random_uuid();
  bad.received_at = kNow;
  bad.occurred_at = kNow;
  bad.message = omnigate::Message{};  // an empty native_id: nothing can replace it
  auto refused = omnigate::enforce_schema(bad, metrics);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == ErrorCode::invalid_field);

  Interaction dropped = bad;
  dropped.message->native_id = "m";
  dropped.contact = omnigate::Contact{};
  dropped.contact->language = "\r\n";
  REQUIRE(omnigate::enforce_schema(dropped, metrics));
  CHECK(metrics.dropped_values.value({"api", "contact.language"}) == 1);
  CHECK_THAT(metrics.render(), Catch::Contains("omnigate_dropped_values_total"));
}

// ------------------------------------------------------------------------------ formats

TEST_CASE("hostile: formats are character loops that agree with the schema", "[hostile]") {
  CHECK(formats::is_uri("https://shop.example/p?utm_source=x&a=%D0%B0#top"));
  CHECK(formats::is_uri("mailto:anna@example.ru"));
  CHECK(formats::is_uri("urn:isbn:0451450523"));
  CHECK(formats::is_uri("http://user:pw@host:8080/"));
  CHECK(formats::is_uri("file:///etc/hosts"));
  CHECK_FALSE(formats::is_uri("not a uri <script>"));
  CHECK_FALSE(formats::is_uri("https://shop.example/{a}"));
  CHECK_FALSE(formats::is_uri("https://shop.example/[b]"));
  CHECK_FALSE(formats::is_uri("https://shop.example/%zz"));
  CHECK_FALSE(formats::is_uri("https://shop.example/%4"));
  CHECK_FALSE(formats::is_uri("http://host:port/"));
  CHECK_FALSE(formats::is_uri("http://a@b@c/"));
  CHECK_FALSE(formats::is_uri("https://пример.рф/"));
  CHECK_FALSE(formats::is_uri("x:"));
  CHECK_FALSE(formats::is_uri("1http://x"));
  CHECK_FALSE(formats::is_uri("/relative/path"));
  CHECK_FALSE(formats::is_uri("http://x/#a#b"));
  CHECK_FALSE(formats::is_web_url("javascript:alert(1)"));
  CHECK_FALSE(formats::is_web_url("https:///path"));
  CHECK(formats::is_web_url("https://shop.example"));

  CHECK(formats::is_uuid("4b3f0c1e-2a5d-5f6b-8c9d-0e1f2a3b4c5d"));
  CHECK(formats::is_uuid("4B3F0C1E-2A5D-5F6B-8C9D-0E1F2A3B4C5D"));
  CHECK_FALSE(formats::is_uuid("4b3f0c1e2a5d5f6b8c9d0e1f2a3b4c5d"));
  CHECK_FALSE(formats::is_uuid("4b3f0c1e-2a5d-5f6b-8c9d-0e1f2a3b4c5g"));

  CHECK(formats::is_language_tag("ru"));
  CHECK(formats::is_language_tag("en-US"));
  CHECK(formats::is_language_tag("zh-Hant-TW"));
  CHECK_FALSE(formats::is_language_tag("\r\n"));
  CHECK_FALSE(formats::is_language_tag("r"));
  CHECK_FALSE(formats::is_language_tag("en-"));
  CHECK_FALSE(formats::is_language_tag("en-a"));
  CHECK_FALSE(formats::is_language_tag("en-abcdefghi"));

  CHECK(formats::is_snake_key("marketing"));
  CHECK(formats::is_snake_key("personal_data_2"));
  CHECK_FALSE(formats::is_snake_key("Marketing Emails!"));
  CHECK_FALSE(formats::is_snake_key("_x"));
  CHECK_FALSE(formats::is_snake_key(std::string(65, 'a'), 64));
  CHECK(formats::is_snake_key(std::string(150 * 1024, 'a'), 200 * 1024));  // linear, no stack

  CHECK(formats::in_timestamp_range(SysMillis{}));
  CHECK_FALSE(formats::in_timestamp_range(SysMillis{} - std::chrono::milliseconds(1)));
  CHECK(formats::from_unix_seconds(253402300799LL));
  CHECK_FALSE(formats::from_unix_seconds(253402300800LL));
  CHECK_FALSE(formats::from_unix_seconds(1000000000000000LL));
  CHECK_FALSE(formats::from_unix_seconds(-1));
}

TEST_CASE("hostile: urlencoded parsing stops one pair past the cap", "[hostile]") {
  std::string body;
  for (int i = 0; i < 30000; ++i) body += "a=1&";
  auto pairs = omnigate::parse_urlencoded(body);
  CHECK(pairs.size() == omnigate::limits::kMaxMapEntries + 1);
  CHECK(omnigate::parse_urlencoded("a=1&b=2", 10).size() == 2);
}

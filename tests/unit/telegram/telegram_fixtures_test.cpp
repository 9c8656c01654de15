// The Telegram fixtures at the parse step. What each Update must become is the fixture table
// connectors/telegram/fixtures/cases.json, run through the real webhook route and a real
// nats-server by integration_tests "fixture table: telegram"; here, what a published table
// cannot show: a retry parsed again gives the same id and the same document.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include "connectors/telegram/telegram_parse.hpp"
#include "gateway/model/identifiers.hpp"
#include "gateway/model/interaction.hpp"
#include "gateway/pipeline/pipeline.hpp"

namespace {

using nlohmann::json;

const std::string kAccount = "shopbot";
// 2026-03-06T12:00:00Z, after every fixture's date: the clock parse_update is given.
const omnigate::SysMillis kNow{std::chrono::seconds(1772798400)};

std::string fixture_dir() {
  return std::string(OMNIGATE_SOURCE_DIR) + "/connectors/telegram/fixtures";
}

std::string read_fixture(const std::string& name) {
  std::ifstream in(fixture_dir() + "/" + name, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// What the pipeline publishes for a submission (the real enrich, region RU).
omnigate::Interaction enrich(omnigate::Submission submission) {
  omnigate::IdentityConfig identity;
  identity.default_region = "RU";
  return omnigate::enrich(std::move(submission), identity);
}

}  // namespace

TEST_CASE("the same Telegram update parsed twice gives the same id and the same document",
          "[telegram][fixtures][dedup]") {
  std::ifstream table_file(fixture_dir() + "/cases.json");
  const json table = json::parse(table_file);
  omnigate::telegram::BotSettings bot;
  bot.account = kAccount;
  size_t compared = 0;
  for (const auto& row : table.at("cases")) {
    if (row.at("interactions").empty()) continue;
    const std::string fixture = row.at("payload");
    INFO("fixture: " << fixture);
    const std::string body = read_fixture(fixture);
    auto first = omnigate::telegram::parse_update(body, bot, kNow);
    auto second = omnigate::telegram::parse_update(body, bot, kNow);
    REQUIRE(first.ok());
    REQUIRE(second.ok());
    REQUIRE(first->submissions.size() == 1);
    REQUIRE(second->submissions.size() == 1);
    const omnigate::Interaction a = enrich(std::move(first->submissions.front()));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a retry arrives later
    const omnigate::Interaction b = enrich(std::move(second->submissions.front()));
    CHECK(a.id == b.id);
    json ja = json::parse(omnigate::serialize(a)), jb = json::parse(omnigate::serialize(b));
    CHECK(ja.at("received_at") != jb.at("received_at"));
    ja.erase("received_at");
    jb.erase("received_at");
    CHECK(ja == jb);
    ++compared;
  }
  CHECK(compared >= 25);
}

// The Update is read in one pass, in the sender's key order (connectors/telegram/
// telegram_payload.cpp): which part counts must not depend on that order.
TEST_CASE("a Telegram update maps the same whatever order its members arrive in",
          "[telegram][parse]") {
  omnigate::telegram::BotSettings bot;
  bot.account = kAccount;
  const std::string message =
      R"({"message_id":7,"date":1772780400,"chat":{"id":42,"type":"private"},"text":"hi"})";
  const std::string edited =
      R"({"message_id":6,"date":1772780000,"edit_date":1772780300,"chat":{"id":42,"type":"private"},"text":"edit"})";
  for (const std::string& body :
       {R"({"update_id":1,"message":)" + message + R"(,"edited_message":)" + edited + "}",
        R"({"edited_message":)" + edited + R"(,"message":)" + message + R"(,"update_id":1})"}) {
    INFO(body);
    auto parsed = omnigate::telegram::parse_update(body, bot, kNow);
    REQUIRE(parsed.ok());
    CHECK(parsed->update_id == 1);
    REQUIRE(parsed->submissions.size() == 1);
    const auto& in = parsed->submissions.front().interaction;
    CHECK(in.kind == "message");  // `message` wins over `edited_message`, as it always did
    REQUIRE(in.message);
    CHECK(in.message->native_id == "7");
  }
  // Of the types acknowledged without publishing, the first in the mapping's list is named,
  // not the first in the body.
  for (const std::string& body : {std::string(R"({"update_id":2,"poll":{},"channel_post":{}})"),
                                  std::string(R"({"channel_post":{},"update_id":2,"poll":{}})")}) {
    INFO(body);
    auto parsed = omnigate::telegram::parse_update(body, bot, kNow);
    REQUIRE(parsed.ok());
    CHECK(parsed->submissions.empty());
    CHECK(parsed->ignored == std::vector<std::string>{"channel_post"});
  }
  // A member of the wrong type reads as absent: a string chat id is not the required integer.
  auto string_chat = omnigate::telegram::parse_update(
      R"({"update_id":3,"message":{"message_id":1,"date":1772780400,"chat":{"id":"42"}}})", bot,
      kNow);
  REQUIRE_FALSE(string_chat.ok());
  CHECK(string_chat.error().detail == "message.chat.id: is required");
}

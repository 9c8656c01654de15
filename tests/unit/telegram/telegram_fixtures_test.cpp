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

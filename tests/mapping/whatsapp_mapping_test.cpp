// The WhatsApp mapping alone (no NATS, no server): what the fixture table cannot show -- the
// edges of a body that is not quite a webhook, and how long parsing a 1000-change POST takes.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "connectors/whatsapp/whatsapp_parse.hpp"

using namespace omnigate;
using namespace omnigate::whatsapp;

namespace {

const AccountSettings kAccount{"main", "106540352242922", StopWords()};

std::string change_with(const std::string& value_members) {
  return R"({"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},)" +
         value_members + "}}]}]}";
}

}  // namespace

TEST_CASE("a body that is not a WhatsApp webhook is bad_request, an empty entry[] is nothing",
          "[whatsapp][mapping]") {
  for (std::string body : {"", "[]", "{\"entry\":{}}", "{\"object\":\"page\"}", "{\"entry\":[1"}) {
    CAPTURE(body);
    auto mapped = parse_webhook(body, kAccount);
    REQUIRE_FALSE(mapped);
    CHECK(mapped.error().code == ErrorCode::bad_request);
  }
  auto empty = parse_webhook(R"({"object":"whatsapp_business_account","entry":[]})", kAccount);
  REQUIRE(empty);
  CHECK(empty->submissions.empty());
  CHECK(empty->ignored.empty());
}

TEST_CASE("events without the key they need are acknowledged and counted, never an error",
          "[whatsapp][mapping]") {
  auto mapped = parse_webhook(
      change_with(
          R"("messages":[{"from":"79161234567","timestamp":"1796029200","type":"text","text":{"body":"no id"}},{"from":"79161234567","id":"wamid.A","timestamp":"1796029200","type":"reaction","reaction":{"emoji":"x"}},{"from":"79161234567","id":"wamid.D","timestamp":"1796029200","type":"reaction","reaction":{"message_id":"","emoji":"x"}}],"statuses":[{"id":"wamid.B","status":"deleted","timestamp":"1"},{"status":"read"}])"),
      kAccount);
  REQUIRE(mapped);
  CHECK(mapped->submissions.empty());
  CHECK(mapped->ignored == std::vector<std::string>{"message_without_id",
                                                    "reaction_without_message_id",
                                                    "reaction_without_message_id", "status_deleted",
                                                    "status_without_id"});
}

TEST_CASE("a status's native key is the wamid, the state and the time: each state its own event",
          "[whatsapp][mapping]") {
  auto mapped = parse_webhook(
      change_with(
          R"("statuses":[{"id":"wamid.C","status":"delivered","timestamp":"1796029200","recipient_id":"79161234567"},{"id":"wamid.C","status":"read","timestamp":"1796029260","recipient_id":"79161234567"}])"),
      kAccount);
  REQUIRE(mapped);
  REQUIRE(mapped->submissions.size() == 2);
  CHECK(mapped->submissions[0].native_key == status_key("wamid.C", "delivered", "1796029200"));
  CHECK(mapped->submissions[1].native_key == status_key("wamid.C", "read", "1796029260"));
  CHECK(mapped->submissions[0].native_key != mapped->submissions[1].native_key);
  // The contact comes from the recipient even without a contacts block (failed statuses).
  REQUIRE(mapped->submissions[0].interaction.contact);
  CHECK(mapped->submissions[0].interaction.contact->identifiers.size() == 2);
}

TEST_CASE("parsing a 1000-change POST", "[whatsapp][mapping][batch]") {
  std::string changes;
  for (int i = 0; i < 1000; ++i) {
    if (i) changes += ",";
    changes +=
        R"({"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"\u0410\u043d\u043d\u0430"},"wa_id":"79161234567","user_id":"RU.1"}],"messages":[{"from":"79161234567","id":"wamid.)" +
        std::to_string(i) +
        R"(","timestamp":"1796029200","type":"text","text":{"body":"\u0417\u0434\u0440\u0430\u0432\u0441\u0442\u0432\u0443\u0439\u0442\u0435"}}]}})";
  }
  std::string body =
      R"({"object":"whatsapp_business_account","entry":[{"id":"1","changes":[)" + changes + "]}]}";
  auto started = std::chrono::steady_clock::now();
  auto mapped = parse_webhook(body, kAccount);
  auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - started);
  REQUIRE(mapped);
  CHECK(mapped->submissions.size() == 1000);
  CHECK(mapped->submissions.back().interaction.message->text == "Здравствуйте");
  WARN("parse_webhook: 1000 changes (" << body.size() << " bytes) in " << elapsed.count() << " us");
}

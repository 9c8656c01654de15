// The connector kit as every channel sees it through the real route: the account's own max_body
// answered 413 by the core before the handler (nothing published, counted), and the common
// stop_words key read for every messenger account.
#include <catch2/catch.hpp>

#include <fstream>

#include "tests/support/fake_bot_api.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate::testing;

namespace {

const std::string kSecret = "kit_Secret-0123456789abcdefghij";

std::string telegram_fixture(const std::string& name) {
  return channel_fixture("telegram", name);
}

// Bots "small" (with `small_keys`) and "large" (defaults).
std::string two_bots(const std::string& nats_url, const std::string& small_keys) {
  std::string section = "  telegram:\n";
  for (const auto& [account, extra] :
       std::vector<std::pair<std::string, std::string>>{{"small", small_keys}, {"large", ""}}) {
    section += "    - account: " + account + "\n      token: \"" + kFakeBotToken +
               "\"\n      mode: webhook\n      secret_token: " + kSecret + "\n" + extra;
  }
  return test_config_yaml(nats_url, "", section);
}

httplib::Result post(RunningGateway& gateway, const std::string& account, const std::string& body) {
  return gateway.client().Post(("/v1/telegram/" + account).c_str(),
                               {{"X-Telegram-Bot-Api-Secret-Token", kSecret}}, body,
                               "application/json");
}

}  // namespace

TEST_CASE("kit: an account's own max_body is enforced by the core before the handler",
          "[integration][kit]") {
  NatsServer nats;
  RunningGateway gateway(two_bots(nats.url(), "      max_body: 512\n"));
  // A real update padded past 512 bytes (JSON allows the whitespace): fine for the large bot,
  // too large for the small one, whose handler must never see it.
  std::string body = telegram_fixture("message_text_ru_emoji_entities.json");
  body.insert(body.find('{') + 1, std::string(600, ' '));
  REQUIRE(body.size() > 512);

  auto refused = post(gateway, "small", body);
  REQUIRE(refused);
  CHECK(refused->status == 413);
  CHECK(nlohmann::json::parse(refused->body)["error"]["code"] == "payload_too_large");
  CHECK(gateway.gateway().metrics().rejected.value({"telegram", "payload_too_large"}) == 1);
  CHECK(read_stream(nats.url()).empty());

  auto accepted = post(gateway, "large", body);
  REQUIRE(accepted);
  CHECK(accepted->status == 200);
  CHECK(read_stream(nats.url()).size() == 1);
}

TEST_CASE("kit: stop_words is an account key of every messenger, read by the kit",
          "[integration][kit]") {
  NatsServer nats;
  RunningGateway gateway(two_bots(nats.url(), "      stop_words: [\"хватит\"]\n"));
  // The fixture's text is "СТОП"; the small bot's only stop word is "хватит", the large bot has
  // the defaults (stop, стоп, отписаться, unsubscribe).
  std::string body = telegram_fixture("message_stop_word_uppercase_cyrillic.json");
  REQUIRE(post(gateway, "small", body)->status == 200);
  REQUIRE(post(gateway, "large", body)->status == 200);
  auto messages = read_stream(nats.url());
  REQUIRE(messages.size() == 2);
  auto consents_of = [&](const std::string& account) {
    for (const auto& m : messages) {
      if (m.body["account"] == account) return m.body.value("consent", nlohmann::json::array());
    }
    return nlohmann::json();
  };
  CHECK(consents_of("small").empty());
  auto large = consents_of("large");
  REQUIRE(large.size() == 1);
  CHECK(large[0]["status"] == "withdrawn");
  CHECK(large[0]["method"] == "keyword");
}

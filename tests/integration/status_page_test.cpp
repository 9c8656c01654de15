// GET /status, the operator's page: behind http.status_token, per configured account the last
// event, the last hour's counts and errors, the pollers with their leases, the spool; against a
// real nats-server, the API channel and Telegram (webhook and a poller on a fake Bot API).
#include <catch2/catch.hpp>

#include "tests/support/fake_bot_api.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using nlohmann::json;

namespace {

const std::string kStatusToken = "status-token-0123456789abcdef";
const std::string kSecret = "wh_Secret-0123456789abcdefghij";

std::string with_status_token(std::string yaml, const std::string& token = kStatusToken) {
  const std::string http = "http:\n";
  REQUIRE(yaml.rfind(http, 0) == 0);
  return yaml.insert(http.size(), "  status_token: " + token + "\n");
}

// The api accounts crm (the harness's) and quiet; Telegram: hook (webhook) and pollbot (poller).
std::string status_config(const std::string& nats_url, const std::string& bot_api_url) {
  std::string telegram =
      "    - account: quiet\n      token: quiet-token-0123456789abcdef\n"
      "  telegram:\n"
      "    - account: hook\n      token: \"" +
      kFakeBotToken + "\"\n      mode: webhook\n      api_url: " + bot_api_url +
      "\n      secret_token: " + kSecret +
      "\n"
      "    - account: pollbot\n      token: \"" +
      kFakeBotToken + "\"\n      mode: poll\n      api_url: " + bot_api_url +
      "\n      poll_timeout: 1s\n";
  return with_status_token(test_config_yaml(nats_url, "", telegram));
}

httplib::Result get_status(const RunningGateway& gateway, const std::string& token,
                           const std::string& query = "?format=json") {
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  return gateway.client().Get(("/status" + query).c_str(), headers);
}

json status_of(const RunningGateway& gateway) {
  auto reply = get_status(gateway, kStatusToken);
  REQUIRE(reply);
  REQUIRE(reply->status == 200);
  return json::parse(reply->body);
}

json account_of(const json& status, const std::string& channel, const std::string& account) {
  for (const auto& row : status["accounts"]) {
    if (row["channel"] == channel && row["account"] == account) return row;
  }
  FAIL("no row for " + channel + "/" + account + " in " + status.dump());
  return {};
}

std::string api_message(const std::string& native_id) {
  return R"({"kind":"message","message":{"native_id":")" + native_id + R"(","text":"Тест"}})";
}

std::string telegram_update(int64_t update_id, const std::string& text) {
  return json{{"update_id", update_id},
              {"message",
               {{"message_id", update_id},
                {"date", 1764000000},
                {"chat", {{"id", 4242}, {"type", "private"}, {"first_name", "Анна"}}},
                {"from", {{"id", 4242}, {"is_bot", false}, {"first_name", "Анна"}}},
                {"text", text}}}}
      .dump();
}

httplib::Result post_update(const RunningGateway& gateway, const std::string& body) {
  httplib::Headers headers{{"X-Telegram-Bot-Api-Secret-Token", kSecret}};
  return gateway.client().Post("/v1/telegram/hook", headers, body, "application/json");
}

}  // namespace

TEST_CASE("status page: off without http.status_token, 401 without the right bearer",
          "[integration][status]") {
  NatsServer nats;
  {
    RunningGateway off(test_config_yaml(nats.url()));
    auto reply = get_status(off, kStatusToken);
    REQUIRE(reply);
    CHECK(reply->status == 404);
    CHECK(reply->body.find("http.status_token") != std::string::npos);
  }
  RunningGateway gateway(with_status_token(test_config_yaml(nats.url())));
  for (const std::string& token : {std::string(), std::string("wrong-token-0123456789abcdef")}) {
    auto reply = get_status(gateway, token);
    REQUIRE(reply);
    CHECK(reply->status == 401);
    CHECK(json::parse(reply->body)["error"]["code"] == "unauthorized");
  }
  CHECK(get_status(gateway, "")->get_header_value("WWW-Authenticate").rfind("Basic ", 0) == 0);
  CHECK(gateway.gateway().metrics().auth_failures.value({"GET /status"}) == 3);

  // What a browser sends once the operator typed the token as the password: HTTP Basic.
  for (const auto& [password, status] : std::vector<std::pair<std::string, int>>{
           {kStatusToken, 200}, {"wrong-token-0123456789", 401}}) {
    auto client = gateway.client();
    client.set_basic_auth("operator", password.c_str());
    auto reply = client.Get("/status?format=json");
    REQUIRE(reply);
    CHECK(reply->status == status);
  }

  auto page = get_status(gateway, kStatusToken, "");
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(page->get_header_value("Content-Type").rfind("text/html", 0) == 0);
  CHECK(page->body.find("<td class=\"account\">crm</td>") != std::string::npos);
  CHECK(page->body.find("http-equiv=\"refresh\"") != std::string::npos);
}

TEST_CASE("status page: counts, last event and errors per account, pollers, nothing personal",
          "[integration][status]") {
  NatsServer nats;
  FakeBotApi fake;
  fake.queue_update(json::parse(telegram_update(900001, "polled hello")));
  RunningGateway gateway(status_config(nats.url(), fake.url()));

  REQUIRE(gateway.post_api("s-1", api_message("s-1"))->status == 202);
  REQUIRE(gateway.post_api("s-2", api_message("s-2"))->status == 202);
  REQUIRE(gateway.post_api("s-1", api_message("s-1"))->status == 202);  // a duplicate
  // A wrong bearer on the API route: an error of that account.
  httplib::Headers bad{{"Authorization", "Bearer wrong-token-0123456789abcdef"},
                       {"Idempotency-Key", "s-3"}};
  auto refused = gateway.client().Post("/v1/api/crm", bad, api_message("s-3"), "application/json");
  REQUIRE(refused);
  REQUIRE(refused->status == 401);
  REQUIRE(post_update(gateway, telegram_update(700001, "webhook hello"))->status == 200);
  // An account nobody configured is refused and recorded nowhere.
  REQUIRE(
      gateway.client().Post("/v1/api/nobody", bad, api_message("x"), "application/json")->status ==
      404);

  REQUIRE(eventually([&] {
    json status = status_of(gateway);
    return account_of(status, "telegram", "pollbot")["last_hour"]["published"] == 1;
  }));
  json status = status_of(gateway);
  INFO(status.dump(2));

  json crm = account_of(status, "api", "crm");
  CHECK(crm["last_hour"]["published"] == 2);
  CHECK(crm["last_hour"]["duplicates"] == 1);
  CHECK(crm["last_hour"]["http_2xx"] == 3);
  CHECK(crm["last_hour"]["http_4xx"] == 1);
  CHECK(crm["last_hour"]["rejected"] == json{{"unauthorized", 1}});
  CHECK(crm["last_error"]["code"] == "unauthorized");
  CHECK(crm["last_error"]["status"] == 401);
  REQUIRE(crm.contains("last_event_at"));
  CHECK(crm["last_event_age_seconds"].get<int64_t>() <= 60);
  CHECK(crm["mode"] == "http");
  CHECK(crm["pollers"].empty());

  json quiet = account_of(status, "api", "quiet");
  CHECK_FALSE(quiet.contains("last_event_at"));
  CHECK_FALSE(quiet.contains("last_error"));
  CHECK(quiet["last_hour"]["published"] == 0);
  CHECK(quiet["last_hour"]["http_4xx"] == 0);

  json hook = account_of(status, "telegram", "hook");
  CHECK(hook["mode"] == "webhook");
  CHECK(hook["last_hour"]["published"] == 1);
  CHECK(hook["last_hour"]["http_2xx"] == 1);
  CHECK(hook.contains("last_event_at"));
  CHECK(hook["pollers"].empty());

  json pollbot = account_of(status, "telegram", "pollbot");
  CHECK(pollbot["mode"] == "poll");
  CHECK(pollbot["last_hour"]["published"] == 1);
  CHECK(pollbot["last_hour"]["http_2xx"] == 0);  // polled, never requested
  REQUIRE(pollbot["pollers"].size() == 1);
  CHECK(pollbot["pollers"][0]["lease_held"] == true);
  CHECK(pollbot["pollers"][0].contains("last_poll_at"));
  CHECK(pollbot["pollers"][0]["consecutive_failures"] == 0);
  REQUIRE(eventually([&] {
    return account_of(status_of(gateway), "telegram", "pollbot")["pollers"][0]["cursor"] ==
           "900002";
  }));

  CHECK(status["accounts"].size() == 4);  // the configured accounts, not "nobody"
  CHECK(status["nats"]["connected"] == true);
  CHECK(status["spool"]["depth"] == 0);
  CHECK(status["version"].is_string());
  CHECK(status["commit"].is_string());
  CHECK(status["uptime_seconds"].get<int64_t>() >= 0);
  CHECK(status.contains("outbox"));

  // Names, counts and codes only: no text anyone sent.
  auto page = get_status(gateway, kStatusToken, "");
  REQUIRE(page);
  for (const std::string& body : {status.dump(), page->body}) {
    CHECK(body.find("hello") == std::string::npos);
    CHECK(body.find("Тест") == std::string::npos);
    CHECK(body.find("Анна") == std::string::npos);
    CHECK(body.find("nobody") == std::string::npos);
  }
  CHECK(page->body.find("<td class=\"account\">pollbot</td>") != std::string::npos);
  CHECK(page->body.find("lease held") != std::string::npos);
}

TEST_CASE("status page: with NATS stopped a spooling account's request shows in the spool",
          "[integration][status]") {
  NatsServer nats;
  FakeBotApi fake;
  RunningGateway gateway(status_config(nats.url(), fake.url()));
  nats.kill();
  REQUIRE(eventually([&] { return status_of(gateway)["nats"]["connected"] == false; }));

  auto spooled = post_update(gateway, telegram_update(700002, "while NATS is away"));
  REQUIRE(spooled);
  REQUIRE(spooled->status == 200);

  json status = status_of(gateway);
  INFO(status.dump(2));
  CHECK(status["spool"]["depth"] == 1);
  CHECK(status["spool"]["bytes"].get<uint64_t>() > 0);
  CHECK(status["spool"].contains("oldest_age_seconds"));
  json hook = account_of(status, "telegram", "hook");
  CHECK(hook["last_hour"]["spooled"] == 1);
  CHECK(hook["last_hour"]["published"] == 0);
  CHECK(hook.contains("last_event_at"));

  auto page = get_status(gateway, kStatusToken, "");
  REQUIRE(page);
  CHECK(page->body.find("1 interaction(s)") != std::string::npos);
  CHECK(page->body.find("not connected") != std::string::npos);
}

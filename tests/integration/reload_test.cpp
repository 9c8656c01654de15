// Reloading the config without a restart (SIGHUP, Gateway::reload): accounts added, re-keyed
// and removed take effect at once, a request in flight keeps the account it was routed with,
// pollers restart with their new settings, and what needs a restart is named and kept.
#include <signal.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gateway/app/gateway.hpp"
#include "gateway/config/config.hpp"
#include "tests/support/fake_bot_api.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate;
using namespace omnigate::testing;
using nlohmann::json;

namespace {

const std::string kSteadyToken = "steady-token-0123456789abcdef";
const std::string kCrmToken = "crm-token-old-0123456789abcdef";
const std::string kCrmNewToken = "crm-token-new-0123456789abcdef";
const std::string kOldToken = "old-token-0123456789abcdefghij";
const std::string kSalesToken = "sales-token-0123456789abcdefgh";

struct ApiAccount {
  std::string name, token;
};

// A whole config: `head` lines go before channels: (http, nats, spool...), then the API
// accounts, then `more` (other channels' sections, indented under channels:).
std::string config_yaml(const std::string& nats_url, const std::string& spool_path,
                        const std::vector<ApiAccount>& accounts, const std::string& more = "",
                        int port = 0) {
  std::string yaml = "http:\n  address: 127.0.0.1\n  port: " + std::to_string(port) +
                     "\n  threads: 8\n"
                     "nats:\n  url: " +
                     nats_url +
                     "\n  connect_timeout: 500ms\n  reconnect_wait: 100ms\n"
                     "  publish_timeout: 2s\n  ack_wait: 500ms\n"
                     "log:\n  level: error\n"
                     "spool:\n  path: " +
                     spool_path + "\nchannels:\n";
  if (!accounts.empty()) yaml += "  api:\n";
  for (const auto& account : accounts)
    yaml += "    - account: " + account.name + "\n      token: " + account.token + "\n";
  return yaml + more;
}

Config load(const std::string& yaml) {
  ConfigContext context("reload.yaml");
  // The file as the running gateway was given it (the server ctest runs these cases on).
  auto config = load_config_text(with_test_http_server(yaml), "reload.yaml", context);
  if (!config) throw std::runtime_error("test config invalid: " + config.error().detail);
  return std::move(config.value());
}

httplib::Result post_api(int port, const std::string& account, const std::string& token,
                         const std::string& key) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(10, 0);
  httplib::Headers headers = {{"Authorization", "Bearer " + token}, {"Idempotency-Key", key}};
  return client.Post(
      ("/v1/api/" + account).c_str(), headers,
      R"({"kind":"message","contact":{"display_name":"Анна"},"message":{"native_id":"n-1","text":"привет"}})",
      "application/json");
}

int status_of(const httplib::Result& result) {
  if (result && result->status >= 400) UNSCOPED_INFO(result->body);
  return result ? result->status : -1;
}

bool contains(const std::vector<std::string>& items, const std::string& item) {
  return std::find(items.begin(), items.end(), item) != items.end();
}

std::vector<std::string> recorded_accounts(Gateway& gateway) {
  std::vector<std::string> out;
  for (const auto& a : gateway.metrics().activity.accounts())
    out.push_back(a.channel + "/" + a.account);
  return out;
}

std::string telegram_section(const std::string& account, const std::string& token,
                             const std::string& api_url) {
  return "  telegram:\n    - account: " + account + "\n      token: \"" + token +
         "\"\n      mode: poll\n      api_url: " + api_url + "\n      poll_timeout: 1s\n";
}

json text_update(int64_t update_id, const std::string& text) {
  return {{"update_id", update_id},
          {"message",
           {{"message_id", update_id},
            {"date", 1767225600},
            {"chat", {{"id", 555000111}, {"type", "private"}, {"first_name", "Анна"}}},
            {"from", {{"id", 555000111}, {"is_bot", false}, {"first_name", "Анна"}}},
            {"text", text}}}};
}

// getUpdates requests that started at or after `since`.
size_t polls_since(const FakeBotApi& fake, std::chrono::steady_clock::time_point since) {
  size_t n = 0;
  for (const auto& poll : fake.polls()) n += poll.at >= since ? 1 : 0;
  return n;
}

}  // namespace

TEST_CASE(
    "reload: accounts added, re-keyed and removed take effect at once, an unchanged account, the "
    "listener and the NATS connection stay, and what needs a restart is named",
    "[integration][reload]") {
  NatsServer nats;
  TempDir dir;
  const std::string spool = dir.path() + "/spool.db";
  RunningGateway running(config_yaml(
      nats.url(), spool, {{"steady", kSteadyToken}, {"crm", kCrmToken}, {"old", kOldToken}}));
  const int port = running.port();
  REQUIRE(status_of(post_api(port, "old", kOldToken, "before-1")) == 202);

  // crm re-keyed, old removed, sales added; the port and the NATS URL changed as well.
  auto outcome = running.gateway().reload(load(config_yaml(
      "nats://127.0.0.1:1", spool,
      {{"steady", kSteadyToken}, {"crm", kCrmNewToken}, {"sales", kSalesToken}}, "", 18080)));
  REQUIRE(outcome);
  CHECK(outcome->accounts.size() == 3);
  CHECK(contains(outcome->accounts, "api/crm changed"));
  CHECK(contains(outcome->accounts, "api/sales added"));
  CHECK(contains(outcome->accounts, "api/old removed"));
  CHECK(contains(outcome->needs_restart, "http.port"));
  CHECK(contains(outcome->needs_restart, "nats.url"));
  CHECK(outcome->needs_restart.size() == 2);

  // Served on the same port, published to the same NATS.
  CHECK(status_of(post_api(port, "steady", kSteadyToken, "after-1")) == 202);
  CHECK(status_of(post_api(port, "crm", kCrmToken, "after-2")) == 401);
  CHECK(status_of(post_api(port, "crm", kCrmNewToken, "after-3")) == 202);
  CHECK(status_of(post_api(port, "sales", kSalesToken, "after-4")) == 202);
  auto gone = post_api(port, "old", kOldToken, "after-5");
  REQUIRE(gone);
  CHECK(gone->status == 404);
  CHECK_THAT(gone->body, Catch::Contains("no api account named 'old'"));
  CHECK(read_stream(nats.url()).size() == 4);

  // The status page follows the accounts.
  auto accounts = recorded_accounts(running.gateway());
  CHECK(contains(accounts, "api/sales"));
  CHECK_FALSE(contains(accounts, "api/old"));

  // The same file again: nothing to do.
  auto again = running.gateway().reload(load(config_yaml(
      "nats://127.0.0.1:1", spool,
      {{"steady", kSteadyToken}, {"crm", kCrmNewToken}, {"sales", kSalesToken}}, "", 18080)));
  REQUIRE(again);
  CHECK(again->accounts.empty());
}

TEST_CASE(
    "reload: a request routed before the reload finishes with the account it began with, "
    "though the reload removed it",
    "[integration][reload]") {
  NatsServer nats;
  TempDir dir;
  const std::string spool = dir.path() + "/spool.db";
  RunningGateway running(
      config_yaml(nats.url(), spool, {{"steady", kSteadyToken}, {"old", kOldToken}}));
  const std::string body =
      R"({"kind":"message","contact":{"display_name":"Олег"},"message":{"native_id":"n-2","text":"в пути"}})";
  RawConnection connection(running.port());
  REQUIRE(connection.send("POST /v1/api/old HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                          kOldToken +
                          "\r\nIdempotency-Key: in-flight-1\r\nContent-Type: application/json\r\n"
                          "Content-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body.substr(0, 10)));
  // The request is routed (its handler is reading the body) before the reload runs.
  auto& metrics = running.gateway().metrics();
  REQUIRE(eventually([&] {
    return metrics.render().find("\nomnigate_http_requests_in_flight 1\n") != std::string::npos;
  }));
  auto outcome =
      running.gateway().reload(load(config_yaml(nats.url(), spool, {{"steady", kSteadyToken}})));
  REQUIRE(outcome);
  CHECK(contains(outcome->accounts, "api/old removed"));

  REQUIRE(connection.send(body.substr(10)));
  auto response = connection.read_response(std::chrono::seconds(10));
  REQUIRE(response);
  CHECK(response->rfind("HTTP/1.1 202", 0) == 0);
  auto messages = read_stream(nats.url());
  REQUIRE(messages.size() == 1);
  CHECK(messages[0].msg_id == interaction_id("api", "old", "in-flight-1"));
  // A request that starts after the reload does not find it.
  CHECK(status_of(post_api(running.port(), "old", kOldToken, "later")) == 404);
}

TEST_CASE(
    "reload: a re-keyed poll account's poller restarts with its new token and address, a removed "
    "one stops polling",
    "[integration][reload][telegram]") {
  NatsServer nats;
  TempDir dir;
  const std::string spool = dir.path() + "/spool.db";
  FakeBotApi first("111111:first-token-abcdefghijklmnopqrstuv");
  FakeBotApi second("222222:second-token-abcdefghijklmnopqrstu");
  RunningGateway running(config_yaml(nats.url(), spool, {{"steady", kSteadyToken}},
                                     telegram_section("desk", first.token(), first.url())));
  auto& metrics = running.gateway().metrics();
  first.queue_update(text_update(700001, "до"));
  REQUIRE(eventually([&] {
    return metrics.interactions_published.value({"telegram", "message"}) == 1;
  }));
  REQUIRE(
      eventually([&] { return stored_cursor(nats.url(), "telegram.desk.offset") == "700002"; }));

  auto outcome = running.gateway().reload(
      load(config_yaml(nats.url(), spool, {{"steady", kSteadyToken}},
                       telegram_section("desk", second.token(), second.url()))));
  REQUIRE(outcome);
  CHECK(contains(outcome->accounts, "telegram/desk changed"));
  // reload() returns once the old poller has ended: the first API is never asked again (a poll
  // it aborted may still be recorded when the fake gives up holding it, so polls are told
  // apart by when they started).
  const auto changed_at = std::chrono::steady_clock::now();
  second.queue_update(text_update(700002, "после"));
  REQUIRE(eventually([&] {
    return metrics.interactions_published.value({"telegram", "message"}) == 2;
  }));
  CHECK(polls_since(first, changed_at) == 0);
  // The cursor is the account's: the new poller resumed after 700001.
  CHECK(second.offsets().front() == 700002);

  auto removed = running.gateway().reload(
      load(config_yaml(nats.url(), spool, {{"steady", kSteadyToken}}, "  telegram: []\n")));
  REQUIRE(removed);
  CHECK(contains(removed->accounts, "telegram/desk removed"));
  // reload() returned after the poller ended and was destroyed: it is off the status page, and
  // the API is not asked again.
  const auto removed_at = std::chrono::steady_clock::now();
  for (const auto& poller : metrics.activity.pollers()) CHECK(poller.account != "desk");
  second.queue_update(text_update(700003, "никто не спросит"));
  // Longer than the poll timeout (1 s): a poller still running would have asked again, and a
  // long poll it still held would have returned the update at once.
  CHECK_FALSE(eventually(
      [&] {
        return metrics.interactions_published.value({"telegram", "message"}) > 2;
      },
      std::chrono::milliseconds(1500)));
  CHECK(polls_since(second, removed_at) == 0);
}

TEST_CASE(
    "reload: new accounts that do not fit the running config are refused whole, nothing changes",
    "[integration][reload][webform]") {
  NatsServer nats;
  TempDir dir;
  const std::string spool = dir.path() + "/spool.db";
  RunningGateway running(config_yaml(nats.url(), spool, {{"steady", kSteadyToken}}));
  // The new file brings a consent text and a form that uses it: the file loads, but the running
  // consent section (kept until a restart) has no such text.
  const std::string consent =
      "consent:\n  signing_key: " + std::string(64, 'a') +
      "\n  texts:\n    - id: pd_v1\n      version: \"1\"\n      purpose: personal_data\n"
      "      channels: [webform]\n      text: Согласен на обработку данных.\n";
  std::string next =
      config_yaml(nats.url(), spool, {{"steady", kSteadyToken}, {"sales", kSalesToken}},
                  "  webform:\n    - account: site\n      allowed_origins: "
                  "[\"https://shop.example\"]\n      consents:\n        - field: "
                  "consent_pd\n          text: pd_v1\n");
  next.insert(next.find("channels:\n"), consent);
  auto outcome = running.gateway().reload(load(next));
  REQUIRE_FALSE(outcome);
  CHECK_THAT(outcome.error().detail, Catch::Contains("pd_v1"));
  CHECK(status_of(post_api(running.port(), "sales", kSalesToken, "s-1")) == 404);
  CHECK(status_of(post_api(running.port(), "steady", kSteadyToken, "s-2")) == 202);
}

TEST_CASE(
    "SIGHUP: the binary re-reads its file and the secret files it names, a file that does not "
    "load is refused with a log line and the running accounts stay",
    "[integration][reload][cli]") {
  NatsServer nats;
  TempDir secrets;
  const std::string token_file = secrets.path() + "/crm.token";
  std::ofstream(token_file) << kCrmToken;
  auto yaml = [&](bool with_sales) {
    std::string text =
        "http:\n  address: 127.0.0.1\n  port: ${OMNIGATE_HTTP_PORT}\n"
        "nats:\n  url: " +
        nats.url() +
        "\nlog:\n  level: info\nspool:\n  path: var/spool.db\n"
        "channels:\n  api:\n    - account: crm\n      token: ${file:" +
        token_file + "}\n";
    if (with_sales) text += "    - account: sales\n      token: " + kSalesToken + "\n";
    return text;
  };
  GatewayProcess process(yaml(false));
  REQUIRE(process.wait_ready());
  const std::string config_path = process.directory() + "/omnigate.yaml";
  auto status = [&](const std::string& account, const std::string& token, const std::string& key) {
    return status_of(post_api(process.port(), account, token, key));
  };
  REQUIRE(status("crm", kCrmToken, "p-1") == 202);
  REQUIRE(status("sales", kSalesToken, "p-2") == 404);

  // A new account in the file and a new token in the secret file.
  std::ofstream(config_path) << yaml(true);
  std::ofstream(token_file) << kCrmNewToken;
  REQUIRE(::kill(process.pid(), SIGHUP) == 0);
  REQUIRE(eventually([&] { return status("sales", kSalesToken, "p-3") == 202; }));
  CHECK(status("crm", kCrmNewToken, "p-4") == 202);
  CHECK(status("crm", kCrmToken, "p-5") == 401);
  CHECK_THAT(process.log_tail(), Catch::Contains("reload: api/sales added"));
  CHECK_THAT(process.log_tail(), Catch::Contains("reload: api/crm changed"));
  // Never a secret in the log.
  CHECK(process.log_tail(20000).find(kCrmNewToken) == std::string::npos);

  // A broken file: refused, the running accounts keep working.
  std::ofstream(config_path) << "channels:\n  api:\n    - account: crm\n      tokn: x\n";
  REQUIRE(::kill(process.pid(), SIGHUP) == 0);
  REQUIRE(
      eventually([&] { return process.log_tail().find("reload refused") != std::string::npos; }));
  CHECK(status("sales", kSalesToken, "p-6") == 202);
  CHECK(process.running());
}

TEST_CASE(
    "reload: an account counts as changed when any value it reads differs (on_nats_down, an "
    "empty stop_words list), not when it only moved in the list",
    "[integration][reload][config]") {
  auto fingerprints = [](const std::string& first_extra, bool swapped) {
    std::string a =
        "    - account: desk\n      token: \"123456:desk-token-abcdefghijklmnopq\"\n"
        "      mode: poll\n" +
        first_extra;
    std::string b =
        "    - account: shop\n      token: \"654321:shop-token-abcdefghijklmnopq\"\n"
        "      mode: poll\n";
    Config config = load(config_yaml("nats://127.0.0.1:4222", "/tmp/unused.db", {},
                                     "  telegram:\n" + (swapped ? b + a : a + b)));
    return config.account_fingerprints;
  };
  const auto base = fingerprints("", false);
  CHECK(fingerprints("", true) == base);
  const auto policy = fingerprints("      on_nats_down: reject\n", false);
  CHECK(policy.at("telegram/desk") != base.at("telegram/desk"));
  CHECK(policy.at("telegram/shop") == base.at("telegram/shop"));
  CHECK(fingerprints("      stop_words: []\n", false).at("telegram/desk") !=
        base.at("telegram/desk"));
}

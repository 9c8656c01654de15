// Issue 7's one-request crashes and 500s, sent over HTTP to a real gateway: every JSON route
// answers 400 with a message (never 500, never a dead process), and the gateway keeps serving.
#include <catch2/catch.hpp>

#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using nlohmann::json;

namespace {

const std::string kLinksToken = "links-token-0123456789abcdef";
const std::string kSecret = "wh_Secret-0123456789abcdefghij";

// The API account of test_config_yaml takes 4 KiB; these bodies need room to reach the parser.
std::string with_large_api_body(std::string yaml) {
  const std::string small = "      max_body: 4KiB\n";
  yaml.replace(yaml.find(small), small.size(), "      max_body: 1MiB\n");
  return yaml;
}

std::string hostile_config(const std::string& nats_url) {
  return with_large_api_body(
      test_config_yaml(nats_url, "",
                       "  webform:\n"
                       "    - account: main\n"
                       "      max_body: 1MiB\n"
                       "  telegram:\n"
                       "    - account: shopbot\n"
                       "      token: \"7212345678:AAHfake_TOKEN-for-integration_tests0\"\n"
                       "      mode: webhook\n"
                       "      api_url: http://127.0.0.1:9\n"
                       "      secret_token: " +
                           kSecret +
                           "\n"
                           "consent:\n"
                           "  signing_key: hostile-signing-key-0123456789abcdef\n"
                           "  links_token: " +
                           kLinksToken + "\n"));
}

std::string error_code(const httplib::Result& res) {
  json body = json::parse(res->body, nullptr, false);
  return body.is_object() && body.contains("error") ? body["error"].value("code", "") : "";
}

}  // namespace

TEST_CASE(
    "hostile: 1e400, 40 000-deep JSON and a 150 KB consent channel are 400 on every JSON "
    "route, and the gateway keeps serving",
    "[integration][hostile]") {
  NatsServer nats;
  RunningGateway gateway(hostile_config(nats.url()));
  auto client = gateway.client();
  const httplib::Headers telegram = {{"X-Telegram-Bot-Api-Secret-Token", kSecret}};
  const httplib::Headers links = {{"Authorization", "Bearer " + kLinksToken}};
  const std::string deep = "{\"a\":" + std::string(40000, '[') + std::string(40000, ']') + "}";
  const std::string huge_number = R"({"phone":"1","n":1e400})";
  const std::string long_channel =
      R"({"kind":"consent","consent":[{"purpose":"marketing","status":"granted","method":"api",)"
      R"("channels":[")" +
      std::string(150 * 1024, 'a') + R"("]}]})";

  for (const std::string& body : {huge_number, deep}) {
    INFO(body.substr(0, 40));
    auto api = gateway.post_api("k-" + std::to_string(body.size()), body);
    REQUIRE(api);
    CHECK(api->status == 400);
    CHECK(error_code(api) == "bad_request");
    auto form = client.Post("/v1/webform/main", body, "application/json");
    REQUIRE(form);
    CHECK(form->status == 400);
    auto update = client.Post("/v1/telegram/shopbot", telegram, body, "application/json");
    REQUIRE(update);
    CHECK(update->status == 400);
  }
  // POST /v1/consent/links takes 16 KiB: 5 000 levels fit.
  for (const std::string& body : {huge_number, std::string(5000, '[') + std::string(5000, ']')}) {
    auto mint = client.Post("/v1/consent/links", links, body, "application/json");
    REQUIRE(mint);
    CHECK(mint->status == 400);
    CHECK(error_code(mint) == "bad_request");
  }
  auto channel = gateway.post_api("k-channel", long_channel);
  REQUIRE(channel);
  CHECK(channel->status == 400);
  CHECK(error_code(channel) == "invalid_field");

  auto health = client.Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(read_stream(nats.url()).empty());
}

TEST_CASE(
    "hostile: POST /v1/consent/links refuses purposes and channels that are not "
    "snake_case keys",
    "[integration][hostile][consent]") {
  NatsServer nats;
  RunningGateway gateway(hostile_config(nats.url()));
  auto client = gateway.client();
  const httplib::Headers links = {{"Authorization", "Bearer " + kLinksToken}};
  for (const char* body :
       {R"({"account":"main","email":"a@example.ru","purposes":["Marketing Emails!"]})",
        R"({"account":"main","email":"a@example.ru","purposes":"marketing"})",
        R"({"account":"main","email":"a@example.ru","purposes":[7]})",
        R"({"account":"main","email":"a@example.ru","channels":["E-Mail"]})",
        R"({"account":"main","email":"a@example.ru","language":"ru\r\n"})"}) {
    INFO(body);
    auto res = client.Post("/v1/consent/links", links, body, "application/json");
    REQUIRE(res);
    CHECK(res->status == 400);
    CHECK(error_code(res) == "invalid_field");
  }
  auto ok = client.Post(
      "/v1/consent/links", links,
      R"({"account":"main","email":"a@example.ru","purposes":["marketing_emails"],"channels":["email"]})",
      "application/json");
  REQUIRE(ok);
  CHECK(ok->status == 201);
}

TEST_CASE("hostile: the longest path cpp-httplib reads is answered on every channel route",
          "[integration][hostile]") {
  // cpp-httplib matches routes with std::regex (its own, not the gateway's): a path segment as
  // long as its 8 KiB request line allows must not recurse the matcher off the stack.
  NatsServer nats;
  RunningGateway gateway(hostile_config(nats.url()));
  auto client = gateway.client();
  const std::string segment(8000, 'a');
  for (const std::string prefix :
       {"/v1/api/", "/v1/webform/", "/v1/telegram/", "/v1/media/telegram/shopbot/"}) {
    INFO(prefix);
    auto res = client.Post((prefix + segment).c_str(), "{}", "application/json");
    REQUIRE(res);
    CHECK(res->status < 500);
  }
  auto health = client.Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
}

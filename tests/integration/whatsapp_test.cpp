// WhatsApp Business Cloud API end to end: every case of connectors/whatsapp/fixtures/cases.json
// through the real GET/POST /v1/whatsapp/<account> route into a real nats-server; a batch with
// NATS away and back; Meta's retry after the stream's duplicate window; a 1000-message POST; the
// body cap; the Graph API calls (media id → URL, `omnigate whatsapp info`) against a local fake.
// Facts about WhatsApp: shared/design/CHANNELS.md and connectors/whatsapp/fixtures/FIXTURES.md.
#include <catch2/catch.hpp>

#include <httplib.h>

#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "connectors/whatsapp/graph_api.hpp"
#include "gateway/config/config.hpp"
#include "gateway/config/config_reader.hpp"
#include "gateway/core/secrets.hpp"
#include "gateway/http/verify.hpp"
#include "gateway/model/ids.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

// The test account of FIXTURES.md.
const std::string kAppSecret = "wa-test-app-secret-0123456789";
const std::string kVerifyToken = "wa-verify-token-0123456789";
const std::string kPhoneNumberId = "106540352242922";
const std::string kAccessToken = "wa-access-token-0123456789abcdef";

std::string fixture(const std::string& name) {
  return channel_fixture("whatsapp", name);
}

std::string signature_of(const std::string& body, const std::string& secret = kAppSecret) {
  return "sha256=" + omnigate::verify::hmac_sha256_hex(secret, body);
}

std::string whatsapp_section(const std::string& api_url = "http://127.0.0.1:9",
                             const std::string& extra = "") {
  return "  whatsapp:\n"
         "    - account: main\n"
         "      phone_number_id: \"" +
         kPhoneNumberId +
         "\"\n"
         "      app_secret: " +
         kAppSecret +
         "\n"
         "      verify_token: " +
         kVerifyToken +
         "\n"
         "      access_token: " +
         kAccessToken +
         "\n"
         "      api_url: " +
         api_url + "\n" + extra;
}

httplib::Result post_signed(const RunningGateway& gateway, const std::string& body) {
  httplib::Headers headers{{"X-Hub-Signature-256", signature_of(body)}};
  auto client = gateway.client();
  client.set_read_timeout(60, 0);
  return client.Post("/v1/whatsapp/main", headers, body, "application/json");
}

std::vector<StreamMessage> whatsapp_messages(const std::string& nats_url) {
  std::vector<StreamMessage> out;
  for (auto& m : read_stream(nats_url)) {
    if (m.body.value("channel", "") == "whatsapp") out.push_back(std::move(m));
  }
  return out;
}

// One WhatsApp webhook body of `count` text messages, one change each, in one entry, as Meta
// writes it (\u-escaped non-ASCII), each text padded with `pad` Cyrillic letters.
std::string text_batch(int count, size_t pad, int64_t first_timestamp = 1796029200) {
  static const char* kPeople[][3] = {{"79161234567", "RU.1487203956112834", "Анна Смирнова"},
                                     {"79037654321", "RU.2290457718346019", "Дмитрий Волков"},
                                     {"79263456789", "RU.3318840275519276", "Екатерина"},
                                     {"79101112233", "RU.1175390046628813", "Сергей Иванов"},
                                     {"79649876543", "RU.4402918837465102", "Ольга Кузнецова"}};
  std::string padding;
  for (size_t i = 0; i < pad; ++i) padding += "ж";
  json changes = json::array();
  for (int i = 0; i < count; ++i) {
    const auto& who = kPeople[i % 5];
    json value = {
        {"messaging_product", "whatsapp"},
        {"metadata",
         {{"display_phone_number", "15550783881"}, {"phone_number_id", kPhoneNumberId}}},
        {"contacts",
         json::array({{{"profile", {{"name", who[2]}}}, {"wa_id", who[0]}, {"user_id", who[1]}}})},
        {"messages",
         json::array(
             {{{"from", who[0]},
               {"from_user_id", who[1]},
               {"id", "wamid.bulk-" + std::to_string(first_timestamp) + "-" + std::to_string(i)},
               {"timestamp", std::to_string(first_timestamp + i)},
               {"type", "text"},
               {"text", {{"body", "Сообщение №" + std::to_string(i) + " " + padding}}}}})}};
    changes.push_back({{"value", value}, {"field", "messages"}});
  }
  json body = {{"object", "whatsapp_business_account"},
               {"entry", json::array({{{"id", "102290129340398"}, {"changes", changes}}})}};
  return body.dump(-1, ' ', true);  // ensure_ascii: \uXXXX, as Meta sends it
}

// A local stand-in for the Graph API (https://developers.facebook.com/docs/graph-api): GET
// /v21.0/<media_id> and /v21.0/<phone_number_id>?fields=..., bearer token checked, Meta's
// error objects for an unknown id (400, code 100) and a bad token (401, code 190).
class FakeGraphApi {
 public:
  FakeGraphApi() {
    server_.Get(R"(/v21\.0/([A-Za-z0-9_]+))", [this](const httplib::Request& req,
                                                     httplib::Response& res) {
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(
            req.path + (req.has_param("fields") ? "?fields=" + req.get_param_value("fields") : ""));
      }
      if (req.get_header_value("Authorization") != "Bearer " + kAccessToken) {
        res.status = 401;
        res.set_content(
            R"({"error":{"message":"Invalid OAuth access token - Cannot parse access token","type":"OAuthException","code":190,"fbtrace_id":"AbCdEf"}})",
            "application/json");
        return;
      }
      std::string id = req.matches[1];
      if (id == kPhoneNumberId) {
        res.set_content(json({{"display_phone_number", "+1 555-078-3881"},
                              {"verified_name", "Цветочная лавка"},
                              {"quality_rating", "GREEN"},
                              {"id", kPhoneNumberId}})
                            .dump(),
                        "application/json");
        return;
      }
      if (id == "1037543291543636") {
        res.set_content(json({{"messaging_product", "whatsapp"},
                              {"url", url() + "/whatsapp_business/attachments/?mid=" + id},
                              {"mime_type", "image/jpeg"},
                              {"sha256", "EWWIXMNrFDVOpKanPPwZoNES8TDRRunX+kSV5dBajEM="},
                              {"file_size", 48213},
                              {"id", id}})
                            .dump(),
                        "application/json");
        return;
      }
      res.status = 400;
      res.set_content(
          R"({"error":{"message":"Unsupported get request. Object with ID ')" + id +
              R"(' does not exist, cannot be loaded due to missing permissions, or does not support this operation.","type":"GraphMethodException","code":100,"error_subcode":33,"fbtrace_id":"AbCdEf"}})",
          "application/json");
    });
    // The media URL the Graph API hands out: downloaded with the same bearer token (Meta answers
    // 401 without it). "broken" media ids get a 500 before the first byte.
    server_.Get("/whatsapp_business/attachments/",
                [this](const httplib::Request& req, httplib::Response& res) {
                  {
                    std::lock_guard lock(mutex_);
                    requests_.push_back(req.path + "?mid=" + req.get_param_value("mid"));
                  }
                  if (req.get_header_value("Authorization") != "Bearer " + kAccessToken) {
                    res.status = 401;
                    return;
                  }
                  res.set_content(media_bytes(), "application/octet-stream");
                });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // bind_to_any_port already listens: a connection waits in the backlog until the loop runs.
    eventually([this] { return server_.is_running(); });
  }
  ~FakeGraphApi() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string api_url() const { return url() + "/v21.0"; }
  // The bytes of media 1037543291543636 (48213 of them, as its file_size says).
  static const std::string& media_bytes() {
    static const std::string bytes = [] {
      std::string b(48213, '\0');
      for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<char>((i * 131 + 7) % 251);
      return b;
    }();
    return bytes;
  }
  std::vector<std::string> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  mutable std::mutex mutex_;
  std::vector<std::string> requests_;
};

}  // namespace

// Every case of connectors/whatsapp/fixtures/cases.json runs through the shared fixture runner
// (integration_tests "fixture table: whatsapp"); this checks what a table row cannot say.
TEST_CASE("WhatsApp: the same message twice in one POST is published once, the copy a duplicate",
          "[integration][whatsapp][dedup]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url(), "", whatsapp_section()));
  // Meta may repeat a change inside one delivery; 300 copies also keep the in-batch check honest
  // about its cost (it was a comparison with every earlier event).
  json doc = json::parse(fixture("message_text_ru_emoji.json"));
  const json change = doc["entry"][0]["changes"][0];
  doc["entry"][0]["changes"] = json::array();
  for (int i = 0; i < 300; ++i) doc["entry"][0]["changes"].push_back(change);
  const std::string body = doc.dump(-1, ' ', true);
  auto answer = post_signed(gateway, body);
  REQUIRE(answer);
  CHECK(answer->status == 200);
  auto messages = whatsapp_messages(nats.url());
  REQUIRE(messages.size() == 1);
  CHECK(messages[0].msg_id ==
        omnigate::interaction_id("whatsapp", "main",
                                 change["value"]["messages"][0]["id"].get<std::string>()));
  CHECK(gateway.gateway().metrics().duplicates.value({"whatsapp"}) == 299);
}

TEST_CASE("WhatsApp: the events of one POST share its raw hash, and a message's id is its wamid",
          "[integration][whatsapp]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url(), "", whatsapp_section()));
  const std::string batch = fixture("batch_messages_and_statuses.json");
  auto answer = post_signed(gateway, batch);
  REQUIRE(answer);
  CHECK(answer->status == 200);
  auto messages = whatsapp_messages(nats.url());
  REQUIRE(messages.size() == 5);
  CHECK(schema_problems(messages).empty());
  for (const auto& m : messages) CHECK(m.body["raw"]["sha256"] == omnigate::sha256_hex(batch));
  const json doc = json::parse(batch);
  const std::string first_wamid =
      doc["entry"][0]["changes"][0]["value"]["messages"][0]["id"].get<std::string>();
  CHECK(messages.front().msg_id == omnigate::interaction_id("whatsapp", "main", first_wamid));
}

TEST_CASE(
    "WhatsApp: NATS away → 503 for the batch, Meta's retry then publishes only what is "
    "missing",
    "[integration][whatsapp][outage]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(
      nats.url(), "", whatsapp_section("http://127.0.0.1:9", "      on_nats_down: reject\n")));
  const std::string full = fixture("batch_messages_and_statuses.json");
  // What an earlier delivery already made durable: the first entry of the batch alone.
  json first_entry = json::parse(full);
  first_entry["entry"].erase(1);
  const std::string earlier = first_entry.dump(-1, ' ', true);
  auto before = post_signed(gateway, earlier);
  REQUIRE(before);
  REQUIRE(before->status == 200);
  const size_t already = whatsapp_messages(nats.url()).size();
  REQUIRE(already >= 1);
  REQUIRE(already < 5);

  nats.stop();
  auto during = post_signed(gateway, full);
  REQUIRE(during);
  CHECK(during->status == 503);
  CHECK_FALSE(during->get_header_value("Retry-After").empty());

  nats.start();
  auto client = gateway.client();
  REQUIRE(eventually(
      [&] {
        auto ready = client.Get("/readyz");
        return ready && ready->status == 200;
      },
      seconds(20)));
  auto retry = post_signed(gateway, full);
  REQUIRE(retry);
  CHECK(retry->status == 200);
  auto messages = whatsapp_messages(nats.url());
  CHECK(messages.size() == 5);  // each event once: the earlier ones were not published again
  std::set<std::string> ids;
  for (const auto& m : messages) ids.insert(m.msg_id);
  CHECK(ids.size() == 5);
  CHECK(schema_problems(messages).empty());
}

TEST_CASE(
    "WhatsApp: a retry of the same POST after the stream's duplicate window publishes "
    "nothing new",
    "[integration][whatsapp][dedup]") {
  NatsServer nats;
  RunningGateway gateway(
      test_config_yaml(nats.url(), "  stream:\n    duplicate_window: 1s\n", whatsapp_section()));
  const std::string body = fixture("batch_messages_and_statuses.json");
  auto first = post_signed(gateway, body);
  REQUIRE(first);
  REQUIRE(first->status == 200);
  REQUIRE(whatsapp_messages(nats.url()).size() == 5);
  const uint64_t duplicates_before = gateway.gateway().metrics().duplicates.value({"whatsapp"});
  // Meta's retries come minutes to days later: past JetStream's own window, only the
  // gateway's dedup horizon can recognise them.
  std::this_thread::sleep_for(milliseconds(1500));
  auto retry = post_signed(gateway, body);
  REQUIRE(retry);
  CHECK(retry->status == 200);
  CHECK(whatsapp_messages(nats.url()).size() == 5);
  CHECK(gateway.gateway().metrics().duplicates.value({"whatsapp"}) - duplicates_before == 5);
}

TEST_CASE(
    "WhatsApp: a POST of 1000 messages (3 MB) is answered 200 with all 1000 published in "
    "order, one byte over max_body is 413",
    "[integration][whatsapp][batch]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url(), "", whatsapp_section()));
  // Pad so that the \u-escaped body is the 3 MB Meta may send (under the 4 MiB default cap).
  std::string body = text_batch(1000, 0);
  const size_t per_letter = std::string("\\u0436").size();
  size_t pad = (3'050'000 - body.size()) / (1000 * per_letter);
  body = text_batch(1000, pad);
  CAPTURE(body.size());
  REQUIRE(body.size() >= 3'000'000);
  REQUIRE(body.size() <= 3'145'728);

  auto started = std::chrono::steady_clock::now();
  auto response = post_signed(gateway, body);
  auto elapsed =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - started);
  REQUIRE(response);
  CHECK(response->status == 200);
  WARN("WhatsApp: 1000 messages in one " << body.size() << "-byte POST answered "
                                         << response->status << " in " << elapsed.count() << " ms");
  auto messages = whatsapp_messages(nats.url());
  REQUIRE(messages.size() == 1000);
  CHECK(messages.front().body["message"]["native_id"] == "wamid.bulk-1796029200-0");
  CHECK(messages.back().body["message"]["native_id"] == "wamid.bulk-1796029200-999");
  CHECK(schema_problems(messages).empty());

  // max_body + 1, validly signed: refused before anything reads it.
  std::string over = text_batch(1, 0, 1796100000);
  over.insert(over.size() - 2, std::string(4 * 1024 * 1024 + 1 - over.size(), ' '));
  REQUIRE(over.size() == 4 * 1024 * 1024 + 1);
  auto refused = post_signed(gateway, over);
  REQUIRE(refused);
  CHECK(refused->status == 413);
  CHECK(whatsapp_messages(nats.url()).size() == 1000);
}

TEST_CASE("WhatsApp: a media id resolves to its URL and MIME type through the Graph API",
          "[integration][whatsapp][graph]") {
  using namespace omnigate::whatsapp;
  FakeGraphApi fake;
  GraphApi api(fake.api_url(), kAccessToken);
  auto media = resolve_media(api, "1037543291543636", seconds(5));
  REQUIRE(media);
  CHECK(media->url == fake.url() + "/whatsapp_business/attachments/?mid=1037543291543636");
  CHECK(media->mime_type == "image/jpeg");
  CHECK(media->sha256 == "EWWIXMNrFDVOpKanPPwZoNES8TDRRunX+kSV5dBajEM=");
  CHECK(media->file_size == 48213);

  auto unknown = resolve_media(api, "999000111", seconds(5));
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().code == omnigate::ErrorCode::not_found);
  CHECK(unknown.error().detail.find("error 100") != std::string::npos);

  auto not_an_id = resolve_media(api, "../me", seconds(5));
  REQUIRE_FALSE(not_an_id);
  CHECK(not_an_id.error().code == omnigate::ErrorCode::not_found);
  CHECK(fake.requests().size() == 2);  // never sent

  auto refused = resolve_media(GraphApi(fake.api_url(), "revoked-token-0123456789"),
                               "1037543291543636", seconds(5));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == omnigate::ErrorCode::unauthorized);
  CHECK(refused.error().detail.find("revoked-token") == std::string::npos);

  auto away = resolve_media(
      GraphApi("http://127.0.0.1:" + std::to_string(free_tcp_port()) + "/v21.0", kAccessToken),
      "1037543291543636", seconds(5));
  REQUIRE_FALSE(away);
  CHECK(away.error().code == omnigate::ErrorCode::not_durable);
}

TEST_CASE("WhatsApp media through the core's proxy: the CRM's bearer, Meta's token never shown",
          "[integration][whatsapp][media]") {
  FakeGraphApi fake;
  NatsServer nats;
  const std::string media_token = "wa-media-token-0123456789abcdef";
  RunningGateway gateway(test_config_yaml(
      nats.url(), "",
      whatsapp_section(fake.api_url(), "      media_token: " + media_token + "\n")));
  auto client = gateway.client();
  const httplib::Headers crm = {{"Authorization", "Bearer " + media_token}};

  auto file = client.Get("/v1/media/whatsapp/main/1037543291543636", crm);
  REQUIRE(file);
  CHECK(file->status == 200);
  CHECK(file->get_header_value("Content-Type") == "image/jpeg");  // the Graph API's mime_type
  CHECK(file->body == FakeGraphApi::media_bytes());
  // Resolved through the Graph API, then downloaded with Meta's token (the fake refuses without).
  auto requests = fake.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0] == "/v21.0/1037543291543636");
  CHECK(requests[1] == "/whatsapp_business/attachments/?mid=1037543291543636");

  auto unknown = client.Get("/v1/media/whatsapp/main/999000111", crm);
  REQUIRE(unknown);
  CHECK(unknown->status == 404);  // Graph error 100: not a media id Meta knows

  auto wrong = client.Get("/v1/media/whatsapp/main/1037543291543636",
                          {{"Authorization", "Bearer " + kAccessToken}});
  REQUIRE(wrong);
  CHECK(wrong->status == 401);         // Meta's access token is not the CRM's media token
  CHECK(fake.requests().size() == 3);  // the refused requests reached nothing but Graph's 100
}

TEST_CASE("omnigate whatsapp info <account> prints the number as the Graph API reports it",
          "[integration][whatsapp][cli]") {
  FakeGraphApi fake;
  NatsServer nats;
  TempDir dir;
  std::string config_path = dir.path() + "/omnigate.yaml";
  {
    std::ofstream out(config_path);
    out << test_config_yaml(nats.url(), "", whatsapp_section(fake.api_url()));
  }
  const std::string cli = std::string(OMNIGATE_BINARY) + " whatsapp ";
  auto info = run_command(cli + "info main --config " + config_path);
  CAPTURE(info.output);
  CHECK(info.exit_code == 0);
  CHECK_THAT(info.output, Catch::Contains("+1 555-078-3881"));
  CHECK_THAT(info.output, Catch::Contains("Цветочная лавка"));
  CHECK_THAT(info.output, Catch::Contains("GREEN"));
  REQUIRE(fake.requests().size() == 1);
  CHECK(fake.requests()[0] ==
        "/v21.0/" + kPhoneNumberId + "?fields=display_phone_number,verified_name,quality_rating");

  auto unknown = run_command(cli + "info nosuch --config " + config_path);
  CHECK(unknown.exit_code == 2);
  CHECK_THAT(unknown.output, Catch::Contains("no whatsapp account named 'nosuch'"));
}

TEST_CASE(
    "WhatsApp: the subscription check answers only subscribe with the right token and a "
    "plausible challenge",
    "[integration][whatsapp][verify]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url(), "", whatsapp_section()));
  auto client = gateway.client();
  auto get = [&](const std::string& query) {
    auto r = client.Get(("/v1/whatsapp/main?" + query).c_str());
    REQUIRE(r);
    return r->status;
  };
  const std::string token = "hub.verify_token=" + kVerifyToken;
  CHECK(get("hub.mode=subscribe&hub.challenge=42&" + token) == 200);
  CHECK(get("hub.mode=unsubscribe&hub.challenge=42&" + token) == 403);
  CHECK(get("hub.challenge=42&" + token) == 403);
  CHECK(get("hub.mode=subscribe&hub.challenge=42") == 403);
  CHECK(get("hub.mode=subscribe&" + token) == 400);
  CHECK(get("hub.mode=subscribe&hub.challenge=%3Cscript%3E&" + token) == 400);
  auto unknown = client.Get("/v1/whatsapp/other?hub.mode=subscribe&hub.challenge=42&" + token);
  REQUIRE(unknown);
  CHECK(unknown->status == 404);
  CHECK(gateway.gateway().metrics().rejected.value({"whatsapp", "forbidden"}) == 3);
  CHECK(whatsapp_messages(nats.url()).empty());
}

TEST_CASE(
    "WhatsApp config: the number, the app secret and the verify token are required, "
    "secrets long enough, unknown keys refused",
    "[integration][whatsapp][config]") {
  auto problems = [](const std::string& account_keys) {
    omnigate::ConfigContext context("test.yaml");
    auto loaded = omnigate::load_config_text(
        test_config_yaml("nats://127.0.0.1:4222", "",
                         "  whatsapp:\n    - account: main\n" + account_keys),
        "test.yaml", context);
    return loaded ? std::string() : loaded.error().detail;
  };
  const std::string good = "      phone_number_id: \"" + kPhoneNumberId +
                           "\"\n      app_secret: " + kAppSecret +
                           "\n      verify_token: " + kVerifyToken + "\n";
  CHECK(problems(good).empty());
  CHECK_THAT(
      problems("      app_secret: " + kAppSecret + "\n      verify_token: " + kVerifyToken + "\n"),
      Catch::Contains("phone_number_id"));
  CHECK_THAT(problems("      phone_number_id: \"1\"\n      verify_token: " + kVerifyToken + "\n"),
             Catch::Contains("app_secret"));
  CHECK_THAT(problems("      phone_number_id: \"1\"\n      app_secret: " + kAppSecret + "\n"),
             Catch::Contains("verify_token"));
  CHECK_THAT(
      problems("      phone_number_id: \"1\"\n      app_secret: short\n      verify_token: " +
               kVerifyToken + "\n"),
      Catch::Contains("app_secret"));
  CHECK_THAT(problems(good + "      webhook_secret: x\n"), Catch::Contains("webhook_secret"));
  CHECK_THAT(problems("      phone_number_id: \"+1 555\"\n      app_secret: " + kAppSecret +
                      "\n      verify_token: " + kVerifyToken + "\n"),
             Catch::Contains("phone_number_id"));
}

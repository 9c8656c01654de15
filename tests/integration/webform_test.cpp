// Web forms end to end: POST /v1/webform/<account> as a browser sends it (plain HTML post,
// multipart, the embed script's JSON fetch) → a `lead` with consent evidence in JetStream,
// with a real nats-server. Every interaction these tests publish is validated against the schema.
// What each kind of submission becomes is the fixture table connectors/webform/fixtures/cases.json
// (integration_tests "fixture table: webform"); here what a table row cannot say: retries,
// CORS preflight, render tokens, static pages, proxies and rate limits, bodies far above 8 KB.
#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <thread>

#include "gateway/http/request.hpp"
#include "gateway/model/ids.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using nlohmann::json;
using omnigate::html_escape;
using omnigate::interaction_id;
using omnigate::url_encode;

namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

const std::string kSigningKey = "webform-test-signing-key-0123456789abcdef";
const std::string kLinksToken = "links-token-0123456789abcdef";
// Characters that HTML must escape, so the demo page shows the text, not markup.
const std::string kPdText =
    R"(Я даю согласие ООО "Пример" & партнёрам на обработку <персональных данных> (имя, телефон).)";
const std::string kMarketingText =
    "Хочу получать новости ООО «Пример» по e-mail. Отписаться можно в любой момент.";
const std::string kPolicyUrl = "https://shop.example/privacy";
const std::string kTitle = R"(Заявка "Обратный звонок" & <демо>)";
const std::string kOrigin = "https://shop.example";
const std::string kSuccessUrl = "https://shop.example/thanks";
const std::string kUserAgent =
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

// consent: with two texts, and channels.webform with `main` (the form of a site) and `tiny`
// (4 KiB cap, no success_url, no demo page). Appended after test_config_yaml's channels.api.
std::string webform_yaml(int main_rate_limit) {
  return "  webform:\n"
         "    - account: main\n"
         "      title: '" +
         kTitle +
         "'\n"
         "      allowed_origins: [\"" +
         kOrigin +
         "\"]\n"
         "      success_url: " +
         kSuccessUrl +
         "\n"
         "      required: [name, phone]\n"
         "      consents:\n"
         "        - field: consent_pd\n"
         "          text: pd-processing\n"
         "          required: true\n"
         "        - field: consent_marketing\n"
         "          text: marketing-email\n"
         "      min_fill_time: 1s\n"
         "      rate_limit_per_minute: " +
         std::to_string(main_rate_limit) +
         "\n"
         "      demo: true\n"
         "    - account: tiny\n"
         "      language: en\n"
         "      max_body: 4KiB\n"
         "      rate_limit_per_minute: 1000\n"
         "consent:\n"
         "  signing_key: " +
         kSigningKey +
         "\n"
         "  links_token: " +
         kLinksToken +
         "\n"
         "  texts:\n"
         "    - id: pd-processing\n"
         "      version: \"2025-09\"\n"
         "      purpose: processing\n"
         "      channels: [email, phone]\n"
         "      text: '" +
         kPdText +
         "'\n"
         "      policy_url: " +
         kPolicyUrl +
         "\n"
         "    - id: marketing-email\n"
         "      version: \"3\"\n"
         "      purpose: marketing\n"
         "      channels: [email]\n"
         "      text: '" +
         kMarketingText + "'\n";
}

std::string webform_config(const std::string& nats_url, bool trust_localhost = false,
                           int main_rate_limit = 1000) {
  std::string yaml = test_config_yaml(nats_url, "", webform_yaml(main_rate_limit));
  if (trust_localhost) {
    // test_config_yaml has no hook into http:, so add the key after one of its lines.
    const std::string anchor = "  retry_after: 7s\n";
    yaml.replace(yaml.find(anchor), anchor.size(), anchor + "  trusted_proxies: [127.0.0.1]\n");
  }
  return yaml;
}

std::string urlencoded(const Fields& fields) {
  std::string body;
  for (const auto& [key, value] : fields) {
    if (!body.empty()) body += '&';
    body += url_encode(key) + "=" + url_encode(value);
  }
  return body;
}

enum class Encoding { urlencoded, multipart, raw };

struct Request {
  std::string account = "main";
  Encoding encoding = Encoding::urlencoded;
  Fields fields;                   // urlencoded, multipart
  std::string raw_body, raw_type;  // raw
  httplib::Headers headers;
};

// Sends one submission; `sent` gets the bytes of the body when the test built them.
httplib::Result submit(const RunningGateway& gateway, const Request& r,
                       std::string* sent = nullptr) {
  auto client = gateway.client();
  const std::string path = "/v1/webform/" + r.account;
  switch (r.encoding) {
    case Encoding::urlencoded: {
      std::string body = urlencoded(r.fields);
      if (sent) *sent = body;
      return client.Post(path, r.headers, body, "application/x-www-form-urlencoded");
    }
    case Encoding::multipart: {
      httplib::MultipartFormDataItems items;
      for (const auto& [key, value] : r.fields) items.push_back({key, value, "", ""});
      return client.Post(path, r.headers, items);
    }
    case Encoding::raw:
      if (sent) *sent = r.raw_body;
      return client.Post(path, r.headers, r.raw_body, r.raw_type);
  }
  return client.Post(path);
}

std::map<std::string, json> by_id(const std::vector<StreamMessage>& messages) {
  std::map<std::string, json> out;
  for (const auto& m : messages) out[m.msg_id] = m.body;
  return out;
}

Fields valid(Fields extra) {
  Fields fields = {{"name", "Анна"}, {"phone", "8 (912) 345-67-89"}, {"consent_pd", "on"}};
  for (auto& item : extra) fields.push_back(std::move(item));
  return fields;
}

const httplib::Headers kJsonAccept = {{"Accept", "application/json"}, {"User-Agent", kUserAgent}};

std::string big_comment() {
  std::string text;
  while (text.size() < 20'000) text += "Перезвоните мне, пожалуйста! ";
  return text + "Конец.";
}

int64_t unix_minute() {
  return std::chrono::duration_cast<std::chrono::minutes>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string header(const httplib::Result& r, const char* name) {
  return r->has_header(name) ? r->get_header_value(name) : "<absent>";
}

}  // namespace

TEST_CASE("the same _submission_id twice is one lead with the same answer",
          "[integration][webform][dedup]") {
  NatsServer nats;
  RunningGateway gateway(webform_config(nats.url()));
  Request r{"main", Encoding::urlencoded, valid({{"_submission_id", "twice"}}), "",
            "",     kJsonAccept};
  auto first = submit(gateway, r);
  auto second = submit(gateway, r);
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->status == 202);
  CHECK(second->status == 202);
  CHECK(second->body == first->body);
  CHECK(json::parse(first->body)["id"] == interaction_id("webform", "main", "twice"));
  // A plain HTML retry of the same submission is redirected again, still one lead.
  Request html = r;
  html.headers = {};
  auto third = submit(gateway, html);
  REQUIRE(third);
  CHECK(third->status == 303);

  auto messages = read_stream(nats.url());
  CHECK(messages.size() == 1);
  CHECK(gateway.gateway().metrics().duplicates.value({"webform"}) == 2);
  CHECK(schema_problems(messages).empty());
}

TEST_CASE("CORS preflight: allowed origins get the headers a JSON post needs, others 403",
          "[integration][webform][cors]") {
  NatsServer nats;
  RunningGateway gateway(webform_config(nats.url()));
  struct Row {
    std::string origin, account;
    int status;
  };
  const std::vector<Row> rows = {
      {kOrigin, "main", 204},
      {"http://127.0.0.1:8080", "main", 204},  // the gateway's own origin (its demo page)
      {"https://evil.example", "main", 403},
      {"https://shop.example.evil.example", "main", 403},
      {"http://shop.example", "main", 403},  // another scheme is another origin
      {kOrigin, "tiny", 403},                // allowed for main only
      {kOrigin, "nope", 404},
  };
  for (const auto& row : rows) {
    INFO(row.origin << " → " << row.account);
    auto response = gateway.client().Options("/v1/webform/" + row.account,
                                             {{"Origin", row.origin},
                                              {"Access-Control-Request-Method", "POST"},
                                              {"Access-Control-Request-Headers", "content-type"}});
    REQUIRE(response);
    CHECK(response->status == row.status);
    if (row.status == 204) {
      CHECK(header(response, "Access-Control-Allow-Origin") == row.origin);
      CHECK_THAT(header(response, "Access-Control-Allow-Headers"), Catch::Contains("Content-Type"));
      CHECK_THAT(header(response, "Access-Control-Allow-Methods"), Catch::Contains("POST"));
      CHECK(header(response, "Vary") == "Origin");
    } else {
      CHECK(header(response, "Access-Control-Allow-Origin") == "<absent>");
    }
  }
  CHECK(gateway.gateway().metrics().rejected.value({"webform", "origin"}) == 4);
}

TEST_CASE("render token: the texts to show, too fast → 429 and a message, then accepted",
          "[integration][webform][render_token]") {
  NatsServer nats;
  RunningGateway gateway(webform_config(nats.url()));
  auto client = gateway.client();

  auto described = client.Get("/v1/webform/main", {{"Origin", kOrigin}});
  auto rendered_at = std::chrono::steady_clock::now();
  REQUIRE(described);
  REQUIRE(described->status == 200);
  CHECK(header(described, "Access-Control-Allow-Origin") == kOrigin);
  CHECK(header(described, "Cache-Control") == "no-store");
  json d = json::parse(described->body);
  CHECK(d["min_fill_ms"] == 1000);
  CHECK(d["language"] == "ru");
  CHECK(d["consents"] == json::array({
                             {{"field", "consent_pd"},
                              {"text_id", "pd-processing"},
                              {"version", "2025-09"},
                              {"text", kPdText},
                              {"policy_url", kPolicyUrl},
                              {"purpose", "processing"},
                              {"required", true},
                              {"double_opt_in", false}},
                             {{"field", "consent_marketing"},
                              {"text_id", "marketing-email"},
                              {"version", "3"},
                              {"text", kMarketingText},
                              {"policy_url", ""},
                              {"purpose", "marketing"},
                              {"required", false},
                              {"double_opt_in", false}},
                         }));
  const std::string token = d["render_token"];
  REQUIRE_FALSE(token.empty());
  auto claims = gateway.gateway().consent().links().verify(token, "render");
  REQUIRE(claims);
  CHECK(claims->account == "main");

  auto denied = client.Get("/v1/webform/main", {{"Origin", "https://evil.example"}});
  REQUIRE(denied);
  CHECK(denied->status == 403);

  Request r{"main",
            Encoding::urlencoded,
            valid({{"_submission_id", "rendered"}, {"_render_token", token}}),
            "",
            "",
            {{"Accept", "application/json"}, {"Origin", kOrigin}}};
  auto too_fast = submit(gateway, r);
  REQUIRE(too_fast);
  CHECK(too_fast->status == 429);
  CHECK(header(too_fast, "Retry-After") == "1");
  CHECK(header(too_fast, "Access-Control-Expose-Headers") == "Retry-After");
  json error = json::parse(too_fast->body);
  CHECK(error["error"]["code"] == "rate_limited");
  CHECK_THAT(error["error"]["message"].get<std::string>(), Catch::Contains("слишком быстро"));
  CHECK(gateway.gateway().metrics().rejected.value({"webform", "too_fast"}) == 1);

  SECTION("bad tokens are refused with 400") {
    std::string tampered = token;
    tampered[5] = tampered[5] == 'A' ? 'B' : 'A';
    auto tiny = client.Get("/v1/webform/tiny");
    REQUIRE(tiny);
    const std::string tiny_token = json::parse(tiny->body)["render_token"];
    auto unsubscribe = gateway.gateway().consent().links().unsubscribe_claims(
        "webform", "main", "a@example.ru", {"marketing"}, {"email"}, "ru");
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"tampered", tampered},
        {"another form's token", tiny_token},
        {"an unsubscribe token", gateway.gateway().consent().links().sign(unsubscribe)},
        {"not a token", "hello"},
    };
    for (const auto& [what, bad_token] : bad) {
      INFO(what);
      Request forged = r;
      forged.fields = valid({{"_submission_id", "forged"}, {"_render_token", bad_token}});
      auto response = submit(gateway, forged);
      REQUIRE(response);
      CHECK(response->status == 400);
      CHECK(json::parse(response->body)["error"]["code"] == "bad_request");
    }
    CHECK(gateway.gateway().metrics().rejected.value({"webform", "render_token"}) == bad.size());
    CHECK(read_stream(nats.url()).empty());
  }

  SECTION("after the minimum fill time the same submission is accepted") {
    // The one wait of these tests: the form's configured min_fill_time (1 s) must pass.
    std::this_thread::sleep_until(rendered_at + std::chrono::milliseconds(1100));
    auto accepted = submit(gateway, r);
    REQUIRE(accepted);
    CHECK(accepted->status == 202);
    CHECK(json::parse(accepted->body)["id"] == interaction_id("webform", "main", "rendered"));
    auto messages = read_stream(nats.url());
    REQUIRE(messages.size() == 1);  // the too-fast attempt published nothing
    CHECK(messages[0].msg_id == interaction_id("webform", "main", "rendered"));
    CHECK(schema_problems(messages).empty());
  }
}

TEST_CASE("the embed script and the demo page", "[integration][webform][static]") {
  NatsServer nats;
  RunningGateway gateway(webform_config(nats.url()));
  auto client = gateway.client();

  auto script = client.Get("/omnigate-forms.js");
  REQUIRE(script);
  CHECK(script->status == 200);
  CHECK_THAT(header(script, "Content-Type"), Catch::StartsWith("application/javascript"));
  CHECK_THAT(script->body, Catch::Contains("_submission_id"));

  auto demo = client.Get("/demo/main");
  REQUIRE(demo);
  CHECK(demo->status == 200);
  CHECK_THAT(header(demo, "Content-Type"), Catch::StartsWith("text/html"));
  // The exact configured texts, escaped: the page shows what the evidence's hash covers.
  CHECK_THAT(demo->body, Catch::Contains(html_escape(kPdText)));
  CHECK_THAT(demo->body, Catch::Contains(html_escape(kMarketingText)));
  CHECK_THAT(demo->body, !Catch::Contains(kPdText));  // never as markup
  CHECK_THAT(demo->body, Catch::Contains(html_escape(kTitle)));
  CHECK_THAT(demo->body, Catch::Contains("action=\"/v1/webform/main\""));
  CHECK_THAT(demo->body, Catch::Contains("name=\"consent_pd\" value=\"yes\" required"));

  auto no_demo = client.Get("/demo/tiny");
  REQUIRE(no_demo);
  CHECK(no_demo->status == 404);
}

TEST_CASE("behind a trusted proxy: X-Forwarded-For is the evidence IP and the rate-limit key",
          "[integration][webform][client_ip][rate_limit]") {
  NatsServer nats;
  RunningGateway gateway(webform_config(nats.url(), /*trust_localhost=*/true, /*rate limit*/ 3));

  // `xff` lines separated by '|' are sent as separate X-Forwarded-For headers.
  auto post = [&](const std::string& xff, const std::string& submission_id) {
    Request r{"main",
              Encoding::urlencoded,
              valid({{"_submission_id", submission_id}}),
              "",
              "",
              {{"Accept", "application/json"}, {"User-Agent", kUserAgent}}};
    size_t start = 0;
    while (!xff.empty() && start <= xff.size()) {
      size_t bar = xff.find('|', start);
      if (bar == std::string::npos) bar = xff.size();
      r.headers.emplace("X-Forwarded-For", xff.substr(start, bar - start));
      start = bar + 1;
    }
    return submit(gateway, r);
  };

  struct IpRow {
    std::string xff, submission_id, evidence_ip;
  };
  const std::vector<IpRow> ip_rows = {
      {"203.0.113.7", "xff-one", "203.0.113.7"},
      {"198.51.100.1, 203.0.113.8", "xff-chain",
       "203.0.113.8"},  // the left hop is the client's claim
      {"", "xff-none", "127.0.0.1"},
      {"not-an-ip", "xff-garbage", "127.0.0.1"},
      {"198.51.100.2|203.0.113.9", "xff-two-headers", "203.0.113.9"},  // read as one list
      {"2001:db8:aaaa:1::7", "xff-ipv6", "2001:db8:aaaa:1::7"},
  };
  for (const auto& row : ip_rows) {
    auto response = post(row.xff, row.submission_id);
    REQUIRE(response);
    CHECK(response->status == 202);
  }

  // Four posts from one client: the fourth is refused, another client is not. A window that
  // turned over between the first and the fourth would allow it, so such a run is repeated
  // (once) with the row's second set of addresses. An IPv6 client is one /64: rotating
  // addresses inside it does not buy more posts.
  struct LimitRow {
    std::string what;
    std::vector<std::vector<std::string>> attempts;  // the 4 client addresses, per attempt
    std::string other_client;
  };
  const std::vector<LimitRow> limit_rows = {
      {"one IPv4 address",
       {{"192.0.2.10", "192.0.2.10", "192.0.2.10", "192.0.2.10"},
        {"192.0.2.11", "192.0.2.11", "192.0.2.11", "192.0.2.11"}},
       "192.0.2.99"},
      {"four addresses of one IPv6 /64",
       {{"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3", "2001:db8:1:2:abcd:1:2:3"},
        {"2001:db8:1:3::1", "2001:db8:1:3::2", "2001:db8:1:3:ffff::3", "2001:db8:1:3:abcd:1:2:3"}},
       "2001:db8:1:99::1"},
  };
  std::vector<std::string> refused_ids;
  for (size_t r = 0; r < limit_rows.size(); ++r) {
    const LimitRow& row = limit_rows[r];
    INFO(row.what);
    bool measured = false;
    for (size_t attempt = 0; attempt < row.attempts.size() && !measured; ++attempt) {
      const std::string prefix = "limit-" + std::to_string(r) + "-" + std::to_string(attempt) + "-";
      int64_t minute = unix_minute();
      std::vector<int> statuses;
      std::string retry_after, body;
      for (size_t i = 0; i < 4; ++i) {
        auto response = post(row.attempts[attempt][i], prefix + std::to_string(i));
        REQUIRE(response);
        statuses.push_back(response->status);
        retry_after = header(response, "Retry-After");
        body = response->body;
      }
      auto other = post(row.other_client, prefix + "other");
      REQUIRE(other);
      if (unix_minute() != minute) continue;
      measured = true;
      CHECK(statuses == std::vector<int>{202, 202, 202, 429});
      CHECK(other->status == 202);
      REQUIRE(retry_after != "<absent>");
      CHECK(std::stoi(retry_after) >= 1);
      CHECK(std::stoi(retry_after) <= 60);
      json error = json::parse(body);
      CHECK(error["error"]["code"] == "rate_limited");
      CHECK_THAT(error["error"]["message"].get<std::string>(), Catch::Contains("Слишком много"));
      refused_ids.push_back(interaction_id("webform", "main", prefix + "3"));
    }
    REQUIRE(measured);
  }
  CHECK(gateway.gateway().metrics().rejected.value({"webform", "rate_limited"}) >= 2);

  auto messages = read_stream(nats.url());
  auto published = by_id(messages);
  for (const auto& id : refused_ids) CHECK(published.count(id) == 0);
  for (const auto& row : ip_rows) {
    INFO(row.submission_id);
    const std::string id = interaction_id("webform", "main", row.submission_id);
    REQUIRE(published.count(id) == 1);
    CHECK(published[id]["consent"][0]["evidence"]["ip"] == row.evidence_ip);
  }
  CHECK(schema_problems(messages).empty());
}

// Regression (fixed): cpp-httplib refuses an application/x-www-form-urlencoded body above
// CPPHTTPLIB_FORM_URL_ENCODED_PAYLOAD_MAX_LENGTH (8192 bytes) before any handler runs, and
// Debian's libcpp-httplib.so is compiled with that default; a Cyrillic letter is 6 bytes
// percent-encoded. The gateway now reads POST bodies itself (ContentReader).
TEST_CASE("a urlencoded body far above 8 KB (a 20 KB Cyrillic comment) is accepted intact",
          "[integration][webform]") {
  NatsServer nats;
  RunningGateway gateway(webform_config(nats.url()));
  const std::string comment = big_comment();
  struct Row {
    std::string what;
    httplib::Headers headers;
    int status;
  };
  const std::vector<Row> rows = {
      {"the embed script's fetch", kJsonAccept, 202},
      {"a plain HTML form", {{"Accept", "text/html"}}, 303},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    const std::string submission_id = "big-urlencoded-" + std::to_string(row.status);
    Request r{"main",
              Encoding::urlencoded,
              valid({{"comment", comment}, {"_submission_id", submission_id}}),
              "",
              "",
              row.headers};
    std::string sent;
    auto response = submit(gateway, r, &sent);
    REQUIRE(response);
    CHECK(sent.size() > 50'000);
    INFO(response->body);
    CHECK(response->status == row.status);
  }
  auto messages = read_stream(nats.url());
  REQUIRE(messages.size() == rows.size());
  for (const auto& m : messages) CHECK(m.body["lead"]["fields"]["comment"] == comment);
  CHECK(schema_problems(messages).empty());
}

TEST_CASE("a multipart post is one lead with its fields and its files count against max_body",
          "[integration][webform]") {
  NatsServer nats;
  RunningGateway gateway(webform_config(nats.url()));
  auto client = gateway.client();
  httplib::MultipartFormDataItems items;
  for (const auto& [key, value] :
       valid({{"comment", "Перезвоните после 18:00"}, {"_submission_id", "multipart-1"}}))
    items.push_back({key, value, "", ""});
  items.push_back({"cv", std::string(2000, 'f'), "cv.txt", "text/plain"});
  auto accepted = client.Post("/v1/webform/main", kJsonAccept, items);
  REQUIRE(accepted);
  INFO(accepted->body);
  CHECK(accepted->status == 202);
  // The same fields and a 10 KiB file to an account capped at 4 KiB: refused before its
  // handler, although the fields alone would fit.
  items.back().content = std::string(10 * 1024, 'f');
  auto refused = client.Post("/v1/webform/tiny", kJsonAccept, items);
  REQUIRE(refused);
  CHECK(refused->status == 413);
  auto messages = read_stream(nats.url());
  REQUIRE(messages.size() == 1);
  const json& fields = messages[0].body["lead"]["fields"];
  CHECK(fields["comment"] == "Перезвоните после 18:00");
  CHECK_FALSE(fields.contains("cv"));  // files are not kept
  CHECK(schema_problems(messages).empty());
}

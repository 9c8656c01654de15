// What a visitor reads: the web form's answers worded in the form's language with the fields'
// labels (422 per field, phone and e-mail checks, a long Cyrillic comment, NATS away, the double
// opt-in answer) and the consent pages a business shows (operator, exact consent text and
// version, the way back, everything inserted escaped). A real nats-server; fake SMTP.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <string>

#include "gateway/consent/consent.hpp"
#include "gateway/core/strings.hpp"
#include "tests/support/fake_smtp.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using nlohmann::json;
using omnigate::html_escape;
using omnigate::LinkClaims;
using omnigate::url_encode;

namespace {

const std::string kSigningKey = "webform-texts-signing-key-0123456789abcdef";
// Markup and quotes in every configured text a page shows: the pages must show them as text.
const std::string kOperator = R"(ООО "Ромашка" & <script>alert(1)</script>)";
const std::string kMarketingText =
    R"(Хочу получать новости <b>ООО "Ромашка"</b> & скидки по e-mail. Отписаться можно в любой момент.)";
const std::string kPdText = "Согласен на обработку персональных данных.";
const std::string kFormReturn = "https://shop.example/catalog?from=mail&x=1";
const std::string kSiteReturn = "https://shop.example/";

// Forms: `main` (ru, strict phone, a labelled extra field, double opt-in with `return_url`),
// `lenient` (en, phone as typed), `down` (on_nats_down: reject).
std::string texts_yaml(const std::string& smtp_url) {
  return "  webform:\n"
         "    - account: main\n"
         "      allowed_origins: [\"https://shop.example\"]\n"
         "      return_url: \"" +
         kFormReturn +
         "\"\n"
         "      labels:\n"
         "        city: \"Ваш город\"\n"
         "      required: [name, phone, city]\n"
         "      rate_limit_per_minute: 1000\n"
         "      consents:\n"
         "        - field: consent_pd\n"
         "          text: pd-processing\n"
         "          required: true\n"
         "        - field: consent_marketing\n"
         "          text: marketing-email\n"
         "          double_opt_in: true\n"
         "    - account: lenient\n"
         "      language: en\n"
         "      phone_validation: lenient\n"
         "      max_body: 8KiB\n"
         "      required: [name, phone]\n"
         "      rate_limit_per_minute: 1000\n"
         "    - account: down\n"
         "      on_nats_down: reject\n"
         "      rate_limit_per_minute: 1000\n"
         "consent:\n"
         "  signing_key: " +
         kSigningKey +
         "\n"
         "  operator_name: '" +
         kOperator +
         "'\n"
         "  return_url: \"" +
         kSiteReturn +
         "\"\n"
         "  texts:\n"
         "    - id: pd-processing\n"
         "      version: \"2025-09\"\n"
         "      purpose: processing\n"
         "      channels: [email, phone]\n"
         "      text: '" +
         kPdText +
         "'\n"
         "    - id: marketing-email\n"
         "      version: \"7b\"\n"
         "      purpose: marketing\n"
         "      channels: [email]\n"
         "      text: '" +
         kMarketingText +
         "'\n"
         "  smtp:\n"
         "    url: " +
         smtp_url +
         "\n"
         "    from: \"Магазин <noreply@shop.example>\"\n"
         "    timeout: 2s\n";
}

using Fields = std::vector<std::pair<std::string, std::string>>;

std::string urlencoded(const Fields& fields) {
  std::string body;
  for (const auto& [key, value] : fields) {
    if (!body.empty()) body += '&';
    body += url_encode(key) + "=" + url_encode(value);
  }
  return body;
}

const httplib::Headers kJson = {{"Accept", "application/json"}};

httplib::Result post(const RunningGateway& gateway, const std::string& account,
                     const Fields& fields, const httplib::Headers& headers = kJson) {
  return gateway.client().Post("/v1/webform/" + account, headers, urlencoded(fields),
                               "application/x-www-form-urlencoded");
}

// A valid submission of `main`, with `changes` replacing or adding fields.
Fields good(const Fields& changes = {}) {
  Fields fields = {
      {"name", "Анна"}, {"phone", "8 (912) 345-67-89"}, {"city", "Казань"}, {"consent_pd", "on"}};
  for (const auto& [key, value] : changes) {
    auto same = std::find_if(fields.begin(), fields.end(), [&](auto& f) { return f.first == key; });
    if (same != fields.end())
      same->second = value;
    else
      fields.emplace_back(key, value);
  }
  return fields;
}

std::string cyrillic(size_t characters) {
  const std::string alphabet = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя";  // 2 bytes each
  std::string text;
  for (size_t i = 0; i < characters; ++i) text += alphabet.substr((i % 33) * 2, 2);
  return text;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string path_of(const std::string& url) {
  return url.substr(url.find("/v1/"));
}

LinkClaims confirm_claims(const std::string& language, int64_t expires_at) {
  LinkClaims c;
  c.kind = "confirm";
  c.channel = "webform";
  c.account = "main";
  c.email = "ivan+<x>@example.ru";
  c.purposes = {"marketing"};
  c.channels = {"email"};
  c.text_ids = {"marketing-email"};
  c.submission_id = "texts-" + language;
  c.language = language;
  c.return_url = kFormReturn;
  c.issued_at_ms = omnigate::now_millis().time_since_epoch().count();
  c.expires_at = expires_at;
  return c;
}

// What every consent page must show: the operator (escaped), the way back, no raw markup.
void check_page_frame(const std::string& html, const std::string& back) {
  CHECK_THAT(html, Catch::Contains(html_escape(kOperator)));
  CHECK(html.find("<script>") == std::string::npos);
  CHECK(html.find("<b>") == std::string::npos);
  CHECK_THAT(html, Catch::Contains("class=\"back\" href=\"" + html_escape(back) + "\""));
  CHECK_THAT(html, Catch::Contains("--accent"));  // the demo form's stylesheet
}

}  // namespace

TEST_CASE("web form 422: one message per field, naming it by its label, in the form's language",
          "[integration][webform][texts]") {
  NatsServer nats;
  FakeSmtpServer smtp;
  RunningGateway gateway(test_config_yaml(nats.url(), "", texts_yaml(smtp.url())));

  auto empty = post(gateway, "main", {{"comment", "только комментарий"}});
  REQUIRE(empty);
  INFO(empty->body);
  CHECK(empty->status == 422);
  json error = json::parse(empty->body)["error"];
  CHECK(error["code"] == "unprocessable");
  CHECK(error["message"] == "Проверьте выделенные поля.");
  CHECK(error["fields"] == json({"name", "phone", "city", "consent_pd"}));
  const json& by_field = error["field_errors"];
  CHECK(by_field["name"] == "Заполните поле «Имя».");
  CHECK(by_field["phone"] == "Заполните поле «Телефон».");
  CHECK(by_field["city"] == "Заполните поле «Ваш город».");  // labels: from the config
  CHECK_THAT(by_field["consent_pd"].get<std::string>(), Catch::Contains("Без этого согласия"));
  CHECK(empty->body.find("city,") == std::string::npos);

  // The same for a form in English.
  auto english = post(gateway, "lenient", {{"name", ""}});
  REQUIRE(english);
  CHECK(english->status == 422);
  json en = json::parse(english->body)["error"];
  CHECK(en["message"] == "Please check the highlighted fields.");
  CHECK(en["field_errors"]["name"] == "Please fill in “Name”.");
  CHECK(en["field_errors"]["phone"] == "Please fill in “Phone”.");

  // A plain HTML form (no script) asks for a page: the same messages as a list, escaped.
  auto page =
      post(gateway, "main", {{"name", "Анна"}}, {{"Accept", "text/html,application/xhtml+xml"}});
  REQUIRE(page);
  CHECK(page->status == 422);
  CHECK_THAT(page->get_header_value("Content-Type"), Catch::StartsWith("text/html"));
  CHECK_THAT(page->body, Catch::Contains("<h1>Заявка не отправлена</h1>"));
  CHECK_THAT(page->body, Catch::Contains("<li>Заполните поле «Телефон».</li>"));
  CHECK_THAT(page->body, Catch::Contains("<html lang=\"ru\">"));

  CHECK(read_stream(nats.url()).empty());
  CHECK(gateway.gateway().metrics().rejected.value({"webform", "required_missing"}) == 3);
}

TEST_CASE(
    "web form phone and e-mail: strict refuses what libphonenumber cannot read, lenient "
    "keeps it as typed",
    "[integration][webform][texts]") {
  NatsServer nats;
  FakeSmtpServer smtp;
  RunningGateway gateway(test_config_yaml(nats.url(), "", texts_yaml(smtp.url())));

  for (const std::string phone : {"abc", "12", "+7 912 345"}) {
    INFO(phone);
    auto refused = post(gateway, "main", good({{"phone", phone}}));
    REQUIRE(refused);
    CHECK(refused->status == 422);
    json error = json::parse(refused->body)["error"];
    CHECK(error["fields"] == json({"phone"}));
    CHECK(error["field_errors"]["phone"] ==
          "«Телефон»: это не похоже на номер телефона. Пример: +7 912 345-67-89.");
  }
  auto bad_email = post(gateway, "main", good({{"email", "ivan@"}}));
  REQUIRE(bad_email);
  CHECK(bad_email->status == 422);
  CHECK(json::parse(bad_email->body)["error"]["field_errors"]["email"] ==
        "«Email»: проверьте адрес, например name@example.ru.");
  CHECK(read_stream(nats.url()).empty());
  CHECK(gateway.gateway().metrics().rejected.value({"webform", "invalid_field"}) == 4);

  // A number libphonenumber reads (national notation, identity.default_region RU) passes.
  auto accepted = post(gateway, "main", good({{"email", "ivan@example.ru"}}));
  REQUIRE(accepted);
  CHECK(accepted->status == 202);

  auto lenient = post(gateway, "lenient", {{"name", "Ann"}, {"phone", "abc"}});
  REQUIRE(lenient);
  INFO(lenient->body);
  CHECK(lenient->status == 202);
  auto messages = read_stream(nats.url());
  REQUIRE(messages.size() == 2);
  const json& lead = messages[1].body;
  CHECK(lead["account"] == "lenient");
  const json& phone = lead["contact"]["identifiers"][0];
  CHECK(phone["type"] == "phone");
  CHECK(phone["raw"] == "abc");
  CHECK_FALSE(phone.contains("value"));
  CHECK(schema_problems(messages).empty());
}

TEST_CASE(
    "web form: a 20 000-character Cyrillic comment fits the default caps, longer is a 422 "
    "on the field",
    "[integration][webform][texts]") {
  NatsServer nats;
  FakeSmtpServer smtp;
  RunningGateway gateway(test_config_yaml(nats.url(), "", texts_yaml(smtp.url())));

  const std::string comment = cyrillic(20'000);
  const std::string body = urlencoded(good({{"comment", comment}}));
  CHECK(body.size() > 120'000);  // each letter is %D0%B0: far above the old 64 KiB cap
  auto accepted =
      gateway.client().Post("/v1/webform/main", kJson, body, "application/x-www-form-urlencoded");
  REQUIRE(accepted);
  INFO(accepted->body.substr(0, 500));
  CHECK(accepted->status == 202);
  auto messages = read_stream(nats.url());
  REQUIRE(messages.size() == 1);
  CHECK(messages[0].body["lead"]["fields"]["comment"] == comment);

  auto too_long = post(gateway, "main", good({{"comment", cyrillic(30'001)}}));
  REQUIRE(too_long);
  CHECK(too_long->status == 422);
  CHECK(json::parse(too_long->body)["error"]["field_errors"]["comment"] ==
        "«Комментарий»: не длиннее 30000 символов.");

  // Above a form's body cap (here `lenient`'s 8 KiB): the core's 413, worded for the visitor.
  auto huge = post(gateway, "lenient", {{"name", "Ann"}, {"comment", cyrillic(5'000)}});
  REQUIRE(huge);
  CHECK(huge->status == 413);
  CHECK(json::parse(huge->body)["error"]["message"] ==
        "The request is too large. Please shorten the text and send it again.");

  // Above every form's cap (256 KiB): refused by the core before the body is read, and still
  // worded for the visitor in the form's language, with the CORS header the page needs to read it.
  auto beyond = post(gateway, "main", good({{"comment", std::string(300 * 1024, 'x')}}),
                     {{"Accept", "application/json"}, {"Origin", "https://shop.example"}});
  REQUIRE(beyond);
  CHECK(beyond->status == 413);
  CHECK(json::parse(beyond->body)["error"]["message"] ==
        "Заявка слишком большая. Сократите текст и отправьте ещё раз.");
  CHECK(beyond->get_header_value("Access-Control-Allow-Origin") == "https://shop.example");
  CHECK(read_stream(nats.url()).size() == 1);
}

TEST_CASE("web form with NATS away: the visitor reads plain Russian, no backend names",
          "[integration][webform][texts]") {
  NatsServer nats;
  FakeSmtpServer smtp;
  RunningGateway gateway(test_config_yaml(nats.url(), "", texts_yaml(smtp.url())));
  nats.stop();
  auto refused = post(gateway, "down", {{"name", "Анна"}, {"phone", "+79123456789"}});
  REQUIRE(refused);
  INFO(refused->body);
  CHECK(refused->status == 503);
  CHECK(refused->get_header_value("Retry-After") == "7");
  json error = json::parse(refused->body)["error"];
  CHECK(error["code"] == "not_durable");
  CHECK(error["message"] ==
        "Сейчас мы не можем принять заявку. Попробуйте ещё раз через минуту — введённое не "
        "пропадёт.");
  CHECK(refused->body.find("NATS") == std::string::npos);
  CHECK(refused->body.find("JetStream") == std::string::npos);
}

TEST_CASE(
    "web form success: the answer says what happens next, and to check the mailbox when "
    "a confirmation e-mail was sent",
    "[integration][webform][texts]") {
  NatsServer nats;
  FakeSmtpServer smtp;
  RunningGateway gateway(test_config_yaml(nats.url(), "", texts_yaml(smtp.url())));

  auto plain = post(gateway, "main", good());
  REQUIRE(plain);
  CHECK(plain->status == 202);
  json answer = json::parse(plain->body);
  CHECK(answer["message"] ==
        "Спасибо! Заявка отправлена. Мы свяжемся с вами в ближайшее рабочее время.");
  CHECK_FALSE(answer.contains("check_mailbox"));

  auto opted =
      post(gateway, "main", good({{"email", "olga@example.ru"}, {"consent_marketing", "yes"}}));
  REQUIRE(opted);
  INFO(opted->body);
  CHECK(opted->status == 202);
  answer = json::parse(opted->body);
  CHECK(answer["confirmation"] == "sent");
  CHECK(answer["check_mailbox"] == true);
  CHECK_THAT(answer["message"].get<std::string>(), Catch::Contains("Проверьте почту"));
  REQUIRE(smtp.wait_for_deliveries(1));

  // A plain HTML form without success_url: the same words on the gateway's page.
  auto page =
      post(gateway, "main", good({{"_submission_id", "html-1"}}), {{"Accept", "text/html"}});
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK_THAT(page->body, Catch::Contains("Мы свяжемся с вами в ближайшее рабочее время."));
}

TEST_CASE(
    "consent pages: operator, the exact consent text and version, the way back, in the "
    "link's language, everything escaped",
    "[integration][consent][texts]") {
  NatsServer nats;
  FakeSmtpServer smtp;
  RunningGateway gateway(test_config_yaml(nats.url(), "", texts_yaml(smtp.url())));
  auto client = gateway.client();
  const auto& links = gateway.gateway().consent().links();

  const std::string url = links.confirm_url(confirm_claims("ru", unix_now() + 3600));
  auto ask = client.Get(path_of(url));
  REQUIRE(ask);
  CHECK(ask->status == 200);
  check_page_frame(ask->body, kFormReturn);
  CHECK_THAT(ask->body, Catch::Contains("<h1>Подтвердите подписку</h1>"));
  CHECK_THAT(ask->body, Catch::Contains(html_escape(kMarketingText)));
  CHECK_THAT(ask->body, Catch::Contains("Текст согласия, версия 7b"));
  CHECK_THAT(ask->body, Catch::Contains(html_escape("ivan+<x>@example.ru")));
  CHECK(ask->body.find("marketing") == std::string::npos);  // the text, not the purpose key
  CHECK_THAT(ask->body, Catch::Contains("<button type=\"submit\">Подтвердить</button>"));

  auto done = client.Post(path_of(url), "", "application/x-www-form-urlencoded");
  REQUIRE(done);
  CHECK(done->status == 200);
  check_page_frame(done->body, kFormReturn);
  CHECK_THAT(done->body, Catch::Contains("<h1>Спасибо, подписка подтверждена</h1>"));
  CHECK_THAT(done->body, Catch::Contains(html_escape(kMarketingText)));
  CHECK_THAT(done->body, Catch::Contains("версия 7b"));

  auto again = client.Post(path_of(url), "", "application/x-www-form-urlencoded");
  REQUIRE(again);
  CHECK_THAT(again->body, Catch::Contains("<h1>Подписка уже подтверждена</h1>"));
  CHECK_THAT(again->body, Catch::Contains(html_escape(kMarketingText)));

  // English links get English pages.
  auto english = client.Get(path_of(links.confirm_url(confirm_claims("en", unix_now() + 3600))));
  REQUIRE(english);
  CHECK_THAT(english->body, Catch::Contains("<html lang=\"en\">"));
  CHECK_THAT(english->body, Catch::Contains("Consent text, version 7b"));
  CHECK_THAT(english->body, Catch::Contains("← Back to the site"));

  // Links the gateway cannot read: the browser's language, the site-wide way back.
  auto expired = client.Get(path_of(links.confirm_url(confirm_claims("ru", unix_now() - 10))),
                            {{"Accept-Language", "en-GB,en;q=0.9"}});
  REQUIRE(expired);
  CHECK(expired->status == 410);
  check_page_frame(expired->body, kSiteReturn);
  CHECK_THAT(expired->body, Catch::Contains("<h1>This link has expired</h1>"));
  auto forged =
      client.Get("/v1/consent/confirm?token=AAAA.BBBB", {{"Accept-Language", "ru-RU,ru;q=0.9"}});
  REQUIRE(forged);
  CHECK(forged->status == 400);
  check_page_frame(forged->body, kSiteReturn);
  CHECK_THAT(forged->body, Catch::Contains("<h1>Ссылка недействительна</h1>"));

  // An unsubscribe link minted by a CRM names the purpose only: the text is that purpose's.
  LinkClaims unsubscribe = links.unsubscribe_claims("webform", "main", "olga@example.ru",
                                                    {"marketing"}, {"email"}, "ru");
  const std::string unsubscribe_url = links.unsubscribe_url(unsubscribe);
  auto step = client.Get(path_of(unsubscribe_url));
  REQUIRE(step);
  CHECK(step->status == 200);
  check_page_frame(step->body, kSiteReturn);
  CHECK_THAT(step->body, Catch::Contains("<h1>Отписаться?</h1>"));
  CHECK_THAT(step->body, Catch::Contains(html_escape(kMarketingText)));
  CHECK_THAT(step->body, Catch::Contains("версия 7b"));
  CHECK_THAT(step->body, Catch::Contains("<button type=\"submit\">Отписаться</button>"));
  auto left = client.Post(path_of(unsubscribe_url), "", "application/x-www-form-urlencoded");
  REQUIRE(left);
  CHECK(left->status == 200);
  check_page_frame(left->body, kSiteReturn);
  CHECK_THAT(left->body, Catch::Contains("<h1>Вы отписались</h1>"));
  CHECK_THAT(left->body, Catch::Contains(html_escape(kMarketingText)));
}

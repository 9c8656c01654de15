// The web form's pure steps (connectors/webform/webform_form.hpp): reading the fields of a body
// by media type, the checkbox rule, and normalize_form (fields → a lead with identifiers,
// source and consent evidence). Plus the e-mail normalization browsers rely on (punycode).
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "connectors/webform/webform_form.hpp"
#include "gateway/model/identifiers.hpp"
#include "gateway/model/ids.hpp"

using omnigate::ConsentConfig;
using omnigate::ConsentText;
using omnigate::ErrorCode;
using omnigate::OptString;
using omnigate::sha256_hex;
using omnigate::StringPairs;
using namespace omnigate::webform;

namespace {

const std::string kPdText = "Я даю согласие ООО \"Пример\" на обработку моих персональных данных.";
const std::string kMarketingText = "Хочу получать новости по e-mail.";

ConsentConfig consent_config() {
  ConsentConfig c;
  c.signing_key = std::string(40, 'k');
  ConsentText pd;
  pd.id = "pd-processing";
  pd.version = "2025-09";
  pd.purpose = "processing";
  pd.channels = {"email", "phone"};
  pd.text = kPdText;
  pd.policy_url = "https://shop.example/privacy";
  pd.sha256 = sha256_hex(pd.text);
  ConsentText marketing;
  marketing.id = "marketing-email";
  marketing.version = "3";
  marketing.purpose = "marketing";
  marketing.channels = {"email"};
  marketing.text = kMarketingText;
  marketing.sha256 = sha256_hex(marketing.text);  // no policy_url: evidence has none
  c.texts = {pd, marketing};
  return c;
}

FormConfig form_config() {
  FormConfig form;
  form.account = "callback";
  form.required = {"name", "phone"};
  FormConsent pd;
  pd.field = "consent_pd";
  pd.text_id = "pd-processing";
  pd.required = true;
  FormConsent marketing;
  marketing.field = "consent_marketing";
  marketing.text_id = "marketing-email";
  marketing.double_opt_in = true;
  form.consents = {pd, marketing};
  return form;
}

SubmissionContext context(std::string idempotency_key = "", std::string referer = "") {
  SubmissionContext c;
  c.client_ip = "203.0.113.7";
  c.user_agent = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0";
  c.referer_header = std::move(referer);
  c.idempotency_key = std::move(idempotency_key);
  c.now = omnigate::SysMillis(std::chrono::milliseconds(1'764'000'000'123));
  return c;
}

// The fields every valid submission carries; `extra` overrides those three, the rest is
// appended in order (repeats included).
Fields valid_fields(Fields extra = {}) {
  Fields fields = {{"name", "Анна"}, {"phone", "8 912 345-67-89"}, {"consent_pd", "yes"}};
  const size_t base = fields.size();
  for (auto& [key, value] : extra) {
    auto it = std::find_if(fields.begin(), fields.begin() + static_cast<long>(base),
                           [&](const auto& f) { return f.first == key; });
    if (it != fields.begin() + static_cast<long>(base))
      it->second = value;
    else
      fields.emplace_back(key, value);
  }
  return fields;
}

struct ExpectedUtm {
  OptString source, medium, campaign, content, term;
};

struct ExpectedConsent {
  std::string purpose, status, text_id;
};

const std::string kRandom = "<random uuid>";

struct NormalizeRow {
  std::string what;
  Fields fields;
  std::string idempotency_key;
  std::string referer;
  // expected
  std::string submission_id;  // kRandom: a fresh UUID
  std::vector<std::string> missing;
  std::vector<std::string> pending;  // fields of the double opt-in boxes ticked
  StringPairs lead_fields;
  ExpectedUtm utm;
  OptString page_url;
  std::vector<ExpectedConsent> consents;
};

const ExpectedConsent kPdGranted{"processing", "granted", "pd-processing"};
const ExpectedConsent kMarketingPending{"marketing", "pending", "marketing-email"};

}  // namespace

TEST_CASE("normalize_form turns a submission's fields into a lead: the table",
          "[webform][normalize]") {
  const std::vector<NormalizeRow> rows = {
      {"everything the embed script sends",
       valid_fields({{"email", "anna@example.ru"},
                     {"comment", "Перезвоните после 18:00"},
                     {"consent_marketing", "on"},
                     {"utm_source", "vk"},
                     {"_submission_id", "sub-1"},
                     {"_render_token", "tok"},
                     {"_page_url", "https://shop.example/p?utm_source=ignored&utm_medium=cpc"},
                     {"_referrer", "https://ya.ru/search"},
                     {"website", ""}}),
       "idem-ignored",
       "",
       "sub-1",
       {},
       {"consent_marketing"},
       {{"name", "Анна"}, {"comment", "Перезвоните после 18:00"}},
       {"vk", "cpc", {}, {}, {}},
       "https://shop.example/p?utm_source=ignored&utm_medium=cpc",
       {kPdGranted, kMarketingPending}},
      {"required field and required box missing: both listed, fields first",
       {{"name", "Анна"}, {"_submission_id", "sub-2"}},
       "",
       "",
       "sub-2",
       {"phone", "consent_pd"},
       {},
       {{"name", "Анна"}},
       {},
       {},
       {}},
      {"white space only is empty",
       valid_fields({{"name", "  \t "}, {"_submission_id", "sub-3"}}),
       "",
       "",
       "sub-3",
       {"name"},
       {},
       {},
       {},
       {},
       {kPdGranted}},
      {"required box with a value that is not a tick",
       valid_fields({{"consent_pd", "no"}, {"_submission_id", "sub-4"}}),
       "",
       "",
       "sub-4",
       {"consent_pd"},
       {},
       {{"name", "Анна"}},
       {},
       {},
       {}},
      {"unticked optional box: no consent entry at all (never a pre-ticked or denied record)",
       valid_fields({{"consent_marketing", ""}, {"_submission_id", "sub-5"}}),
       "",
       "",
       "sub-5",
       {},
       {},
       {{"name", "Анна"}},
       {},
       {},
       {kPdGranted}},
      {"submission id: Idempotency-Key when the script sent none",
       valid_fields(),
       "idem-7",
       "",
       "idem-7",
       {},
       {},
       {{"name", "Анна"}},
       {},
       {},
       {kPdGranted}},
      {"submission id: an invalid _submission_id falls back to the Idempotency-Key",
       valid_fields({{"_submission_id", "has spaces in it"}}),
       "idem-8",
       "",
       "idem-8",
       {},
       {},
       {{"name", "Анна"}},
       {},
       {},
       {kPdGranted}},
      {"submission id: 129 characters is too long",
       valid_fields({{"_submission_id", std::string(129, 'a')}}),
       "idem-9",
       "",
       "idem-9",
       {},
       {},
       {{"name", "Анна"}},
       {},
       {},
       {kPdGranted}},
      {"submission id: 128 characters of the allowed alphabet are kept",
       valid_fields({{"_submission_id", "A-z_0.9:" + std::string(120, 'x')}}),
       "idem-10",
       "",
       "A-z_0.9:" + std::string(120, 'x'),
       {},
       {},
       {{"name", "Анна"}},
       {},
       {},
       {kPdGranted}},
      {"submission id: random when neither is usable",
       valid_fields(),
       "bad key!",
       "",
       kRandom,
       {},
       {},
       {{"name", "Анна"}},
       {},
       {},
       {kPdGranted}},
      {"UTM: a form field wins over the page URL; the rest comes from the page URL's query, "
       "not its fragment (which is not kept)",
       valid_fields({{"_submission_id", "u-1"},
                     {"utm_campaign", " field-campaign "},
                     {"_page_url",
                      "https://shop.example/l?utm_source=yandex&utm_campaign=page-campaign&"
                      "utm_content=%D0%B2%D0%B5%D1%81%D0%BD%D0%B0&utm_term=a+b#utm_medium=frag"}}),
       "",
       "",
       "u-1",
       {},
       {},
       {{"name", "Анна"}},
       {"yandex", {}, "field-campaign", "весна", "a b"},
       "https://shop.example/l?utm_source=yandex&utm_campaign=page-campaign&"
       "utm_content=%D0%B2%D0%B5%D1%81%D0%BD%D0%B0&utm_term=a+b",
       {kPdGranted}},
      {"a '?' inside the fragment is not a query string",
       valid_fields({{"_submission_id", "u-3"},
                     {"_page_url", "https://shop.example/#/landing?utm_source=spa&token=secret"}}),
       "",
       "",
       "u-3",
       {},
       {},
       {{"name", "Анна"}},
       {},
       "https://shop.example/",
       {kPdGranted}},
      {"UTM: an empty field does not hide the page URL's value",
       valid_fields({{"_submission_id", "u-2"},
                     {"utm_source", ""},
                     {"_page_url", "https://shop.example/?utm_source=google"}}),
       "",
       "",
       "u-2",
       {},
       {},
       {{"name", "Анна"}},
       {"google", {}, {}, {}, {}},
       "https://shop.example/?utm_source=google",
       {kPdGranted}},
      {"page URL with spaces is dropped, and its UTM with it",
       valid_fields(
           {{"_submission_id", "p-1"}, {"_page_url", "https://shop.example/a page?utm_source=x"}}),
       "",
       "",
       "p-1",
       {},
       {},
       {{"name", "Анна"}},
       {},
       std::nullopt,
       {kPdGranted}},
      {"javascript: page URL is dropped",
       valid_fields(
           {{"_submission_id", "p-2"}, {"_page_url", "javascript:alert(1)//?utm_source=x"}}),
       "",
       "",
       "p-2",
       {},
       {},
       {{"name", "Анна"}},
       {},
       std::nullopt,
       {kPdGranted}},
      {"non-ASCII page URL is dropped (the schema wants a URI)",
       valid_fields({{"_submission_id", "p-3"}, {"_page_url", "https://пример.рф/форма"}}),
       "",
       "",
       "p-3",
       {},
       {},
       {{"name", "Анна"}},
       {},
       std::nullopt,
       {kPdGranted}},
      {"no _page_url: the Referer header is the page",
       valid_fields({{"_submission_id", "p-4"}}),
       "",
       "https://shop.example/from-referer?utm_medium=email",
       "p-4",
       {},
       {},
       {{"name", "Анна"}},
       {{}, "email", {}, {}, {}},
       "https://shop.example/from-referer?utm_medium=email",
       {kPdGranted}},
      {"a bad _page_url falls back to the Referer header",
       valid_fields({{"_submission_id", "p-5"}, {"_page_url", "javascript:void(0)"}}),
       "",
       "https://shop.example/r",
       "p-5",
       {},
       {},
       {{"name", "Анна"}},
       {},
       "https://shop.example/r",
       {kPdGranted}},
      {"lead fields: identifiers, boxes, UTM, script fields, honeypot and blanks are left out; "
       "the first of a repeated field wins",
       valid_fields({{"_submission_id", "f-1"},
                     {"email", "a@example.ru"},
                     {"consent_marketing", ""},
                     {"utm_term", "t"},
                     {"_anything", "x"},
                     {"website", "http://spam.example"},
                     {"city", " Казань "},
                     {"city", "Москва"},
                     {"blank", "   "},
                     {"comment", "Хочу скидку"}}),
       "",
       "",
       "f-1",
       {},
       {},
       {{"name", "Анна"}, {"city", "Казань"}, {"comment", "Хочу скидку"}},
       {{}, {}, {}, {}, "t"},
       {},
       {kPdGranted}},
  };

  const FormConfig form = form_config();
  const ConsentConfig consent = consent_config();
  const std::regex uuid("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");

  for (const auto& row : rows) {
    SECTION(row.what) {
      const SubmissionContext ctx = context(row.idempotency_key, row.referer);
      NormalizedForm out = normalize_form(form, consent, row.fields, ctx);
      if (row.submission_id == kRandom) {
        CHECK(std::regex_match(out.submission_id, uuid));
        CHECK(normalize_form(form, consent, row.fields, ctx).submission_id != out.submission_id);
      } else {
        CHECK(out.submission_id == row.submission_id);
      }
      CHECK(out.submission.native_key == out.submission_id);
      CHECK(out.missing == row.missing);
      std::vector<std::string> pending;
      for (const FormConsent* c : out.pending) pending.push_back(c->field);
      CHECK(pending == row.pending);

      const auto& in = out.submission.interaction;
      CHECK(in.channel == "webform");
      CHECK(in.account == "callback");
      CHECK(in.kind == "lead");
      CHECK(in.occurred_at == ctx.now);
      REQUIRE(in.lead);
      CHECK(in.lead->form == "callback");
      CHECK(in.lead->fields == row.lead_fields);

      REQUIRE(in.source);
      CHECK(in.source->utm.source == row.utm.source);
      CHECK(in.source->utm.medium == row.utm.medium);
      CHECK(in.source->utm.campaign == row.utm.campaign);
      CHECK(in.source->utm.content == row.utm.content);
      CHECK(in.source->utm.term == row.utm.term);
      INFO("page_url: " << in.source->page_url.value_or("<none>"));
      CHECK(in.source->page_url == row.page_url);

      REQUIRE(in.consent.size() == row.consents.size());
      for (size_t i = 0; i < row.consents.size(); ++i) {
        INFO("consent " << i);
        const auto& c = in.consent[i];
        CHECK(c.purpose == row.consents[i].purpose);
        CHECK(c.status == row.consents[i].status);
        CHECK(c.method == "web_form_checkbox");
        CHECK(c.captured_at == ctx.now);
        CHECK(c.evidence.text_id == row.consents[i].text_id);
        CHECK(c.evidence.submission_id == out.submission_id);
        CHECK(c.evidence.page_url == row.page_url);
      }
    }
  }
}

TEST_CASE("consent evidence records who, where and exactly which text",
          "[webform][normalize][consent]") {
  const FormConfig form = form_config();
  const ConsentConfig consent = consent_config();
  const SubmissionContext ctx = context();
  Fields fields = valid_fields({{"consent_marketing", "yes"},
                                {"email", "ivan@xn--e1afmkfd.xn--p1ai"},
                                {"_submission_id", "ev-1"},
                                {"_page_url", "https://shop.example/landing"}});
  NormalizedForm out = normalize_form(form, consent, fields, ctx);
  const auto& in = out.submission.interaction;
  REQUIRE(in.consent.size() == 2);

  const auto& pd = in.consent[0].evidence;
  CHECK(pd.ip == "203.0.113.7");
  CHECK(pd.user_agent == ctx.user_agent);
  CHECK(pd.page_url == "https://shop.example/landing");
  CHECK(pd.text_id == "pd-processing");
  CHECK(pd.text_version == "2025-09");
  CHECK(pd.text_sha256 == sha256_hex(kPdText));
  CHECK(pd.policy_url == "https://shop.example/privacy");
  CHECK(pd.submission_id == "ev-1");
  CHECK_FALSE(pd.linked_interaction_id);
  CHECK(in.consent[0].channels == std::vector<std::string>{"email", "phone"});

  const auto& marketing = in.consent[1].evidence;
  CHECK(in.consent[1].status == "pending");
  CHECK(marketing.text_sha256 == sha256_hex(kMarketingText));
  CHECK(marketing.text_version == "3");
  CHECK_FALSE(marketing.policy_url);  // none configured: absent, never ""

  // Identifiers stay raw here (the pipeline normalizes them); the e-mail for the
  // confirmation is already normalized, punycode turned into Unicode.
  REQUIRE(in.contact);
  CHECK(in.contact->display_name == "Анна");
  CHECK(in.contact->language == "ru");
  REQUIRE(in.contact->identifiers.size() == 2);
  CHECK(in.contact->identifiers[0].type == "phone");
  CHECK(in.contact->identifiers[0].raw == "8 912 345-67-89");
  CHECK(in.contact->identifiers[1].type == "email");
  CHECK(in.contact->identifiers[1].raw == "ivan@xn--e1afmkfd.xn--p1ai");
  CHECK(out.email == "ivan@пример.рф");

  SECTION("no IP or user agent known: absent, never empty strings") {
    SubmissionContext bare = ctx;
    bare.client_ip.clear();
    bare.user_agent.clear();
    NormalizedForm o = normalize_form(form, consent, fields, bare);
    CHECK_FALSE(o.submission.interaction.consent[0].evidence.ip);
    CHECK_FALSE(o.submission.interaction.consent[0].evidence.user_agent);
  }
}

TEST_CASE("the form's own field names decide what becomes an identifier", "[webform][normalize]") {
  FormConfig form = form_config();
  form.phone_field = "tel";
  form.email_field = "mail";
  form.name_field = "fio";
  form.required = {"fio", "tel"};
  form.honeypot = "fax";
  Fields fields = {{"fio", "Пётр"},        {"tel", "+7 495 123 45 67"}, {"mail", "p@example.ru"},
                   {"phone", "free text"}, {"consent_pd", "1"},         {"fax", "bot"}};
  NormalizedForm out = normalize_form(form, consent_config(), fields, context("k-1"));
  const auto& in = out.submission.interaction;
  CHECK(out.missing.empty());
  CHECK(in.contact->display_name == "Пётр");
  REQUIRE(in.contact->identifiers.size() == 2);
  CHECK(in.contact->identifiers[0].raw == "+7 495 123 45 67");
  CHECK(in.contact->identifiers[1].raw == "p@example.ru");
  // "phone" is an ordinary field of this form; the configured honeypot "fax" is not kept.
  CHECK(in.lead->fields == StringPairs{{"fio", "Пётр"}, {"phone", "free text"}});
}

TEST_CASE("checkbox_ticked: what browsers and scripts send for a ticked box",
          "[webform][checkbox]") {
  struct Row {
    std::string value;
    bool ticked;
  };
  const std::vector<Row> rows = {
      {"on", true},
      {"yes", true},
      {"true", true},
      {"1", true},
      {"да", true},
      {"YES", true},
      {"On", true},
      {"TRUE", true},
      {" yes ", true},
      {"\tOn\n", true},
      {"", false},
      {"no", false},
      {"off", false},
      {"false", false},
      {"0", false},
      {"нет", false},
      {"y", false},
      {"yes please", false},
      {"11", false},
      {"   ", false},
      // Lower-casing is Unicode-aware: how a Russian site is likely to write the value.
      {"Да", true},
      {"ДА", true},
      {" дА ", true},
      {"Нет", false},
  };
  for (const auto& row : rows) {
    INFO("value '" << row.value << "'");
    CHECK(checkbox_ticked(row.value) == row.ticked);
  }
}

TEST_CASE("read_fields reads each media type a form can send", "[webform][read_fields]") {
  struct Row {
    std::string what, media_type, body;
    std::vector<std::pair<std::string_view, std::string_view>> multipart;
    Fields expected;
  };
  const std::vector<Row> rows = {
      {"urlencoded, percent and plus decoded, valueless keys kept empty",
       "application/x-www-form-urlencoded",
       "name=%D0%98%D0%B2%D0%B0%D0%BD&phone=%2B7+912+345&empty=&flag&&a%3Db=c%26d",
       {},
       {{"name", "Иван"}, {"phone", "+7 912 345"}, {"empty", ""}, {"flag", ""}, {"a=b", "c&d"}}},
      {"multipart: the server's parts, in order",
       "multipart/form-data",
       "(already split)",
       {{"name", "Иван"}, {"comment", "строка 1\r\nстрока 2"}},
       {{"name", "Иван"}, {"comment", "строка 1\r\nстрока 2"}}},
      {"text/plain: one name=value per line, CRLF or LF; lines without = ignored",
       "text/plain",
       "name=Иван\r\ncomment=a=b\nnoequals\n\nlast=1",
       {},
       {{"name", "Иван"}, {"comment", "a=b"}, {"last", "1"}}},
      {"JSON: strings, numbers and booleans; null left out",
       "application/json",
       R"({"name":"Иван","age":42,"ratio":1.5,"consent_pd":true,"consent_marketing":false,"x":null})",
       {},
       // nlohmann's object keeps keys sorted
       {{"age", "42"},
        {"consent_marketing", ""},
        {"consent_pd", "yes"},
        {"name", "Иван"},
        {"ratio", "1.5"}}},
      {"JSON: an empty object", "application/json", "{}", {}, {}},
  };
  for (const auto& row : rows) {
    SECTION(row.what) {
      auto fields = read_fields(row.media_type, row.body, row.multipart);
      REQUIRE(fields);
      CHECK(fields.value() == row.expected);
    }
  }
}

TEST_CASE("read_fields refuses what is not a flat form, saying where", "[webform][read_fields]") {
  struct Row {
    std::string what, media_type, body;
    ErrorCode code;
    std::string message_part;
  };
  const std::vector<Row> rows = {
      {"bad JSON names line and column", "application/json", R"({"name": "Иван",})",
       ErrorCode::bad_request, "line 1, column"},
      {"bad JSON on line 3", "application/json", "{\n  \"a\": \"1\",\n  \"b\": }",
       ErrorCode::bad_request, "line 3, column 8"},
      {"empty JSON body", "application/json", "", ErrorCode::bad_request, "not valid JSON"},
      {"JSON array", "application/json", R"(["name","Иван"])", ErrorCode::bad_request,
       "must be an object"},
      {"nested object", "application/json", R"({"name":"Иван","address":{"city":"Казань"}})",
       ErrorCode::invalid_field, "address: must be a string, number or boolean"},
      {"array value", "application/json", R"({"tags":["a","b"]})", ErrorCode::invalid_field,
       "tags: must be a string, number or boolean"},
      {"CSV", "text/csv", "name,phone\nИван,+7", ErrorCode::unsupported_media,
       "application/x-www-form-urlencoded"},
      {"no Content-Type", "", "name=x", ErrorCode::unsupported_media, "multipart/form-data"},
  };
  for (const auto& row : rows) {
    SECTION(row.what) {
      auto fields = read_fields(row.media_type, row.body, {});
      REQUIRE_FALSE(fields);
      CHECK(fields.error().code == row.code);
      CHECK_THAT(fields.error().detail, Catch::Contains(row.message_part));
    }
  }
}

TEST_CASE("e-mail domains that browsers send as punycode become Unicode",
          "[webform][identifiers]") {
  struct Row {
    std::string raw;
    std::optional<std::string> expected;
  };
  const std::vector<Row> rows = {
      {"ivan@xn--e1afmkfd.xn--p1ai", "ivan@пример.рф"},
      {"Ivan@XN--E1AFMKFD.XN--P1AI", "Ivan@пример.рф"},
      {"ivan@xn--e1afmkfd.xn--p1ai ", "ivan@пример.рф"},
      {"ivan@пример.рф", "ivan@пример.рф"},
      {"ivan@xn--.xn--p1ai", std::nullopt},
  };
  for (const auto& row : rows) {
    INFO(row.raw);
    CHECK(omnigate::normalize_email(row.raw) == row.expected);
  }
}

TEST_CASE("fields to correct: one message per field, by its label, in the form's language",
          "[webform][normalize][problems]") {
  FormConfig form = form_config();
  form.labels["city"] = "Город";
  form.required = {"name", "phone", "city"};
  form.max_field_chars = 15;
  struct Row {
    std::string name;
    std::string language;
    bool strict_phone;
    Fields fields;
    std::vector<std::pair<std::string, std::string>> problems;  // field → message, in order
  };
  const std::vector<Row> rows = {
      {"nothing filled (ru)",
       "ru",
       true,
       {},
       {{"name", "Заполните поле «Имя»."},
        {"phone", "Заполните поле «Телефон»."},
        {"city", "Заполните поле «Город»."},
        {"consent_pd",
         "Без этого согласия мы не можем принять заявку — отметьте его, пожалуйста."}}},
      {"nothing filled (en)",
       "en",
       true,
       {{"city", "Kazan"}, {"consent_pd", "on"}},
       {{"name", "Please fill in “Name”."}, {"phone", "Please fill in “Phone”."}}},
      {"a phone libphonenumber cannot read, strict",
       "ru",
       true,
       {{"name", "Анна"}, {"phone", "abc"}, {"city", "Казань"}, {"consent_pd", "on"}},
       {{"phone", "«Телефон»: это не похоже на номер телефона. Пример: +7 912 345-67-89."}}},
      {"the same, lenient: kept as typed",
       "ru",
       false,
       {{"name", "Анна"}, {"phone", "abc"}, {"city", "Казань"}, {"consent_pd", "on"}},
       {}},
      {"an e-mail without a domain",
       "ru",
       true,
       {{"name", "Анна"},
        {"phone", "+79123456789"},
        {"email", "anna@"},
        {"city", "Казань"},
        {"consent_pd", "on"}},
       {{"email", "«Email»: проверьте адрес, например name@example.ru."}}},
      // 15 Cyrillic letters are 30 bytes: the cap counts characters, not bytes.
      {"fifteen characters fit, sixteen do not",
       "ru",
       true,
       {{"name", "Анна"},
        {"phone", "+79123456789"},
        {"city", "Казань"},
        {"comment", "абвгдеёжзийклмн"},
        {"note", "абвгдеёжзийклмно"},
        {"consent_pd", "on"}},
       {{"note", "«note»: не длиннее 15 символов."}}},
  };
  for (const auto& row : rows) {
    SECTION(row.name) {
      form.language = row.language;
      form.strict_phone = row.strict_phone;
      NormalizedForm out = normalize_form(form, consent_config(), row.fields, context());
      std::vector<std::pair<std::string, std::string>> got;
      for (const auto& p : out.problems) got.emplace_back(p.field, p.message);
      CHECK(got == row.problems);
    }
  }
}

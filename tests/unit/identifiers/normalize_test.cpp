// Phone and e-mail normalization (gateway/model/identifiers.hpp) and the identifier merge of
// normalize_identifiers (gateway/pipeline/pipeline.hpp).
#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

#include "gateway/model/identifiers.hpp"
#include "gateway/pipeline/pipeline.hpp"

using omnigate::Contact;
using omnigate::Identifier;
using omnigate::normalize_email;
using omnigate::normalize_identifiers;
using omnigate::normalize_phone;

namespace {

struct PhoneRow {
  std::string raw;
  std::string expected;
  std::string what;
};

Identifier phone_value(std::string value, bool verified = false) {
  Identifier id;
  id.type = "phone";
  id.value = std::move(value);
  id.verified = verified;
  return id;
}

Identifier phone_raw(std::string raw, bool verified = false) {
  Identifier id;
  id.type = "phone";
  id.raw = std::move(raw);
  id.verified = verified;
  return id;
}

}  // namespace

TEST_CASE("phones in any Russian or international notation become E.164 with region RU",
          "[identifiers][phone]") {
  const std::vector<PhoneRow> rows = {
      {"8 (912) 345-67-89", "+79123456789", "RU mobile, trunk prefix 8 and brackets"},
      {"+7 912 345 67 89", "+79123456789", "RU mobile, international with spaces"},
      {"89123456789", "+79123456789", "RU mobile, digits only with trunk prefix"},
      {"7 912 345-67-89", "+79123456789", "RU mobile, country code without plus"},
      {"+7(912)345-67-89", "+79123456789", "RU mobile, no spaces"},
      {"8-912-345-67-89", "+79123456789", "RU mobile, dashes only"},
      {"  +7 912 345 67 89\t", "+79123456789", "surrounding white space"},
      {"8 (495) 123-45-67", "+74951234567", "Moscow landline, local notation"},
      {"+7 495 123 45 67", "+74951234567", "Moscow landline, international"},
      {"8 812 123-45-67", "+78121234567", "St Petersburg landline"},
      {"+49 30 1234567", "+49301234567", "Germany, Berlin landline (7-digit subscriber)"},
      {"+49 30 12345678", "+493012345678", "Germany, Berlin landline (8-digit subscriber)"},
      {"+1 650 253 0000", "+16502530000", "USA"},
      {"+44 20 7946 0958", "+442079460958", "United Kingdom, London"},
      {"+7 701 123 4567", "+77011234567", "Kazakhstan mobile (shares +7 with RU)"},
      {"+375 29 123-45-67", "+375291234567", "Belarus mobile"},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    CAPTURE(row.raw);
    auto normalized = normalize_phone(row.raw, "RU");
    REQUIRE(normalized.has_value());
    CHECK(*normalized == row.expected);
  }
}

TEST_CASE("text that is not a valid phone number does not normalize", "[identifiers][phone]") {
  auto raw = GENERATE(as<std::string>{}, "", "   ", "not a phone", "123", "+7 (912) 345", "8 800",
                      "phone: call me", "++79123456789xyz");
  CAPTURE(raw);
  CHECK_FALSE(normalize_phone(raw, "RU").has_value());
}

TEST_CASE("the default region decides the country of a local number: DE never yields +7",
          "[identifiers][phone]") {
  auto raw = GENERATE(as<std::string>{}, "8 (912) 345-67-89", "89123456789");
  CAPTURE(raw);
  auto de = normalize_phone(raw, "DE");
  if (de) {
    CHECK(de->rfind("+7", 0) == std::string::npos);
    CHECK(de->rfind("+49", 0) == 0);
  }
  // The same text with RU is the Russian mobile: the region really is what changed.
  CHECK(normalize_phone(raw, "RU") == std::optional<std::string>("+79123456789"));
}

TEST_CASE("a number with its own country code ignores the default region", "[identifiers][phone]") {
  auto region = GENERATE(as<std::string>{}, "RU", "DE", "US", "KZ");
  CAPTURE(region);
  CHECK(normalize_phone("+7 912 345 67 89", region) == std::optional<std::string>("+79123456789"));
  CHECK(normalize_phone("+44 20 7946 0958", region) == std::optional<std::string>("+442079460958"));
}

TEST_CASE("is_supported_region knows ISO 3166 alpha-2 regions only", "[identifiers][phone]") {
  CHECK(omnigate::is_supported_region("RU"));
  CHECK(omnigate::is_supported_region("KZ"));
  CHECK(omnigate::is_supported_region("DE"));
  CHECK_FALSE(omnigate::is_supported_region("ru"));
  CHECK_FALSE(omnigate::is_supported_region("XX"));
  CHECK_FALSE(omnigate::is_supported_region(""));
  CHECK_FALSE(omnigate::is_supported_region("RUS"));
}

TEST_CASE("e-mail addresses are trimmed, the domain lower-cased, the local part kept",
          "[identifiers][email]") {
  struct Row {
    std::string raw, expected;
  };
  const std::vector<Row> rows = {
      {" Ivan@Example.RU ", "Ivan@example.ru"},
      {"Ivan.Petrov+crm@Example.RU", "Ivan.Petrov+crm@example.ru"},
      {"user@Пример.РФ", "user@пример.рф"},
      {"user@xn--e1afmkfd.xn--p1ai", "user@пример.рф"},  // punycode becomes Unicode
      {"mailto:a@b.ru", "a@b.ru"},
      {"a@b.ru", "a@b.ru"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.raw);
    auto normalized = normalize_email(row.raw);
    REQUIRE(normalized.has_value());
    CHECK(*normalized == row.expected);
  }
}

TEST_CASE("text that is not an e-mail address does not normalize", "[identifiers][email]") {
  auto raw = GENERATE(as<std::string>{}, "", "no-at-sign", "a..b@x.ru", ".a@x.ru", "a.@x.ru",
                      "a@localhost", "a@-bad-.ru", "a@", "@x.ru", "a b@x.ru", "a@x..ru", "a@x.ru.",
                      "mailto:");
  CAPTURE(raw);
  CHECK_FALSE(normalize_email(raw).has_value());
}

TEST_CASE("an unparseable phone keeps its raw text and has no value", "[identifiers][merge]") {
  Contact contact;
  contact.identifiers = {phone_raw("call me after 5"), phone_value("not a phone")};
  normalize_identifiers(contact, "RU");
  REQUIRE(contact.identifiers.size() == 2);
  CHECK_FALSE(contact.identifiers[0].value.has_value());
  CHECK(contact.identifiers[0].raw == std::optional<std::string>("call me after 5"));
  // A "value" that is not canonical is moved to raw.
  CHECK_FALSE(contact.identifiers[1].value.has_value());
  CHECK(contact.identifiers[1].raw == std::optional<std::string>("not a phone"));
}

TEST_CASE("a canonical identifier keeps its value and drops raw", "[identifiers][merge]") {
  Contact contact;
  Identifier phone = phone_value("+79123456789");
  phone.raw = "+79123456789";  // raw equal to the canonical form is redundant
  Identifier email;
  email.type = "email";
  email.value = "ivan@example.ru";
  contact.identifiers = {phone, email};
  normalize_identifiers(contact, "RU");
  REQUIRE(contact.identifiers.size() == 2);
  CHECK(contact.identifiers[0].value == std::optional<std::string>("+79123456789"));
  CHECK_FALSE(contact.identifiers[0].raw.has_value());
  CHECK(contact.identifiers[1].value == std::optional<std::string>("ivan@example.ru"));
  CHECK_FALSE(contact.identifiers[1].raw.has_value());
}

TEST_CASE("a local phone gets its E.164 value and keeps what was received as raw",
          "[identifiers][merge]") {
  Contact contact;
  Identifier email;
  email.type = "email";
  email.raw = " Ivan@Example.RU ";
  contact.identifiers = {phone_raw("8 (912) 345-67-89"), email};
  normalize_identifiers(contact, "RU");
  REQUIRE(contact.identifiers.size() == 2);
  CHECK(contact.identifiers[0].value == std::optional<std::string>("+79123456789"));
  CHECK(contact.identifiers[0].raw == std::optional<std::string>("8 (912) 345-67-89"));
  CHECK(contact.identifiers[1].value == std::optional<std::string>("Ivan@example.ru"));
  CHECK(contact.identifiers[1].raw == std::optional<std::string>(" Ivan@Example.RU "));
}

TEST_CASE("the default region applies when normalizing identifiers", "[identifiers][merge]") {
  Contact contact;
  contact.identifiers = {phone_raw("8 701 123 4567")};
  normalize_identifiers(contact, "KZ");
  REQUIRE(contact.identifiers.size() == 1);
  CHECK(contact.identifiers[0].value == std::optional<std::string>("+77011234567"));
}

TEST_CASE("two phones with the same E.164 form merge into one, verified if either was",
          "[identifiers][merge]") {
  auto verified_first = GENERATE(true, false);
  CAPTURE(verified_first);
  Contact contact;
  contact.identifiers = {phone_raw("8 (912) 345-67-89", verified_first),
                         phone_value("+79123456789", !verified_first),
                         phone_raw("+7 912 345 67 89", false)};
  normalize_identifiers(contact, "RU");
  REQUIRE(contact.identifiers.size() == 1);
  CHECK(contact.identifiers[0].value == std::optional<std::string>("+79123456789"));
  CHECK(contact.identifiers[0].verified);
  // The first occurrence is the one kept.
  CHECK(contact.identifiers[0].raw == std::optional<std::string>("8 (912) 345-67-89"));
}

TEST_CASE("e-mails that differ only in the domain's case merge", "[identifiers][merge]") {
  Contact contact;
  Identifier a, b;
  a.type = b.type = "email";
  a.raw = "ivan@Example.ru";
  b.value = "ivan@example.ru";
  b.verified = true;
  contact.identifiers = {a, b};
  normalize_identifiers(contact, "RU");
  REQUIRE(contact.identifiers.size() == 1);
  CHECK(contact.identifiers[0].verified);
  CHECK(contact.identifiers[0].value == std::optional<std::string>("ivan@example.ru"));
}

TEST_CASE("a phone and an e-mail are never merged, nor are two unparseable phones",
          "[identifiers][merge]") {
  Contact contact;
  Identifier email;
  email.type = "email";
  email.value = "a@b.ru";
  contact.identifiers = {phone_raw("garbage"), phone_raw("garbage"), email,
                         phone_value("+79123456789")};
  normalize_identifiers(contact, "RU");
  // Without a value there is nothing to compare, so both raw texts stay.
  REQUIRE(contact.identifiers.size() == 4);
  CHECK(contact.identifiers[2].type == "email");
  CHECK(contact.identifiers[3].value == std::optional<std::string>("+79123456789"));
}

TEST_CASE("identifiers other than phone and e-mail are not normalized", "[identifiers][merge]") {
  Contact contact;
  Identifier username;
  username.type = "telegram_username";
  username.value = "Ivan_Petrov";
  username.raw = "@Ivan_Petrov";
  username.verified = true;
  Identifier user_id;
  user_id.type = "telegram_user_id";
  user_id.value = " 123456789 ";
  contact.identifiers = {username, user_id};
  normalize_identifiers(contact, "RU");
  REQUIRE(contact.identifiers.size() == 2);
  CHECK(contact.identifiers[0].type == "telegram_username");
  CHECK(contact.identifiers[0].value == std::optional<std::string>("Ivan_Petrov"));
  CHECK(contact.identifiers[0].raw == std::optional<std::string>("@Ivan_Petrov"));
  CHECK(contact.identifiers[0].verified);
  CHECK(contact.identifiers[1].value == std::optional<std::string>(" 123456789 "));
  CHECK_FALSE(contact.identifiers[1].raw.has_value());
}

TEST_CASE(
    "a number seen again is answered from the phone cache with the same result, per region, "
    "the cache stays within its capacity",
    "[identifiers][phone]") {
  const auto before = omnigate::phone_cache_stats();
  const auto first = normalize_phone("8 (916) 555-01-02", "RU");
  const auto again = normalize_phone("  8 (916) 555-01-02 ", "RU");  // the same text once trimmed
  REQUIRE(first);
  CHECK(*first == "+79165550102");
  CHECK(again == first);
  const auto after = omnigate::phone_cache_stats();
  CHECK(after.hits == before.hits + 1);
  CHECK(after.misses == before.misses + 1);
  // Another region is another answer, not the cached one.
  CHECK(normalize_phone("030 1234567", "DE") == std::optional<std::string>("+49301234567"));
  CHECK_FALSE(normalize_phone("030 1234567", "RU").has_value());
  CHECK_FALSE(normalize_phone("030 1234567", "RU").has_value());  // "not a number" is cached too
  for (int i = 0; i < 40'000; ++i) normalize_phone("+7 916 " + std::to_string(1'000'000 + i), "RU");
  const auto full = omnigate::phone_cache_stats();
  CHECK(full.entries <= full.capacity);
  CHECK(full.capacity > 0);
}

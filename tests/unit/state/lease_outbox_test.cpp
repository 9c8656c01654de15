// The pure parts of poll leases and the mail outbox: the stored lease value, the stored poll
// offset, the outbox's mail encoding and the masked address of `omnigate outbox list`.
#include <catch2/catch.hpp>

#include "connectors/telegram/telegram_poller.hpp"
#include "gateway/config/config.hpp"
#include "gateway/mail/outbox.hpp"
#include "gateway/state/lease.hpp"

using omnigate::decode_lease;
using omnigate::decode_mail;
using omnigate::encode_lease;
using omnigate::encode_mail;
using omnigate::LeaseValue;
using omnigate::mask_address;
using omnigate::OutgoingMail;
using omnigate::telegram::parse_offset;

TEST_CASE("a lease value round-trips, anything else is not a lease", "[lease]") {
  LeaseValue value{"host:42:ab12cd34", 15000, 1764570000000};
  auto back = decode_lease(encode_lease(value));
  REQUIRE(back);
  CHECK(back->holder == value.holder);
  CHECK(back->ttl_ms == 15000);
  CHECK(back->expires_at_ms == value.expires_at_ms);

  auto released = decode_lease(encode_lease({"", 15000, 0}));
  REQUIRE(released);
  CHECK(released->holder.empty());

  for (const char* corrupt :
       {"", "garbage", "42", "[]", "{}", R"({"holder":1,"ttl_ms":1,"expires_at_ms":1})",
        R"({"holder":"h","ttl_ms":-5,"expires_at_ms":1})", R"({"holder":"h","ttl_ms":"15s"})",
        R"({"holder":"h","ttl_ms":1)"}) {
    INFO(corrupt);
    CHECK_FALSE(decode_lease(corrupt));
  }
}

TEST_CASE("a stored poll offset is a non-negative decimal number or nothing", "[lease][telegram]") {
  CHECK(parse_offset("0") == 0);
  CHECK(parse_offset("829361021") == 829361021);
  for (const char* corrupt : {"", "-1", "12x", " 12", "1e9", "99999999999999999999999", "\xff"}) {
    INFO(corrupt);
    CHECK_FALSE(parse_offset(corrupt));
  }
}

TEST_CASE("outbox: a mail survives its stored form, other bytes are refused", "[outbox]") {
  OutgoingMail mail{"ivan@пример.рф",
                    "Подтвердите подписку",
                    "Здравствуйте!\nСсылка: https://example.ru/c?t=a\"b\n",
                    {{"List-Unsubscribe", "<https://example.ru/u?t=1>"}}};
  auto back = decode_mail(encode_mail(mail));
  REQUIRE(back);
  CHECK(back->to == mail.to);
  CHECK(back->subject == mail.subject);
  CHECK(back->text == mail.text);
  CHECK(back->headers == mail.headers);
  for (const char* other : {"", "{}", R"({"to":"a@b.c","subject":"s"})",
                            R"({"to":"a@b.c","subject":"s","text":"t","headers":[["x"]]})",
                            R"({"to":1,"subject":"s","text":"t"})"}) {
    INFO(other);
    CHECK_FALSE(decode_mail(other));
  }
}

TEST_CASE("outbox: addresses are masked to their first character and domain", "[outbox]") {
  CHECK(mask_address("ivan@example.ru") == "i***@example.ru");
  CHECK(mask_address("i@example.ru") == "i***@example.ru");
  CHECK(mask_address("анна@пример.рф") == "а***@пример.рф");  // a whole UTF-8 character
  CHECK(mask_address("no-at-sign") == "***");
  CHECK(mask_address("@example.ru") == "***");
}

TEST_CASE("leases and outbox config: defaults, values and refused values",
          "[lease][outbox][config]") {
  auto load = [](const std::string& text) {
    omnigate::ConfigContext context("file.yaml");
    auto config = omnigate::load_config_text(text, "file.yaml", context);
    return std::make_pair(
        config.ok() ? std::optional<omnigate::Config>(std::move(config.value())) : std::nullopt,
        config.ok() ? std::string() : config.error().detail);
  };
  auto defaults = load("log:\n  level: info\n");
  REQUIRE(defaults.first);
  CHECK(defaults.first->leases.ttl == std::chrono::seconds(15));
  CHECK(defaults.first->outbox.max_attempts == 10);
  CHECK(defaults.first->outbox.max_age == std::chrono::hours(24));
  CHECK(defaults.first->outbox.backoff.front() == std::chrono::seconds(10));

  auto set = load(
      "leases:\n  ttl: 3s\noutbox:\n  max_attempts: 3\n  max_age: 2h\n  backoff: [250ms, 2s]\n");
  REQUIRE(set.first);
  CHECK(set.first->leases.ttl == std::chrono::seconds(3));
  CHECK(set.first->outbox.max_attempts == 3);
  CHECK(set.first->outbox.max_age == std::chrono::hours(2));
  CHECK(set.first->outbox.backoff == std::vector<std::chrono::milliseconds>{
                                         std::chrono::milliseconds(250), std::chrono::seconds(2)});

  auto bad = load("leases:\n  ttl: 200ms\noutbox:\n  max_attempts: 0\n  backoff: [soon, 1ms]\n");
  CHECK_FALSE(bad.first);
  CHECK_THAT(bad.second, Catch::Contains("leases.ttl"));
  CHECK_THAT(bad.second, Catch::Contains("outbox.max_attempts"));
  CHECK_THAT(bad.second, Catch::Contains("'soon' is not a duration"));
  CHECK_THAT(bad.second, Catch::Contains("'1ms' is not a duration"));
  CHECK_THAT(load("outbox:\n  backoff: []\n").second,
             Catch::Contains("outbox.backoff: must list at least one duration"));
}

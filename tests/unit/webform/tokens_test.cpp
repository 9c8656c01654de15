// Signed and sealed tokens (gateway/core/secrets.hpp) and the link claims built on them
// (gateway/consent/consent.hpp): render tokens of web forms, double opt-in confirmation and
// unsubscribe links.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "gateway/consent/consent.hpp"
#include "gateway/core/secrets.hpp"

using omnigate::base64url_decode;
using omnigate::base64url_encode;

namespace {

const std::string kKey = "unit-test-signing-key-0123456789abcdef";

std::string all_bytes() {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  return bytes;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

TEST_CASE("base64url: RFC 4648 vectors, URL-safe alphabet, no padding", "[tokens][base64url]") {
  struct Row {
    std::string bytes, encoded;
  };
  const std::vector<Row> rows = {
      {"", ""},
      {"f", "Zg"},
      {"fo", "Zm8"},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg"},
      {"fooba", "Zm9vYmE"},
      {"foobar", "Zm9vYmFy"},
      {std::string("\xfb\xff", 2), "-_8"},  // "+/8=" in standard base64
      {std::string("\x00\x00\x00", 3), "AAAA"},
      {std::string("\xff\xff\xfe", 3), "___-"},
  };
  for (const auto& row : rows) {
    INFO("encoded " << row.encoded);
    CHECK(base64url_encode(row.bytes) == row.encoded);
    CHECK(base64url_decode(row.encoded) == row.bytes);
  }
}

TEST_CASE("base64url round-trips every byte value at every length remainder",
          "[tokens][base64url]") {
  const std::string bytes = all_bytes();
  for (size_t length :
       {size_t(0), size_t(1), size_t(2), size_t(3), size_t(254), size_t(255), size_t(256)}) {
    for (size_t offset : {size_t(0), size_t(1), size_t(2)}) {
      if (offset + length > bytes.size()) continue;
      std::string slice = bytes.substr(offset, length);
      std::string encoded = base64url_encode(slice);
      INFO("length " << length << " offset " << offset);
      CHECK(encoded.find_first_not_of(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
            std::string::npos);
      CHECK(encoded.size() == (length * 4 + 2) / 3);  // unpadded length
      CHECK(base64url_decode(encoded) == slice);
    }
  }
  // And byte by byte, so each value sits in every position of a 3-byte group.
  for (int i = 0; i < 256; ++i) {
    for (int pad = 0; pad < 3; ++pad) {
      std::string s = std::string(static_cast<size_t>(pad), 'x') + static_cast<char>(i);
      REQUIRE(base64url_decode(base64url_encode(s)) == s);
    }
  }
}

TEST_CASE("base64url_decode refuses what is not unpadded base64url", "[tokens][base64url]") {
  // "Zh" and "Zm9vYh" carry non-zero unused bits: the canonical spellings are "Zg", "Zm9vYg".
  for (std::string bad : {"Zm9v=", "Zg==", "Zm9vY", "a+b/", "Zm 9v", "Zm9v\n", "Zm9v.", "Z", "Zh",
                          "Zm9vYh", "Zm9vYmF"}) {
    INFO(bad);
    CHECK_FALSE(base64url_decode(bad));
  }
}

TEST_CASE("seal_token / open_token: round trip, confidential, tamper-proof", "[tokens][seal]") {
  const std::vector<std::string> payloads = {"", R"({"k":"confirm","e":"ivan@example.ru"})",
                                             "строка по-русски 📞", all_bytes()};
  for (const auto& payload : payloads) {
    std::string token = omnigate::seal_token(kKey, payload);
    INFO("token " << token);
    REQUIRE_FALSE(token.empty());
    CHECK(token.find_first_not_of(
              "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
          std::string::npos);
    CHECK(omnigate::open_token(kKey, token) == payload);
    // A fresh nonce each time: two seals of one payload differ, both open.
    std::string again = omnigate::seal_token(kKey, payload);
    CHECK(again != token);
    CHECK(omnigate::open_token(kKey, again) == payload);
    CHECK_FALSE(omnigate::open_token(kKey + "x", token));
    CHECK_FALSE(omnigate::open_token("", token));
    // The payload merely encoded is not a sealed token.
    CHECK_FALSE(omnigate::open_token(kKey, base64url_encode(payload)));
  }

  const std::string email = "ivan@example.ru";
  std::string token = omnigate::seal_token(kKey, R"({"k":"confirm","e":")" + email + R"("})");
  SECTION("the payload cannot be read from the token") {
    auto bytes = base64url_decode(token);
    REQUIRE(bytes);
    CHECK(bytes->find(email) == std::string::npos);
    CHECK(token.find(base64url_encode(email).substr(0, 8)) == std::string::npos);
  }
  SECTION("any one character changed, in every position, to every other character") {
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < token.size(); ++i) {
      for (char c : alphabet) {
        if (c == token[i]) continue;
        std::string changed = token;
        changed[i] = c;
        INFO("position " << i << ": '" << token[i] << "' → '" << c << "'");
        REQUIRE_FALSE(omnigate::open_token(kKey, changed));
      }
    }
  }
  SECTION("cut, extended or too short") {
    for (std::string bad :
         {token.substr(0, token.size() - 1), token + "A", token.substr(4), std::string(),
          std::string("AAAA"), base64url_encode(std::string(27, '\0')), token + "."}) {
      INFO("'" << bad << "'");
      CHECK_FALSE(omnigate::open_token(kKey, bad));
    }
  }
}

TEST_CASE("ConsentLinks: claims survive signing, kind and expiry are enforced",
          "[tokens][consent]") {
  omnigate::Config config;
  config.consent.signing_key = kKey;
  config.http.public_url = "https://gw.example";
  omnigate::ConsentLinks links(config);

  omnigate::LinkClaims claims;
  claims.kind = "confirm";
  claims.channel = "webform";
  claims.account = "callback";
  claims.email = "ivan@пример.рф";
  claims.purposes = {"marketing", "processing"};
  claims.channels = {"email", "sms"};
  claims.text_ids = {"marketing-email", "pd-processing"};
  claims.submission_id = "sub-1";
  claims.linked_interaction_id = "7c1f2d4e-0000-5000-8000-000000000001";
  claims.language = "en";
  claims.nonce = "n-1";
  claims.issued_at_ms = 1'764'000'000'123;
  claims.expires_at = unix_now() + 3600;

  std::string token = links.sign(claims);
  auto back = links.verify(token, "confirm");
  REQUIRE(back);
  CHECK(back->kind == claims.kind);
  CHECK(back->channel == claims.channel);
  CHECK(back->account == claims.account);
  CHECK(back->email == claims.email);
  CHECK(back->purposes == claims.purposes);
  CHECK(back->channels == claims.channels);
  CHECK(back->text_ids == claims.text_ids);
  CHECK(back->submission_id == claims.submission_id);
  CHECK(back->linked_interaction_id == claims.linked_interaction_id);
  CHECK(back->language == claims.language);
  CHECK(back->nonce == claims.nonce);
  CHECK(back->issued_at_ms == claims.issued_at_ms);
  CHECK(back->expires_at == claims.expires_at);

  SECTION("another kind of token is refused as forged") {
    auto as_unsubscribe = links.verify(token, "unsubscribe");
    REQUIRE_FALSE(as_unsubscribe);
    CHECK(as_unsubscribe.error().code == omnigate::ErrorCode::forbidden);
    CHECK_FALSE(links.verify(token, "render"));
  }
  SECTION("expired: gone (410 from the one status table)") {
    claims.expires_at = unix_now() - 1;
    auto expired = links.verify(links.sign(claims), "confirm");
    REQUIRE_FALSE(expired);
    CHECK(expired.error().code == omnigate::ErrorCode::gone);
    CHECK(expired.error().http_status() == 410);
  }
  SECTION("expires_at 0 never expires") {
    claims.expires_at = 0;
    CHECK(links.verify(links.sign(claims), "confirm"));
  }
  SECTION("signed by another key") {
    omnigate::Config other;
    other.consent.signing_key = kKey + "-rotated";
    auto result = omnigate::ConsentLinks(other).verify(token, "confirm");
    REQUIRE_FALSE(result);
    CHECK(result.error().code == omnigate::ErrorCode::forbidden);
  }
  SECTION("sealed by us but not claims (wrong shape) is forged, not a crash") {
    for (std::string payload : {"{}", "[]", "not json", R"({"k":"confirm","ch":1})"}) {
      auto result = links.verify(omnigate::seal_token(kKey, payload), "confirm");
      REQUIRE_FALSE(result);
      CHECK(result.error().code == omnigate::ErrorCode::forbidden);
    }
  }
  SECTION("URLs: the public URL, the route, a token that needs no percent-encoding") {
    std::string url = links.confirm_url(claims);
    CHECK(url.rfind("https://gw.example/v1/consent/confirm?token=", 0) == 0);
    auto from_url = links.verify(url.substr(url.find("token=") + 6), "confirm");
    REQUIRE(from_url);
    CHECK(from_url->email == claims.email);
    CHECK(url.find('%') == std::string::npos);
    CHECK(url.find(claims.email) == std::string::npos);
    std::string unsubscribe = links.unsubscribe_url(claims);
    CHECK(unsubscribe.rfind("https://gw.example/v1/consent/unsubscribe?token=", 0) == 0);
  }
  SECTION("unsubscribe claims: a fresh nonce per link, never expiring, ru by default") {
    auto a = links.unsubscribe_claims("webform", "callback", "a@example.ru", {"marketing"},
                                      {"email"}, "");
    auto b = links.unsubscribe_claims("webform", "callback", "a@example.ru", {"marketing"},
                                      {"email"}, "");
    CHECK(a.kind == "unsubscribe");
    CHECK(a.nonce != b.nonce);
    CHECK_FALSE(a.nonce.empty());
    CHECK(a.expires_at == 0);
    CHECK(a.language == "ru");
    CHECK(links.verify(links.sign(a), "unsubscribe"));
  }
}

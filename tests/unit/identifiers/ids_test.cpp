// Deterministic interaction ids, RFC 3339 clock formats and SHA-256 (gateway/model/ids.hpp).
#include <catch2/catch.hpp>

#include <openssl/evp.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "gateway/model/ids.hpp"

using namespace std::chrono;
using omnigate::format_rfc3339;
using omnigate::interaction_id;
using omnigate::parse_rfc3339;
using omnigate::SysMillis;

namespace {

// omnigate's UUID namespace, as bytes: 6f6d6e69-6761-5465-8000-696e7465726e.
constexpr std::array<unsigned char, 16> kNamespace = {
    0x6f, 0x6d, 0x6e, 0x69, 0x67, 0x61, 0x54, 0x65, 0x80, 0x00, 0x69, 0x6e, 0x74, 0x65, 0x72, 0x6e};

// RFC 4122 §4.3 computed independently of libuuid: SHA-1(namespace || name), then the
// version (5) and variant (10xx) bits.
std::string reference_uuid_v5(const std::string& name) {
  std::string input(reinterpret_cast<const char*>(kNamespace.data()), kNamespace.size());
  input += name;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(input.data(), input.size(), digest, &length, EVP_sha1(), nullptr);
  digest[6] = static_cast<unsigned char>((digest[6] & 0x0f) | 0x50);
  digest[8] = static_cast<unsigned char>((digest[8] & 0x3f) | 0x80);
  char out[37];
  std::snprintf(
      out, sizeof out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
      digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
      digest[8], digest[9], digest[10], digest[11], digest[12], digest[13], digest[14], digest[15]);
  return out;
}

SysMillis at(int y, unsigned mo, unsigned d, int h, int mi, int s, int ms = 0) {
  return sys_days{year{y} / month{mo} / day{d}} + hours(h) + minutes(mi) + seconds(s) +
         milliseconds(ms);
}

}  // namespace

TEST_CASE("interaction_id is the same for every retry of the same event", "[ids]") {
  CHECK(interaction_id("api", "crm-import", "k1") == interaction_id("api", "crm-import", "k1"));
  // Pinned: the namespace must never change, or dedup across versions breaks.
  CHECK(interaction_id("api", "crm-import", "k1") == "98934dfa-a212-5186-9ce6-f319db7b390d");
}

TEST_CASE("interaction_id is RFC 4122 UUIDv5 over \"channel:account:key\" in omnigate's namespace",
          "[ids]") {
  struct Row {
    std::string channel, account, key;
  };
  const std::vector<Row> rows = {
      {"api", "crm-import", "k1"},
      {"telegram", "shopbot", "update:4711"},
      {"webform", "shop_site", ""},
      {"email", "inbox", "<CAF=x@mail.example.ru>"},
      {"vk", "club1", "Ключ идемпотентности"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.channel, row.account, row.key);
    CHECK(interaction_id(row.channel, row.account, row.key) ==
          reference_uuid_v5(row.channel + ":" + row.account + ":" + row.key));
  }
}

TEST_CASE("interaction_id is a lower-case version-5 UUID with the RFC 4122 variant", "[ids]") {
  static const std::regex shape("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$");
  auto key = GENERATE(as<std::string>{}, "k1", "K1", "", "a very long key with spaces and ünïcödé");
  CAPTURE(key);
  std::string id = interaction_id("api", "acc", key);
  REQUIRE(std::regex_match(id, shape));
  CHECK(id[14] == '5');                                          // version nibble
  CHECK(std::string("89ab").find(id[19]) != std::string::npos);  // variant 10xx
}

TEST_CASE("interaction_id changes when the channel, the account or the key changes", "[ids]") {
  std::set<std::string> ids = {
      interaction_id("api", "acc", "key"),  interaction_id("telegram", "acc", "key"),
      interaction_id("api", "acc2", "key"), interaction_id("api", "acc", "key2"),
      interaction_id("api", "acc", "Key"),  interaction_id("api", "Acc", "key"),
  };
  CHECK(ids.size() == 6);
}

TEST_CASE(
    "interaction_id hashes the joined string, so a ':' moved between account and key "
    "collides (accounts cannot contain ':', see the config tests)",
    "[ids]") {
  // Documented behaviour: the name is "<channel>:<account>:<key>" without escaping. Config
  // validation restricts accounts to [A-Za-z0-9_-]{1,64} and channels are fixed names, so
  // only the key (the last part) can contain ':' and real ids cannot collide this way.
  CHECK(interaction_id("api", "a:b", "c") == interaction_id("api", "a", "b:c"));
  CHECK(interaction_id("a:b", "c", "k") == interaction_id("a", "b:c", "k"));
}

TEST_CASE("random_uuid is a fresh lower-case version-4 UUID each time", "[ids]") {
  static const std::regex shape(
      "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  std::string a = omnigate::random_uuid(), b = omnigate::random_uuid();
  CHECK(std::regex_match(a, shape));
  CHECK(std::regex_match(b, shape));
  CHECK(a != b);
}

TEST_CASE("format_rfc3339 writes UTC with milliseconds and Z", "[ids][time]") {
  CHECK(format_rfc3339(at(2026, 11, 22, 6, 30, 0, 123)) == "2026-11-22T06:30:00.123Z");
  CHECK(format_rfc3339(at(2026, 1, 2, 3, 4, 5, 6)) == "2026-01-02T03:04:05.006Z");
  CHECK(format_rfc3339(SysMillis{}) == "1970-01-01T00:00:00.000Z");
  CHECK(format_rfc3339(at(2024, 2, 29, 23, 59, 59, 999)) == "2024-02-29T23:59:59.999Z");
}

TEST_CASE("format_rfc3339 pads small years, goes before 1970 and keeps five-digit years",
          "[ids][time]") {
  CHECK(format_rfc3339(SysMillis{std::chrono::milliseconds(-1)}) == "1969-12-31T23:59:59.999Z");
  CHECK(format_rfc3339(at(5, 6, 7, 8, 9, 10, 11)) == "0005-06-07T08:09:10.011Z");
  CHECK(format_rfc3339(at(9999, 12, 31, 23, 59, 59, 999)) == "9999-12-31T23:59:59.999Z");
  CHECK(format_rfc3339(at(10000, 1, 1, 0, 0, 0, 0)) == "10000-01-01T00:00:00.000Z");
}

TEST_CASE("format_rfc3339 and parse_rfc3339 round-trip with milliseconds", "[ids][time]") {
  auto time = GENERATE(at(2026, 11, 22, 6, 30, 0, 123), at(1999, 12, 31, 23, 59, 59, 1),
                       at(2024, 2, 29, 0, 0, 0, 0), at(2038, 1, 19, 3, 14, 8, 999));
  std::string text = format_rfc3339(time);
  CAPTURE(text);
  auto parsed = parse_rfc3339(text);
  REQUIRE(parsed.has_value());
  CHECK(*parsed == time);
}

TEST_CASE("parse_rfc3339 applies numeric offsets", "[ids][time]") {
  struct Row {
    std::string text;
    SysMillis expected;
  };
  const std::vector<Row> rows = {
      {"2026-11-22T12:30:00+03:00", at(2026, 11, 22, 9, 30, 0)},
      {"2026-11-22T09:30:00Z", at(2026, 11, 22, 9, 30, 0)},
      {"2026-11-22T09:30:00+00:00", at(2026, 11, 22, 9, 30, 0)},
      {"2026-11-22T04:00:00-05:30", at(2026, 11, 22, 9, 30, 0)},
      {"2026-11-22T01:30:00+05:00", at(2026, 11, 21, 20, 30, 0)},  // crosses midnight
  };
  for (const auto& row : rows) {
    CAPTURE(row.text);
    auto parsed = parse_rfc3339(row.text);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == row.expected);
  }
  CHECK(parse_rfc3339("2026-11-22T12:30:00+03:00") == parse_rfc3339("2026-11-22T09:30:00Z"));
}

TEST_CASE("parse_rfc3339 accepts 1 to 9 fractional digits and keeps milliseconds", "[ids][time]") {
  struct Row {
    std::string fraction;
    int millis;
  };
  const std::vector<Row> rows = {
      {".1", 100},         {".12", 120},        {".123", 123},     {".1234", 123},
      {".12345", 123},     {".123456", 123},    {".1234567", 123}, {".12345678", 123},
      {".123456789", 123}, {".999999999", 999}, {".000000001", 0},
  };
  for (const auto& row : rows) {
    std::string text = "2026-11-22T09:30:00" + row.fraction + "Z";
    CAPTURE(text);
    auto parsed = parse_rfc3339(text);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == at(2026, 11, 22, 9, 30, 0, row.millis));
  }
}

TEST_CASE("parse_rfc3339 accepts a lower-case z", "[ids][time]") {
  CHECK(parse_rfc3339("2026-11-22T09:30:00z") ==
        std::optional<SysMillis>(at(2026, 11, 22, 9, 30, 0)));
  CHECK(parse_rfc3339("2026-11-22t09:30:00.5z") ==
        std::optional<SysMillis>(at(2026, 11, 22, 9, 30, 0, 500)));
}

TEST_CASE("parse_rfc3339 rejects what is not an RFC 3339 date-time", "[ids][time]") {
  auto text = GENERATE(
      as<std::string>{}, "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-00-10T00:00:00Z",
      "2026-11-00T00:00:00Z", "2026-11-22T24:00:00Z", "2026-11-22T09:60:00Z", "2026-11-22 09:30",
      "yesterday", "2026-11-22T09:30:00", "2026-11-22T09:30:00.123", "2026-11-22T09:30:00.Z",
      "2026-11-22T09:30:00+0300", "2026-11-22T09:30:00+03", "2026-11-22T09:30:00Zjunk",
      "2026-11-22T09:30:00 Z", "2026-11-22", "", "2026/11/22T09:30:00Z", "2026-11-22T9:30:00Z");
  CAPTURE(text);
  CHECK_FALSE(parse_rfc3339(text).has_value());
}

TEST_CASE("now_millis is whole milliseconds of the system clock", "[ids][time]") {
  auto before = floor<milliseconds>(system_clock::now());
  auto now = omnigate::now_millis();
  auto after = system_clock::now();
  CHECK(now >= before);
  CHECK(now <= after);
}

TEST_CASE("sha256_hex matches the FIPS 180-2 test vectors", "[ids][sha256]") {
  CHECK(omnigate::sha256_hex("abc") ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(omnigate::sha256_hex("") ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(omnigate::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // Binary bytes, including NUL, are hashed as given.
  CHECK(omnigate::sha256_hex(std::string_view("a\0b", 3)) != omnigate::sha256_hex("ab"));
}

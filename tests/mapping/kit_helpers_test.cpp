// The kit's parsing and verification helpers, linked without NATS or httplib (this executable
// links the model, the http request/verify library and the channels' mapping libraries only;
// ctest checks its dynamic dependencies).
#include <catch2/catch.hpp>

#include <functional>
#include <string>

#include "gateway/core/error.hpp"
#include "gateway/http/request.hpp"
#include "gateway/http/verify.hpp"
#include "gateway/model/json_scan.hpp"
#include "gateway/model/keyword_consent.hpp"
#include "gateway/model/tracking.hpp"

using namespace omnigate;

TEST_CASE("tracking parameters: utm_* into source.utm (first wins), the rest kept or dropped",
          "[kit][tracking]") {
  Source source;
  route_tracking_params(source,
                        {{"utm_source", " vk "},
                         {"utm_source", "later"},
                         {"utm_campaign", ""},
                         {"utm_campaign", "весна"},
                         {"gclid", "abc"}},
                        OtherParams::keep);
  CHECK(source.utm.source == "vk");
  CHECK(source.utm.campaign == "весна");  // the empty first value is skipped
  REQUIRE(source.params.size() == 1);
  CHECK(source.params[0] == std::pair<std::string, std::string>{"gclid", "abc"});

  Source form;
  route_tracking_params(form, {{"utm_medium", "cpc"}, {"name", "Анна"}}, OtherParams::drop);
  CHECK(form.utm.medium == "cpc");
  CHECK(form.params.empty());

  CHECK(query_of("https://shop.example/p?utm_source=x&a=1#top") == "utm_source=x&a=1");
  CHECK(query_of("https://shop.example/p#top").empty());
}

TEST_CASE("deep links: the base64url key=value convention is decoded, anything else kept raw",
          "[kit][tracking]") {
  // base64url("utm_source=vk&utm_campaign=spring&ref=42")
  Source source;
  route_deep_link(source, "dXRtX3NvdXJjZT12ayZ1dG1fY2FtcGFpZ249c3ByaW5nJnJlZj00Mg");
  CHECK(source.deep_link == "dXRtX3NvdXJjZT12ayZ1dG1fY2FtcGFpZ249c3ByaW5nJnJlZj00Mg");
  CHECK(source.utm.source == "vk");
  CHECK(source.utm.campaign == "spring");
  REQUIRE(source.params.size() == 1);
  CHECK(source.params[0].first == "ref");

  Source plain;
  route_deep_link(plain, "promo2026");  // not base64url of key=value
  CHECK(plain.deep_link == "promo2026");
  CHECK(plain.utm.empty());
  CHECK(plain.params.empty());
  CHECK_FALSE(decode_deep_link("AAEC"));  // binary bytes
}

TEST_CASE("stop words: the whole text, trimmed and case-folded, Cyrillic included",
          "[kit][consent]") {
  StopWords defaults;
  CHECK(defaults.matches("СТОП"));
  CHECK(defaults.matches("  Отписаться \n"));
  CHECK(defaults.matches("UNSUBSCRIBE"));
  CHECK_FALSE(defaults.matches("стоп, а сколько стоит доставка?"));
  CHECK_FALSE(defaults.matches(""));
  CHECK_FALSE(defaults.matches(std::string(100'000, 'x')));
  StopWords custom({"Хватит"});
  CHECK(custom.matches("хватит"));
  CHECK_FALSE(custom.matches("стоп"));
  Consent c = stop_word_withdrawal("vk", SysMillis{});
  CHECK(c.channels == std::vector<std::string>{"vk"});
  CHECK(c.purpose == "marketing");
  CHECK(c.status == "withdrawn");
  CHECK(c.method == "keyword");
}

TEST_CASE("HMAC-SHA256 over the raw body: RFC 4231 vector, and every wrong header refused",
          "[kit][verify]") {
  // RFC 4231, test case 2.
  CHECK(verify::hmac_sha256_hex("Jefe", "what do ya want for nothing?") ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  const std::string secret = "wa-test-app-secret-0123456789";
  const std::string body = R"({"object":"whatsapp_business_account","entry":[]})";
  const std::string good = "sha256=" + verify::hmac_sha256_hex(secret, body);
  CHECK(verify::hmac_sha256(body, secret, good));
  std::string upper = good;
  for (size_t i = 7; i < upper.size(); ++i) upper[i] = static_cast<char>(std::toupper(upper[i]));
  CHECK(verify::hmac_sha256(body, secret, upper));  // hex case does not matter
  for (const std::string& bad :
       {std::string(), std::string("sha256="), good.substr(7), "sha1=" + good.substr(7),
        good.substr(0, good.size() - 1) + (good.back() == '0' ? "1" : "0"), good + "00"}) {
    CAPTURE(bad);
    auto refused = verify::hmac_sha256(body, secret, bad);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == ErrorCode::signature_invalid);
    CHECK(refused.error().http_status() == 401);
  }
  CHECK_FALSE(verify::hmac_sha256(body + " ", secret, good));  // one byte more in the body
  CHECK_FALSE(verify::hmac_sha256(body, "", "sha256=" + verify::hmac_sha256_hex("", body)));
}

TEST_CASE("shared secrets and bearer tokens are compared by the kit, with the kit's codes",
          "[kit][verify]") {
  CHECK(verify::secret("s3cret-value-0123", "s3cret-value-0123", "the secret"));
  auto wrong = verify::secret("nope", "s3cret-value-0123", "the secret");
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().code == ErrorCode::unauthorized);
  auto vk = verify::secret("nope", "s3cret-value-0123", "secret", ErrorCode::forbidden);
  REQUIRE_FALSE(vk);
  CHECK(vk.error().http_status() == 403);
  CHECK_FALSE(
      verify::secret("", "", "an unset secret"));  // an empty configured secret never matches

  InboundRequest request;
  request.headers = {{"Authorization", "Bearer  token-0123456789abcdef "}};
  CHECK(verify::bearer(request, "token-0123456789abcdef"));
  request.headers = {{"Authorization", "Basic token-0123456789abcdef"}};
  CHECK_FALSE(verify::bearer(request, "token-0123456789abcdef"));
}

// ------------------------------------------------ JsonScan: one forward pass, no tree

namespace {

// Every member of a test body, each read the way `read` says, as "key=value" lines.
std::string scan_members(JsonScan& scan, std::string_view body,
                         const std::function<std::string(JsonScan&, JsonScan::Value)>& read,
                         Status* status = nullptr) {
  std::string out;
  Status scanned = scan.object(body, "a test body", [&](std::string_view key, JsonScan::Value v) {
    out += std::string(key) + "=" + read(scan, v) + "\n";
  });
  if (status) *status = scanned;
  return scanned ? out : "error: " + scanned.error().detail;
}

}  // namespace

TEST_CASE("JsonScan reads each member once, in order, and another type reads as absent",
          "[kit][json]") {
  JsonScan scan;
  const std::string body =
      R"({"s":"текст","i":42,"big":18446744073709551615,"d":1.5,"b":true,"z":null,"a":[1,"x"],)"
      R"("o":{"k":"v","n":{"deeper":1}},"id_s":"A-1"})";
  auto describe = [](JsonScan& s, JsonScan::Value v) -> std::string {
    // Everything as an integer first would consume it: ask the type the value has.
    if (s.is_null(v)) return "null";
    return s.to_json(v).dump();
  };
  CHECK(scan_members(scan, body, describe) ==
        "s=\"текст\"\ni=42\nbig=18446744073709551615\nd=1.5\nb=true\nz=null\na=[1,\"x\"]\n"
        "o={\"k\":\"v\",\"n\":{\"deeper\":1}}\nid_s=\"A-1\"\n");

  auto as_int = [](JsonScan& s, JsonScan::Value v) {
    auto n = s.i64(v);
    return n ? std::to_string(*n) : std::string("-");
  };
  // Strings, 2^64-1 (past int64), 1.5, booleans, null, arrays, objects: not integers.
  CHECK(scan_members(scan, body, as_int) == "s=-\ni=42\nbig=-\nd=-\nb=-\nz=-\na=-\no=-\nid_s=-\n");

  auto as_id = [](JsonScan& s, JsonScan::Value v) {
    std::optional<int64_t> integer;
    auto id = s.id_text(v, &integer);
    return id.value_or("-") + "/" + (integer ? std::to_string(*integer) : std::string("-"));
  };
  CHECK(scan_members(scan, body, as_id) ==
        "s=текст/-\ni=42/42\nbig=-/-\nd=-/-\nb=-/-\nz=-/-\na=-/-\no=-/-\nid_s=A-1/-\n");

  auto as_text = [](JsonScan& s, JsonScan::Value v) { return s.str(v).value_or("-"); };
  CHECK(scan_members(scan, R"({"s":"a\"b\u0416","n":1,"o":{}})", as_text) == "s=a\"bЖ\nn=-\no=-\n");

  // fields() of a non-object and items() of a non-array see nothing and fail nothing.
  auto nested = [](JsonScan& s, JsonScan::Value v) {
    std::string seen;
    if (s.is_null(v)) return std::string("null");
    s.fields(v, [&](std::string_view key, JsonScan::Value) { seen += "k:" + std::string(key); });
    return seen.empty() ? std::string("none") : seen;
  };
  CHECK(scan_members(scan, R"({"o":{"x":1,"y":[2]},"a":[1],"s":"t"})", nested) ==
        "o=k:xk:y\na=none\ns=none\n");
}

TEST_CASE("JsonScan minified: the sender's key order, RapidJSON's escaping, a malformed part fails",
          "[kit][json]") {
  JsonScan scan;
  auto as_minified = [](JsonScan& s, JsonScan::Value v) { return s.minified(v).value_or("-"); };
  CHECK(scan_members(scan,
                     R"({"o": { "z" : 1, "a" : { "y" : [ 1, -2, 1.50, 18446744073709551615 ] },)"
                     R"( "s" : "a\/b\u0416\n" }, "n" : null, "t" : true, "x" : "text"})",
                     as_minified) ==
        "o={\"z\":1,\"a\":{\"y\":[1,-2,1.5,18446744073709551615]},\"s\":\"a/bЖ\\n\"}\nn=null\n"
        "t=true\nx=\"text\"\n");
  Status status = ok_status();
  scan_members(scan, R"({"o":{"a":[1,{"b":nul}]}})", as_minified, &status);
  CHECK_FALSE(status);
  // Deeper than limits::kMaxJsonDepth where it descends: refused as too deep, not recursed.
  std::string deep = R"({"o":)" + std::string(70, '[') + std::string(70, ']') + "}";
  scan_members(scan, deep, as_minified, &status);
  REQUIRE_FALSE(status);
  CHECK_THAT(status.error().detail, Catch::Contains("nested deeper than"));
}

TEST_CASE("JsonScan refuses what is not one JSON object, and a malformed value it reads",
          "[kit][json]") {
  JsonScan scan;
  auto ignore = [](JsonScan&, JsonScan::Value) { return std::string(); };
  for (std::string body : {"", "{", "[1,2]", "\"text\"", "{\"a\":1}garbage", "{\"a\":1} {\"b\":2}",
                           "{\"a\":1,}", "{\"a\" 1}", "{\"a\":{\"b\":1}"}) {
    CAPTURE(body);
    Status status = ok_status();
    scan_members(scan, body, ignore, &status);
    REQUIRE_FALSE(status);
    CHECK(status.error().code == ErrorCode::bad_request);
    CHECK_THAT(status.error().detail, Catch::Contains("a test body"));
  }
  // A value that is read is checked whole: a broken literal, number or escape fails the body.
  auto read_all = [](JsonScan& s, JsonScan::Value v) { return s.to_json(v).dump(); };
  for (std::string body : {R"({"a":tru})", R"({"a":12x})", R"({"a":"\q"})", R"({"a":1e400})",
                           R"({"a":[1,{"b":nul}]})"}) {
    CAPTURE(body);
    Status status = ok_status();
    scan_members(scan, body, read_all, &status);
    REQUIRE_FALSE(status);
    CHECK_THAT(status.error().detail, Catch::Contains("not valid JSON"));
  }
  // Also when the broken value is read as another type: it does not read as absent.
  auto as_text = [](JsonScan& s, JsonScan::Value v) { return s.str(v).value_or("-"); };
  auto as_int = [](JsonScan& s, JsonScan::Value v) {
    return s.i64(v) ? std::string("n") : std::string("-");
  };
  for (std::string body : {R"({"a":tru})", R"({"a":nul})", R"({"a":fals})", R"({"a":12x})"}) {
    CAPTURE(body);
    Status status = ok_status();
    scan_members(scan, body, as_text, &status);
    CHECK_FALSE(status);
    scan_members(scan, body, as_int, &status);
    CHECK_FALSE(status);
  }
  // A broken escape in a string read as a number.
  CHECK(scan_members(scan, R"({"a":"\q"})", as_int).rfind("error: ", 0) == 0);
  // The scan is usable again after a refusal.
  CHECK(scan_members(scan, R"({"a":[true]})", read_all) == "a=[true]\n");
}

TEST_CASE("JsonScan: 64 levels where it descends, 65 refused, and skipped members do not recurse",
          "[kit][json]") {
  JsonScan scan;
  auto nested = [](size_t levels) {
    return std::string(levels, '[') + "1" + std::string(levels, ']');
  };
  auto read_all = [](JsonScan& s, JsonScan::Value v) {
    return s.is_null(v) ? "" : s.to_json(v).dump();
  };
  // The root object is level 1.
  Status status = ok_status();
  scan_members(scan, "{\"a\":" + nested(63) + "}", read_all, &status);
  CHECK(status);
  scan_members(scan, "{\"a\":" + nested(64) + "}", read_all, &status);
  REQUIRE_FALSE(status);
  CHECK_THAT(status.error().detail, Catch::Contains("nested deeper than 64"));
  // 40 000 levels in a member nobody reads: On-Demand skips it by counting brackets (no
  // recursion), and nothing of it is kept.
  auto only_b = [](JsonScan& s, JsonScan::Value v) { return s.str(v).value_or("skipped"); };
  CHECK(scan_members(scan, "{\"a\":" + nested(40000) + ",\"b\":\"kept\"}", only_b) ==
        "a=skipped\nb=kept\n");
  // The same depth in a member that is read is refused, without a stack overflow.
  scan_members(scan, "{\"a\":" + nested(40000) + "}", read_all, &status);
  REQUIRE_FALSE(status);
  CHECK_THAT(status.error().detail, Catch::Contains("nested deeper than 64"));
}

// Weak secrets are refused by the config loader (one reader for every secret key), and the
// failed-authentication throttle: its rate, its refill, its bounded table, IPv6 per /64.
#include <catch2/catch.hpp>

#include "gateway/config/config.hpp"
#include "gateway/http/client_ip.hpp"
#include "gateway/http/http_guard.hpp"

using namespace std::chrono_literals;
using omnigate::AuthThrottle;

namespace {

std::string problems_of(const std::string& yaml) {
  omnigate::ConfigContext context("weak.yaml");
  context.getenv = [](const std::string&) { return std::nullopt; };
  auto result = omnigate::load_config_text(yaml, "weak.yaml", context);
  return result ? std::string() : result.error().detail;
}

const std::string kStrong = "0123456789abcdef-strong";  // 23 characters
const std::string kBotToken = "123456:ABCdefGHIjklMNOpqrSTUvwxYZ012345";

}  // namespace

TEST_CASE(
    "secrets: webhook secrets and tokens shorter than 16 characters are refused, with how "
    "to generate one",
    "[config][secrets]") {
  struct Row {
    std::string what, yaml, key;
  };
  const std::string weak = "short-secret-15";  // 15 characters
  const std::vector<Row> rows = {
      {"api token", "channels:\n  api:\n    - account: crm\n      token: " + weak + "\n",
       "channels.api[0].token"},
      {"telegram secret_token",
       "channels:\n  telegram:\n    - account: bot\n      token: \"" + kBotToken +
           "\"\n      secret_token: a\n",
       "channels.telegram[0].secret_token"},
      {"telegram media_token",
       "channels:\n  telegram:\n    - account: bot\n      token: \"" + kBotToken +
           "\"\n      secret_token: " + kStrong + "\n      media_token: " + weak + "\n",
       "channels.telegram[0].media_token"},
      {"consent.links_token", "consent:\n  links_token: " + weak + "\n", "consent.links_token"},
      {"consent.signing_key (32)", "consent:\n  signing_key: " + kStrong + "\n",
       "consent.signing_key"},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    std::string problems = problems_of(row.yaml);
    CHECK(problems.find(row.key + ": is ") != std::string::npos);
    CHECK(problems.find("generate one with `openssl rand -hex 24`") != std::string::npos);
  }
  // A strong value of each passes.
  CHECK(problems_of("channels:\n  api:\n    - account: crm\n      token: " + kStrong + "\n") == "");
  CHECK(problems_of("channels:\n  telegram:\n    - account: bot\n      token: \"" + kBotToken +
                    "\"\n      secret_token: " + kStrong + "\n      media_token: " + kStrong +
                    "\n") == "");
}

TEST_CASE("client_key: an IPv4 address is itself, IPv6 counts per /64", "[http][throttle]") {
  using omnigate::client_key;
  CHECK(client_key("203.0.113.7") == "203.0.113.7");
  CHECK(client_key("::ffff:203.0.113.7") == "203.0.113.7");
  CHECK(client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff:ffff:ffff:ffff"));
  CHECK(client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64");
  CHECK(client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1"));
}

TEST_CASE("AuthThrottle: past the rate a client waits, others do not, the budget refills",
          "[http][throttle]") {
  AuthThrottle throttle(30);
  auto t0 = AuthThrottle::Clock::now();
  for (int i = 0; i < 30; ++i) {
    CHECK_FALSE(throttle.retry_after("a", t0));
    throttle.record_failure("a", t0);
  }
  auto wait = throttle.retry_after("a", t0);
  REQUIRE(wait);
  CHECK(*wait == 2);  // one failure back every 60/30 s
  CHECK_FALSE(throttle.retry_after("b", t0));
  CHECK_FALSE(throttle.retry_after("a", t0 + 2s));
  CHECK_FALSE(AuthThrottle(0).retry_after("a", t0));  // 0 = off
}

TEST_CASE("AuthThrottle: the table is bounded, full buckets go first", "[http][throttle]") {
  AuthThrottle throttle(30, 1000);
  auto t0 = AuthThrottle::Clock::now();
  for (int i = 0; i < 100'000; ++i) throttle.record_failure("10.0." + std::to_string(i), t0);
  CHECK(throttle.size() <= 1000);
  // Full buckets (failures long ago) are dropped first: a client over its rate stays throttled.
  AuthThrottle small(30, 100);
  for (int i = 0; i < 99; ++i) small.record_failure("old-" + std::to_string(i), t0);
  for (int i = 0; i < 40; ++i) small.record_failure("attacker", t0 + 120s);
  small.record_failure("newcomer", t0 + 120s);
  CHECK(small.size() <= 100);
  CHECK(small.retry_after("attacker", t0 + 120s));
  CHECK(throttle.size() <= 1000);
}

// The status page's in-memory recorder (gateway/core/activity.hpp): the last hour in 1-minute
// buckets, the fixed set of accounts, the error details' cap, the pollers' registry.
#include <catch2/catch.hpp>

#include <string>

#include "gateway/core/activity.hpp"

using omnigate::ActivityError;
using omnigate::ActivityRecorder;
using omnigate::MinuteCounts;
using omnigate::PollerState;

namespace {
constexpr int64_t kMinute = 60'000;
constexpr int64_t kStart = 1'764'000'000'000;  // some UTC millisecond, minute-aligned or not
}  // namespace

TEST_CASE("MinuteCounts sums the last 60 minutes and forgets older buckets",
          "[activity][metrics]") {
  MinuteCounts counts;
  counts.add("published", kStart);
  counts.add("published", kStart + 10);
  counts.add("rejected.unauthorized", kStart + 5 * kMinute, 3);
  auto hour = counts.last_hour(kStart + 5 * kMinute);
  CHECK(hour == std::map<std::string, uint64_t>{{"published", 2}, {"rejected.unauthorized", 3}});

  // 59 minutes later the first bucket still counts; at 60 it is out of the hour.
  CHECK(counts.last_hour(kStart + 59 * kMinute)["published"] == 2);
  CHECK(counts.last_hour(kStart + 60 * kMinute).count("published") == 0);
  CHECK(counts.last_hour(kStart + 60 * kMinute)["rejected.unauthorized"] == 3);

  // The ring's slot of the first minute, reused an hour later, starts from zero.
  counts.add("published", kStart + 60 * kMinute);
  CHECK(counts.last_hour(kStart + 60 * kMinute)["published"] == 1);
  CHECK(counts.last_hour(kStart + 200 * kMinute).empty());
}

TEST_CASE("ActivityRecorder records configured accounts only", "[activity][metrics]") {
  ActivityRecorder activity;
  activity.set_accounts({{"api", "crm"}, {"telegram", "bot"}, {"api", "crm"}});
  activity.durable("api", "crm", "published");
  activity.durable("api", "crm", "duplicates");
  activity.request("api", "crm", 401, "unauthorized", "missing or wrong bearer token");
  activity.request("api", "crm", 202, "", "");
  activity.durable("api", "stranger", "published");  // not configured: nowhere
  activity.request("vk", "crm", 401, "unauthorized", "");
  activity.failed("telegram", "bot", "not_durable", "publish", "NATS is not reachable");

  auto accounts = activity.accounts();
  REQUIRE(accounts.size() == 2);
  CHECK(accounts[0].channel == "api");
  CHECK(accounts[0].account == "crm");
  CHECK(accounts[0].last_event_ms.has_value());
  CHECK(accounts[0].last_hour == std::map<std::string, uint64_t>{{"published", 1},
                                                                 {"duplicates", 1},
                                                                 {"http_4xx", 1},
                                                                 {"http_2xx", 1},
                                                                 {"rejected.unauthorized", 1}});
  REQUIRE(accounts[0].last_error);
  CHECK(accounts[0].last_error->code == "unauthorized");
  CHECK(accounts[0].last_error->status == 401);
  CHECK(accounts[0].last_error->stage == "request");

  CHECK(accounts[1].account == "bot");
  CHECK_FALSE(accounts[1].last_event_ms);  // a failure is not an event
  CHECK(accounts[1].last_hour == std::map<std::string, uint64_t>{{"failed", 1}});
  REQUIRE(accounts[1].last_error);
  CHECK(accounts[1].last_error->detail == "NATS is not reachable");
}

TEST_CASE("ActivityRecorder keeps at most kMaxAccounts accounts", "[activity][metrics]") {
  std::vector<std::pair<std::string, std::string>> many;
  for (size_t i = 0; i < ActivityRecorder::kMaxAccounts + 5; ++i)
    many.emplace_back("api", "a" + std::to_string(i));
  ActivityRecorder activity;
  activity.set_accounts(many);
  CHECK(activity.accounts().size() == ActivityRecorder::kMaxAccounts);
}

TEST_CASE("error details are cut at a UTF-8 character boundary", "[activity][metrics]") {
  CHECK(omnigate::activity_detail("short") == "short");
  std::string cyrillic;
  while (cyrillic.size() < 3 * ActivityError::kMaxDetail) cyrillic += "ж";  // 2 bytes each
  std::string odd = "x" + cyrillic;  // the cut would fall inside a letter
  std::string cut = omnigate::activity_detail(odd);
  CHECK(cut.size() <= ActivityError::kMaxDetail + std::string("…").size());
  CHECK(cut.substr(cut.size() - std::string("…").size()) == "…");
  std::string kept = cut.substr(0, cut.size() - std::string("…").size());
  CHECK(kept.size() % 2 == 1);  // "x" and whole letters
  CHECK(odd.rfind(kept, 0) == 0);
}

TEST_CASE("pollers register and unregister, pollers() reads each", "[activity][metrics]") {
  ActivityRecorder activity;
  auto first = activity.add_poller([] {
    PollerState state;
    state.channel = "telegram";
    state.account = "bot";
    state.lease_held = true;
    return state;
  });
  auto second = activity.add_poller([] {
    PollerState state;
    state.channel = "vk";
    state.account = "group";
    return state;
  });
  REQUIRE(activity.pollers().size() == 2);
  activity.remove_poller(first);
  auto pollers = activity.pollers();
  REQUIRE(pollers.size() == 1);
  CHECK(pollers[0].channel == "vk");
  activity.remove_poller(second);
  CHECK(activity.pollers().empty());
}

// The name cache's memory layer and fill_display_names, without NATS (publisher null): what is
// looked up, how often, and how every outcome is counted. The KV layer across a restart is in
// tests/integration/vk_api_test.cpp.
#include <catch2/catch.hpp>

#include "gateway/core/metrics.hpp"
#include "gateway/state/name_cache.hpp"

using namespace omnigate;
using std::chrono::milliseconds;

namespace {

Submission person(const std::string& vk_id, std::optional<std::string> name = std::nullopt) {
  Submission s;
  Contact contact;
  contact.display_name = std::move(name);
  contact.identifiers.push_back({"vk_user_id", vk_id, true, std::nullopt});
  s.interaction.contact = std::move(contact);
  return s;
}

std::vector<Submission*> pointers(std::vector<Submission>& submissions) {
  std::vector<Submission*> out;
  for (auto& s : submissions) out.push_back(&s);
  return out;
}

using Names = std::vector<std::pair<std::string, std::string>>;

}  // namespace

TEST_CASE("name cache: keys keep to the KV alphabet, entries expire and the oldest is evicted",
          "[state][names]") {
  CHECK(NameCache::key("vk", "512345678") == "vk.512345678");
  CHECK(NameCache::key("vk", "").empty());
  CHECK(NameCache::key("vk", "1.2").empty());  // a dot would make another key's prefix
  CHECK(NameCache::key("vk", "a b").empty());

  NameCache cache(nullptr, milliseconds(60'000), 2);
  cache.put("vk.1", "Анна");
  cache.put("vk.2", "Борис");
  REQUIRE(cache.get("vk.1") == "Анна");  // now the most recently used
  cache.put("vk.3", "Вера");             // evicts vk.2, the least recently used
  CHECK(cache.get("vk.2") == std::nullopt);
  CHECK(cache.get("vk.1") == "Анна");
  CHECK(cache.get("vk.3") == "Вера");

  NameCache expired(nullptr, milliseconds(0));
  expired.put("vk.1", "Анна");
  CHECK(expired.get("vk.1") == std::nullopt);
}

TEST_CASE("fill_display_names: one lookup for every miss, names kept, each outcome counted",
          "[state][names]") {
  Metrics metrics;
  NameCache cache(nullptr, milliseconds(60'000));
  cache.put("vk.1", "Анна Смирнова");
  std::vector<std::vector<std::string>> asked;
  NameLookup lookup = [&](const std::vector<std::string>& ids,
                          milliseconds budget) -> Result<Names> {
    asked.push_back(ids);
    CHECK(budget == milliseconds(300));
    return Names{{"2", "Борис Орлов"}};  // VK leaves id 3 out
  };
  std::vector<Submission> batch = {person("1"), person("2"), person("2"), person("3"),
                                   person("4", "Назван Сам")};
  fill_display_names(pointers(batch), "vk", "vk_user_id", cache, lookup, milliseconds(300),
                     metrics);
  REQUIRE(asked.size() == 1);
  CHECK(asked[0] == std::vector<std::string>{"2", "3"});  // each miss once; named ones not at all
  CHECK(batch[0].interaction.contact->display_name == "Анна Смирнова");
  CHECK(batch[1].interaction.contact->display_name == "Борис Орлов");
  CHECK(batch[2].interaction.contact->display_name == "Борис Орлов");
  CHECK_FALSE(batch[3].interaction.contact->display_name);
  CHECK(batch[4].interaction.contact->display_name == "Назван Сам");
  CHECK(metrics.name_lookups.value({"vk", "cached"}) == 1);
  CHECK(metrics.name_lookups.value({"vk", "fetched"}) == 2);
  CHECK(metrics.name_lookups.value({"vk", "unknown"}) == 1);
  CHECK(cache.get("vk.2") == "Борис Орлов");  // the next event needs no lookup

  // A failing lookup leaves the names out; no budget left means no lookup at all.
  NameLookup failing = [&](const std::vector<std::string>&, milliseconds) -> Result<Names> {
    return make_error(ErrorCode::rate_limited, "vk_api", "users.get: VK error 6");
  };
  std::vector<Submission> later = {person("5")};
  fill_display_names(pointers(later), "vk", "vk_user_id", cache, failing, milliseconds(300),
                     metrics);
  CHECK_FALSE(later[0].interaction.contact->display_name);
  CHECK(metrics.name_lookups.value({"vk", "failed"}) == 1);
  fill_display_names(pointers(later), "vk", "vk_user_id", cache, lookup, milliseconds(0), metrics);
  CHECK(asked.size() == 1);
  CHECK(metrics.name_lookups.value({"vk", "timeout"}) == 1);
}

TEST_CASE("fill_display_names: an id VK has no name for is asked once, a failed lookup again",
          "[state][names]") {
  Metrics metrics;
  NameCache cache(nullptr, milliseconds(60'000));
  std::vector<std::vector<std::string>> asked;
  bool fail = true;
  NameLookup lookup = [&](const std::vector<std::string>& ids, milliseconds) -> Result<Names> {
    asked.push_back(ids);
    if (fail) return make_error(ErrorCode::upstream_timeout, "vk_api", "users.get: timed out");
    return Names{};  // VK answers without id 7: a deleted or unknown profile
  };
  auto one_event = [&] {
    std::vector<Submission> batch = {person("7")};
    fill_display_names(pointers(batch), "vk", "vk_user_id", cache, lookup, milliseconds(300),
                       metrics);
    CHECK_FALSE(batch[0].interaction.contact->display_name);
  };
  one_event();  // times out: nothing is remembered
  CHECK_FALSE(cache.is_unknown("vk.7"));
  CHECK(metrics.name_lookups.value({"vk", "timeout"}) == 1);
  fail = false;
  one_event();  // asked again, and VK has no name
  one_event();  // from the cache: no lookup
  CHECK(asked.size() == 2);
  CHECK(metrics.name_lookups.value({"vk", "unknown"}) == 2);
  CHECK(cache.is_unknown("vk.7"));
  CHECK(cache.get("vk.7") == std::nullopt);

  // A name found later replaces the mark; the mark lasts at most min(ttl, 1h).
  cache.put("vk.7", "Вера");
  CHECK_FALSE(cache.is_unknown("vk.7"));
  CHECK(cache.get("vk.7") == "Вера");
  NameCache short_lived(nullptr, milliseconds(0));
  short_lived.put_unknown("vk.8");
  CHECK_FALSE(short_lived.is_unknown("vk.8"));
}

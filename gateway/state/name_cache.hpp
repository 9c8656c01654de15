// Display names that a provider's events do not carry (VK sends only user ids), looked up from
// its API once per person: kept in memory (bounded, with a TTL) and in the JetStream KV bucket
// omnigate_names (TTL nats.names_ttl), which every instance shares, so a person is looked up
// once per TTL across the cluster and again after a restart only when the bucket forgot them.
// Keys are "<channel>.<provider user id>"; values are the name as the provider writes it.
// Nothing here blocks on a NATS that is away: the KV is skipped while the publisher is not
// ready, and the memory layer keeps working.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gateway/core/error.hpp"
#include "gateway/model/submission.hpp"

namespace omnigate {

class Metrics;
class Publisher;

class NameCache {
 public:
  // `publisher` may be null (tests of the memory layer; the CLI).
  NameCache(Publisher* publisher, std::chrono::milliseconds ttl, size_t max_entries = 100'000);

  // The cached name, or nullopt when neither layer knows the key (or it expired). A name found
  // only in the KV is kept in memory from then on.
  std::optional<std::string> get(const std::string& key);
  // Keeps `name` in both layers (the KV write waits for the KV stream's ack; a failed one
  // leaves the memory layer only).
  void put(const std::string& key, const std::string& name);
  // Remembers that the provider has no name for `key` (a deleted or unknown profile), so it is
  // not asked again for min(ttl, 1h). Memory only: the KV bucket has one TTL for every key, and
  // a miss worth forgetting sooner must not be shared for days; another instance or a restart
  // asks once more. get() answers nullopt for such a key without reading the KV.
  void put_unknown(const std::string& key);
  // True while put_unknown's mark for `key` lasts (a later put replaces it).
  bool is_unknown(const std::string& key);

  // A key of the KV's alphabet ([-_.A-Za-z0-9]) for a provider user id; "" when `id` holds
  // anything else (then it is not cached).
  static std::string key(std::string_view channel, std::string_view id);

 private:
  struct Entry {
    std::string name;  // "" = the provider has no name (put_unknown)
    std::chrono::steady_clock::time_point expires;
    std::list<std::string>::iterator order;  // position in lru_
  };
  std::optional<std::string> get_memory(const std::string& key);
  void put_memory(const std::string& key, const std::string& name, std::chrono::milliseconds ttl);

  Publisher* publisher_;
  const std::chrono::milliseconds ttl_;
  const std::chrono::milliseconds unknown_ttl_;  // min(ttl_, 1h)
  const size_t max_entries_;
  std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
  std::list<std::string> lru_;  // most recently used first
};

// Looks up the names of provider user ids (VK users.get) within `budget`: (id, name) pairs for
// the ids the provider knows; ids it leaves out have no name to show.
using NameLookup = std::function<Result<std::vector<std::pair<std::string, std::string>>>(
    const std::vector<std::string>& ids, std::chrono::milliseconds budget)>;

// Fills contact.display_name of every submission that has none but has an identifier of
// `identifier_type` (e.g. vk_user_id): from `cache`, and for the ids it misses from ONE call of
// `lookup` given at most `budget` (skipped when `budget` is not positive). An id the lookup
// answers without is kept as unknown (NameCache::put_unknown), so it is asked once per
// min(ttl, 1h). A lookup that fails or runs out of time leaves the names out -- the events are
// published without them, never failed or held longer -- and caches nothing: the next event
// asks again. Counted per submission in omnigate_name_lookups_total{channel, result}:
// cached, fetched, unknown (the provider has no name), failed, timeout.
void fill_display_names(const std::vector<Submission*>& submissions, std::string_view channel,
                        std::string_view identifier_type, NameCache& cache,
                        const NameLookup& lookup, std::chrono::milliseconds budget,
                        Metrics& metrics);

}  // namespace omnigate

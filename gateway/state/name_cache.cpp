#include "gateway/state/name_cache.hpp"

#include <algorithm>
#include <map>

#include "gateway/core/metrics.hpp"
#include "gateway/nats/nats_handles.hpp"
#include "gateway/nats/publisher.hpp"

namespace omnigate {
namespace {

// A display name is short; a longer value in the bucket is not ours.
constexpr int kMaxNameBytes = 512;

// How long "the provider has no name for this id" is believed: a profile may be restored or
// the id may have been a provider's hiccup, so not for the days a found name is kept.
constexpr std::chrono::milliseconds kMaxUnknownTtl = std::chrono::hours(1);

}  // namespace

NameCache::NameCache(Publisher* publisher, std::chrono::milliseconds ttl, size_t max_entries)
    : publisher_(publisher),
      ttl_(ttl),
      unknown_ttl_(std::min(ttl, kMaxUnknownTtl)),
      max_entries_(max_entries == 0 ? 1 : max_entries) {}

std::string NameCache::key(std::string_view channel, std::string_view id) {
  if (id.empty() || id.size() > 128) return "";
  for (char c : id) {
    const bool allowed = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                         (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
    if (!allowed) return "";
  }
  std::string k(channel);
  k += '.';
  k += id;
  return k;
}

std::optional<std::string> NameCache::get_memory(const std::string& key) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  if (std::chrono::steady_clock::now() >= it->second.expires) {
    lru_.erase(it->second.order);
    entries_.erase(it);
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second.order);
  return it->second.name;
}

void NameCache::put_memory(const std::string& key, const std::string& name,
                           std::chrono::milliseconds ttl) {
  std::lock_guard lock(mutex_);
  const auto expires = std::chrono::steady_clock::now() + ttl;
  if (auto it = entries_.find(key); it != entries_.end()) {
    it->second.name = name;
    it->second.expires = expires;
    lru_.splice(lru_.begin(), lru_, it->second.order);
    return;
  }
  while (entries_.size() >= max_entries_ && !lru_.empty()) {
    entries_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.push_front(key);
  entries_.emplace(key, Entry{name, expires, lru_.begin()});
}

std::optional<std::string> NameCache::get(const std::string& key) {
  if (key.empty()) return std::nullopt;
  if (auto name = get_memory(key)) {
    if (name->empty()) return std::nullopt;  // known to have no name: the KV has none either
    return name;
  }
  if (publisher_ == nullptr || !publisher_->ready()) return std::nullopt;
  kvStore* bucket = publisher_->names();
  if (bucket == nullptr) return std::nullopt;
  kvEntry* raw = nullptr;
  if (kvStore_Get(&raw, bucket, key.c_str()) != NATS_OK) return std::nullopt;
  nats::KvEntry entry(raw);
  const int length = kvEntry_ValueLen(raw);
  const void* data = kvEntry_Value(raw);
  if (data == nullptr || length <= 0 || length > kMaxNameBytes) return std::nullopt;
  std::string name(static_cast<const char*>(data), static_cast<size_t>(length));
  // The bucket's own TTL counts from its write; the memory copy may then outlive it by up to
  // one TTL, which only delays a renamed person's new name.
  put_memory(key, name, ttl_);
  return name;
}

void NameCache::put(const std::string& key, const std::string& name) {
  if (key.empty() || name.empty() || name.size() > kMaxNameBytes) return;
  put_memory(key, name, ttl_);
  if (publisher_ == nullptr || !publisher_->ready()) return;
  kvStore* bucket = publisher_->names();
  if (bucket == nullptr) return;
  uint64_t revision = 0;
  kvStore_Put(&revision, bucket, key.c_str(), name.data(), static_cast<int>(name.size()));
}

void NameCache::put_unknown(const std::string& key) {
  if (key.empty()) return;
  put_memory(key, "", unknown_ttl_);
}

bool NameCache::is_unknown(const std::string& key) {
  if (key.empty()) return false;
  auto name = get_memory(key);
  return name && name->empty();
}

void fill_display_names(const std::vector<Submission*>& submissions, std::string_view channel,
                        std::string_view identifier_type, NameCache& cache,
                        const NameLookup& lookup, std::chrono::milliseconds budget,
                        Metrics& metrics) {
  const std::string channel_label(channel);
  // The submissions of each id still without a name (one event may carry the same person
  // twice: a message and its keyword consent).
  std::map<std::string, std::vector<Contact*>> missing;
  for (Submission* submission : submissions) {
    auto& contact = submission->interaction.contact;
    if (!contact || contact->display_name) continue;
    for (const auto& identifier : contact->identifiers) {
      if (identifier.type != identifier_type || !identifier.value) continue;
      const std::string key = NameCache::key(channel, *identifier.value);
      if (key.empty()) break;
      if (auto name = cache.get(key)) {
        contact->display_name = std::move(name);
        metrics.name_lookups.inc({channel_label, "cached"});
      } else if (cache.is_unknown(key)) {
        metrics.name_lookups.inc({channel_label, "unknown"});
      } else {
        missing[*identifier.value].push_back(&*contact);
      }
      break;
    }
  }
  if (missing.empty()) return;
  auto count = [&](const char* result) {
    for (const auto& [id, contacts] : missing)
      metrics.name_lookups.inc({channel_label, result}, contacts.size());
  };
  if (budget.count() <= 0 || !lookup) return count("timeout");
  std::vector<std::string> ids;
  ids.reserve(missing.size());
  for (const auto& [id, contacts] : missing) ids.push_back(id);
  auto found = lookup(ids, budget);
  if (!found)
    return count(found.error().code == ErrorCode::upstream_timeout ? "timeout" : "failed");
  for (auto& [id, name] : *found) {
    auto it = missing.find(id);
    if (it == missing.end() || name.empty()) continue;
    cache.put(NameCache::key(channel, id), name);
    for (Contact* contact : it->second) contact->display_name = name;
    metrics.name_lookups.inc({channel_label, "fetched"}, it->second.size());
    missing.erase(it);
  }
  // Answered, but without these ids: the provider has no name for them.
  for (const auto& [id, contacts] : missing) cache.put_unknown(NameCache::key(channel, id));
  count("unknown");
}

}  // namespace omnigate

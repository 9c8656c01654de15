#include "gateway/seen_index.hpp"

#include <uuid/uuid.h>

#include <cstring>
#include <mutex>

#include "gateway/log.hpp"

namespace omnigate {

SeenIndex::SeenIndex(std::chrono::milliseconds horizon) : horizon_(horizon) {}

SeenIndex::~SeenIndex() {
  stop();
}

std::optional<SeenIndex::Key> SeenIndex::key_of(const std::string& id) {
  uuid_t bytes;
  if (uuid_parse(id.c_str(), bytes) != 0) return std::nullopt;
  Key key;
  std::memcpy(key.data(), bytes, sizeof bytes);
  return key;
}

std::optional<uint64_t> SeenIndex::find(const std::string& id) const {
  auto key = key_of(id);
  if (!key) return std::nullopt;
  std::shared_lock lock(mutex_);
  auto it = entries_.find(*key);
  if (it == entries_.end()) return std::nullopt;
  return it->second.sequence;
}

void SeenIndex::insert(const std::string& id, uint64_t sequence,
                       std::chrono::system_clock::time_point at) {
  auto key = key_of(id);
  if (!key) return;
  int64_t seconds = std::chrono::duration_cast<std::chrono::seconds>(at.time_since_epoch()).count();
  std::unique_lock lock(mutex_);
  entries_.insert_or_assign(*key, Entry{sequence, seconds});
}

size_t SeenIndex::size() const {
  std::shared_lock lock(mutex_);
  return entries_.size();
}

void SeenIndex::prune(std::chrono::system_clock::time_point now) {
  int64_t oldest =
      std::chrono::duration_cast<std::chrono::seconds>((now - horizon_).time_since_epoch()).count();
  std::unique_lock lock(mutex_);
  std::erase_if(entries_, [oldest](const auto& item) { return item.second.at_seconds < oldest; });
}

void SeenIndex::start(kvStore* bucket) {
  if (thread_.joinable() || bucket == nullptr) return;
  stopping_ = false;
  thread_ = std::thread([this, bucket] { watch_loop(bucket); });
}

void SeenIndex::stop() {
  stopping_ = true;
  if (kvWatcher* w = watcher_.load()) kvWatcher_Stop(w);
  if (thread_.joinable()) thread_.join();
}

void SeenIndex::watch_loop(kvStore* bucket) {
  auto last_prune = std::chrono::steady_clock::now();
  while (!stopping_) {
    kvWatcher* watcher = nullptr;
    kvWatchOptions options;
    kvWatchOptions_Init(&options);
    options.IgnoreDeletes = true;
    natsStatus s = kvStore_WatchAll(&watcher, bucket, &options);
    if (s != NATS_OK) {
      // NATS away or the bucket gone: lookups fall back to the bucket until we are back.
      loaded_ = false;
      for (int i = 0; i < 10 && !stopping_; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    watcher_ = watcher;
    if (stopping_) kvWatcher_Stop(watcher);
    while (!stopping_) {
      kvEntry* entry = nullptr;
      s = kvWatcher_Next(&entry, watcher, 1000);
      if (s == NATS_TIMEOUT) {
        if (std::chrono::steady_clock::now() - last_prune > std::chrono::minutes(1)) {
          prune();
          last_prune = std::chrono::steady_clock::now();
        }
        continue;
      }
      if (s != NATS_OK) break;
      if (entry == nullptr) {  // the initial state is complete
        if (!loaded_.exchange(true)) {
          log::info("dedup",
                    "seen index loaded: " + std::to_string(size()) + " ids within the horizon");
        }
        continue;
      }
      const char* value = kvEntry_ValueString(entry);
      uint64_t sequence = value ? std::strtoull(value, nullptr, 10) : 0;
      auto created = std::chrono::system_clock::time_point(
          std::chrono::duration_cast<std::chrono::system_clock::duration>(
              std::chrono::nanoseconds(kvEntry_Created(entry))));
      insert(kvEntry_Key(entry), sequence, created);
      kvEntry_Destroy(entry);
    }
    watcher_ = nullptr;
    kvWatcher_Destroy(watcher);
    if (!stopping_) loaded_ = false;  // re-watch: the initial state is read again
  }
}

}  // namespace omnigate

// A local copy of the omnigate_seen KV bucket: which interaction ids were made durable within
// the dedup horizon. Kept current by a KV watcher, so every gateway instance sees the ids any
// instance published, and the per-request check is a memory lookup, not a NATS round trip.
// The moment between one instance's publish and another's watcher update is covered by
// JetStream's own Nats-Msg-Id duplicate window (minutes, against milliseconds).
// Memory: about 48 bytes per interaction within the horizon.
#pragma once

#include <nats/nats.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>

namespace omnigate {

class SeenIndex {
 public:
  explicit SeenIndex(std::chrono::milliseconds horizon);
  ~SeenIndex();
  SeenIndex(const SeenIndex&) = delete;
  SeenIndex& operator=(const SeenIndex&) = delete;

  // Starts the watcher thread on `bucket` (not owned; must outlive stop()).
  void start(kvStore* bucket);
  void stop();

  // True once the watcher has delivered the bucket's initial state: before that, a lookup
  // here is not authoritative and callers ask the bucket itself.
  bool loaded() const { return loaded_.load(std::memory_order_acquire); }
  // The stream sequence the id was stored at, when seen within the horizon.
  std::optional<uint64_t> find(const std::string& id) const;
  void insert(const std::string& id, uint64_t sequence,
              std::chrono::system_clock::time_point at = std::chrono::system_clock::now());
  size_t size() const;
  // Drops entries older than the horizon (the bucket's TTL does the same on the server).
  void prune(std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

 private:
  using Key = std::array<uint64_t, 2>;
  struct KeyHash {
    size_t operator()(const Key& k) const { return k[0] ^ (k[1] * 0x9e3779b97f4a7c15ULL); }
  };
  struct Entry {
    uint64_t sequence;
    int64_t at_seconds;
  };
  static std::optional<Key> key_of(const std::string& id);
  void watch_loop(kvStore* bucket);

  const std::chrono::milliseconds horizon_;
  mutable std::shared_mutex mutex_;
  std::unordered_map<Key, Entry, KeyHash> entries_;
  std::atomic<bool> loaded_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<kvWatcher*> watcher_{nullptr};
  std::thread thread_;
};

}  // namespace omnigate

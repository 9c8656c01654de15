// Which interaction ids are durable within the dedup horizon, learned from the interactions
// stream itself: the stream is the dedup record, so no interaction can be durable while its
// record is not (a crash between the PubAck and a second write cannot lose it -- there is no
// second write). Every instance follows the stream with an ordered, headers-only consumer that
// starts at now - horizon and reads Nats-Msg-Id; the publishing instance also inserts the id
// itself on the PubAck, so its own retries are recognised at once. The moment between one
// instance's PubAck and another's consumer delivering it is covered by JetStream's own
// Nats-Msg-Id duplicate window (minutes, against milliseconds).
//
// Memory: ids are kept as 16-byte binary UUIDs in open-addressing tables, one per eighth of
// the horizon (21 h of stream time for 7 days), each kept between 53 % and 80 % full (20 to
// 30 bytes per id); whole slices are dropped once past the horizon, so an id is held at most
// 1/8 longer than the horizon. Eight slices, not one per hour: a miss probes at most nine
// tables (168 hourly tables made a lookup ~8x slower). Measured: README ("Dedup index").
#pragma once

#include <nats/nats.h>

#include "gateway/pipeline/dedup_index.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace omnigate {

// A set of 16-byte keys: linear probing in one flat array, all-zero = empty slot (a UUID is
// never all zero: its version bits are set). Not thread-safe; SeenIndex locks around it.
class IdTable {
 public:
  using Key = std::array<uint64_t, 2>;
  bool contains(const Key& key) const;
  // False when the key was there already.
  bool insert(const Key& key);
  size_t size() const { return count_; }
  size_t memory_bytes() const { return slots_.capacity() * sizeof(Key); }

 private:
  size_t slot_of(const Key& key) const;
  void grow();
  std::vector<Key> slots_;
  size_t count_ = 0;
};

class SeenIndex : public DedupIndex {
 public:
  using SysClock = std::chrono::system_clock;
  explicit SeenIndex(std::chrono::milliseconds horizon);
  ~SeenIndex() override;
  SeenIndex(const SeenIndex&) = delete;
  SeenIndex& operator=(const SeenIndex&) = delete;

  // Whether the index is kept at all (dedup_horizon > 0).
  bool enabled() const { return horizon_.count() > 0; }

  // Follows `stream` on `jetstream` (not owned; must outlive stop()) from now - horizon on a
  // thread of its own, re-subscribing when the subscription fails. `ready` says whether the
  // stream can be subscribed to now (the publisher's setup has verified it).
  void start(jsCtx* jetstream, std::string stream, std::function<bool()> ready);
  void stop();

  // True once the consumer has delivered everything that was in the stream within the horizon
  // when it started: before that, a miss here is not authoritative (the id may be in the part
  // not read yet). Always true when the index is disabled.
  bool caught_up() const override {
    return !enabled() || caught_up_.load(std::memory_order_acquire);
  }
  // Waits until caught_up() or `until`; returns caught_up().
  bool wait_caught_up(std::chrono::steady_clock::time_point until) const override;

  // Whether the id (UUID text) was made durable within the horizon. Non-UUID text: false.
  bool contains(std::string_view id) const override;
  void insert(std::string_view id, SysClock::time_point at = SysClock::now());
  // A PubAck of our stream: the id, and that the stream's message at `sequence` is one the
  // index knows, so the follower need not read it back (a single instance reads nothing).
  void confirmed(std::string_view id, uint64_t sequence);
  size_t size() const;
  size_t memory_bytes() const;
  // Messages the follower has read back from the stream since start (its catch-up included).
  uint64_t messages_read() const { return read_back_.load(std::memory_order_relaxed); }
  // Drops the slices that are wholly past the horizon.
  void prune(SysClock::time_point now = SysClock::now());
  // Marks the index complete (tests, and the follower when the stream holds nothing to read).
  void mark_caught_up();

 private:
  static std::optional<IdTable::Key> key_of(std::string_view id);
  int64_t slice_index(SysClock::time_point at) const;
  void follow_loop(jsCtx* jetstream, const std::string& stream, const std::function<bool()>& ready);
  void pause(std::chrono::milliseconds duration);

  const std::chrono::milliseconds horizon_;
  const std::chrono::milliseconds slice_;
  mutable std::shared_mutex mutex_;
  std::map<int64_t, IdTable> slices_;  // slice number since the epoch -> ids stored then
  std::atomic<bool> caught_up_{false};
  mutable std::mutex caught_up_mutex_;
  mutable std::condition_variable caught_up_cv_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> read_back_{0};
  std::mutex confirmed_mutex_;
  std::vector<uint64_t> confirmed_;  // sequences PubAcked since the follower last looked
  std::thread thread_;
};

}  // namespace omnigate

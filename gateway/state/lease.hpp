// One poller per account across every gateway instance: a lease in the KV bucket
// omnigate_cursors (key "lease.<channel>.<account>"), taken with kvStore_Create (only if absent)
// and kept with kvStore_Update (compare-and-set on the revision) by a heartbeat thread.
//
// nats.c 3.4 has no per-key TTL, so the value carries the holder and its ttl (and, for people
// reading the bucket, an expiry in wall-clock time). Another instance takes the lease over only
// after it has itself seen the same revision unchanged for a whole ttl, on its own monotonic
// clock: no instance's wall clock has to agree with another's. The holder counts its lease
// valid for ttl - ttl/3 after it *sent* the last successful renewal, and renews every ttl/3, so
// a holder that cannot renew stops working at least ttl/3 before anyone may take over.
//
// Takeover after a crash: at most ttl + 2 * check interval (min(ttl/3, 1 s)) after the last
// renewal. A clean stop releases the lease (a CAS write of an empty holder): taken at once.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "gateway/state/cursor_store.hpp"

namespace omnigate {

class Metrics;

struct LeaseSettings {
  std::chrono::milliseconds ttl{15'000};
};

// What a lease key holds; encode/decode are pure (unit-tested).
struct LeaseValue {
  std::string holder;  // "" = released
  int64_t ttl_ms = 0;
  int64_t expires_at_ms = 0;  // unix ms, informational: takeover does not trust other clocks
};
std::string encode_lease(const LeaseValue& value);
// nullopt for anything that is not a lease value (corrupt, foreign): such a key is treated as
// held by nobody we know, and taken over after a ttl without change.
std::optional<LeaseValue> decode_lease(const std::string& text);

class Lease {
 public:
  Lease(CursorStore& store, Metrics& metrics, std::string channel, std::string account,
        LeaseSettings settings);
  ~Lease();  // stop()
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;

  static std::string key_for(const std::string& channel, const std::string& account) {
    return "lease." + channel + "." + account;
  }

  // Starts the heartbeat thread: acquire when free (or expired), then renew every ttl/3.
  void start();
  // Stops the heartbeat and releases the lease, so another instance takes over at once.
  void stop();
  // Stops the heartbeat without releasing: what a crash leaves behind (tests).
  void abandon();

  // Held, and renewed recently enough that no other instance can have taken it over.
  bool held() const;
  // Waits up to `timeout` for held(); returns held().
  bool wait_held(std::chrono::milliseconds timeout);
  // The holder saw proof that another instance works on the account (a cursor CAS it lost):
  // drop the lease locally; the heartbeat re-reads the key and re-acquires only if it is still
  // ours or free.
  void drop();
  // Called on the heartbeat thread whenever held() turns false (lost, expired, dropped): the
  // owner aborts work in flight. Set before start(); must not block.
  void on_lost(std::function<void()> callback) { on_lost_ = std::move(callback); }

  const std::string& holder_id() const { return holder_; }
  const std::string& key() const { return key_; }
  std::chrono::milliseconds renew_every() const { return settings_.ttl / 3; }
  std::chrono::milliseconds check_every() const;

 private:
  void run();
  // One attempt to take the lease; true when held afterwards.
  bool try_acquire();
  // One renewal; false when the lease is lost.
  void renew();
  void set_held(uint64_t revision, std::chrono::steady_clock::time_point sent_at);
  void set_lost(const std::string& why);
  std::string value_now() const;
  // Sleeps until `until` or a stop; false when stopping.
  bool sleep_until(std::chrono::steady_clock::time_point until);
  void halt(bool release);

  CursorStore& store_;
  Metrics& metrics_;
  const std::string channel_, account_, key_, holder_;
  const LeaseSettings settings_;
  std::function<void()> on_lost_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  bool held_ = false;
  uint64_t revision_ = 0;  // of our last write while held
  std::chrono::steady_clock::time_point valid_until_{};
  // Takeover observation: the revision last seen held by someone else, and since when.
  uint64_t observed_revision_ = 0;
  std::chrono::steady_clock::time_point observed_since_{};
  std::string observed_holder_;
  std::thread thread_;
};

}  // namespace omnigate

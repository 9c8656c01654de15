// Makes interactions durable: JetStream publish with Nats-Msg-Id = the interaction id, an
// answer only after the PubAck. The stream itself is the long-horizon dedup record: the
// SeenIndex follows it (gateway/nats/seen_index.hpp). Stream and bucket setup after a (re)connect
// runs on one background thread, never on a request thread: a request waits at most its own
// deadline, and never for another request's setup.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/core/error.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/core/one_shot_signal.hpp"
#include "gateway/nats/nats_handles.hpp"
#include "gateway/nats/seen_index.hpp"

namespace omnigate {

// One message for Publisher::publish_all (the strings are the caller's; they outlive the call).
struct PublishItem {
  const std::string& subject;
  const std::string& id;  // Nats-Msg-Id
  const std::string& payload;
};

struct PublishOutcome {
  uint64_t sequence = 0;
  bool duplicate = false;  // recognised by JetStream's duplicate window
};

// What publish_all makes of one attempt's answer. The loop's publisher
// (gateway/nats/loop_publisher.hpp) judges its attempts with the same function, so both give
// the same outcome, error and publish_failures label for the same answer.
enum class AttemptVerdict {
  settled,            // `result` holds the item's outcome: confirmed, or failed for good
  confirmed,          // `result` holds the PubAck's outcome; the caller records the id as seen
  retry,              // no ack in time, an unknown outcome: again with the same id
  retry_after_pause,  // {"seq":0,"duplicate":true}: known, not committed yet; again after a pause
  no_stream,          // no responders: the stream is gone (re-created within the deadline, or not)
};
AttemptVerdict judge_attempt(natsStatus status, const PublishOutcome& outcome, bool connected,
                             Metrics& metrics, Result<PublishOutcome>& result);
// Whether a PubAck confirms a message stored by `stream`: a core-NATS responder on the subject
// (or a misconfigured account) could answer anything that parses, e.g. {}.
bool confirms_storage(const std::string& stream, const char* ack_stream, uint64_t sequence,
                      bool duplicate);
// The not_durable error of a publish given up for `reason` (a publish_failures label), counted.
Error publish_failure(Metrics& metrics, const char* reason, std::string detail);
// How long a retry of {"seq":0,"duplicate":true} waits for the replication to commit.
inline constexpr std::chrono::milliseconds kUnconfirmedDuplicatePause{50};

// What /readyz reports about NATS, from state kept by callbacks and the setup thread (no
// server round trip: it answers at once whatever NATS does).
struct NatsReadiness {
  bool connected = false;
  bool stream_ready = false;  // the stream was created or verified since the last (re)connect
  std::string problem;        // why not ready, for people; empty when ready
};

// The servers (nats.url, a comma-separated list for a cluster) and credentials (user and
// password, token, credentials file) of nats:, as every connection of the gateway uses them.
natsStatus apply_nats_endpoint(natsOptions* options, const NatsConfig& config);
// The endpoint and what a publishing connection needs besides: reconnect for ever, pings, no
// reconnect buffer (publisher.cpp says why), the connection `name` servers show.
natsStatus apply_publishing_connection_settings(natsOptions* options, const NatsConfig& config,
                                                const std::string& name);

class Publisher {
 public:
  // Connects (or keeps trying in the background when NATS is down: the gateway starts and
  // spools or answers 503 until NATS is there), and creates/updates the stream and the KV
  // bucket omnigate_cursors when nats.manage_streams is on -- at once when NATS is there at
  // start, later on the setup thread.
  static Result<std::unique_ptr<Publisher>> start(const NatsConfig& config, Metrics& metrics);
  ~Publisher();

  // Publishes `payload` to `subject` with Nats-Msg-Id `id`. A timeout is an unknown outcome
  // and is retried with the same id until `deadline`. Errors: not_durable (503) when NATS is
  // unreachable, the connection drops while waiting, or the stream is not (yet) verified --
  // at once, without waiting for setup; payload_too_large (413) above NATS max_payload.
  Result<PublishOutcome> publish(const std::string& subject, const std::string& id,
                                 const std::string& payload,
                                 std::chrono::steady_clock::time_point deadline);
  // The same for several messages at once: up to kPublishWindow are sent before the first
  // ack is awaited, so a batch costs a round trip per window, not one per message. One
  // outcome per item, in order, each as publish() would give it. The stream stores them in
  // the batch's order, except a message that is retried (its ack lost or unconfirmed): it is
  // stored after the later messages of its round.
  std::vector<Result<PublishOutcome>> publish_all(std::span<const PublishItem> items,
                                                  std::chrono::steady_clock::time_point deadline);

  bool connected() const;
  // Connected and the stream verified since the last (re)connect; never blocks.
  bool ready() const { return connected() && setup_done_.load(); }
  NatsReadiness readiness() const;
  // The not_durable error of a publish refused because NATS is not ready (counted).
  Error not_ready_error();
  // Connected and the stream verified (from cached state; never blocks on the server).
  Status check_ready();
  natsConnection* connection() const { return connection_.get(); }
  jsCtx* jetstream() const { return jetstream_.get(); }
  // The KV bucket for poller cursors and locks (omnigate_cursors); may be null.
  kvStore* cursors() const { return cursors_.get(); }
  // The KV bucket of looked-up display names (omnigate_names, TTL nats.names_ttl); may be null.
  kvStore* names() const { return names_.get(); }
  SeenIndex& seen_index() { return seen_index_; }
  const NatsConfig& config() const { return config_; }
  Metrics& metrics() { return metrics_; }

  // Asks the setup thread to verify the stream again (another connection of the gateway
  // reconnected, or found no responders); returns the round that will do it.
  uint64_t request_setup();
  // The same without withdrawing this Publisher's own readiness meanwhile: another connection
  // (a loop's, after its reconnect) asks, and this one's verification still holds for itself.
  uint64_t request_verification();
  // Whether a round at or after `generation` has verified the stream: a connection that asked
  // with request_setup() or request_verification() may publish once this holds.
  bool verified_since(uint64_t generation) const {
    const int64_t verified = verified_generation_.load(std::memory_order_acquire);
    return ready() && verified >= 0 && static_cast<uint64_t>(verified) >= generation;
  }
  // The round the current verification belongs to, for a connection that starts now.
  uint64_t current_generation() const {
    std::lock_guard lock(setup_mutex_);
    return setup_generation_;
  }

 private:
  Publisher(const NatsConfig& config, Metrics& metrics);
  Status ensure_stream_and_buckets();
  // The setup thread: verifies the stream and buckets whenever a (re)connect asks for it.
  void setup_loop();
  // Waits (never past `deadline`) until the setup thread has verified the stream; false when
  // it has not, or the connection is gone.
  bool wait_for_setup(std::chrono::steady_clock::time_point deadline);
  // Fails every in-flight attempt at once: its ack cannot arrive on a dropped connection.
  void fail_waiters(natsStatus status);
  // Attempts are sent without a nats.c MaxWait (its per-message timeout costs a timer entry
  // and a second message through the ack handler for every publish: measured, bench/README.md),
  // so nats.c keeps a sent message until its ack comes. One whose ack never comes -- lost in
  // a disconnect, or dropped by a cluster in an election -- would stay for good. This takes
  // them all back and fails the attempts still waiting with `status` (they retry with the same
  // id, and JetStream's duplicate window makes that safe). Run at every disconnect, and when
  // kReclaimAfterAbandoned attempts have timed out on our side since the last time.
  void reclaim_pending(natsStatus status);
  // Well under nats.c's MaxPending (65536) beside the attempts that may be in flight (64
  // request threads x a window of 256), and high enough that one stalled round of a batch
  // does not by itself take back every other request's healthy attempts.
  static constexpr uint64_t kReclaimAfterAbandoned = 8192;
  // One publish attempt's outcome, filled by whoever takes it out of its shard first (the ack
  // handler on a nats.c thread, or fail_waiters), then signalled to the request thread.
  struct AckWaiter {
    natsStatus status = NATS_OK;
    uint64_t sequence = 0;
    bool duplicate = false;
    OneShotSignal done;
  };
  // In-flight attempts by message, spread over shards so that 64 request threads and the ack
  // handler do not queue on one mutex (measured: that lock was a fifth of the futex calls).
  struct alignas(64) WaiterShard {
    std::mutex mutex;
    std::unordered_map<natsMsg*, std::shared_ptr<AckWaiter>> waiters;
  };
  static constexpr size_t kWaiterShards = 16;
  WaiterShard& shard_of(natsMsg* msg) {
    return waiter_shards_[(reinterpret_cast<uintptr_t>(msg) >> 6) % kWaiterShards];
  }
  // Takes the waiter of `msg` out of its shard (null when none: it gave up, or was failed).
  // With `only`, only that waiter: a message the ack handler destroyed may have given its
  // address to another request's message by now.
  std::shared_ptr<AckWaiter> take_waiter(natsMsg* msg, const AckWaiter* only = nullptr);
  // One attempt in flight: its message (the key of its waiter) and the waiter.
  struct Attempt {
    natsMsg* msg = nullptr;
    std::shared_ptr<AckWaiter> waiter;
  };
  // Registers and sends one attempt with js_PublishMsgAsync; NATS_OK when it is in flight.
  natsStatus send_attempt(const PublishItem& item, Attempt& attempt);
  // Waits for a sent attempt's ack until `until` (NATS_TIMEOUT: unknown outcome).
  natsStatus await_attempt(Attempt& attempt, std::chrono::steady_clock::time_point until,
                           PublishOutcome& outcome);
  // How many attempts of one batch are in flight at once.
  static constexpr size_t kPublishWindow = 256;
  static void on_ack(jsCtx*, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error, void* self);
  static void on_disconnected(natsConnection*, void* self);
  static void on_closed(natsConnection*, void* self);
  static void on_reconnected(natsConnection*, void* self);
  static void on_connected(natsConnection*, void* self);

  const NatsConfig& config_;
  Metrics& metrics_;
  nats::Connection connection_;
  nats::JetStream jetstream_;
  nats::KeyValue cursors_;
  nats::KeyValue names_;
  SeenIndex seen_index_;
  std::mutex closed_mutex_;
  std::condition_variable closed_cv_;
  bool closed_ = false;
  // Set before our own natsConnection_Close: the disconnect it causes is a clean stop, not an
  // outage to warn about.
  std::atomic<bool> closing_{false};
  // Kept by the connection callbacks. natsConnection_Status takes the connection's lock, which
  // the reader, the flusher and every publish contend for: asked twice per interaction it was
  // ~4 % of a Telegram webhook's CPU. The callbacks run a moment after the change; a publish
  // in that moment finds no reconnect buffer (it fails at once) or is failed by the
  // disconnect's reclaim_pending. `unknown` until the connect returns or a callback runs.
  enum class Link { unknown, up, down };
  std::atomic<Link> link_{Link::unknown};
  std::array<WaiterShard, kWaiterShards> waiter_shards_;
  std::atomic<uint64_t> abandoned_{0};  // attempts timed out since the last reclaim_pending
  std::mutex reclaim_mutex_;            // one reclaim at a time
  // Held shared by an attempt while it registers and sends, exclusively by reclaim_pending.
  std::shared_mutex publish_gate_;
  std::atomic<bool> published_async_{false};  // nats.c's pending table exists
  mutable std::mutex setup_mutex_;
  std::condition_variable setup_cv_;
  uint64_t setup_generation_ = 0;  // bumped by every (re)connect and lost stream
  std::string setup_problem_;      // the last setup failure, for /readyz
  bool stopping_ = false;
  std::atomic<bool> setup_done_{false};  // stream and buckets verified since the last (re)connect
  // The setup_generation_ of the last round that verified them (-1: none yet).
  std::atomic<int64_t> verified_generation_{-1};
  std::thread setup_thread_;
};

}  // namespace omnigate

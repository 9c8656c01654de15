// Makes interactions durable: JetStream publish with Nats-Msg-Id = the interaction id, an
// answer only after the PubAck, and a long-horizon "seen" record in the KV bucket
// omnigate_seen for provider retries that outlive the stream's duplicate window.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "gateway/config.hpp"
#include "gateway/error.hpp"
#include "gateway/metrics.hpp"
#include "gateway/nats_handles.hpp"
#include "gateway/seen_index.hpp"

namespace omnigate {

struct PublishOutcome {
  uint64_t sequence = 0;
  bool duplicate = false;  // recognised by the seen-bucket or JetStream's duplicate window
};

class Publisher {
 public:
  // Connects (or keeps trying in the background when NATS is down: the gateway starts and
  // answers 503 until NATS is there), and creates/updates the stream and KV buckets when
  // nats.manage_streams is on.
  static Result<std::unique_ptr<Publisher>> start(const NatsConfig& config, Metrics& metrics);
  ~Publisher();

  // Publishes `payload` to `subject` with Nats-Msg-Id `id`. A timeout is an unknown outcome
  // and is retried with the same id until `deadline`. Errors: not_durable (503) when NATS is
  // unreachable or the stream is missing, payload_too_large (413) above NATS max_payload.
  Result<PublishOutcome> publish(const std::string& subject, const std::string& id,
                                 const std::string& payload,
                                 std::chrono::steady_clock::time_point deadline);

  bool connected() const;
  // Connected and the stream exists (asks the server).
  Status check_ready();
  natsConnection* connection() const { return connection_.get(); }
  jsCtx* jetstream() const { return jetstream_.get(); }
  // The KV bucket for poller cursors and locks (omnigate_cursors); may be null.
  kvStore* cursors() const { return cursors_.get(); }
  const SeenIndex& seen_index() const { return seen_index_; }

 private:
  Publisher(const NatsConfig& config, Metrics& metrics);
  Status ensure_stream_and_buckets();
  Status ensure_ready_locked();
  // One publish attempt's outcome, filled by the ack handler (a nats.c thread).
  struct AckWaiter {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    natsStatus status = NATS_OK;
    uint64_t sequence = 0;
    bool duplicate = false;
  };
  // Sends one attempt with js_PublishMsgAsync and waits for its ack until `until`.
  natsStatus publish_attempt(const std::string& subject, const std::string& id,
                             const std::string& payload, std::chrono::milliseconds max_wait,
                             PublishOutcome& outcome);
  static void on_ack(jsCtx*, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error, void* self);
  static void on_disconnected(natsConnection*, void* self);
  static void on_closed(natsConnection*, void* self);
  static void on_reconnected(natsConnection*, void* self);
  static void on_connected(natsConnection*, void* self);

  const NatsConfig& config_;
  Metrics& metrics_;
  nats::Connection connection_;
  nats::JetStream jetstream_;
  nats::KeyValue seen_;
  nats::KeyValue cursors_;
  SeenIndex seen_index_;
  std::mutex closed_mutex_;
  std::condition_variable closed_cv_;
  bool closed_ = false;
  std::mutex waiters_mutex_;
  std::unordered_map<natsMsg*, std::shared_ptr<AckWaiter>>
      waiters_;  // in-flight attempts  // declared after seen_: stopped before the bucket handle
                 // goes
  std::mutex setup_mutex_;
  std::atomic<bool> setup_done_{false};  // stream and buckets verified since the last (re)connect
};

}  // namespace omnigate

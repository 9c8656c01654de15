// The publisher of one event loop (gateway/loop/event_loop.hpp): a NATS connection of its own
// on nats.c's external event-loop adapter, so its socket is read and written by the loop's
// thread and no nats.c thread stands between a publish and its PubAck (bench/README.md, "The
// epoll front probe"). A publish is a core publish with the Nats-Msg-Id header and a reply
// subject on the loop's own inbox, which is what js_PublishMsgAsync sends; the PubAck is read
// from that inbox after each read of the socket, and the batch's completion runs on the loop.
//
// It keeps Publisher::publish_all's outcomes, one for one, with the same judge_attempt:
// an attempt whose ack has not come within nats.ack_wait is sent again with the same id until
// the deadline (then not_durable, "timeout"); {"seq":0,"duplicate":true} is sent again after a
// pause; "no responders" asks the Publisher's setup thread to re-create the stream and sends
// again once it has, within the deadline, else "stream_missing"; a dropped connection fails what
// is in flight at once ("disconnected"); nothing is sent after a (re)connect of this connection
// before the stream is verified again; NATS_MAX_PAYLOAD is 413; a PubAck counts only from our
// stream; a confirmed id goes into the SeenIndex at once.
//
// Where it departs from publish_all: a batch is sent whole, not in windows of 256 (the loop
// does not wait between windows; the server takes them in order), and a retried message is
// stored after the batch's later ones, as publish_all's retries are.
//
// The stream, buckets and readiness stay the Publisher's: a blocking request on this
// connection from its own loop would wait for a reply only that loop reads.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "gateway/core/error.hpp"
#include "gateway/loop/event_loop.hpp"
#include "gateway/nats/nats_handles.hpp"
#include "gateway/nats/publisher.hpp"

namespace omnigate {

// One message of a batch, owned by the batch until its completion.
struct PublishMessage {
  std::string subject;
  std::string id;  // Nats-Msg-Id
  std::string payload;
};

class LoopPublisher {
 public:
  using Clock = std::chrono::steady_clock;
  using Outcomes = std::vector<Result<PublishOutcome>>;
  // The outcomes, and the messages handed back (a caller spools what was not durable).
  using Done = std::function<void(Outcomes, std::vector<PublishMessage>)>;

  // Connects on `loop` (from any thread, before or while it runs); when NATS is not there yet it
  // keeps trying in the background, as the Publisher does. `index` names the connection
  // ("<nats.client_name>-loop<index>"). `publisher` outlives this.
  static Result<std::unique_ptr<LoopPublisher>> start(EventLoop& loop, Publisher& publisher,
                                                      int index);
  // On the loop's thread, or once the loop has stopped.
  ~LoopPublisher();
  LoopPublisher(const LoopPublisher&) = delete;
  LoopPublisher& operator=(const LoopPublisher&) = delete;

  // On the loop's thread. `done` runs on the loop's thread exactly once, never from inside this
  // call, with one outcome per message in order, each as Publisher::publish_all gives it.
  void publish_all(std::vector<PublishMessage> messages, Clock::time_point deadline, Done done);

  // Connected, and the stream verified since this connection's last (re)connect.
  bool ready() const;
  // Attempts sent and not answered yet, for tests.
  size_t in_flight() const { return in_flight_.size(); }

 private:
  LoopPublisher(EventLoop& loop, Publisher& publisher);
  class SocketWatcher;
  struct Batch;
  enum class ItemState : uint8_t { unsent, in_flight, paused, awaiting_stream, settled };
  struct Sent {
    uint64_t batch;
    size_t index;
  };

  // nats.c's event-loop adapter; called from the loop, nats.c's reconnect and timer threads.
  static natsStatus on_attach(void** user, void* loop, natsConnection*, natsSock socket);
  static natsStatus on_read(void* user, bool add);
  static natsStatus on_write(void* user, bool add);
  static natsStatus on_detach(void* user);
  // Connection callbacks, on nats.c's callback thread: they post to the loop.
  static void on_connected(natsConnection*, void* self);
  static void on_disconnected(natsConnection*, void* self);
  static void on_reconnected(natsConnection*, void* self);
  static void on_closed(natsConnection*, void* self);
  void post(std::function<void()> task);
  EventLoop::TimerId run_at(Clock::time_point when, std::function<void()> task);
  void update_interest();

  void on_socket_events(uint32_t events);
  void drain_inbox();
  void on_pub_ack(uint64_t token, natsMsg* msg);
  void on_no_responders();
  void expire_attempts();
  void arm_expiry();
  void fail_everything(const char* reason, const std::string& detail);

  void send(Batch& batch, size_t index);
  void judge(Batch& batch, size_t index, natsStatus status, const PublishOutcome& outcome);
  void settle(Batch& batch, size_t index, Result<PublishOutcome> result);
  void wait_for_stream(Batch& batch, size_t index);
  void check_awaiting_stream();
  void on_deadline(uint64_t batch_serial);
  void finish_if_done(Batch& batch);
  bool link_up() const { return link_up_.load(std::memory_order_acquire); }
  bool stream_verified() const;

  EventLoop& loop_;
  Publisher& publisher_;
  const NatsConfig& config_;
  Metrics& metrics_;
  std::unique_ptr<SocketWatcher> watcher_;
  nats::Connection connection_;
  nats::Subscription inbox_sub_;
  std::string inbox_prefix_;  // "<inbox>." + token
  // Lives as long as this; posted tasks hold it weakly and do nothing once it is gone.
  std::shared_ptr<LoopPublisher*> self_;
  const std::weak_ptr<LoopPublisher*> weak_self_;  // never reassigned: read by any thread

  // The adapter's state, touched off the loop by nats.c (reconnect and timer threads).
  std::mutex socket_mutex_;
  int socket_ = -1;
  bool want_read_ = false;
  bool want_write_ = false;

  std::atomic<natsConnection*> nc_{nullptr};  // set by the first attach
  std::atomic<bool> link_up_{false};
  std::atomic<bool> closing_{false};
  std::mutex closed_mutex_;
  bool closed_ = false;
  std::condition_variable closed_cv_;
  // The setup round that must have verified the stream before this connection publishes: set
  // at each reconnect (the server may be a new one), and at a "no responders".
  // Written by the connection callbacks before link_up_, read on the loop after it.
  std::atomic<uint64_t> needed_generation_{0};

  // Loop thread only from here.
  uint64_t next_token_ = 0;
  uint64_t next_batch_ = 0;
  std::unordered_map<uint64_t, Sent> in_flight_;  // reply token -> attempt
  // Attempts in the order sent, with when their ack_wait ends: ack_wait is one value, so this
  // order is their expiry order (an answered attempt's entry is skipped when it comes up).
  std::deque<std::pair<Clock::time_point, uint64_t>> expiry_;
  bool expiry_armed_ = false;
  EventLoop::TimerId stream_poll_ = 0;  // polls verified_since while items await the stream
  size_t awaiting_stream_ = 0;          // items in ItemState::awaiting_stream
  std::unordered_map<uint64_t, std::unique_ptr<Batch>> batches_;
};

}  // namespace omnigate

#include "gateway/nats/loop_publisher.hpp"

#include <charconv>

#include "gateway/core/log.hpp"
#include "gateway/model/json_scan.hpp"

namespace omnigate {
namespace {

using Clock = std::chrono::steady_clock;

// How often items that wait for the stream's verification look again (the setup thread
// verifies within a round trip or two; this is not on the path of a healthy publish).
constexpr std::chrono::milliseconds kStreamPoll{20};

struct PubAckFields {
  std::string stream;
  uint64_t sequence = 0;
  bool duplicate = false;
  bool error = false;
};

// A PubAck as JetStream writes it: {"stream":"S","seq":N[,"duplicate":true]}, or
// {"error":{"code":C,"err_code":E,"description":"..."}}. Anything else is no confirmation.
bool read_pub_ack(std::string_view data, PubAckFields& out) {
  thread_local JsonScan scan;
  auto status = scan.object(data, "PubAck", [&](std::string_view key, JsonScan::Value value) {
    if (key == "stream") {
      if (auto text = scan.str(value)) out.stream = std::move(*text);
    } else if (key == "seq") {
      if (auto n = scan.i64(value); n && *n >= 0) out.sequence = static_cast<uint64_t>(*n);
    } else if (key == "duplicate") {
      out.duplicate = scan.boolean(value).value_or(false);
    } else if (key == "error") {
      out.error = true;  // what it says is JetStream's log's business, not the request's
    }
  });
  return static_cast<bool>(status);
}

}  // namespace

struct LoopPublisher::Batch {
  uint64_t serial = 0;
  std::vector<PublishMessage> messages;
  Outcomes results;
  std::vector<ItemState> states;
  size_t open = 0;  // items not settled
  Clock::time_point deadline;
  Done done;
  EventLoop::TimerId deadline_timer = 0;
};

class LoopPublisher::SocketWatcher : public EventLoop::Watcher {
 public:
  explicit SocketWatcher(LoopPublisher& owner) : owner_(owner) {}
  void on_events(uint32_t events) override { owner_.on_socket_events(events); }

 private:
  LoopPublisher& owner_;
};

LoopPublisher::LoopPublisher(EventLoop& loop, Publisher& publisher)
    : loop_(loop),
      publisher_(publisher),
      config_(publisher.config()),
      metrics_(publisher.metrics()),
      watcher_(std::make_unique<SocketWatcher>(*this)),
      self_(std::make_shared<LoopPublisher*>(this)),
      weak_self_(self_) {}

Result<std::unique_ptr<LoopPublisher>> LoopPublisher::start(EventLoop& loop, Publisher& publisher,
                                                            int index) {
  std::unique_ptr<LoopPublisher> p(new LoopPublisher(loop, publisher));
  const NatsConfig& config = publisher.config();
  natsInbox* inbox = nullptr;
  if (natsInbox_Create(&inbox) != NATS_OK) {
    return make_error(ErrorCode::internal, "publish", "cannot create a NATS inbox");
  }
  p->inbox_prefix_ = std::string(inbox) + ".";
  natsInbox_Destroy(inbox);

  natsOptions* raw_options = nullptr;
  if (natsOptions_Create(&raw_options) != NATS_OK) {
    return make_error(ErrorCode::internal, "publish", "cannot create NATS options");
  }
  nats::Options options(raw_options);
  const std::string name = config.client_name + "-loop" + std::to_string(index);
  natsStatus s = apply_publishing_connection_settings(raw_options, config, name);
  // Each publish is written at once, on the loop, instead of waking nats.c's flusher (measured:
  // fewer futex calls per interaction, bench/README.md).
  if (s == NATS_OK) s = natsOptions_SetSendAsap(raw_options, true);
  if (s == NATS_OK)
    s = natsOptions_SetDisconnectedCB(raw_options, &LoopPublisher::on_disconnected, p.get());
  if (s == NATS_OK)
    s = natsOptions_SetReconnectedCB(raw_options, &LoopPublisher::on_reconnected, p.get());
  if (s == NATS_OK) s = natsOptions_SetClosedCB(raw_options, &LoopPublisher::on_closed, p.get());
  if (s == NATS_OK) {
    s = natsOptions_SetRetryOnFailedConnect(raw_options, true, &LoopPublisher::on_connected,
                                            p.get());
  }
  if (s == NATS_OK) {
    s = natsOptions_SetEventLoop(raw_options, p.get(), &LoopPublisher::on_attach,
                                 &LoopPublisher::on_read, &LoopPublisher::on_write,
                                 &LoopPublisher::on_detach);
  }
  if (s != NATS_OK) {
    return make_error(ErrorCode::internal, "publish",
                      std::string("invalid NATS options: ") + natsStatus_GetText(s));
  }
  p->needed_generation_ = publisher.current_generation();
  natsConnection* raw_connection = nullptr;
  s = natsConnection_Connect(&raw_connection, raw_options);
  if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
    return make_error(ErrorCode::not_durable, "publish",
                      "cannot connect to NATS at " + config.url + ": " + natsStatus_GetText(s));
  }
  p->connection_.reset(raw_connection);
  if (s == NATS_OK) p->link_up_ = true;
  // PubAcks of this connection's publishes only, read by the loop after each socket read.
  natsSubscription* sub = nullptr;
  s = natsConnection_SubscribeSync(&sub, raw_connection, (p->inbox_prefix_ + "*").c_str());
  if (s != NATS_OK) {
    return make_error(
        ErrorCode::internal, "publish",
        std::string("cannot subscribe to the PubAck inbox: ") + natsStatus_GetText(s));
  }
  p->inbox_sub_.reset(sub);
  // Acks beyond these limits are dropped by nats.c (a slow consumer): their attempts time out
  // and are sent again with the same id.
  natsSubscription_SetPendingLimits(sub, 1 << 20, 256 * 1024 * 1024);
  return p;
}

LoopPublisher::~LoopPublisher() {
  self_.reset();  // a task posted by a callback from now on does nothing
  if (connection_) {
    closing_ = true;
    natsConnection_Close(connection_.get());
    std::unique_lock lock(closed_mutex_);
    closed_cv_.wait_for(lock, std::chrono::seconds(5), [&] { return closed_; });
  }
  inbox_sub_.reset();
  connection_.reset();
  // What is still open is answered: the requests it belongs to get their 503 (or spool).
  for (auto& [serial, batch] : batches_) {
    for (size_t i = 0; i < batch->messages.size(); ++i) {
      if (batch->states[i] == ItemState::settled) continue;
      batch->results[i] =
          publish_failure(metrics_, "disconnected", "the gateway is stopping; retry later");
    }
    if (batch->done) batch->done(std::move(batch->results), std::move(batch->messages));
  }
}

// --- nats.c's event-loop adapter ---

natsStatus LoopPublisher::on_attach(void** user, void* loop, natsConnection* nc, natsSock socket) {
  auto* self = static_cast<LoopPublisher*>(loop);
  *user = self;
  // The first attach runs inside natsConnection_Connect, before start() has stored the
  // connection: the socket's events use this one.
  self->nc_.store(nc, std::memory_order_release);
  std::lock_guard lock(self->socket_mutex_);
  self->socket_ = socket;
  self->want_read_ = true;  // attached means polled for reads (nats.h, natsEvLoop_Attach)
  self->want_write_ = false;
  return self->loop_.add(socket, EPOLLIN, self->watcher_.get()) ? NATS_OK : NATS_ERR;
}

void LoopPublisher::update_interest() {
  if (socket_ < 0) return;
  const uint32_t events = (want_read_ ? EPOLLIN : 0u) | (want_write_ ? EPOLLOUT : 0u);
  loop_.modify(socket_, events, watcher_.get());
}

natsStatus LoopPublisher::on_read(void* user, bool add) {
  auto* self = static_cast<LoopPublisher*>(user);
  std::lock_guard lock(self->socket_mutex_);
  if (!add) {
    // nats.c stops polling just before it closes a dropped socket, and does not detach it: the
    // number is forgotten now, while it is still ours, or a later modify or remove (a detach
    // at close) would hit whatever the number names then -- on this loop, a client's
    // connection.
    if (self->socket_ >= 0) self->loop_.remove(self->socket_);
    self->socket_ = -1;
    self->want_read_ = self->want_write_ = false;
    return NATS_OK;
  }
  self->want_read_ = true;
  self->update_interest();
  return NATS_OK;
}

natsStatus LoopPublisher::on_write(void* user, bool add) {
  auto* self = static_cast<LoopPublisher*>(user);
  std::lock_guard lock(self->socket_mutex_);
  self->want_write_ = add;
  self->update_interest();
  return NATS_OK;
}

natsStatus LoopPublisher::on_detach(void* user) {
  auto* self = static_cast<LoopPublisher*>(user);
  std::lock_guard lock(self->socket_mutex_);
  if (self->socket_ >= 0) self->loop_.remove(self->socket_);
  self->socket_ = -1;
  return NATS_OK;
}

// --- connection callbacks (nats.c's callback thread) ---

void LoopPublisher::post(std::function<void()> task) {
  loop_.post([weak = weak_self_, task = std::move(task)] {
    if (weak.lock()) task();  // on the loop: the destructor runs there too, not concurrently
  });
}

void LoopPublisher::on_connected(natsConnection*, void* self) {
  auto* p = static_cast<LoopPublisher*>(self);
  // The stream is verified again before this connection publishes: set before the link is up.
  p->needed_generation_ = p->publisher_.request_verification();
  p->link_up_ = true;
}

void LoopPublisher::on_reconnected(natsConnection* nc, void* self) {
  on_connected(nc, self);
}

void LoopPublisher::on_disconnected(natsConnection*, void* self) {
  auto* p = static_cast<LoopPublisher*>(self);
  p->link_up_ = false;
  if (p->closing_) return;
  // An ack cannot arrive on a dropped connection: fail what is in flight at once.
  p->post([p] { p->fail_everything("disconnected", "NATS connection lost; retry later"); });
}

void LoopPublisher::on_closed(natsConnection*, void* self) {
  auto* p = static_cast<LoopPublisher*>(self);
  p->link_up_ = false;
  std::lock_guard lock(p->closed_mutex_);
  p->closed_ = true;
  p->closed_cv_.notify_all();
}

// --- the loop ---

EventLoop::TimerId LoopPublisher::run_at(Clock::time_point when, std::function<void()> task) {
  // A timer may come due after this is destroyed (on its loop, which runs on).
  return loop_.run_at(when, [weak = weak_self_, task = std::move(task)] {
    if (weak.lock()) task();
  });
}

bool LoopPublisher::stream_verified() const {
  return publisher_.verified_since(needed_generation_.load(std::memory_order_acquire));
}

bool LoopPublisher::ready() const {
  return link_up() && stream_verified();
}

void LoopPublisher::on_socket_events(uint32_t events) {
  natsConnection* nc = nc_.load(std::memory_order_acquire);
  if (nc == nullptr) return;
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
    natsConnection_ProcessReadEvent(nc);
    drain_inbox();
  }
  if (events & EPOLLOUT) natsConnection_ProcessWriteEvent(nc);
}

void LoopPublisher::drain_inbox() {
  natsSubscription* sub = inbox_sub_.get();
  if (sub == nullptr) return;
  for (;;) {
    natsMsg* msg = nullptr;
    const natsStatus s = natsSubscription_NextMsg(&msg, sub, 0);
    if (s == NATS_OK) {
      std::string_view subject = natsMsg_GetSubject(msg);
      uint64_t token = 0;
      if (subject.size() > inbox_prefix_.size()) {
        subject.remove_prefix(inbox_prefix_.size());
        std::from_chars(subject.data(), subject.data() + subject.size(), token);
      }
      on_pub_ack(token, msg);
      nats::destroy_on_this_thread(msg);
    } else if (s == NATS_NO_RESPONDERS) {
      // nats.c drops the status message and says only that one came: see on_no_responders.
      on_no_responders();
    } else if (s != NATS_SLOW_CONSUMER) {
      break;  // NATS_TIMEOUT: nothing more queued (a slow consumer is reported once, then read on)
    }
  }
}

void LoopPublisher::on_pub_ack(uint64_t token, natsMsg* msg) {
  auto it = in_flight_.find(token);
  if (it == in_flight_.end()) return;  // timed out and sent again, or its batch is over
  const Sent sent = it->second;
  in_flight_.erase(it);
  auto found = batches_.find(sent.batch);
  if (found == batches_.end()) return;
  Batch& batch = *found->second;
  if (batch.states[sent.index] != ItemState::in_flight) return;
  PubAckFields ack;
  const std::string_view data(natsMsg_GetData(msg),
                              static_cast<size_t>(natsMsg_GetDataLength(msg)));
  PublishOutcome outcome;
  natsStatus status = NATS_ERR;
  if (read_pub_ack(data, ack) && !ack.error &&
      confirms_storage(config_.stream.name, ack.stream.c_str(), ack.sequence, ack.duplicate)) {
    status = NATS_OK;
    outcome.sequence = ack.sequence;
    outcome.duplicate = ack.duplicate;
  }
  judge(batch, sent.index, status, outcome);
}

void LoopPublisher::on_no_responders() {
  // The stream is gone, and every subject we publish to is one of its: each attempt in flight
  // is answered the same way, and which one this answer was is not known. All of them wait for
  // the stream to be re-created and are sent again with their ids (safe under dedup).
  if (stream_verified()) needed_generation_ = publisher_.request_verification();
  std::vector<Sent> waiting;
  waiting.reserve(in_flight_.size());
  for (const auto& [token, sent] : in_flight_) waiting.push_back(sent);
  in_flight_.clear();
  for (const Sent& sent : waiting) {
    auto found = batches_.find(sent.batch);
    if (found == batches_.end()) continue;
    Batch& batch = *found->second;
    if (batch.states[sent.index] != ItemState::in_flight) continue;
    judge(batch, sent.index, NATS_NO_RESPONDERS, PublishOutcome{});
  }
}

void LoopPublisher::arm_expiry() {
  if (expiry_armed_ || expiry_.empty()) return;
  expiry_armed_ = true;
  run_at(expiry_.front().first, [this] { expire_attempts(); });
}

void LoopPublisher::expire_attempts() {
  expiry_armed_ = false;
  const auto now = Clock::now();
  while (!expiry_.empty() && expiry_.front().first <= now) {
    const uint64_t token = expiry_.front().second;
    expiry_.pop_front();
    auto it = in_flight_.find(token);
    if (it == in_flight_.end()) continue;  // answered
    const Sent sent = it->second;
    in_flight_.erase(it);
    auto found = batches_.find(sent.batch);
    if (found == batches_.end()) continue;
    Batch& batch = *found->second;
    if (batch.states[sent.index] == ItemState::in_flight)
      judge(batch, sent.index, NATS_TIMEOUT, PublishOutcome{});
  }
  arm_expiry();
}

void LoopPublisher::fail_everything(const char* reason, const std::string& detail) {
  in_flight_.clear();
  expiry_.clear();
  std::vector<uint64_t> serials;
  for (const auto& [serial, batch] : batches_) serials.push_back(serial);
  for (uint64_t serial : serials) {
    auto found = batches_.find(serial);
    if (found == batches_.end()) continue;
    Batch& batch = *found->second;
    for (size_t i = 0; i < batch.messages.size() && batches_.count(serial) != 0; ++i) {
      if (batch.states[i] != ItemState::settled)
        settle(batch, i, publish_failure(metrics_, reason, detail));
    }
  }
}

void LoopPublisher::publish_all(std::vector<PublishMessage> messages, Clock::time_point deadline,
                                Done done) {
  auto owned = std::make_unique<Batch>();
  Batch& batch = *owned;
  batch.serial = ++next_batch_;
  batch.messages = std::move(messages);
  batch.results.assign(
      batch.messages.size(),
      Result<PublishOutcome>(make_error(ErrorCode::internal, "publish", "not processed")));
  batch.states.assign(batch.messages.size(), ItemState::unsent);
  batch.open = batch.messages.size();
  batch.deadline = deadline;
  batch.done = std::move(done);
  const uint64_t serial = batch.serial;
  batches_.emplace(serial, std::move(owned));
  // Completions never run inside this call: a batch that settles at once (NATS down) is
  // completed after the loop's current dispatch, like every other.
  batch.deadline_timer = run_at(deadline, [this, serial] { on_deadline(serial); });
  if (batch.open == 0) {
    finish_if_done(batch);
    return;
  }
  for (size_t i = 0; i < batch.messages.size(); ++i) {
    send(batch, i);
    if (batches_.count(serial) == 0) return;  // every item settled
  }
}

void LoopPublisher::send(Batch& batch, size_t index) {
  if (!link_up()) {
    settle(batch, index,
           publish_failure(metrics_, "disconnected", "NATS is not reachable; retry later"));
    return;
  }
  if (!stream_verified()) {
    wait_for_stream(batch, index);
    return;
  }
  const auto now = Clock::now();
  if (now >= batch.deadline) {
    settle(batch, index,
           publish_failure(metrics_, "timeout",
                           "no PubAck from JetStream before the request deadline"));
    return;
  }
  const PublishMessage& message = batch.messages[index];
  const uint64_t token = ++next_token_;
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, token);
  std::string reply;
  reply.reserve(inbox_prefix_.size() + static_cast<size_t>(end - digits));
  reply.append(inbox_prefix_).append(digits, end);
  natsMsg* msg = nullptr;
  natsStatus s = natsMsg_Create(&msg, message.subject.c_str(), reply.c_str(),
                                message.payload.data(), static_cast<int>(message.payload.size()));
  if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Content-Type", "application/json");
  if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Omnigate-Schema", "interaction.v1");
  // What js_PublishMsgAsync sets from jsPubOptions.MsgId: JetStream's duplicate window key.
  if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Nats-Msg-Id", message.id.c_str());
  if (s == NATS_OK) s = natsConnection_PublishMsg(connection_.get(), msg);
  nats::destroy_on_this_thread(msg);
  if (s != NATS_OK) {
    // Not sent. A send refused for a timeout or "no responders" does not mean what an ack's
    // would (nothing was sent to be answered): judged as the error it is.
    if (s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS) s = NATS_ERR;
    judge(batch, index, s, PublishOutcome{});
    return;
  }
  batch.states[index] = ItemState::in_flight;
  in_flight_.emplace(token, Sent{batch.serial, index});
  expiry_.emplace_back(now + config_.ack_wait, token);
  arm_expiry();
}

void LoopPublisher::judge(Batch& batch, size_t index, natsStatus status,
                          const PublishOutcome& outcome) {
  Result<PublishOutcome> result(make_error(ErrorCode::internal, "publish", "not judged"));
  switch (judge_attempt(status, outcome, link_up(), metrics_, result)) {
    case AttemptVerdict::confirmed:
      // The stream holds the record now; this only spares our own retries the wait for the
      // stream follower.
      publisher_.seen_index().confirmed(batch.messages[index].id, result->sequence);
      settle(batch, index, std::move(result));
      return;
    case AttemptVerdict::settled:
      settle(batch, index, std::move(result));
      return;
    case AttemptVerdict::retry:
      send(batch, index);  // settles with "timeout" once the deadline has passed
      return;
    case AttemptVerdict::retry_after_pause: {
      batch.states[index] = ItemState::paused;
      const uint64_t serial = batch.serial;
      const auto when = std::min(Clock::now() + kUnconfirmedDuplicatePause, batch.deadline);
      run_at(when, [this, serial, index] {
        auto found = batches_.find(serial);
        if (found != batches_.end() && found->second->states[index] == ItemState::paused)
          send(*found->second, index);
      });
      return;
    }
    case AttemptVerdict::no_stream:
      if (!config_.manage_streams) {
        // Not ours to re-create: an operator's matter, answered at once.
        settle(batch, index,
               publish_failure(metrics_, "stream_missing",
                               "no JetStream stream captures " + batch.messages[index].subject));
        return;
      }
      wait_for_stream(batch, index);
      return;
  }
}

void LoopPublisher::wait_for_stream(Batch& batch, size_t index) {
  batch.states[index] = ItemState::awaiting_stream;
  ++awaiting_stream_;
  if (stream_poll_ == 0) {
    stream_poll_ = run_at(Clock::now() + kStreamPoll, [this] { check_awaiting_stream(); });
  }
}

void LoopPublisher::check_awaiting_stream() {
  stream_poll_ = 0;
  if (awaiting_stream_ == 0) return;
  if (!link_up() || stream_verified()) {
    // Sent again (or failed as disconnected by send) in batch order.
    std::vector<std::pair<uint64_t, size_t>> ready;
    for (const auto& [serial, batch] : batches_) {
      for (size_t i = 0; i < batch->states.size(); ++i)
        if (batch->states[i] == ItemState::awaiting_stream) ready.emplace_back(serial, i);
    }
    for (const auto& [serial, index] : ready) {
      auto found = batches_.find(serial);
      if (found == batches_.end() || found->second->states[index] != ItemState::awaiting_stream)
        continue;
      --awaiting_stream_;
      found->second->states[index] = ItemState::unsent;
      send(*found->second, index);
    }
  }
  if (awaiting_stream_ > 0 && stream_poll_ == 0) {
    stream_poll_ = run_at(Clock::now() + kStreamPoll, [this] { check_awaiting_stream(); });
  }
}

void LoopPublisher::settle(Batch& batch, size_t index, Result<PublishOutcome> result) {
  if (batch.states[index] == ItemState::settled) return;
  if (batch.states[index] == ItemState::awaiting_stream) --awaiting_stream_;
  batch.states[index] = ItemState::settled;
  batch.results[index] = std::move(result);
  --batch.open;
  finish_if_done(batch);
}

void LoopPublisher::on_deadline(uint64_t batch_serial) {
  auto found = batches_.find(batch_serial);
  if (found == batches_.end()) return;
  Batch& batch = *found->second;
  batch.deadline_timer = 0;
  for (size_t i = 0; i < batch.messages.size(); ++i) {
    switch (batch.states[i]) {
      case ItemState::settled:
        break;
      case ItemState::awaiting_stream:
        settle(
            batch, i,
            publish_failure(metrics_, "stream_missing",
                            "stream " + config_.stream.name +
                                " is missing or not verified since the (re)connect; retry later"));
        break;
      default:
        // In flight or paused: a late ack finds no batch; a retry by the client is a duplicate.
        settle(batch, i,
               publish_failure(metrics_, "timeout",
                               "no PubAck from JetStream before the request deadline"));
        break;
    }
    if (batches_.count(batch_serial) == 0) return;
  }
}

void LoopPublisher::finish_if_done(Batch& batch) {
  if (batch.open > 0) return;
  auto found = batches_.find(batch.serial);
  if (found == batches_.end()) return;
  std::shared_ptr<Batch> finished(std::move(found->second));
  batches_.erase(found);
  if (finished->deadline_timer != 0) loop_.cancel(finished->deadline_timer);
  // After the current dispatch: never inside publish_all, never while a caller above us still
  // walks this batch.
  loop_.after_dispatch([finished] {
    if (finished->done) finished->done(std::move(finished->results), std::move(finished->messages));
  });
}

}  // namespace omnigate

#include "gateway/nats/publisher.hpp"

#include <algorithm>
#include <thread>

#include "gateway/core/log.hpp"

namespace omnigate {
namespace {

using Clock = std::chrono::steady_clock;

std::string nats_text(natsStatus status) {
  return natsStatus_GetText(status);
}

int64_t to_ms(std::chrono::milliseconds d) {
  return static_cast<int64_t>(d.count());
}

// The stream is the dedup record: ids older than its max_age are gone from it, and a retry
// after that is published again.
void warn_if_shorter_than_horizon(const jsStreamInfo* info, const NatsConfig& config) {
  if (info == nullptr || info->Config == nullptr) return;
  int64_t max_age_ms = info->Config->MaxAge / 1'000'000;
  if (max_age_ms > 0 && config.dedup_horizon.count() > max_age_ms) {
    log::warn("nats", "stream " + config.stream.name + " keeps messages " +
                          std::to_string(max_age_ms / 1000) +
                          " s (max_age), less than nats.dedup_horizon (" +
                          std::to_string(config.dedup_horizon.count() / 1000) +
                          " s): retries older than max_age will not be recognised as duplicates");
  }
}

}  // namespace

bool confirms_storage(const std::string& stream, const char* ack_stream, uint64_t sequence,
                      bool duplicate) {
  return ack_stream != nullptr && stream == ack_stream && (sequence > 0 || duplicate);
}

Error publish_failure(Metrics& metrics, const char* reason, std::string detail) {
  metrics.publish_failures.inc({reason});
  return make_error(ErrorCode::not_durable, "publish", std::move(detail));
}

AttemptVerdict judge_attempt(natsStatus status, const PublishOutcome& outcome, bool connected,
                             Metrics& metrics, Result<PublishOutcome>& result) {
  if (status == NATS_OK && outcome.duplicate && outcome.sequence == 0) {
    // nats-server 2.10 answers a retry whose first copy is still being replicated with
    // {"seq":0,"duplicate":true}: the id is known, the message not yet committed, and a
    // leader lost now loses it. Not a confirmation: try again with the same id.
    metrics.publish_failures.inc({"duplicate_unconfirmed"});
    return AttemptVerdict::retry_after_pause;
  }
  if (status == NATS_OK) {
    result = outcome;
    return AttemptVerdict::confirmed;
  }
  if (status == NATS_TIMEOUT) {
    // Unknown outcome: the message may be stored. Same id again; JetStream dedups.
    metrics.publish_failures.inc({"ack_timeout"});
    return AttemptVerdict::retry;
  }
  if (status == NATS_NO_RESPONDERS) return AttemptVerdict::no_stream;
  if (status == NATS_CONNECTION_DISCONNECTED || status == NATS_INSUFFICIENT_BUFFER || !connected) {
    result = publish_failure(metrics, "disconnected", "NATS connection lost; retry later");
  } else if (status == NATS_MAX_PAYLOAD) {
    metrics.publish_failures.inc({"too_large"});
    result = make_error(ErrorCode::payload_too_large, "publish",
                        "the interaction is larger than the NATS server's max_payload");
  } else {
    result = publish_failure(metrics, "error", "JetStream publish failed: " + nats_text(status));
  }
  return AttemptVerdict::settled;
}

Publisher::Publisher(const NatsConfig& config, Metrics& metrics)
    : config_(config), metrics_(metrics), seen_index_(config.dedup_horizon) {}

Publisher::~Publisher() {
  seen_index_.stop();
  {
    std::lock_guard lock(setup_mutex_);
    stopping_ = true;
  }
  setup_cv_.notify_all();
  if (setup_thread_.joinable()) setup_thread_.join();
  if (connection_) {
    // Closing queues the disconnected and closed callbacks on nats.c's callback thread; they
    // hold `this`. They run in order, so once the closed callback has run none is left.
    closing_ = true;
    natsConnection_Close(connection_.get());
    std::unique_lock lock(closed_mutex_);
    closed_cv_.wait_for(lock, std::chrono::seconds(5), [&] { return closed_; });
  }
  cursors_.reset();
  names_.reset();
  jetstream_.reset();
  connection_.reset();
}

void Publisher::on_closed(natsConnection*, void* self) {
  auto* p = static_cast<Publisher*>(self);
  p->link_ = Link::down;
  std::lock_guard lock(p->closed_mutex_);
  p->closed_ = true;
  p->closed_cv_.notify_all();
}

void Publisher::on_connected(natsConnection*, void* self) {
  auto* p = static_cast<Publisher*>(self);
  p->link_ = Link::up;
  p->metrics_.nats_connected = 1;
  log::info("nats", "connected");
  p->request_setup();
}

void Publisher::on_disconnected(natsConnection*, void* self) {
  auto* p = static_cast<Publisher*>(self);
  p->link_ = Link::down;
  p->metrics_.nats_connected = 0;
  p->setup_done_ = false;
  p->reclaim_pending(NATS_CONNECTION_DISCONNECTED);
  if (p->closing_) return;  // our own close at stop: the "stopped" line says it
  log::warn("nats", "disconnected; interactions are spooled or answered 503 until NATS is back");
}

void Publisher::on_reconnected(natsConnection*, void* self) {
  auto* p = static_cast<Publisher*>(self);
  p->link_ = Link::up;
  p->metrics_.nats_connected = 1;
  p->metrics_.nats_reconnects++;
  log::info("nats", "reconnected");
  p->request_setup();  // the server may be a new one: verify the stream again
}

uint64_t Publisher::request_verification() {
  uint64_t generation;
  {
    std::lock_guard lock(setup_mutex_);
    generation = ++setup_generation_;
  }
  setup_cv_.notify_all();
  return generation;
}

uint64_t Publisher::request_setup() {
  uint64_t generation;
  {
    std::lock_guard lock(setup_mutex_);
    setup_done_ = false;
    generation = ++setup_generation_;
  }
  setup_cv_.notify_all();
  return generation;
}

void Publisher::fail_waiters(natsStatus status) {
  for (auto& shard : waiter_shards_) {
    std::unordered_map<natsMsg*, std::shared_ptr<AckWaiter>> failed;
    {
      std::lock_guard lock(shard.mutex);
      failed.swap(shard.waiters);  // the ack handler destroys the messages; it finds no waiter
    }
    for (auto& [msg, waiter] : failed) {
      waiter->status = status;
      waiter->done.set();
    }
  }
}

void Publisher::reclaim_pending(natsStatus status) {
  std::lock_guard lock(reclaim_mutex_);
  // Two threads past the threshold at once: the second finds the work done.
  if (status == NATS_TIMEOUT && abandoned_.load() < kReclaimAfterAbandoned) return;
  abandoned_ = 0;
  // No attempt is between registering with nats.c and nats.c's last read of its message (it
  // registers the message, unlocks, then copies it out): taking the messages back now cannot
  // free one that is still being sent. Nor can an attempt register between the two steps.
  std::unique_lock gate(publish_gate_);
  fail_waiters(status);
  // nats.c makes its table of pending messages at the first async publish and reads it here
  // without a check (a crash before any publish). jetstream_ is set before any publish.
  if (!published_async_.load() || !jetstream_) return;
  // Every message nats.c still holds for an ack, now ours; a late ack finds none and is dropped.
  natsMsgList pending{};
  if (js_PublishAsyncGetPendingList(&pending, jetstream_.get()) == NATS_OK) {
    if (pending.Count > 0) {
      metrics_.publish_failures.inc({"ack_lost"}, static_cast<uint64_t>(pending.Count));
    }
    natsMsgList_Destroy(&pending);
  }
}

std::shared_ptr<Publisher::AckWaiter> Publisher::take_waiter(natsMsg* msg, const AckWaiter* only) {
  WaiterShard& shard = shard_of(msg);
  std::lock_guard lock(shard.mutex);
  auto it = shard.waiters.find(msg);
  if (it == shard.waiters.end()) return nullptr;
  if (only != nullptr && it->second.get() != only) return nullptr;
  auto waiter = std::move(it->second);
  shard.waiters.erase(it);
  return waiter;
}

void Publisher::setup_loop() {
  std::unique_lock lock(setup_mutex_);
  uint64_t done_generation = setup_generation_;  // start() did the first setup, or tried to
  bool verified = setup_done_;
  while (!stopping_) {
    if (verified && done_generation == setup_generation_) {
      setup_cv_.wait(lock, [&] { return stopping_ || done_generation != setup_generation_; });
      continue;
    }
    if (!connected()) {
      // Reconnection is nats.c's job; its callback asks again.
      setup_cv_.wait_for(lock, config_.reconnect_wait, [&] { return stopping_; });
      continue;
    }
    uint64_t generation = setup_generation_;
    lock.unlock();
    auto status = ensure_stream_and_buckets();
    lock.lock();
    done_generation = generation;
    verified = static_cast<bool>(status);
    if (verified) {
      setup_problem_.clear();
      // A (re)connect during the setup asks for another round before anyone may publish.
      if (generation == setup_generation_) {
        verified_generation_ = static_cast<int64_t>(generation);
        setup_done_ = true;
      }
      setup_cv_.notify_all();  // requests waiting for the stream (within their deadlines)
      log::info("nats", "stream " + config_.stream.name + " verified");
    } else {
      setup_problem_ = status.error().detail;
      log::warn("nats", setup_problem_);
      setup_cv_.wait_for(lock, std::max(config_.reconnect_wait, std::chrono::milliseconds(500)),
                         [&] { return stopping_; });
    }
  }
}

natsStatus apply_nats_endpoint(natsOptions* options, const NatsConfig& config) {
  natsStatus s = nats::set_server_urls(options, config.url);
  if (s == NATS_OK && !config.user.empty())
    s = natsOptions_SetUserInfo(options, config.user.c_str(), config.password.c_str());
  if (s == NATS_OK && !config.token.empty())
    s = natsOptions_SetToken(options, config.token.c_str());
  if (s == NATS_OK && !config.credentials_file.empty())
    s = natsOptions_SetUserCredentialsFromFiles(options, config.credentials_file.c_str(), nullptr);
  return s;
}

natsStatus apply_publishing_connection_settings(natsOptions* options, const NatsConfig& config,
                                                const std::string& name) {
  natsStatus s = apply_nats_endpoint(options, config);
  if (s == NATS_OK) s = natsOptions_SetName(options, name.c_str());
  if (s == NATS_OK) s = natsOptions_SetTimeout(options, to_ms(config.connect_timeout));
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(options, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(options, to_ms(config.reconnect_wait));
  if (s == NATS_OK) s = natsOptions_SetPingInterval(options, 5000);
  if (s == NATS_OK) s = natsOptions_SetMaxPingsOut(options, 2);
  // No reconnect buffer to speak of (1 byte; 0 means nats.c's 8 MB default): a publish made
  // while nats.c reconnects fails at once instead of waiting in a buffer. The request it
  // belongs to is answered 503 or spooled, so a buffered copy reaching the stream after the
  // reconnect would be an interaction published behind the client's back (a test refuses
  // that: tests/integration/consent_test.cpp).
  if (s == NATS_OK) s = natsOptions_SetReconnectBufSize(options, 1);
  return s;
}

Result<std::unique_ptr<Publisher>> Publisher::start(const NatsConfig& config, Metrics& metrics) {
  std::unique_ptr<Publisher> p(new Publisher(config, metrics));
  natsOptions* raw_options = nullptr;
  if (natsOptions_Create(&raw_options) != NATS_OK) {
    return make_error(ErrorCode::internal, "publish", "cannot create NATS options");
  }
  nats::Options options(raw_options);
  natsStatus s = apply_publishing_connection_settings(raw_options, config, config.client_name);
  if (s == NATS_OK)
    s = natsOptions_SetDisconnectedCB(raw_options, &Publisher::on_disconnected, p.get());
  if (s == NATS_OK)
    s = natsOptions_SetReconnectedCB(raw_options, &Publisher::on_reconnected, p.get());
  if (s == NATS_OK) s = natsOptions_SetClosedCB(raw_options, &Publisher::on_closed, p.get());
  // Start even when NATS is down: keep trying in the background, answer 503 meanwhile.
  if (s == NATS_OK) {
    s = natsOptions_SetRetryOnFailedConnect(raw_options, true, &Publisher::on_connected, p.get());
  }
  if (s != NATS_OK) {
    return make_error(ErrorCode::internal, "publish", "invalid NATS options: " + nats_text(s));
  }

  natsConnection* raw_connection = nullptr;
  s = natsConnection_Connect(&raw_connection, raw_options);
  if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
    return make_error(ErrorCode::not_durable, "publish",
                      "cannot connect to NATS at " + config.url + ": " + nats_text(s));
  }
  p->connection_.reset(raw_connection);
  if (s == NATS_OK) {
    // Up, unless a callback has already said otherwise since the connect returned.
    Link unknown = Link::unknown;
    p->link_.compare_exchange_strong(unknown, Link::up);
    metrics.nats_connected = 1;
  } else {
    log::warn("nats",
              "NATS at " + config.url + " is not reachable yet; retrying in the background");
  }

  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.Wait = to_ms(config.ack_wait);
  // Publishes are asynchronous under the hood: the request thread sends and waits on its own
  // AckWaiter, and nats.c's ack handler completes it. This avoids a request/reply inbox per
  // publish and 64 threads contending on the connection for synchronous requests (measured:
  // see bench/README.md).
  js_options.PublishAsync.AckHandler = &Publisher::on_ack;
  js_options.PublishAsync.AckHandlerClosure = p.get();
  js_options.PublishAsync.MaxPending = 65536;
  jsCtx* raw_js = nullptr;
  if (natsConnection_JetStream(&raw_js, raw_connection, &js_options) != NATS_OK) {
    return make_error(ErrorCode::internal, "publish", "cannot create a JetStream context");
  }
  p->jetstream_.reset(raw_js);

  if (p->connected()) {
    // At start nobody waits yet: set up now, so a gateway that starts with NATS is ready.
    auto ready = p->ensure_stream_and_buckets();
    std::lock_guard lock(p->setup_mutex_);
    if (ready) {
      p->verified_generation_ = static_cast<int64_t>(p->setup_generation_);
      p->setup_done_ = true;
    } else {
      p->setup_problem_ = ready.error().detail;
      log::warn("nats", ready.error().detail);
    }
  }
  p->setup_thread_ = std::thread([raw = p.get()] { raw->setup_loop(); });
  p->seen_index_.start(p->jetstream_.get(), config.stream.name,
                       [raw = p.get()] { return raw->ready(); });
  return p;
}

bool Publisher::connected() const {
  return link_.load(std::memory_order_acquire) == Link::up;
}

Status Publisher::ensure_stream_and_buckets() {
  const StreamConfig& sc = config_.stream;
  jsErrCode js_error = static_cast<jsErrCode>(0);
  if (config_.manage_streams) {
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char* subjects[] = {"omnigate.interactions.>"};
    cfg.Name = sc.name.c_str();
    cfg.Description = "omnigate interaction.v1 documents";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = sc.replicas;
    cfg.Duplicates = static_cast<int64_t>(sc.duplicate_window.count()) * 1'000'000;  // ns
    cfg.MaxAge = static_cast<int64_t>(sc.max_age.count()) * 1'000'000;
    cfg.MaxBytes = sc.max_bytes;
    jsStreamInfo* info = nullptr;
    natsStatus s = js_AddStream(&info, jetstream_.get(), &cfg, nullptr, &js_error);
    if (s != NATS_OK && js_error == JSStreamNameExistErr) {
      s = js_UpdateStream(&info, jetstream_.get(), &cfg, nullptr, &js_error);
      if (s != NATS_OK) {
        // The stream exists; a setting we cannot change (e.g. storage) is an operator matter.
        log::warn("nats", "stream " + sc.name +
                              " exists but could not be updated: " + nats_GetLastError(nullptr));
        s = NATS_OK;
      }
    }
    nats::StreamInfo owned(info);
    if (s != NATS_OK) {
      return make_error(ErrorCode::not_durable, "publish",
                        "cannot create stream " + sc.name + ": " + nats_GetLastError(nullptr));
    }
    warn_if_shorter_than_horizon(info, config_);
  } else {
    jsStreamInfo* info = nullptr;
    natsStatus s = js_GetStreamInfo(&info, jetstream_.get(), sc.name.c_str(), nullptr, &js_error);
    nats::StreamInfo owned(info);
    if (s != NATS_OK) {
      return make_error(ErrorCode::not_durable, "publish",
                        "stream " + sc.name + " does not exist (nats.manage_streams is off)");
    }
    warn_if_shorter_than_horizon(info, config_);
  }

  auto bucket = [&](const char* name, std::chrono::milliseconds ttl, nats::KeyValue& out) {
    kvStore* kv = nullptr;
    natsStatus s = nats::open_kv_bucket(jetstream_.get(), name, static_cast<int64_t>(ttl.count()),
                                        sc.replicas, config_.manage_streams, &kv);
    if (s != NATS_OK) {
      log::warn("nats", std::string("KV bucket ") + name + " unavailable: " + nats_text(s));
      return;
    }
    out.reset(kv);
  };
  if (!cursors_) bucket("omnigate_cursors", std::chrono::milliseconds(0), cursors_);
  if (!names_) bucket("omnigate_names", config_.names_ttl, names_);
  return ok_status();
}

NatsReadiness Publisher::readiness() const {
  NatsReadiness r;
  r.connected = connected();
  r.stream_ready = r.connected && setup_done_;
  if (!r.connected) {
    r.problem = "not connected to NATS at " + config_.url;
  } else if (!r.stream_ready) {
    std::lock_guard lock(setup_mutex_);
    r.problem = setup_problem_.empty() ? "stream " + config_.stream.name + " not verified yet"
                                       : setup_problem_;
  }
  return r;
}

bool Publisher::wait_for_setup(Clock::time_point deadline) {
  std::unique_lock lock(setup_mutex_);
  setup_cv_.wait_until(lock, deadline, [&] { return stopping_ || setup_done_ || !connected(); });
  return setup_done_ && connected();
}

Error Publisher::not_ready_error() {
  bool is_connected = connected();
  metrics_.publish_failures.inc({is_connected ? "stream_missing" : "disconnected"});
  return make_error(ErrorCode::not_durable, "publish", readiness().problem + "; retry later");
}

Status Publisher::check_ready() {
  auto r = readiness();
  if (r.problem.empty()) return ok_status();
  return make_error(ErrorCode::not_durable, "publish", r.problem);
}

void Publisher::on_ack(jsCtx*, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error, void* self) {
  auto* publisher = static_cast<Publisher*>(self);
  std::shared_ptr<AckWaiter> waiter = publisher->take_waiter(msg);
  natsMsg_Destroy(msg);  // the handler owns the message (nats.c contract)
  if (!waiter) return;   // the request gave up on this attempt already
  if (ack != nullptr && confirms_storage(publisher->config_.stream.name, ack->Stream, ack->Sequence,
                                         ack->Duplicate)) {
    waiter->status = NATS_OK;
    waiter->sequence = ack->Sequence;
    waiter->duplicate = ack->Duplicate;
  } else if (ack != nullptr) {
    waiter->status = NATS_ERR;
  } else {
    waiter->status = error != nullptr && error->Err != NATS_OK ? error->Err : NATS_ERR;
  }
  waiter->done.set();  // no lock held: the request thread runs on at once
}

natsStatus Publisher::send_attempt(const PublishItem& item, Attempt& attempt) {
  natsMsg* raw_msg = nullptr;
  natsStatus s = natsMsg_Create(&raw_msg, item.subject.c_str(), nullptr, item.payload.data(),
                                static_cast<int>(item.payload.size()));
  nats::Msg msg(raw_msg);
  if (s == NATS_OK) s = natsMsgHeader_Set(raw_msg, "Content-Type", "application/json");
  if (s == NATS_OK) s = natsMsgHeader_Set(raw_msg, "Omnigate-Schema", "interaction.v1");
  if (s != NATS_OK) return s;

  auto waiter = std::make_shared<AckWaiter>();
  WaiterShard& shard = shard_of(raw_msg);
  jsPubOptions options;
  jsPubOptions_Init(&options);
  options.MsgId = item.id.c_str();
  // No MaxWait: see reclaim_pending. The attempt's own wait is its deadline.
  natsMsg* sent = msg.release();
  {
    std::shared_lock gate(publish_gate_);  // reclaim_pending waits until the send is done
    {
      // Registered before sending: the ack may arrive before js_PublishMsgAsync returns.
      std::lock_guard lock(shard.mutex);
      shard.waiters[raw_msg] = waiter;
    }
    s = js_PublishMsgAsync(jetstream_.get(), &sent, &options);
    if (s == NATS_OK && !published_async_.load(std::memory_order_relaxed)) published_async_ = true;
  }
  if (s != NATS_OK) {
    // Not sent: the message is still ours (nats.c leaves `sent` set on failure).
    take_waiter(raw_msg, waiter.get());
    natsMsg_Destroy(sent);
    return s;
  }
  attempt.msg = raw_msg;
  attempt.waiter = std::move(waiter);
  return NATS_OK;
}

natsStatus Publisher::await_attempt(Attempt& attempt, Clock::time_point until,
                                    PublishOutcome& outcome) {
  AckWaiter& waiter = *attempt.waiter;
  if (!waiter.done.wait_until(until)) {
    // Whoever takes the waiter now completes it for nobody; a late ack is a duplicate later.
    take_waiter(attempt.msg, &waiter);
    if (abandoned_.fetch_add(1) + 1 >= kReclaimAfterAbandoned) reclaim_pending(NATS_TIMEOUT);
    return NATS_TIMEOUT;
  }
  if (waiter.status == NATS_OK) {
    outcome.sequence = waiter.sequence;
    outcome.duplicate = waiter.duplicate;
  }
  return waiter.status;
}

Result<PublishOutcome> Publisher::publish(const std::string& subject, const std::string& id,
                                          const std::string& payload, Clock::time_point deadline) {
  const PublishItem item{subject, id, payload};
  return std::move(publish_all(std::span<const PublishItem>(&item, 1), deadline).front());
}

std::vector<Result<PublishOutcome>> Publisher::publish_all(std::span<const PublishItem> items,
                                                           Clock::time_point deadline) {
  std::vector<Result<PublishOutcome>> results(
      items.size(),
      Result<PublishOutcome>(make_error(ErrorCode::internal, "publish", "not processed")));
  auto not_durable = [&](const char* reason, std::string detail) {
    return publish_failure(metrics_, reason, std::move(detail));
  };
  // Items still to settle, in their order; each round sends up to kPublishWindow of them at
  // once and then collects their acks, so a batch costs one round trip per window, not one per
  // item (a WhatsApp POST carries up to 1000 changes).
  std::vector<size_t> open(items.size());
  for (size_t i = 0; i < open.size(); ++i) open[i] = i;
  auto fail_open = [&](const char* reason, const std::string& detail) {
    for (size_t i : open) results[i] = not_durable(reason, detail);  // counted per message
    open.clear();
  };
  std::vector<Attempt> attempts;
  std::vector<natsStatus> statuses;
  std::vector<PublishOutcome> outcomes;
  std::vector<size_t> retry;
  std::vector<size_t> no_stream;
  while (!open.empty()) {
    // Checked before every round: nothing here waits for setup, and an attempt sent on a
    // dropped connection would only sit in the reconnect buffer until its ack timed out.
    if (!connected()) {
      fail_open("disconnected", "NATS is not reachable; retry later");
      break;
    }
    if (!setup_done_ && !wait_for_setup(deadline)) {
      if (!connected()) {
        fail_open("disconnected", "NATS is not reachable; retry later");
      } else {
        fail_open("stream_missing",
                  "stream " + config_.stream.name + " is not verified since the (re)connect yet");
      }
      break;
    }
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (remaining.count() <= 0) {
      fail_open("timeout", "no PubAck from JetStream before the request deadline");
      break;
    }
    const auto round_until = Clock::now() + std::min(config_.ack_wait, remaining);
    size_t window = std::min(open.size(), kPublishWindow);
    attempts.assign(window, Attempt{});
    statuses.assign(window, NATS_OK);
    outcomes.assign(window, PublishOutcome{});
    for (size_t k = 0; k < window; ++k) {
      statuses[k] = send_attempt(items[open[k]], attempts[k]);
      // nats.c's pending table is full (each further send would stall its StallWait), or the
      // round's time is up: the rest wait for the next round, unsent.
      if (statuses[k] == NATS_TIMEOUT || Clock::now() >= round_until) {
        window = k + 1;
        break;
      }
    }
    for (size_t k = 0; k < window; ++k) {
      if (statuses[k] == NATS_OK)
        statuses[k] = await_attempt(attempts[k], round_until, outcomes[k]);
    }
    retry.clear();
    no_stream.clear();
    bool pause = false;
    for (size_t k = 0; k < window; ++k) {
      const size_t i = open[k];
      switch (judge_attempt(statuses[k], outcomes[k], connected(), metrics_, results[i])) {
        case AttemptVerdict::confirmed:
          // The stream holds the record now; this only spares our own retries the wait for
          // the stream follower.
          seen_index_.confirmed(items[i].id, results[i]->sequence);
          break;
        case AttemptVerdict::settled:
          break;
        case AttemptVerdict::retry_after_pause:
          pause = true;
          retry.push_back(i);
          break;
        case AttemptVerdict::retry:
          retry.push_back(i);
          break;
        case AttemptVerdict::no_stream:
          no_stream.push_back(i);
          break;
      }
    }
    bool stream_gone = false;
    if (!no_stream.empty()) {
      // The stream is gone: the setup thread re-creates it; the items wait for that only
      // within their own deadline, then try again.
      request_setup();
      if (config_.manage_streams && wait_for_setup(deadline)) {
        retry.insert(retry.end(), no_stream.begin(), no_stream.end());
      } else {
        stream_gone = true;
        for (size_t i : no_stream)
          results[i] =
              not_durable("stream_missing", "no JetStream stream captures " + items[i].subject);
      }
    }
    // The items not sent in this round follow the retried ones.
    retry.insert(retry.end(), open.begin() + static_cast<std::ptrdiff_t>(window), open.end());
    open.swap(retry);
    if (stream_gone) {
      // Not back (or not ours to re-create): the rest would only wait for it until the deadline.
      fail_open("stream_missing", "stream " + config_.stream.name + " is missing; retry later");
      break;
    }
    if (pause) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() > 0) std::this_thread::sleep_for(std::min(kUnconfirmedDuplicatePause, left));
    }
  }
  return results;
}

}  // namespace omnigate

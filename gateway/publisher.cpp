#include "gateway/publisher.hpp"

#include <algorithm>
#include <thread>

#include "gateway/log.hpp"

namespace omnigate {
namespace {

using Clock = std::chrono::steady_clock;

std::string nats_text(natsStatus status) {
  return natsStatus_GetText(status);
}

int64_t to_ms(std::chrono::milliseconds d) {
  return static_cast<int64_t>(d.count());
}

}  // namespace

Publisher::Publisher(const NatsConfig& config, Metrics& metrics)
    : config_(config), metrics_(metrics), seen_index_(config.dedup_horizon) {}

Publisher::~Publisher() {
  seen_index_.stop();
  if (connection_) {
    // Closing queues the disconnected and closed callbacks on nats.c's callback thread; they
    // hold `this`. They run in order, so once the closed callback has run none is left.
    natsConnection_Close(connection_.get());
    std::unique_lock lock(closed_mutex_);
    closed_cv_.wait_for(lock, std::chrono::seconds(5), [&] { return closed_; });
  }
  seen_.reset();
  cursors_.reset();
  jetstream_.reset();
  connection_.reset();
}

void Publisher::on_closed(natsConnection*, void* self) {
  auto* p = static_cast<Publisher*>(self);
  std::lock_guard lock(p->closed_mutex_);
  p->closed_ = true;
  p->closed_cv_.notify_all();
}

void Publisher::on_connected(natsConnection*, void* self) {
  auto* p = static_cast<Publisher*>(self);
  p->metrics_.nats_connected = 1;
  log::info("nats", "connected");
}

void Publisher::on_disconnected(natsConnection*, void* self) {
  auto* p = static_cast<Publisher*>(self);
  p->metrics_.nats_connected = 0;
  p->setup_done_ = false;
  log::warn("nats", "disconnected; requests are answered 503 until NATS is back");
}

void Publisher::on_reconnected(natsConnection*, void* self) {
  auto* p = static_cast<Publisher*>(self);
  p->metrics_.nats_connected = 1;
  p->metrics_.nats_reconnects++;
  p->setup_done_ = false;  // the server may be a new one: verify the stream again
  log::info("nats", "reconnected");
}

Result<std::unique_ptr<Publisher>> Publisher::start(const NatsConfig& config, Metrics& metrics) {
  std::unique_ptr<Publisher> p(new Publisher(config, metrics));
  natsOptions* raw_options = nullptr;
  if (natsOptions_Create(&raw_options) != NATS_OK) {
    return make_error(ErrorCode::internal, "publish", "cannot create NATS options");
  }
  nats::Options options(raw_options);
  natsStatus s = natsOptions_SetURL(raw_options, config.url.c_str());
  if (s == NATS_OK) s = natsOptions_SetName(raw_options, config.client_name.c_str());
  if (s == NATS_OK) s = natsOptions_SetTimeout(raw_options, to_ms(config.connect_timeout));
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(raw_options, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(raw_options, to_ms(config.reconnect_wait));
  if (s == NATS_OK) s = natsOptions_SetPingInterval(raw_options, 5000);
  if (s == NATS_OK) s = natsOptions_SetMaxPingsOut(raw_options, 2);
  if (s == NATS_OK && !config.user.empty()) {
    s = natsOptions_SetUserInfo(raw_options, config.user.c_str(), config.password.c_str());
  }
  if (s == NATS_OK && !config.token.empty())
    s = natsOptions_SetToken(raw_options, config.token.c_str());
  if (s == NATS_OK && !config.credentials_file.empty()) {
    s = natsOptions_SetUserCredentialsFromFiles(raw_options, config.credentials_file.c_str(),
                                                nullptr);
  }
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
    std::lock_guard lock(p->setup_mutex_);
    if (auto ready = p->ensure_ready_locked(); !ready) {
      log::warn("nats", ready.error().detail);
    }
  }
  return p;
}

bool Publisher::connected() const {
  return connection_ && natsConnection_Status(connection_.get()) == NATS_CONN_STATUS_CONNECTED;
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
  } else {
    jsStreamInfo* info = nullptr;
    natsStatus s = js_GetStreamInfo(&info, jetstream_.get(), sc.name.c_str(), nullptr, &js_error);
    nats::StreamInfo owned(info);
    if (s != NATS_OK) {
      return make_error(ErrorCode::not_durable, "publish",
                        "stream " + sc.name + " does not exist (nats.manage_streams is off)");
    }
  }

  auto bucket = [&](const char* name, std::chrono::milliseconds ttl, nats::KeyValue& out) {
    kvStore* kv = nullptr;
    natsStatus s = js_KeyValue(&kv, jetstream_.get(), name);
    if (s != NATS_OK && config_.manage_streams) {
      kvConfig cfg;
      kvConfig_Init(&cfg);
      cfg.Bucket = name;
      cfg.History = 1;
      cfg.TTL = static_cast<int64_t>(ttl.count()) * 1'000'000;
      cfg.StorageType = js_FileStorage;
      cfg.Replicas = sc.replicas;
      s = js_CreateKeyValue(&kv, jetstream_.get(), &cfg);
    }
    if (s != NATS_OK) {
      log::warn("nats", std::string("KV bucket ") + name + " unavailable: " + nats_text(s));
      return;
    }
    out.reset(kv);
  };
  if (!seen_ && config_.dedup_horizon.count() > 0) {
    bucket("omnigate_seen", config_.dedup_horizon, seen_);
    seen_index_.start(seen_.get());
  }
  if (!cursors_) bucket("omnigate_cursors", std::chrono::milliseconds(0), cursors_);
  return ok_status();
}

Status Publisher::ensure_ready_locked() {
  if (setup_done_) return ok_status();
  auto status = ensure_stream_and_buckets();
  if (status) setup_done_ = true;
  return status;
}

Status Publisher::check_ready() {
  if (!connected()) {
    return make_error(ErrorCode::not_durable, "publish", "not connected to NATS at " + config_.url);
  }
  if (!setup_done_) {
    // NATS may have appeared after start: create the stream now rather than on the first
    // publish, so that readiness reflects what a publish would find.
    std::lock_guard lock(setup_mutex_);
    if (auto ready = ensure_ready_locked(); !ready) return ready.error();
  }
  jsErrCode js_error = static_cast<jsErrCode>(0);
  jsStreamInfo* info = nullptr;
  natsStatus s =
      js_GetStreamInfo(&info, jetstream_.get(), config_.stream.name.c_str(), nullptr, &js_error);
  nats::StreamInfo owned(info);
  if (s != NATS_OK) {
    setup_done_ = false;
    return make_error(ErrorCode::not_durable, "publish",
                      "stream " + config_.stream.name + " is not available: " + nats_text(s));
  }
  return ok_status();
}

void Publisher::on_ack(jsCtx*, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error, void* self) {
  auto* publisher = static_cast<Publisher*>(self);
  std::shared_ptr<AckWaiter> waiter;
  {
    std::lock_guard lock(publisher->waiters_mutex_);
    auto it = publisher->waiters_.find(msg);
    if (it != publisher->waiters_.end()) {
      waiter = std::move(it->second);
      publisher->waiters_.erase(it);
    }
  }
  natsMsg_Destroy(msg);  // the handler owns the message (nats.c contract)
  if (!waiter) return;   // the request gave up on this attempt already
  std::lock_guard lock(waiter->mutex);
  if (ack != nullptr) {
    waiter->status = NATS_OK;
    waiter->sequence = ack->Sequence;
    waiter->duplicate = ack->Duplicate;
  } else {
    waiter->status = error != nullptr && error->Err != NATS_OK ? error->Err : NATS_ERR;
  }
  waiter->done = true;
  waiter->done_cv.notify_one();
}

natsStatus Publisher::publish_attempt(const std::string& subject, const std::string& id,
                                      const std::string& payload,
                                      std::chrono::milliseconds max_wait, PublishOutcome& outcome) {
  natsMsg* raw_msg = nullptr;
  natsStatus s = natsMsg_Create(&raw_msg, subject.c_str(), nullptr, payload.data(),
                                static_cast<int>(payload.size()));
  nats::Msg msg(raw_msg);
  if (s == NATS_OK) s = natsMsgHeader_Set(raw_msg, "Content-Type", "application/json");
  if (s == NATS_OK) s = natsMsgHeader_Set(raw_msg, "Omnigate-Schema", "interaction.v1");
  if (s != NATS_OK) return s;

  auto waiter = std::make_shared<AckWaiter>();
  {
    // Registered before sending: the ack may arrive before js_PublishMsgAsync returns.
    std::lock_guard lock(waiters_mutex_);
    waiters_[raw_msg] = waiter;
  }
  jsPubOptions options;
  jsPubOptions_Init(&options);
  options.MsgId = id.c_str();
  options.MaxWait = to_ms(max_wait);
  natsMsg* sent = msg.release();
  s = js_PublishMsgAsync(jetstream_.get(), &sent, &options);
  if (s != NATS_OK) {
    // Not sent: the message is still ours (nats.c leaves `sent` set on failure).
    std::lock_guard lock(waiters_mutex_);
    waiters_.erase(raw_msg);
    natsMsg_Destroy(sent);
    return s;
  }
  std::unique_lock lock(waiter->mutex);
  // nats.c times the attempt out itself after MaxWait; the margin is a backstop.
  auto until = Clock::now() + max_wait + std::chrono::milliseconds(250);
  if (!waiter->done_cv.wait_until(lock, until, [&] { return waiter->done; })) {
    lock.unlock();
    std::lock_guard map_lock(waiters_mutex_);
    waiters_.erase(raw_msg);
    return NATS_TIMEOUT;
  }
  if (waiter->status == NATS_OK) {
    outcome.sequence = waiter->sequence;
    outcome.duplicate = waiter->duplicate;
  }
  return waiter->status;
}

Result<PublishOutcome> Publisher::publish(const std::string& subject, const std::string& id,
                                          const std::string& payload, Clock::time_point deadline) {
  auto not_durable = [&](const std::string& reason, const std::string& detail) {
    metrics_.publish_failures.inc({reason});
    return make_error(ErrorCode::not_durable, "publish", detail);
  };
  if (!connected()) return not_durable("disconnected", "NATS is not reachable; retry later");
  if (!setup_done_) {
    std::lock_guard lock(setup_mutex_);
    if (auto ready = ensure_ready_locked(); !ready) {
      return not_durable("stream_missing", ready.error().detail);
    }
  }

  // Long-horizon dedup: a provider retry days later is recognised here. The local index
  // answers from memory; until its watcher has loaded the bucket, ask the bucket.
  if (seen_index_.loaded()) {
    if (auto sequence = seen_index_.find(id)) return PublishOutcome{*sequence, true};
  } else if (seen_) {
    kvEntry* raw_entry = nullptr;
    natsStatus s = kvStore_Get(&raw_entry, seen_.get(), id.c_str());
    nats::KvEntry entry(raw_entry);
    if (s == NATS_OK) {
      PublishOutcome outcome;
      outcome.duplicate = true;
      outcome.sequence = std::strtoull(kvEntry_ValueString(raw_entry), nullptr, 10);
      return outcome;
    }
    if (s != NATS_NOT_FOUND) {
      // The stream's duplicate window still protects; do not fail the publish for this.
      log::debug("nats", "seen lookup failed: " + nats_text(s));
    }
  }

  while (true) {
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (remaining.count() <= 0) {
      return not_durable("timeout", "no PubAck from JetStream before the request deadline");
    }
    PublishOutcome outcome;
    natsStatus s =
        publish_attempt(subject, id, payload, std::min(config_.ack_wait, remaining), outcome);
    if (s == NATS_OK) {
      if (seen_) {
        // Fire-and-forget: the stream's duplicate window covers the moment until it lands.
        std::string seen_subject = "$KV.omnigate_seen." + id;
        std::string value = std::to_string(outcome.sequence);
        natsConnection_Publish(connection_.get(), seen_subject.c_str(), value.data(),
                               static_cast<int>(value.size()));
        seen_index_.insert(id, outcome.sequence);
      }
      return outcome;
    }
    if (s == NATS_TIMEOUT) {
      // Unknown outcome: the message may be stored. Same id again; JetStream dedups.
      metrics_.publish_failures.inc({"ack_timeout"});
      continue;
    }
    if (s == NATS_NO_RESPONDERS) {
      setup_done_ = false;
      if (config_.manage_streams && connected()) {
        std::lock_guard lock(setup_mutex_);
        if (ensure_ready_locked()) continue;
      }
      return not_durable("stream_missing", "no JetStream stream captures " + subject);
    }
    if (s == NATS_MAX_PAYLOAD) {
      metrics_.publish_failures.inc({"too_large"});
      return make_error(ErrorCode::payload_too_large, "publish",
                        "the interaction is larger than the NATS server's max_payload");
    }
    if (!connected()) return not_durable("disconnected", "NATS connection lost; retry later");
    return not_durable("error", "JetStream publish failed: " + nats_text(s));
  }
}

}  // namespace omnigate

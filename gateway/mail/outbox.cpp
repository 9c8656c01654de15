#include "gateway/mail/outbox.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "gateway/core/log.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/model/ids.hpp"
#include "gateway/nats/nats_handles.hpp"
#include "gateway/nats/publisher.hpp"

namespace omnigate {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::string_view kComponent = "outbox";

int64_t unix_ms() {
  return now_millis().time_since_epoch().count();
}

std::string header(natsMsg* msg, const char* name) {
  const char* value = nullptr;
  if (natsMsgHeader_Get(msg, name, &value) == NATS_OK && value != nullptr) return value;
  return "";
}

int64_t header_int(natsMsg* msg, const char* name) {
  std::string text = header(msg, name);
  return text.empty() ? 0 : std::strtoll(text.c_str(), nullptr, 10);
}

std::string nats_text(natsStatus s) {
  return natsStatus_GetText(s);
}

// A header value must stay one line; SMTP error details are ASCII already.
std::string one_line(std::string text) {
  for (char& c : text) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  return text;
}

struct StoredMail {
  uint64_t sequence = 0;
  std::string subject;
  std::string id;
  std::string masked_to;
  int64_t enqueued_at_ms = 0;
  int64_t attempts = 0;
  std::string last_error;
  std::string data;
};

// One synchronous JetStream publish; the PubAck or an error.
natsStatus publish_sync(jsCtx* js, const std::string& subject, const std::string& msg_id,
                        const std::string& data,
                        const std::vector<std::pair<std::string, std::string>>& headers,
                        milliseconds wait) {
  natsMsg* raw = nullptr;
  natsStatus s =
      natsMsg_Create(&raw, subject.c_str(), nullptr, data.data(), static_cast<int>(data.size()));
  nats::Msg msg(raw);
  for (const auto& [name, value] : headers) {
    if (s == NATS_OK) s = natsMsgHeader_Set(raw, name.c_str(), value.c_str());
  }
  if (s != NATS_OK) return s;
  jsPubOptions options;
  jsPubOptions_Init(&options);
  options.MsgId = msg_id.c_str();
  options.MaxWait = std::max<int64_t>(1, wait.count());
  jsPubAck* raw_ack = nullptr;
  jsErrCode js_error = static_cast<jsErrCode>(0);
  s = js_PublishMsg(&raw_ack, js, raw, &options, &js_error);
  nats::PubAck ack(raw_ack);
  return s;
}

std::vector<std::pair<std::string, std::string>> mail_headers(const std::string& id,
                                                              int64_t enqueued_at_ms,
                                                              const std::string& to) {
  return {{"Content-Type", "application/json"},
          {"Omnigate-Mail-Id", id},
          {"Omnigate-Enqueued-At", std::to_string(enqueued_at_ms)},
          {"Omnigate-To", mask_address(to)}};
}

}  // namespace

std::string mask_address(std::string_view address) {
  size_t at = address.rfind('@');
  if (at == std::string_view::npos || at == 0) return "***";
  // The first character may be a multi-byte UTF-8 sequence: keep it whole.
  size_t first = 1;
  while (first < at && (static_cast<unsigned char>(address[first]) & 0xC0) == 0x80) ++first;
  return std::string(address.substr(0, first)) + "***" + std::string(address.substr(at));
}

std::string encode_mail(const OutgoingMail& mail) {
  json headers = json::array();
  for (const auto& [name, value] : mail.headers) headers.push_back({name, value});
  return json{{"to", mail.to}, {"subject", mail.subject}, {"text", mail.text}, {"headers", headers}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<OutgoingMail> decode_mail(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  OutgoingMail mail;
  auto string_at = [&](const char* key, std::string& out) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return false;
    out = it->get<std::string>();
    return true;
  };
  if (!string_at("to", mail.to) || !string_at("subject", mail.subject) ||
      !string_at("text", mail.text)) {
    return std::nullopt;
  }
  auto headers = j.find("headers");
  if (headers != j.end()) {
    if (!headers->is_array()) return std::nullopt;
    for (const auto& h : *headers) {
      if (!h.is_array() || h.size() != 2 || !h[0].is_string() || !h[1].is_string())
        return std::nullopt;
      mail.headers.emplace_back(h[0].get<std::string>(), h[1].get<std::string>());
    }
  }
  return mail;
}

Status ensure_outbox(jsCtx* js, int replicas, milliseconds status_ttl) {
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  const char* subjects[] = {"omnigate.outbox.>"};
  cfg.Name = kOutboxStream;
  cfg.Description = "omnigate outgoing mail (double opt-in confirmations)";
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Retention = js_WorkQueuePolicy;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = replicas;
  jsStreamInfo* info = nullptr;
  jsErrCode js_error = static_cast<jsErrCode>(0);
  natsStatus s = js_AddStream(&info, js, &cfg, nullptr, &js_error);
  if (s != NATS_OK && js_error == JSStreamNameExistErr) {
    s = js_UpdateStream(&info, js, &cfg, nullptr, &js_error);
    if (s != NATS_OK) s = NATS_OK;  // exists; a setting we cannot change is an operator matter
  }
  nats::StreamInfo owned(info);
  if (s != NATS_OK) {
    return make_error(
        ErrorCode::not_durable, "publish",
        std::string("cannot create stream ") + kOutboxStream + ": " + nats_GetLastError(nullptr));
  }
  kvStore* kv = nullptr;
  s = nats::open_kv_bucket(js, kOutboxStatusBucket, static_cast<int64_t>(status_ttl.count()),
                           replicas, true, &kv);
  nats::KeyValue owned_kv(kv);
  if (s != NATS_OK) {
    return make_error(
        ErrorCode::not_durable, "publish",
        std::string("cannot create KV bucket ") + kOutboxStatusBucket + ": " + nats_text(s));
  }
  return ok_status();
}

// ---- Outbox ----------------------------------------------------------------------------------

Outbox::Outbox(Publisher& publisher, const Config& config, Metrics& metrics)
    : publisher_(publisher), config_(config), metrics_(metrics) {
  if (publisher_.connected()) {
    if (auto ready = ensure_ready(); !ready) log::warn(kComponent, ready.error().detail);
  }
}

Outbox::~Outbox() {
  stop();
}

Status Outbox::ensure_ready() {
  if (ready_) return ok_status();
  if (!publisher_.connected()) {
    return make_error(ErrorCode::not_durable, "publish", "not connected to NATS");
  }
  if (config_.nats.manage_streams) {
    auto status = ensure_outbox(publisher_.jetstream(), config_.nats.stream.replicas,
                                config_.outbox.max_age + milliseconds(3'600'000));
    if (!status) return status;
  }
  ready_ = true;
  return ok_status();
}

Status Outbox::enqueue(const std::string& id, const OutgoingMail& mail,
                       Clock::time_point deadline) {
  auto not_durable = [](const std::string& detail) {
    return make_error(ErrorCode::not_durable, "publish", "the mail outbox: " + detail);
  };
  if (auto ready = ensure_ready(); !ready) return not_durable(ready.error().detail);
  const std::string data = encode_mail(mail);
  const auto headers = mail_headers(id, unix_ms(), mail.to);
  bool recreated = false;
  while (true) {
    auto remaining = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (remaining.count() <= 0) return not_durable("no PubAck before the deadline");
    natsStatus s = publish_sync(publisher_.jetstream(), kOutboxMailSubject, id, data, headers,
                                std::min(config_.nats.ack_wait, remaining));
    if (s == NATS_OK) return ok_status();
    if (s == NATS_TIMEOUT) continue;  // unknown outcome: the same Nats-Msg-Id again
    if (s == NATS_NO_RESPONDERS && !recreated) {
      recreated = true;  // the stream went away (a new server?): create it again, once
      ready_ = false;
      if (ensure_ready()) continue;
    }
    if (s == NATS_NO_RESPONDERS) ready_ = false;
    return not_durable(s == NATS_NO_RESPONDERS
                           ? std::string("no stream captures ") + kOutboxMailSubject
                           : "publish failed: " + nats_text(s));
  }
}

void Outbox::start_sender() {
  if (sender_.joinable()) return;
  stopping_ = false;
  sender_ = std::thread([this] { run_sender(); });
}

void Outbox::stop() {
  stopping_ = true;
  if (sender_.joinable()) sender_.join();
}

void Outbox::run_sender() {
  nats::Subscription sub;
  int failures = 0;
  auto rest = [&](milliseconds d) {
    for (auto until = Clock::now() + d; !stopping_ && Clock::now() < until;) {
      std::this_thread::sleep_for(milliseconds(50));
    }
  };
  while (!stopping_) {
    if (!sub) {
      if (!ensure_ready()) {
        rest(milliseconds(500));
        continue;
      }
      jsSubOptions options;
      jsSubOptions_Init(&options);
      options.Stream = kOutboxStream;
      options.Config.AckPolicy = js_AckExplicit;
      options.Config.DeliverPolicy = js_DeliverAll;
      options.Config.MaxDeliver = -1;  // attempts are counted here (max_attempts)
      // One attempt must finish inside the ack wait, or another instance gets the mail too.
      const int64_t ack_wait_ms = 2 * config_.consent.smtp.timeout.count() + 30'000;
      options.Config.AckWait = ack_wait_ms * 1'000'000;
      natsSubscription* raw = nullptr;
      jsErrCode js_error = static_cast<jsErrCode>(0);
      natsStatus s = js_PullSubscribe(&raw, publisher_.jetstream(), kOutboxMailSubject,
                                      kOutboxConsumer, nullptr, &options, &js_error);
      if (s != NATS_OK) {
        if (failures++ % 20 == 0) {
          log::warn(kComponent, std::string("cannot consume ") + kOutboxMailSubject + ": " +
                                    nats_GetLastError(nullptr));
        }
        ready_ = false;
        rest(milliseconds(500));
        continue;
      }
      sub.reset(raw);
      failures = 0;
    }
    nats::MsgList list;
    jsErrCode js_error = static_cast<jsErrCode>(0);
    natsStatus s = natsSubscription_Fetch(list.get(), sub.get(), 1, 1000, &js_error);
    if (s == NATS_TIMEOUT) continue;
    if (s != NATS_OK) {
      // NATS away, or the consumer was deleted: subscribe again once it is back.
      if (!publisher_.connected() || ++failures > 5) {
        sub.reset();
        ready_ = false;
      }
      rest(milliseconds(500));
      continue;
    }
    failures = 0;
    for (int i = 0; i < list.size(); ++i) {
      // Stopping: hand what was fetched back at once, not after the ack wait.
      if (stopping_) {
        natsMsg_Nak(list.at(i), nullptr);
      } else {
        handle(list.at(i));
      }
    }
  }
}

void Outbox::handle(natsMsg* msg) {
  const std::string id = header(msg, "Omnigate-Mail-Id");
  const int64_t enqueued_at = header_int(msg, "Omnigate-Enqueued-At");
  uint64_t attempt = 1;
  jsMsgMetaData* raw_meta = nullptr;
  if (natsMsg_GetMetaData(&raw_meta, msg) == NATS_OK) {
    attempt = raw_meta->NumDelivered;
    jsMsgMetaData_Destroy(raw_meta);
  }
  const int64_t age_ms = unix_ms() - enqueued_at;
  auto mail = decode_mail(
      std::string_view(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg))));
  if (!mail) {
    move_to_failed(msg, id, attempt - 1, "the stored mail is not readable");
    return;
  }
  if (enqueued_at > 0 && age_ms > config_.outbox.max_age.count()) {
    move_to_failed(msg, id, attempt - 1, "older than outbox.max_age before an attempt");
    return;
  }
  Status sent = send_mail(config_.consent.smtp, *mail);
  if (sent) {
    natsMsg_Ack(msg, nullptr);
    metrics_.consent_emails.inc({"sent"});
    metrics_.activity.mail("sent");
    forget_attempts(id);
    log::info(kComponent, "mail " + id + " sent (attempt " + std::to_string(attempt) + ")");
    return;
  }
  const Error& error = sent.error();
  const auto& backoff = config_.outbox.backoff;
  const milliseconds delay = backoff[std::min<size_t>(attempt - 1, backoff.size() - 1)];
  if (error.code != ErrorCode::not_durable) {
    move_to_failed(msg, id, attempt, error.detail + " (permanent)");
    return;
  }
  if (attempt >= static_cast<uint64_t>(config_.outbox.max_attempts)) {
    move_to_failed(msg, id, attempt, error.detail);
    return;
  }
  if (age_ms + delay.count() > config_.outbox.max_age.count()) {
    move_to_failed(msg, id, attempt, error.detail + " (the next attempt would pass max_age)");
    return;
  }
  note_attempt(id, attempt, error.detail);
  natsMsg_NakWithDelay(msg, delay.count(), nullptr);
  metrics_.consent_emails.inc({"retried"});
  metrics_.activity.mail("retried");
  log::info(kComponent, "mail " + id + " attempt " + std::to_string(attempt) +
                            " failed, retrying in " + std::to_string(delay.count()) +
                            " ms: " + error.detail);
}

bool Outbox::move_to_failed(natsMsg* msg, const std::string& id, uint64_t attempts,
                            const std::string& reason) {
  std::string data(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
  uint64_t sequence = 0;
  jsMsgMetaData* raw_meta = nullptr;
  if (natsMsg_GetMetaData(&raw_meta, msg) == NATS_OK) {
    sequence = raw_meta->Sequence.Stream;
    jsMsgMetaData_Destroy(raw_meta);
  }
  std::vector<std::pair<std::string, std::string>> headers = {
      {"Content-Type", "application/json"},
      {"Omnigate-Mail-Id", id},
      {"Omnigate-Enqueued-At", header(msg, "Omnigate-Enqueued-At")},
      {"Omnigate-To", header(msg, "Omnigate-To")},
      {"Omnigate-Attempts", std::to_string(attempts)},
      {"Omnigate-Last-Error", one_line(reason)},
      {"Omnigate-Failed-At", std::to_string(unix_ms())}};
  natsStatus s = publish_sync(publisher_.jetstream(), kOutboxFailedSubject,
                              "failed:" + id + ":" + std::to_string(sequence), data, headers,
                              config_.nats.publish_timeout);
  if (s != NATS_OK) {
    // Still pending: it comes back after a short wait and is moved then.
    natsMsg_NakWithDelay(msg, 1000, nullptr);
    log::warn(kComponent, "mail " + id + " could not be moved to " + kOutboxFailedSubject + ": " +
                              nats_text(s));
    return false;
  }
  natsMsg_Ack(msg, nullptr);
  forget_attempts(id);
  metrics_.consent_emails.inc({"failed"});
  metrics_.activity.mail("failed");
  // The id, the attempts and the SMTP stage: never the address (send_mail keeps it out).
  log::error(kComponent, "mail " + id + " not delivered after " + std::to_string(attempts) +
                             " attempt(s): " + reason + "; kept in " + kOutboxFailedSubject +
                             " (omnigate outbox list --failed, omnigate outbox resend " + id + ")");
  return true;
}

void Outbox::note_attempt(const std::string& id, uint64_t attempts, const std::string& error) {
  kvStore* raw = nullptr;
  if (js_KeyValue(&raw, publisher_.jetstream(), kOutboxStatusBucket) != NATS_OK) return;
  nats::KeyValue kv(raw);
  std::string value =
      json{{"attempts", attempts}, {"last_error", error}, {"at_ms", unix_ms()}}.dump(
          -1, ' ', false, json::error_handler_t::replace);
  kvStore_PutString(nullptr, raw, ("m." + id).c_str(), value.c_str());
}

void Outbox::forget_attempts(const std::string& id) {
  kvStore* raw = nullptr;
  if (js_KeyValue(&raw, publisher_.jetstream(), kOutboxStatusBucket) != NATS_OK) return;
  nats::KeyValue kv(raw);
  kvStore_Purge(raw, ("m." + id).c_str(), nullptr);
}

// ---- omnigate outbox ----------------------------------------------------------------------------

namespace {

std::string format_age(int64_t ms) {
  if (ms < 0) ms = 0;
  int64_t s = ms / 1000;
  char buffer[32];
  if (s < 60) {
    std::snprintf(buffer, sizeof buffer, "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buffer, sizeof buffer, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else if (s < 86400) {
    std::snprintf(buffer, sizeof buffer, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  } else {
    std::snprintf(buffer, sizeof buffer, "%lldd%02lldh", static_cast<long long>(s / 86400),
                  static_cast<long long>(s % 86400 / 3600));
  }
  return buffer;
}

// Every message of the outbox stream, read by sequence (a work-queue stream allows one
// consumer per subject; reading by sequence needs none and consumes nothing).
Result<std::vector<StoredMail>> read_outbox(jsCtx* js, const std::string& subject) {
  jsStreamInfo* raw_info = nullptr;
  jsErrCode js_error = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&raw_info, js, kOutboxStream, nullptr, &js_error);
  nats::StreamInfo info(raw_info);
  if (s != NATS_OK) {
    return make_error(
        ErrorCode::not_durable, "publish",
        std::string("stream ") + kOutboxStream + " is not available: " + nats_text(s));
  }
  std::vector<StoredMail> out;
  if (raw_info->State.Msgs == 0) return out;
  constexpr uint64_t kMostRead = 100'000;
  for (uint64_t seq = raw_info->State.FirstSeq;
       seq <= raw_info->State.LastSeq && out.size() < kMostRead; ++seq) {
    natsMsg* raw_msg = nullptr;
    s = js_GetMsg(&raw_msg, js, kOutboxStream, seq, nullptr, &js_error);
    nats::Msg msg(raw_msg);
    if (s != NATS_OK) continue;  // acknowledged (deleted) meanwhile
    if (natsMsg_GetSubject(raw_msg) != subject) continue;
    StoredMail m;
    m.sequence = seq;
    m.subject = natsMsg_GetSubject(raw_msg);
    m.id = header(raw_msg, "Omnigate-Mail-Id");
    m.masked_to = header(raw_msg, "Omnigate-To");
    m.enqueued_at_ms = header_int(raw_msg, "Omnigate-Enqueued-At");
    m.attempts = header_int(raw_msg, "Omnigate-Attempts");
    m.last_error = header(raw_msg, "Omnigate-Last-Error");
    m.data.assign(natsMsg_GetData(raw_msg), static_cast<size_t>(natsMsg_GetDataLength(raw_msg)));
    out.push_back(std::move(m));
  }
  return out;
}

int list_outbox(jsCtx* js, bool failed) {
  auto mails = read_outbox(js, failed ? kOutboxFailedSubject : kOutboxMailSubject);
  if (!mails) {
    std::fprintf(stderr, "omnigate outbox: %s\n", mails.error().detail.c_str());
    return 1;
  }
  if (!failed) {
    // Pending mail carries no attempt count of its own: the sender notes it on each failure.
    kvStore* raw_kv = nullptr;
    if (js_KeyValue(&raw_kv, js, kOutboxStatusBucket) == NATS_OK) {
      nats::KeyValue kv(raw_kv);
      for (auto& m : *mails) {
        kvEntry* raw_entry = nullptr;
        if (kvStore_Get(&raw_entry, raw_kv, ("m." + m.id).c_str()) != NATS_OK) continue;
        nats::KvEntry entry(raw_entry);
        json note = json::parse(kvEntry_ValueString(raw_entry), nullptr, false);
        if (!note.is_object()) continue;
        m.attempts = note.value("attempts", int64_t{0});
        m.last_error = note.value("last_error", std::string());
      }
    }
  }
  std::printf("%-36s  %8s  %8s  %-28s  %s\n", "ID", "ATTEMPTS", "AGE", "TO", "LAST ERROR");
  const int64_t now = unix_ms();
  for (const auto& m : *mails) {
    std::printf("%-36s  %8lld  %8s  %-28s  %s\n", m.id.c_str(), static_cast<long long>(m.attempts),
                format_age(now - m.enqueued_at_ms).c_str(), m.masked_to.c_str(),
                m.last_error.empty() ? "-" : m.last_error.c_str());
  }
  std::printf("%zu %s mail(s)\n", mails->size(), failed ? "failed" : "pending");
  return 0;
}

int resend_outbox(jsCtx* js, const std::string& id) {
  auto mails = read_outbox(js, kOutboxFailedSubject);
  if (!mails) {
    std::fprintf(stderr, "omnigate outbox: %s\n", mails.error().detail.c_str());
    return 1;
  }
  size_t resent = 0, matched = 0;
  for (const auto& m : *mails) {
    if (!id.empty() && m.id != id) continue;
    ++matched;
    auto mail = decode_mail(m.data);
    if (!mail) {
      std::fprintf(stderr, "omnigate outbox: %s is not a readable mail; left in failed\n",
                   m.id.c_str());
      continue;
    }
    // A fresh pending message: attempts and max_age start again. Its own Nats-Msg-Id, or the
    // stream's duplicate window could drop a resend of a mail queued a moment ago.
    natsStatus s =
        publish_sync(js, kOutboxMailSubject, "resend:" + m.id + ":" + std::to_string(m.sequence),
                     m.data, mail_headers(m.id, unix_ms(), mail->to), milliseconds(5000));
    if (s != NATS_OK) {
      std::fprintf(stderr, "omnigate outbox: re-queuing %s failed: %s\n", m.id.c_str(),
                   nats_text(s).c_str());
      return 1;
    }
    jsErrCode js_error = static_cast<jsErrCode>(0);
    js_DeleteMsg(js, kOutboxStream, m.sequence, nullptr, &js_error);
    std::printf("re-queued %s (%s)\n", m.id.c_str(), m.masked_to.c_str());
    ++resent;
  }
  if (!id.empty() && matched == 0) {
    std::fprintf(stderr, "omnigate outbox: no failed mail with id %s\n", id.c_str());
    return 1;
  }
  std::printf("%zu mail(s) re-queued\n", resent);
  return resent == matched ? 0 : 1;
}

}  // namespace

int outbox_command(const std::vector<std::string>& args, const NatsConfig& nats_config) {
  auto usage = [] {
    std::fprintf(stderr,
                 "usage: omnigate outbox list [--failed] [--config FILE]\n"
                 "       omnigate outbox resend <id>|--all-failed [--config FILE]\n");
    return 2;
  };
  if (args.empty()) return usage();
  bool failed = false, all_failed = false;
  std::string id;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--failed")
      failed = true;
    else if (args[i] == "--all-failed")
      all_failed = true;
    else if (args[0] == "resend" && id.empty() && args[i].rfind("--", 0) != 0)
      id = args[i];
    else
      return usage();
  }
  if (args[0] == "list" && (all_failed || !id.empty())) return usage();
  if (args[0] == "resend" && (failed || all_failed == !id.empty())) return usage();
  if (args[0] != "list" && args[0] != "resend") return usage();

  // The gateway's own credentials (nats.user / token / credentials_file), as it connects.
  natsOptions* raw_options = nullptr;
  natsStatus s = natsOptions_Create(&raw_options);
  nats::Options options(raw_options);
  if (s == NATS_OK) s = apply_nats_endpoint(raw_options, nats_config);
  natsConnection* raw_connection = nullptr;
  if (s == NATS_OK) s = natsConnection_Connect(&raw_connection, raw_options);
  nats::Connection connection(raw_connection);
  if (s != NATS_OK) {
    std::fprintf(stderr, "omnigate outbox: cannot connect to NATS at %s: %s\n",
                 nats_config.url.c_str(), natsStatus_GetText(s));
    return 1;
  }
  jsCtx* raw_js = nullptr;
  natsConnection_JetStream(&raw_js, raw_connection, nullptr);
  nats::JetStream js(raw_js);
  if (args[0] == "list") return list_outbox(js.get(), failed);
  return resend_outbox(js.get(), id);
}

}  // namespace omnigate

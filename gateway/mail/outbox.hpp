// The durable outbox of outgoing mail (double opt-in confirmations): a JetStream work-queue
// stream shared by every gateway instance.
//
//   stream   OMNIGATE_OUTBOX, retention workqueue, file storage (created at start when
//            nats.manage_streams is on)
//   subjects omnigate.outbox.mail    pending mail; the durable pull consumer "omnigate-outbox"
//                                    hands each one to one instance at a time
//            omnigate.outbox.failed  mail that finally failed (no consumer: it stays until
//                                    `omnigate outbox resend`)
//   body     the mail as the Mailer takes it (JSON: to, subject, text, headers); the address is
//            in it, unavoidably, on the private NATS. Headers: Omnigate-Mail-Id,
//            Omnigate-Enqueued-At (unix ms), Omnigate-To (masked, i***@example.ru), and on
//            failed mail Omnigate-Attempts, Omnigate-Last-Error (never the address).
//
// enqueue() returns after the PubAck. A sender acks after SMTP accepted the mail, naks with the
// configured back-off on a transient failure (natsMsg_NakWithDelay) and, after max_attempts or
// max_age, or at once on a permanent refusal, moves it to the failed subject. The attempts and
// last error of pending mail are noted in the KV bucket omnigate_outbox for `outbox list`.
#pragma once

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/core/error.hpp"
#include "gateway/mail/mailer.hpp"

typedef struct __natsMsg natsMsg;
typedef struct __jsCtx jsCtx;

namespace omnigate {

class Metrics;
class Publisher;

inline constexpr const char* kOutboxStream = "OMNIGATE_OUTBOX";
inline constexpr const char* kOutboxMailSubject = "omnigate.outbox.mail";
inline constexpr const char* kOutboxFailedSubject = "omnigate.outbox.failed";
inline constexpr const char* kOutboxConsumer = "omnigate-outbox";
inline constexpr const char* kOutboxStatusBucket = "omnigate_outbox";

// "ivan@example.ru" → "i***@example.ru": enough for an operator to recognise, not to harvest.
std::string mask_address(std::string_view address);

// The stored form of a mail; decode_mail is nullopt for anything else.
std::string encode_mail(const OutgoingMail& mail);
std::optional<OutgoingMail> decode_mail(std::string_view text);

// Creates the stream (or updates it) and the status bucket. `replicas` as the interactions'.
Status ensure_outbox(jsCtx* js, int replicas, std::chrono::milliseconds status_ttl);

class Outbox {
 public:
  Outbox(Publisher& publisher, const Config& config, Metrics& metrics);
  ~Outbox();  // stop()
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  // Stores the mail durably under `id` (also its Nats-Msg-Id: the same id again within the
  // stream's duplicate window is stored once). not_durable when NATS or the stream is not there
  // before `deadline`.
  Status enqueue(const std::string& id, const OutgoingMail& mail,
                 std::chrono::steady_clock::time_point deadline);

  // The sender: one thread pulling from the shared consumer.
  void start_sender();
  // Lets the attempt in flight finish (at most smtp.timeout); the mail it holds is redelivered
  // to an instance if this one did not ack it.
  void stop();

 private:
  void run_sender();
  void handle(natsMsg* msg);
  // Publishes the mail to the failed subject, then acks the pending one; true when moved.
  bool move_to_failed(natsMsg* msg, const std::string& id, uint64_t attempts,
                      const std::string& reason);
  void note_attempt(const std::string& id, uint64_t attempts, const std::string& error);
  void forget_attempts(const std::string& id);
  Status ensure_ready();

  Publisher& publisher_;
  const Config& config_;
  Metrics& metrics_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> stopping_{false};
  std::thread sender_;
};

// `omnigate outbox list [--failed]` and `omnigate outbox resend <id>|--all-failed`. Returns the
// process exit code.
int outbox_command(const std::vector<std::string>& args, const NatsConfig& nats);

}  // namespace omnigate

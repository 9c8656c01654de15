// The fault suite's load and its verdict: N client threads posting provider requests (Telegram
// webhooks with real update shapes, or API interactions), each with a unique native key,
// recording every attempt and its answer; then the check of the stream against what was
// answered 2xx: lost, duplicated, foreign, the longest window without a 2xx.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/harness.hpp"

namespace omnigate::testing {

// OMNIGATE_FAULTS_SCALE (default 1): bench/faults.sh runs the same scenarios with more
// requests and more kills.
int fault_scale();

using Clock = std::chrono::steady_clock;

// A Telegram update as the Bot API sends it (connectors/telegram/fixtures/<name>).
nlohmann::json telegram_fixture(const std::string& name);

enum class Payload {
  // POST /v1/telegram/<account>, X-Telegram-Bot-Api-Secret-Token (the ids are those of the
  // same updates polled)
  telegram_webhook,
  api,  // POST /v1/api/<account>, Bearer token, Idempotency-Key
};

struct LoadOptions {
  Payload payload = Payload::telegram_webhook;
  std::string account;
  std::string secret;  // the webhook secret token, or the API bearer token
  // The gateways to post to. Each key goes to one of them (round robin over threads), or,
  // with every_port, to each of them at about the same moment (the same update delivered to
  // two instances).
  std::vector<int> ports;
  bool every_port = false;
  int threads = 8;  // per port when every_port
  int64_t first_key = 1;
  size_t count = 1000;  // keys, not attempts
  std::chrono::milliseconds max_duration = std::chrono::seconds(30);
  // Providers retry a non-2xx (and a broken connection) with the same id: so does the load,
  // with a short back-off, until a 2xx or retry_deadline after the load ends.
  bool retry = true;
  std::chrono::milliseconds retry_deadline = std::chrono::seconds(30);
};

struct Attempt {
  int64_t key = 0;
  int port = 0;
  int status = 0;  // HTTP status; 0 = no answer (connection refused, reset, timed out)
  Clock::time_point sent, answered;
};

struct LoadResult {
  std::vector<Attempt> attempts;  // in no particular order
  Clock::time_point started, finished;
};

class LoadGenerator {
 public:
  explicit LoadGenerator(LoadOptions options);
  ~LoadGenerator();  // stops and joins
  LoadGenerator(const LoadGenerator&) = delete;
  LoadGenerator& operator=(const LoadGenerator&) = delete;

  void start();
  // No new keys from now on; a key in flight is still retried to its end.
  void stop();
  // Waits for every thread (all keys sent, max_duration or stop(), retries done).
  LoadResult finish();
  // 2xx answers so far (attempts), and attempts answered otherwise: for the test's conditions.
  uint64_t ok() const { return ok_.load(); }
  uint64_t failed() const { return failed_.load(); }
  // Waits until ok() reaches `target`; false after `timeout`.
  bool wait_ok(uint64_t target, std::chrono::milliseconds timeout) const;

 private:
  void run_thread(int port, std::atomic<size_t>& next_index);
  Attempt post(httplib::Client& client, int port, int64_t key, const std::string& body) const;
  std::string body_for(int64_t key) const;

  LoadOptions options_;
  std::vector<nlohmann::json> shapes_;  // Telegram fixtures the updates are made from
  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<std::atomic<size_t>>> next_index_;  // one per key sequence
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> ok_{0}, failed_{0};
  mutable std::mutex mutex_;
  LoadResult result_;
  Clock::time_point deadline_;
};

// The interaction id the gateway gives a key (UUIDv5 of channel:account:key).
std::string interaction_id_for(Payload payload, const std::string& account, int64_t key);

struct FaultReport {
  std::string scenario;
  size_t attempts = 0;                // requests sent, retries included
  size_t ok_attempts = 0;             // answered 2xx
  size_t not_ok_attempts = 0;         // answered otherwise or not at all
  size_t ok_keys = 0;                 // distinct keys answered 2xx at least once
  size_t lost = 0;                    // keys answered 2xx and absent from the stream
  size_t duplicates = 0;              // stream messages beyond the first of their id
  size_t foreign = 0;                 // stream messages whose id no key of the load maps to
  size_t stored = 0;                  // stream messages
  double longest_unavailable_ms = 0;  // the longest time without any 2xx, while loaded
  std::string problems;               // a few ids of what went wrong, for the failure message

  std::string describe() const;
};

// Matches the stream against the keys answered 2xx (`ok_keys`) and every key sent
// (`sent_keys`, a superset: a key refused or unanswered may still have been stored, once).
FaultReport check_stream(const std::string& scenario, const std::vector<StreamMessage>& stream,
                         Payload payload, const std::string& account,
                         const std::set<int64_t>& ok_keys, const std::set<int64_t>& sent_keys);
// The same for loads (several: one stream fed by more than one run, e.g. a resend); the
// attempts and the longest unavailability come from the loads.
FaultReport check_stream(const std::string& scenario, const std::vector<StreamMessage>& stream,
                         const std::vector<const LoadResult*>& loads, const LoadOptions& options);
// Appends the report's figures to the file OMNIGATE_FAULTS_REPORT names, if set (bench/faults.sh).
void record_report(const FaultReport& report);

// The number of messages in the interactions stream now (stream info), -1 if unknown.
int64_t stream_size(const std::string& nats_urls,
                    const std::string& stream = "OMNIGATE_INTERACTIONS");

// The fault suite's gateway config: the real binary, one NATS (or a cluster's URLs), one
// Telegram bot (`kFaultBot`) and one API account (`kFaultApiAccount`); secrets come from
// fault_env(), the port from GatewayProcess.
struct FaultConfig {
  std::string nats_urls;
  int replicas = 1;
  std::string duplicate_window = "2m";
  std::string telegram_mode = "webhook";
  std::string bot_api_url = "http://127.0.0.1:9";  // the webhook path calls no Bot API
};
std::string fault_config_yaml(const FaultConfig& config);
std::vector<std::pair<std::string, std::string>> fault_env();

inline const std::string kFaultBot = "faultbot";
inline const std::string kFaultWebhookSecret = "wh_Faults-0123456789abcdefghij";
inline const std::string kFaultApiAccount = "crm";

// Load options for the bot's webhook, or for the API account, against `ports`.
LoadOptions webhook_load(std::vector<int> ports, size_t count);
LoadOptions api_load(std::vector<int> ports, size_t count);

}  // namespace omnigate::testing

// A local stand-in for the Telegram Bot API (https://core.telegram.org/bots/api), speaking its
// documented JSON on 127.0.0.1 with cpp-httplib: getUpdates with real long-poll semantics,
// getFile and the file download, setWebhook / deleteWebhook / getWebhookInfo, 401 for a wrong
// token, and switchable failure modes (409 conflict, 401, 429 with retry_after).
// Point a bot at it with `api_url: <fake.url()>`.
#pragma once

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace omnigate::testing {

// Shaped like a @BotFather token, so the connector's config check accepts it.
inline const std::string kFakeBotToken = "7212345678:AAHfake_TOKEN-for-integration_tests0";

// A JPEG-looking blob (SOI, APP0 JFIF, pseudo-random scan data, EOI) of `size` bytes.
std::string jpeg_like_blob(size_t size, uint32_t seed = 1);

class FakeBotApi {
 public:
  enum class Mode {
    normal,
    conflict,  // getUpdates → 409 "Conflict: can't use getUpdates method while webhook is active…"
    unauthorized,  // every method → 401 "Unauthorized" (the token was revoked)
    rate_limited,  // getUpdates → 429 "Too Many Requests: retry after N", parameters.retry_after
  };

  struct Call {
    std::string method;
    nlohmann::json params;
    int http_status = 0;
    std::chrono::steady_clock::time_point at;
    std::string host;  // the Host header: tells apart pollers given different api_url hosts
  };

  struct Poll {  // one getUpdates request
    int64_t offset = 0;
    int64_t timeout = 0;
    size_t returned = 0;  // updates in the answer (0 also for error answers)
    int http_status = 0;
    std::chrono::steady_clock::time_point at;
    std::string host;
  };

  explicit FakeBotApi(std::string token = kFakeBotToken);
  ~FakeBotApi();
  FakeBotApi(const FakeBotApi&) = delete;
  FakeBotApi& operator=(const FakeBotApi&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& token() const { return token_; }

  // Stops answering (connections are refused from then on). Idempotent.
  void stop();

  // --- getUpdates
  // Queues an update (it must carry update_id) and wakes a held long poll.
  void queue_update(nlohmann::json update);
  // Updates Telegram still holds (not confirmed by a later offset).
  size_t pending() const;
  // Real Telegram forgets an update once getUpdates is called with a higher offset. Off: it
  // keeps them all (as if the confirming request never arrived), still returning only
  // update_id >= offset, and everything for offset <= 0.
  void set_forget_confirmed(bool forget);
  std::vector<Poll> polls() const;
  std::vector<int64_t> offsets() const;  // every offset getUpdates was asked for, in order
  void set_mode(Mode mode, int retry_after = 1);
  // The update types Telegram delivers. As documented, getUpdates and setWebhook replace it
  // when they carry allowed_updates and keep the previous setting when they do not; [] is the
  // default: every type but chat_member, message_reaction and message_reaction_count.
  void set_allowed_updates(std::vector<std::string> types);
  std::vector<std::string> allowed_updates() const;

  // --- files
  void add_file(std::string file_id, std::string file_unique_id, std::string file_path,
                std::string bytes);

  // The download of a known file answers 404 from now on (its link expired); getFile still
  // knows it.
  void expire_file_link(const std::string& file_id);

  // --- webhook
  // What getWebhookInfo reports besides url / max_connections / allowed_updates.
  void set_webhook_status(int pending_update_count, std::optional<int64_t> last_error_date,
                          std::string last_error_message);
  // The last setWebhook parameters; url is "" after deleteWebhook.
  nlohmann::json webhook() const;

  // Every API call (not file downloads), in order; only those of `method` when given.
  std::vector<Call> calls(const std::string& method = "") const;

 private:
  void handle_method(const httplib::Request& req, httplib::Response& res);
  void handle_file(const httplib::Request& req, httplib::Response& res);
  void answer(httplib::Response& res, int status, const nlohmann::json& body);
  void record(const httplib::Request& req, std::string method, nlohmann::json params, int status);

  std::string token_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  uint64_t generation_ = 0;  // bumped by queue_update / set_mode / stop: ends held polls
  bool stopping_ = false;
  Mode mode_ = Mode::normal;
  int retry_after_ = 1;
  bool forget_confirmed_ = true;
  std::vector<std::string> allowed_updates_;
  std::vector<nlohmann::json> updates_;  // sorted by update_id
  std::vector<Poll> polls_;
  std::vector<Call> calls_;

  struct File {
    std::string file_unique_id;
    std::string file_path;
    std::string bytes;
    bool expired = false;
  };
  std::map<std::string, File> files_;  // by file_id

  nlohmann::json webhook_ = {{"url", ""}};
  int pending_update_count_ = 0;
  std::optional<int64_t> last_error_date_;
  std::string last_error_message_;
};

}  // namespace omnigate::testing

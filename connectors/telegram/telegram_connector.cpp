// Telegram bots: the webhook POST /v1/telegram/<account> (or long polling), and a media proxy
// GET /v1/media/telegram/<account>/<file_id> so a CRM can show files without the bot token.
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <thread>

#include "connectors/telegram/bot_api.hpp"
#include "connectors/telegram/telegram_parse.hpp"
#include "connectors/telegram/telegram_poller.hpp"
#include "gateway/config/config.hpp"
#include "gateway/core/log.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/core/secrets.hpp"
#include "gateway/http/verify.hpp"
#include "gateway/kit/accounts.hpp"
#include "gateway/model/formats.hpp"
#include "gateway/pipeline/pipeline.hpp"

namespace omnigate::telegram {
namespace {

using std::chrono::milliseconds;

struct BotConfig : AccountBase {
  std::string token;
  std::string secret_token;
  std::string mode = "webhook";  // webhook | poll
  std::string api_url = "https://api.telegram.org";
  PollSettings poll;
  std::string media_token;
  int max_connections = 40;

  // What the mapping needs of the bot.
  BotSettings settings() const { return {name, stop_words}; }
};

// Content-Type for a proxied file, from Telegram's file_path extension.
std::string mime_for(const std::string& path) {
  static const std::map<std::string, std::string> types = {{"jpg", "image/jpeg"},
                                                           {"jpeg", "image/jpeg"},
                                                           {"png", "image/png"},
                                                           {"webp", "image/webp"},
                                                           {"gif", "image/gif"},
                                                           {"mp4", "video/mp4"},
                                                           {"webm", "video/webm"},
                                                           {"oga", "audio/ogg"},
                                                           {"ogg", "audio/ogg"},
                                                           {"mp3", "audio/mpeg"},
                                                           {"m4a", "audio/mp4"},
                                                           {"pdf", "application/pdf"},
                                                           {"tgs", "application/x-tgsticker"}};
  size_t dot = path.rfind('.');
  if (dot == std::string::npos) return "application/octet-stream";
  std::string ext = path.substr(dot + 1);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto it = types.find(ext);
  return it == types.end() ? "application/octet-stream" : it->second;
}

class TelegramConnector : public ChannelConnector<BotConfig> {
 public:
  std::string_view channel() const override { return "telegram"; }

 protected:
  bool uses_stop_words() const override { return true; }

  void read(BotConfig& bot, ConfigMap& entry) override {
    bot.token = entry.required_string("token");
    static const std::regex token_shape("[0-9]+:[A-Za-z0-9_-]{20,}");
    if (!bot.token.empty() && !std::regex_match(bot.token, token_shape)) {
      entry.problem("token", "does not look like a bot token from @BotFather (123456:ABC...)");
    }
    bot.mode = entry.string("mode", bot.mode);
    if (bot.mode != "webhook" && bot.mode != "poll")
      entry.problem("mode", "must be webhook or poll");
    bot.secret_token = entry.secret("secret_token", false);
    static const std::regex secret_shape("[A-Za-z0-9_-]{1,256}");
    if (bot.mode == "webhook" && bot.secret_token.empty()) {
      entry.problem("secret_token",
                    "is required in webhook mode (Telegram sends it with every update)");
    } else if (!bot.secret_token.empty() && !std::regex_match(bot.secret_token, secret_shape)) {
      entry.problem("secret_token",
                    "must be 1-256 characters of A-Z a-z 0-9 _ - (Telegram's rule)");
    }
    bot.api_url = entry.string("api_url", bot.api_url);
    bot.poll.poll_timeout = entry.duration("poll_timeout", bot.poll.poll_timeout);
    if (bot.poll.poll_timeout > milliseconds(50'000) ||
        bot.poll.poll_timeout < milliseconds(1000)) {
      entry.problem("poll_timeout",
                    "must be between 1s and 50s (0 would be short polling: a busy loop)");
    }
    bot.poll.allowed_updates = entry.string_list("allowed_updates");
    bot.poll.lease_ttl = entry.duration("lease_ttl", milliseconds(0));
    if (bot.poll.lease_ttl.count() != 0 && bot.poll.lease_ttl < milliseconds(1000)) {
      entry.problem("lease_ttl", "must be 0 (leases.ttl) or at least 1s");
    }
    bot.media_token = entry.secret("media_token", false);
    bot.max_connections =
        static_cast<int>(entry.integer("max_connections", bot.max_connections, 1, 100));
  }

  void start_channel(GatewayContext& context, Router& router) override {
    router.add_channel_route(
        {"POST", "telegram", 0, [this](const InboundRequest& r) { return webhook(r); }});
    router.add_route("GET", "/v1/media/telegram/*", 0,
                     [this](const InboundRequest& r) { return media(r); });
    for (const auto& [name, bot] : accounts()) {
      if (bot.mode != "poll") continue;
      auto poller = std::make_unique<Poller>(context, bot.settings(),
                                             BotApi(bot.api_url, bot.token), bot.poll);
      poller->start();
      pollers_.push_back(std::move(poller));
    }
  }

 public:
  void stop() override {
    for (auto& poller : pollers_) poller->stop();
    pollers_.clear();
  }

  int command(const std::vector<std::string>& args, const Config& config) override {
    auto usage = [] {
      std::fprintf(
          stderr,
          "usage: omnigate telegram set-webhook|delete-webhook|info <account> [--config FILE]\n");
      return 2;
    };
    if (args.size() != 2) return usage();
    const BotConfig* found = find(args[1]);
    if (!found) {
      std::fprintf(stderr, "omnigate telegram: no bot account named '%s'\n", args[1].c_str());
      return 2;
    }
    const BotConfig& bot = *found;
    BotApi api(bot.api_url, bot.token);
    if (args[0] == "set-webhook") {
      if (bot.mode != "webhook") {
        std::fprintf(
            stderr,
            "omnigate telegram: %s is configured with mode: poll; set mode: webhook first\n",
            args[1].c_str());
        return 2;
      }
      std::string url = config.http.public_url + "/v1/telegram/" + args[1];
      nlohmann::json params = {{"url", url},
                               {"secret_token", bot.secret_token},
                               {"max_connections", bot.max_connections},
                               // Always sent: left out, Telegram keeps the previous filter.
                               {"allowed_updates", bot.poll.allowed_updates}};
      auto r = api.call("setWebhook", params, milliseconds(15'000));
      return report(r, "webhook set to " + url);
    }
    if (args[0] == "delete-webhook") {
      return report(api.call("deleteWebhook", nlohmann::json::object(), milliseconds(15'000)),
                    "webhook deleted (getUpdates polling is possible now)");
    }
    if (args[0] == "info") {
      auto r = api.call("getWebhookInfo", nlohmann::json::object(), milliseconds(15'000));
      if (report(r, "") != 0) return 1;
      const auto& info = r.result;
      std::printf("url:                  %s\n", info.value("url", "").c_str());
      std::printf("pending updates:      %d\n", info.value("pending_update_count", 0));
      std::printf("max connections:      %d\n", info.value("max_connections", 0));
      if (info.contains("last_error_date")) {
        auto when = SysMillis(std::chrono::seconds(info.value("last_error_date", 0LL)));
        std::printf("last error:           %s %s\n", format_rfc3339(when).c_str(),
                    info.value("last_error_message", "").c_str());
      } else {
        std::printf("last error:           none\n");
      }
      if (info.contains("allowed_updates"))
        std::printf("allowed updates:      %s\n", info["allowed_updates"].dump().c_str());
      return 0;
    }
    return usage();
  }

 private:
  static int report(const ApiResponse& r, const std::string& success) {
    if (!r.transport_ok) {
      std::fprintf(stderr, "omnigate telegram: the Bot API is not reachable: %s\n",
                   r.transport_error.c_str());
      return 1;
    }
    if (!r.ok) {
      std::fprintf(stderr, "omnigate telegram: the Bot API refused (%d): %s\n", r.error_code,
                   r.description.c_str());
      return 1;
    }
    if (!success.empty()) std::printf("%s\n", success.c_str());
    return 0;
  }

  Reply webhook(const InboundRequest& request) {
    const BotConfig& bot = account(request.account);
    if (bot.mode != "webhook") {
      return reject(make_error(ErrorCode::not_found, "route",
                               "this bot is configured for long polling, not a webhook"),
                    "wrong_mode");
    }
    if (auto auth =
            verify::secret(request.header("X-Telegram-Bot-Api-Secret-Token"), bot.secret_token,
                           "X-Telegram-Bot-Api-Secret-Token (this bot's secret_token)");
        !auth) {
      return reject(auth.error());
    }
    auto parsed = parse_update(request.body, bot.settings(), now_millis());
    if (!parsed) return reject(parsed.error());
    auto accepted =
        context().pipeline.submit_mapped(std::move(parsed.value()), "telegram", request.deadline);
    if (!accepted) return Reply::error(accepted.error());  // Telegram retries a non-2xx
    return Reply::json(200, {{"ok", true}});
  }

  // GET /v1/media/telegram/<account>/<file_id>
  Reply media(const InboundRequest& request) {
    // /v1/media/telegram/<[A-Za-z0-9_-]{1,64}>/<[A-Za-z0-9_-]{1,512}>, by a character loop.
    constexpr std::string_view prefix = "/v1/media/telegram/";
    std::string_view rest = request.path;
    size_t slash = rest.substr(0, prefix.size()) == prefix ? rest.find('/', prefix.size())
                                                           : std::string_view::npos;
    std::string_view account_segment, file_segment;
    if (slash != std::string_view::npos) {
      account_segment = rest.substr(prefix.size(), slash - prefix.size());
      file_segment = rest.substr(slash + 1);
    }
    if (!formats::is_token(account_segment, 64, false) ||
        !formats::is_token(file_segment, 512, false)) {
      return Reply::error(make_error(ErrorCode::not_found, "route",
                                     "expected /v1/media/telegram/<account>/<file_id>"));
    }
    const std::string bot_account(account_segment), file_id(file_segment);
    const BotConfig* found = find(bot_account);
    if (!found) {
      return Reply::error(make_error(ErrorCode::unknown_account, "route",
                                     "no telegram account named '" + bot_account + "'"));
    }
    const BotConfig& bot = *found;
    if (bot.media_token.empty()) {
      return Reply::error(make_error(ErrorCode::not_found, "route",
                                     "the media proxy is off for this bot (set media_token)"));
    }
    if (!constant_time_equals(verify::bearer_token(request.header("Authorization")),
                              bot.media_token)) {
      return reject(make_error(ErrorCode::unauthorized, "verify", "missing or wrong bearer token"),
                    "unauthorized");
    }
    BotApi api(bot.api_url, bot.token);
    auto file = api.call("getFile", {{"file_id", file_id}}, milliseconds(15'000));
    if (!file.transport_ok) {
      return Reply::error(make_error(ErrorCode::not_durable, "media",
                                     "Telegram is not reachable: " + file.transport_error));
    }
    if (!file.ok || !file.result.is_object() || !file.result.contains("file_path")) {
      // "Bad Request: invalid file_id", or a file above the Bot API's 20 MB download limit.
      return Reply::error(make_error(ErrorCode::not_found, "media",
                                     "Telegram cannot serve this file: " + file.description));
    }
    std::string file_path = file.result.value("file_path", "");
    // Download on a worker through a bounded queue, and answer only once the file server has
    // answered: a download that fails before its first byte must be an error status the CRM
    // can act on, not a 200 and a cut connection.
    auto transfer = std::make_shared<FileTransfer>();
    transfer->start(BotApi(bot.api_url, bot.token), file_path);
    if (!transfer->wait_for_start(milliseconds(30'000))) {
      return Reply::error(
          make_error(ErrorCode::not_durable, "media",
                     "Telegram's file server did not deliver the file: " + transfer->error_text()));
    }
    Reply reply;
    reply.status = 200;
    reply.content_type = mime_for(file_path);
    reply.headers.emplace_back("Cache-Control", "private, max-age=3600");
    reply.stream = [transfer](const Reply::Writer& write) { return transfer->drain(write); };
    return reply;
  }

  // One proxied file: a worker downloads into a bounded queue; the HTTP thread drains it.
  class FileTransfer {
   public:
    ~FileTransfer() {
      {
        std::lock_guard lock(mutex_);
        cancelled_ = true;
      }
      changed_.notify_all();
      if (worker_.joinable()) worker_.join();
    }

    void start(BotApi api, std::string file_path) {
      worker_ = std::thread([this, api = std::move(api), file_path = std::move(file_path)] {
        auto status = api.download(
            file_path,
            [this](int, const std::string&) {
              std::lock_guard lock(mutex_);
              started_ = true;
              changed_.notify_all();
            },
            [this](std::string_view chunk) {
              std::unique_lock lock(mutex_);
              changed_.wait(lock, [&] { return queued_ < kMaxQueued || cancelled_; });
              if (cancelled_) return false;
              chunks_.emplace_back(chunk);
              queued_ += chunk.size();
              changed_.notify_all();
              return true;
            },
            milliseconds(120'000));
        std::lock_guard lock(mutex_);
        done_ = true;
        if (!status) {
          failed_ = true;
          error_ = status.error().detail;
          log::warn("telegram", "media proxy: " + error_);
        }
        changed_.notify_all();
      });
    }

    // True once the first byte (or a complete empty file) arrived; false on failure or timeout.
    bool wait_for_start(milliseconds timeout) {
      std::unique_lock lock(mutex_);
      changed_.wait_for(lock, timeout, [&] { return started_ || done_; });
      return started_ || (done_ && !failed_);
    }

    std::string error_text() {
      std::lock_guard lock(mutex_);
      return error_.empty() ? "no answer in time" : error_;
    }

    bool drain(const Reply::Writer& write) {
      while (true) {
        std::string chunk;
        {
          std::unique_lock lock(mutex_);
          changed_.wait(lock, [&] { return !chunks_.empty() || done_; });
          if (chunks_.empty()) return !failed_;
          chunk = std::move(chunks_.front());
          chunks_.pop_front();
          queued_ -= chunk.size();
          changed_.notify_all();
        }
        if (!write(chunk)) return false;  // the client went away; the destructor cancels
      }
    }

   private:
    static constexpr size_t kMaxQueued = 1024 * 1024;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<std::string> chunks_;
    size_t queued_ = 0;
    bool started_ = false, done_ = false, failed_ = false, cancelled_ = false;
    std::string error_;
    std::thread worker_;
  };

  std::vector<std::unique_ptr<Poller>> pollers_;
};

}  // namespace

OMNIGATE_REGISTER_CONNECTOR("telegram", TelegramConnector);

}  // namespace omnigate::telegram

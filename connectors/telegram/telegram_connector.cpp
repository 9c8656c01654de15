// Telegram bots: the webhook POST /v1/telegram/<account> (or long polling), and a media proxy
// GET /v1/media/telegram/<account>/<file_id> so a CRM can show files without the bot token.
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <regex>

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
    RouteSpec route{"POST", "telegram"};
    route.intake = [this](const InboundRequest& r) { return webhook(r); };
    router.add_channel_route(std::move(route));
    router.add_media_source("telegram", media_source());
  }

  std::unique_ptr<AccountWorker> start_worker(const AccountRef& bot) override {
    if (bot->mode != "poll") return nullptr;
    auto poller = std::make_unique<Poller>(context(), bot->settings(),
                                           BotApi(bot->api_url, bot->token), bot->poll);
    poller->start();
    return poller;
  }

 public:
  std::string command_usage() const override {
    return "omnigate telegram set-webhook <account>     point the bot's webhook at "
           "http.public_url\n"
           "omnigate telegram delete-webhook <account>  remove it (polling possible again)\n"
           "omnigate telegram info <account>            the webhook Telegram has, its errors\n";
  }

  std::string account_mode(std::string_view account) const override {
    AccountRef bot = find(account);
    return bot ? bot->mode : "";
  }

  int command(const std::vector<std::string>& args, const Config& config) override {
    auto usage = [this] {
      std::fprintf(stderr, "usage (each takes --config FILE too):\n%s", command_usage().c_str());
      return 2;
    };
    if (args.size() != 2) return usage();
    AccountRef found = find(args[1]);
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

  Intake webhook(const InboundRequest& request) {
    AccountRef found = account(request.account);
    if (!found) return unknown_account(request.account);
    const BotConfig& bot = *found;
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
    // Telegram retries a non-2xx; it reads only the status of a 200.
    return Intake(std::move(parsed.value()), [](const std::vector<Accepted>&) {
      return Reply::text(200, R"({"ok":true})", "application/json");
    });
  }

  // GET /v1/media/telegram/<account>/<file_id> (the core's media proxy): a bot's media_token
  // opens it, and getFile turns a file_id into the file server's URL.
  MediaSource media_source() const {
    MediaSource source;
    source.bearer_token = [this](std::string_view account) -> std::optional<std::string> {
      AccountRef bot = find(account);
      if (!bot) return std::nullopt;
      return bot->media_token;
    };
    source.resolve = [this](std::string_view account,
                            std::string_view file_id) -> Result<MediaTarget> {
      AccountRef bot = find(account);
      if (!bot) return no_such_account(account);
      return resolve_file(*bot, file_id);
    };
    return source;
  }

  static Result<MediaTarget> resolve_file(const BotConfig& bot, std::string_view file_id) {
    BotApi api(bot.api_url, bot.token);
    auto file = api.call("getFile", {{"file_id", file_id}}, milliseconds(15'000));
    if (!file.transport_ok) {
      return make_error(ErrorCode::not_durable, "media",
                        "Telegram is not reachable: " + file.transport_error);
    }
    if (!file.ok || !file.result.is_object() || !file.result.contains("file_path") ||
        !file.result["file_path"].is_string()) {
      // "Bad Request: invalid file_id", or a file above the Bot API's 20 MB download limit.
      return make_error(ErrorCode::not_found, "media",
                        "Telegram cannot serve this file: " + file.description);
    }
    std::string file_path = file.result["file_path"].get<std::string>();
    // Telegram's file server sends application/octet-stream: the type is the path's extension.
    MediaTarget target;
    target.url = api.file_url(file_path);
    target.content_type = media_type_for_path(file_path);
    return target;
  }
};

}  // namespace

OMNIGATE_REGISTER_CONNECTOR("telegram", TelegramConnector);

}  // namespace omnigate::telegram

#include "connectors/telegram/telegram_poller.hpp"

#include <charconv>

#include "gateway/config/config.hpp"
#include "gateway/core/log.hpp"

namespace omnigate::telegram {
namespace {

using std::chrono::milliseconds;

PollError failure(ErrorCode code, std::string detail, milliseconds at_least = milliseconds(0)) {
  return PollError{make_error(code, "fetch", std::move(detail)), at_least, false};
}

// getUpdates: each update is an item confirmed by the offset update_id + 1.
class UpdatesSource : public PollSource {
 public:
  UpdatesSource(BotSettings bot, BotApi api, PollSettings settings)
      : bot_(std::move(bot)), api_(std::move(api)), settings_(std::move(settings)) {}

  PollResult fetch(const std::string& cursor, const std::atomic<bool>& cancel) override {
    int64_t offset = 0;
    if (auto parsed = parse_offset(cursor)) {
      offset = *parsed;
    } else if (!cursor.empty() && !warned_unreadable_) {
      // Never thrown: from 0, Telegram hands out every update it still holds (up to 24 h), and
      // their deterministic ids make the ones already published duplicates.
      warned_unreadable_ = true;
      log::error("telegram", "telegram/" + bot_.account + ": the stored poll offset (" +
                                 Poller::cursor_key(bot_.account) + ", " +
                                 std::to_string(cursor.size()) +
                                 " bytes) is not a number; starting from offset 0, updates "
                                 "already published will be recognised as duplicates");
    }
    // At least 1 s: timeout 0 is short polling, a busy loop. allowed_updates is always sent:
    // left out, Telegram keeps whatever filter was set before (an empty list means its default
    // set).
    const auto timeout_s = std::max<int64_t>(
        1, std::chrono::duration_cast<std::chrono::seconds>(settings_.poll_timeout).count());
    nlohmann::json params = {{"offset", offset},
                             {"limit", 100},
                             {"timeout", timeout_s},
                             {"allowed_updates", settings_.allowed_updates}};
    ApiResponse r =
        api_.call("getUpdates", params, settings_.poll_timeout + milliseconds(15'000), &cancel);
    if (cancel) return PollBatch{};  // discarded by the loop
    if (!r.transport_ok) return failure(ErrorCode::internal, "getUpdates: " + r.transport_error);
    if (r.http_status == 409 || r.error_code == 409) {
      return failure(
          ErrorCode::forbidden,
          "getUpdates conflicts with a webhook or another poller (409: " + r.description +
              "); run `omnigate telegram delete-webhook " + bot_.account + "` or set mode: webhook",
          milliseconds(10'000));
    }
    if (r.http_status == 401 || r.error_code == 401) {
      return failure(
          ErrorCode::unauthorized,
          "the bot token was rejected (401 " + r.description + "); check channels.telegram[].token",
          milliseconds(60'000));
    }
    if (r.http_status == 429 || r.error_code == 429) {
      const int wait = std::max(1, r.retry_after);
      return failure(ErrorCode::rate_limited,
                     "rate limited by Telegram (429, retry_after " + std::to_string(wait) + " s)",
                     std::chrono::seconds(wait));
    }
    if (!r.ok || !r.result.is_array()) {
      return failure(ErrorCode::internal, "getUpdates answered HTTP " +
                                              std::to_string(r.http_status) + " " + r.description);
    }
    PollBatch batch;
    batch.items.reserve(r.result.size());
    for (const auto& update : r.result) {
      PolledItem& item = batch.items.emplace_back();
      item.raw = std::make_shared<const std::string>(update.dump());
      auto parsed = parse_update(*item.raw, bot_, now_millis());
      if (parsed) {
        item.cursor_after = std::to_string(parsed->update_id + 1);
        item.mapped = std::move(static_cast<Mapped&>(*parsed));
        continue;
      }
      item.rejected = parsed.error();
      auto id = update.is_object() ? update.find("update_id") : update.end();
      if (id != update.end() && id->is_number_integer() && id->get<int64_t>() >= 0)
        item.cursor_after = std::to_string(id->get<int64_t>() + 1);
    }
    return batch;
  }

  void reset() override { warned_unreadable_ = false; }

 private:
  const BotSettings bot_;
  const BotApi api_;
  const PollSettings settings_;
  bool warned_unreadable_ = false;  // once per lease term
};

}  // namespace

std::optional<int64_t> parse_offset(const std::string& text) {
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

Poller::Poller(GatewayContext& context, BotSettings bot, BotApi api, PollSettings settings)
    : loop_(std::make_unique<UpdatesSource>(bot, std::move(api), settings), context.cursors,
            context.pipeline, context.metrics,
            poll_loop_settings(context.config, "telegram", bot.account, cursor_key(bot.account),
                               settings.lease_ttl)) {}

}  // namespace omnigate::telegram

#include "connectors/telegram/telegram_poller.hpp"

#include <deque>

#include "gateway/config.hpp"
#include "gateway/cursor_store.hpp"
#include "gateway/log.hpp"
#include "gateway/metrics.hpp"
#include "gateway/pipeline.hpp"

namespace omnigate::telegram {

using std::chrono::milliseconds;

Poller::Poller(GatewayContext& context, BotSettings bot, BotApi api, PollSettings settings)
    : context_(context),
      bot_(std::move(bot)),
      api_(std::move(api)),
      settings_(std::move(settings)) {}

Poller::~Poller() {
  stop();
}

void Poller::start() {
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void Poller::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Poller::pause(milliseconds duration) {
  std::unique_lock lock(mutex_);
  return !wake_.wait_for(lock, duration, [&] { return stopping_.load(); });
}

void Poller::run() {
  const std::string who = "telegram/" + bot_.account;
  const std::string key = cursor_key(bot_.account);
  // The offset confirms to Telegram what we hold durably; read it before the first poll.
  int64_t offset = 0;
  while (!stopping_) {
    auto stored = context_.cursors.get(key);
    if (stored) {
      if (stored->has_value()) offset = std::stoll(**stored);
      break;
    }
    log::warn("telegram",
              who + ": cannot read the poll offset yet (" + stored.error().detail + ")");
    if (!pause(milliseconds(1000))) return;
  }
  log::info("telegram", who + ": long polling from offset " + std::to_string(offset));
  // At least 1 s: timeout 0 is short polling, a busy loop.
  const auto timeout_s = std::max<int64_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(settings_.poll_timeout).count());
  while (!stopping_) {
    // allowed_updates is always sent: left out, Telegram keeps whatever filter was set before
    // (an empty list means its default set).
    nlohmann::json params = {{"offset", offset},
                             {"limit", 100},
                             {"timeout", timeout_s},
                             {"allowed_updates", settings_.allowed_updates}};
    ApiResponse r =
        api_.call("getUpdates", params, settings_.poll_timeout + milliseconds(15'000), &stopping_);
    if (stopping_) return;
    if (!r.transport_ok) {
      log::warn("telegram",
                who + ": getUpdates failed: " + r.transport_error + "; retrying in 2 s");
      if (!pause(milliseconds(2000))) return;
      continue;
    }
    if (r.http_status == 409 || r.error_code == 409) {
      log::error("telegram", who +
                                 ": getUpdates conflicts with a webhook or another poller (409: " +
                                 r.description + "); run `omnigate telegram delete-webhook " +
                                 bot_.account + "` or set mode: webhook. Retrying in 10 s");
      if (!pause(milliseconds(10'000))) return;
      continue;
    }
    if (r.http_status == 401 || r.error_code == 401) {
      log::error("telegram", who + ": the bot token was rejected (401 " + r.description +
                                 "); check channels.telegram[].token. Retrying in 60 s");
      if (!pause(milliseconds(60'000))) return;
      continue;
    }
    if (r.http_status == 429 || r.error_code == 429) {
      int wait = std::max(1, r.retry_after);
      log::warn("telegram", who + ": rate limited by Telegram (429); retrying after " +
                                std::to_string(wait) + " s as asked");
      if (!pause(std::chrono::seconds(wait))) return;
      continue;
    }
    if (!r.ok || !r.result.is_array()) {
      log::warn("telegram", who + ": getUpdates answered HTTP " + std::to_string(r.http_status) +
                                " " + r.description + "; retrying in 5 s");
      if (!pause(milliseconds(5000))) return;
      continue;
    }
    int64_t next = offset;
    bool batch_durable = true;
    // The whole batch goes to the pipeline at once; the offset then advances over the updates
    // in order up to the first one that is not durable.
    std::deque<std::string> bodies;  // the submissions' raw bytes point into these
    std::vector<Submission> submissions;
    std::vector<std::pair<int64_t, size_t>> order;  // update_id, submission index or npos
    for (const auto& update : r.result) {
      const std::string& body = bodies.emplace_back(update.dump());
      auto parsed = parse_update(body, bot_, now_millis());
      if (!parsed) {
        // Unparseable: nothing we could ever publish. Count it and move past it.
        context_.metrics.rejected.inc({"telegram", parsed.error().name().data()});
        log::warn("telegram", who + ": skipped an update: " + parsed.error().detail);
        order.emplace_back(update.value("update_id", next - 1), SIZE_MAX);
        continue;
      }
      if (!parsed->submission) {
        context_.metrics.ignored_events.inc({"telegram", parsed->ignored_type});
        order.emplace_back(parsed->update_id, SIZE_MAX);
        continue;
      }
      order.emplace_back(parsed->update_id, submissions.size());
      submissions.push_back(std::move(*parsed->submission));
    }
    auto deadline = std::chrono::steady_clock::now() + context_.config.nats.publish_timeout;
    auto accepted = context_.pipeline.submit_all(std::move(submissions), deadline);
    for (const auto& [update_id, index] : order) {
      if (index != SIZE_MAX && !accepted[index]) {
        batch_durable = false;  // keep the offset: Telegram will hand these updates again
        break;
      }
      next = std::max(next, update_id + 1);
    }
    if (next != offset) {
      // Only what is durable is confirmed; a failed put just means a restart re-reads
      // updates already published, and the ids make them duplicates.
      if (auto saved = context_.cursors.put(key, std::to_string(next)); !saved) {
        log::warn("telegram", who + ": poll offset not saved: " + saved.error().detail);
      }
      offset = next;
    }
    if (!batch_durable) {
      log::warn("telegram", who + ": NATS is not durable right now; polling again in 2 s");
      if (!pause(milliseconds(2000))) return;
    }
  }
}

}  // namespace omnigate::telegram

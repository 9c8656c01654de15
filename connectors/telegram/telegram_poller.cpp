#include "connectors/telegram/telegram_poller.hpp"

#include <charconv>
#include <deque>

#include "gateway/config/config.hpp"
#include "gateway/core/log.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/pipeline/pipeline.hpp"
#include "gateway/state/cursor_store.hpp"

namespace omnigate::telegram {

using std::chrono::milliseconds;

std::optional<int64_t> parse_offset(const std::string& text) {
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

Poller::Poller(GatewayContext& context, BotSettings bot, BotApi api, PollSettings settings)
    : context_(context),
      bot_(std::move(bot)),
      api_(std::move(api)),
      settings_(std::move(settings)) {
  LeaseSettings lease;
  lease.ttl = settings_.lease_ttl.count() > 0 ? settings_.lease_ttl : context_.config.leases.ttl;
  lease_ =
      std::make_unique<Lease>(context_.cursors, context_.metrics, "telegram", bot_.account, lease);
  lease_->on_lost([this] {
    {
      std::lock_guard lock(mutex_);
      abort_ = true;
    }
    wake_.notify_all();
  });
}

Poller::~Poller() {
  stop();
}

void Poller::start() {
  if (thread_.joinable()) return;
  stopping_ = false;
  abort_ = false;
  lease_->start();
  thread_ = std::thread([this] { run(); });
}

void Poller::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    abort_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  lease_->stop();  // after the last poll: the next holder starts from our last stored offset
}

bool Poller::pause(milliseconds duration) {
  std::unique_lock lock(mutex_);
  return !wake_.wait_for(lock, duration, [&] { return abort_.load(); });
}

void Poller::run() {
  while (!stopping_) {
    if (lease_->wait_held(milliseconds(250))) poll_while_held();
  }
}

void Poller::poll_while_held() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    abort_ = false;  // a new term; a loss from here on sets it again (on_lost)
  }
  if (!lease_->held()) return;
  const std::string who = "telegram/" + bot_.account;
  const std::string key = cursor_key(bot_.account);
  // The offset confirms to Telegram what we hold durably; read it before the first poll.
  int64_t offset = 0;
  uint64_t revision = 0;  // the cursor's KV revision: every write is compare-and-set on it
  while (true) {
    if (abort_ || !lease_->held()) return;
    auto stored = context_.cursors.get(key);
    if (stored) {
      if (stored->has_value()) {
        revision = (*stored)->revision;
        if (auto parsed = parse_offset((*stored)->value)) {
          offset = *parsed;
        } else {
          // Never thrown: from 0, Telegram hands out every update it still holds (up to 24 h),
          // and their deterministic ids make the ones already published duplicates.
          log::error("telegram", who + ": the stored poll offset (" + key + ", " +
                                     std::to_string((*stored)->value.size()) +
                                     " bytes) is not a number; starting from offset 0, "
                                     "updates already published will be recognised as "
                                     "duplicates");
        }
      }
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
  while (!abort_ && lease_->held()) {
    // allowed_updates is always sent: left out, Telegram keeps whatever filter was set before
    // (an empty list means its default set).
    nlohmann::json params = {{"offset", offset},
                             {"limit", 100},
                             {"timeout", timeout_s},
                             {"allowed_updates", settings_.allowed_updates}};
    ApiResponse r =
        api_.call("getUpdates", params, settings_.poll_timeout + milliseconds(15'000), &abort_);
    if (abort_) return;  // stopped, or the lease was lost while the poll was held
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
      for (const auto& type : parsed->ignored)
        context_.metrics.ignored_events.inc({"telegram", type});
      if (parsed->submissions.empty()) {
        order.emplace_back(parsed->update_id, SIZE_MAX);
        continue;
      }
      order.emplace_back(parsed->update_id, submissions.size());
      submissions.push_back(std::move(parsed->submissions.front()));
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
      auto saved = context_.cursors.put(key, std::to_string(next), revision);
      if (saved && saved->conflict) {
        log::warn("telegram", who +
                                  ": the poll offset was written by another instance; "
                                  "stopping and checking the lease");
        lease_->drop();
        return;
      }
      if (saved) {
        revision = saved->revision;
      } else {
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

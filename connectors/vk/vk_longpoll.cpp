#include "connectors/vk/vk_longpoll.hpp"

#include "gateway/config/config.hpp"
#include "gateway/core/log.hpp"

namespace omnigate::vk {
namespace {

using std::chrono::milliseconds;

// For the names of a whole answer (one users.get); the account's names_timeout caps it too.
constexpr milliseconds kNamesBudget{2'000};

// How long an API error is worth waiting before the next attempt, beyond the loop's own
// back-off: a revoked token or a disabled Long Poll is not fixed by retrying every second.
milliseconds floor_of(const ApiFailure& failure) {
  switch (failure.vk_code) {
    case kAuthFailed:
      return milliseconds(60'000);
    case kTooManyPerSecond:
      return milliseconds(1'000);
    case kFloodControl:
      return milliseconds(10'000);
    case kRateLimitReached:
      return milliseconds(300'000);  // the daily quota: waiting minutes costs nothing
    case 15:
    case 27:
    case 100:
      return milliseconds(60'000);
    default:
      return milliseconds(0);
  }
}

std::string advice_of(const ApiFailure& failure) {
  switch (failure.vk_code) {
    case kAuthFailed:
      return " -- the community token was rejected: create a new one (Manage > API usage > "
             "Access tokens) and set channels.vk[].access_token";
    case 15:
    case 27:
    case 100:
      return " -- is Bots Long Poll enabled (Manage > API usage > Long Poll API, API version "
             "5.199, event types ticked) and is access_token a community token with the "
             "\"manage\" right?";
    case kTooManyPerSecond:
    case kFloodControl:
    case kRateLimitReached:
      return " -- VK's rate limit; backing off";
    default:
      return "";
  }
}

bool is_ts(const std::string& text) {
  if (text.empty() || text.size() > 20) return false;
  for (char c : text)
    if (c < '0' || c > '9') return false;
  return true;
}

class LongPollSource : public PollSource {
 public:
  LongPollSource(CommunitySettings community, VkApi api, LongPollSettings settings,
                 NameFiller names)
      : community_(std::move(community)),
        api_(std::move(api)),
        settings_(settings),
        names_(std::move(names)) {}

  PollResult fetch(const std::string& cursor, const std::atomic<bool>& cancel) override {
    if (server_.key.empty()) {
      auto got = get_long_poll_server(api_, settings_.group_id, milliseconds(15'000), &cancel);
      if (cancel) return PollBatch{};
      if (!got.ok) {
        got.failure.error.detail += advice_of(got.failure);
        return PollError{got.failure.error, floor_of(got.failure), false};
      }
      server_ = std::move(got.value);
    }
    // Where to read from: the stored ts, unless VK said it is lost (failed 3) or none was
    // ever stored -- then the server's, so the first start does not replay VK's history.
    std::string ts = cursor;
    if (take_server_ts_ || !is_ts(cursor)) {
      if (!cursor.empty() && !is_ts(cursor)) {
        log::error("vk", "vk/" + community_.account + ": the stored ts (" +
                             LongPoller::cursor_key(community_.account) +
                             ") is not a number; continuing from VK's current ts");
      }
      ts = server_.ts;
      take_server_ts_ = false;
    }
    auto answer = check_long_poll(server_, ts, settings_.wait, &cancel);
    if (cancel) return PollBatch{};
    if (!answer.ok) return PollError{answer.failure.error, milliseconds(0), true};
    LongPollAnswer& a = answer.value;
    if (a.failed == 1) {
      // The ts fell out of VK's history (or is ahead of it): events in between are gone.
      log::warn("vk", "vk/" + community_.account + ": VK's long poll lost the events after ts " +
                          ts + " (failed 1); continuing from ts " + a.ts);
      PollBatch batch;
      batch.next_cursor = is_ts(a.ts) ? a.ts : server_.ts;
      return batch;
    }
    if (a.failed == 2 || a.failed == 3) {
      // Routine: VK expires keys every few hours. Renewed at once the first time; a key that
      // fails again before any answer got through is an error worth a back-off.
      if (a.failed == 3) take_server_ts_ = true;
      server_ = {};
      const std::string what = a.failed == 2 ? "the long-poll key expired (failed 2)"
                                             : "the long-poll key and ts are lost (failed 3; "
                                               "events in between are gone)";
      if (++key_renewals_ == 1) {
        log::info("vk", "vk/" + community_.account + ": " + what + "; fetching a new key");
        return PollBatch{};
      }
      return PollError{make_error(ErrorCode::bad_gateway, "fetch",
                                  what + " again right after a new key was fetched"),
                       milliseconds(0), false};
    }
    if (a.failed != 0) {
      server_ = {};
      return PollError{make_error(ErrorCode::bad_gateway, "fetch",
                                  "a_check answered failed " + std::to_string(a.failed)),
                       milliseconds(0), false};
    }
    key_renewals_ = 0;
    PollBatch batch;
    batch.items.reserve(a.updates.size());
    for (const auto& update : a.updates) {
      PolledItem& item = batch.items.emplace_back();
      item.raw = std::make_shared<const std::string>(update.dump());
      auto parsed = parse_callback(*item.raw, community_, now_millis());
      if (!parsed) {
        item.rejected = parsed.error();
        continue;
      }
      if (parsed->envelope.group_id != settings_.group_id) {
        item.rejected = make_error(ErrorCode::forbidden, "verify",
                                   "group_id: an event of another community in our long poll");
        continue;
      }
      item.mapped = std::move(parsed->mapped);
    }
    if (names_) {
      // One users.get for every new person of the answer.
      std::vector<Submission*> submissions;
      for (auto& item : batch.items)
        for (auto& submission : item.mapped.submissions) submissions.push_back(&submission);
      names_(submissions, kNamesBudget);
    }
    // One ts for the whole answer: stored only once every event of it is durable.
    batch.next_cursor = a.ts;
    return batch;
  }

  // A new lease term or a dropped connection: fetch a new key (the stored ts still holds).
  void reset() override { server_ = {}; }

 private:
  const CommunitySettings community_;
  const VkApi api_;
  const LongPollSettings settings_;
  const NameFiller names_;
  LongPollServer server_;  // empty key: ask getLongPollServer first
  bool take_server_ts_ = false;
  int key_renewals_ = 0;  // failed 2/3 answers since the last answer with updates
};

}  // namespace

std::unique_ptr<PollSource> make_long_poll_source(CommunitySettings community, VkApi api,
                                                  LongPollSettings settings, NameFiller names) {
  return std::make_unique<LongPollSource>(std::move(community), std::move(api), settings,
                                          std::move(names));
}

LongPoller::LongPoller(GatewayContext& context, CommunitySettings community, VkApi api,
                       LongPollSettings settings, NameFiller names)
    : loop_(make_long_poll_source(community, std::move(api), settings, std::move(names)),
            context.cursors, context.pipeline, context.metrics,
            poll_loop_settings(context.config, "vk", community.account,
                               cursor_key(community.account), settings.lease_ttl)) {}

}  // namespace omnigate::vk

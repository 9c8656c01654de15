// Long polling for bots that cannot expose a webhook: getUpdates as a source of the shared poll
// loop (gateway/state/poll_loop.hpp), which holds the bot's lease, stores the offset in
// omnigate_cursors (compare-and-set) only after the updates before it are durable, and backs
// off on errors. What is Telegram's here: the cursor is the getUpdates offset (last update_id
// + 1; none stored = 0), the request, and how long each Bot API error is worth waiting.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "connectors/telegram/bot_api.hpp"
#include "connectors/telegram/telegram_parse.hpp"
#include "gateway/kit/accounts.hpp"
#include "gateway/kit/connector.hpp"
#include "gateway/state/poll_loop.hpp"

namespace omnigate::telegram {

struct PollSettings {
  std::chrono::milliseconds poll_timeout{25'000};  // Telegram holds the request this long
  std::vector<std::string> allowed_updates;
  std::chrono::milliseconds lease_ttl{0};  // 0: leases.ttl
};

// The stored offset, or nullopt when it is not a non-negative decimal number.
std::optional<int64_t> parse_offset(const std::string& text);

class Poller : public AccountWorker {
 public:
  Poller(GatewayContext& context, BotSettings bot, BotApi api, PollSettings settings);
  void start() { loop_.start(); }
  // Aborts a long poll in flight, returns when the thread has ended, releases the lease.
  void stop() override { loop_.stop(); }

  static std::string cursor_key(const std::string& account) {
    return "telegram." + account + ".offset";
  }

 private:
  PollLoop loop_;
};

}  // namespace omnigate::telegram

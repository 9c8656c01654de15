// Long polling for bots that cannot expose a webhook: getUpdates in a loop, the offset kept in
// the KV bucket omnigate_cursors and advanced only after every update of a batch is durable.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "connectors/telegram/bot_api.hpp"
#include "connectors/telegram/telegram_parse.hpp"
#include "gateway/connector.hpp"

namespace omnigate::telegram {

struct PollSettings {
  std::chrono::milliseconds poll_timeout{25'000};  // Telegram holds the request this long
  std::vector<std::string> allowed_updates;
};

class Poller {
 public:
  Poller(GatewayContext& context, BotSettings bot, BotApi api, PollSettings settings);
  ~Poller();
  void start();
  void stop();  // aborts a long poll in flight; returns when the thread has ended

  static std::string cursor_key(const std::string& account) {
    return "telegram." + account + ".offset";
  }

 private:
  void run();
  // Waits up to `duration` unless stopped; false when stopped.
  bool pause(std::chrono::milliseconds duration);

  GatewayContext& context_;
  BotSettings bot_;
  BotApi api_;
  PollSettings settings_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::thread thread_;
};

}  // namespace omnigate::telegram

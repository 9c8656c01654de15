// Long polling for bots that cannot expose a webhook: getUpdates in a loop, the offset kept in
// the KV bucket omnigate_cursors and advanced only after every update of a batch is durable.
// Only the instance holding the bot's lease (gateway/state/lease.hpp) polls; the others wait and
// take over when the holder stops renewing. Offset writes are compare-and-set: a lost race means
// another instance works on the bot, and this one stops and checks the lease again.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "connectors/telegram/bot_api.hpp"
#include "connectors/telegram/telegram_parse.hpp"
#include "gateway/kit/connector.hpp"
#include "gateway/state/lease.hpp"

namespace omnigate::telegram {

struct PollSettings {
  std::chrono::milliseconds poll_timeout{25'000};  // Telegram holds the request this long
  std::vector<std::string> allowed_updates;
  std::chrono::milliseconds lease_ttl{0};  // 0: leases.ttl
};

// The stored offset, or nullopt when it is not a non-negative decimal number.
std::optional<int64_t> parse_offset(const std::string& text);

class Poller {
 public:
  Poller(GatewayContext& context, BotSettings bot, BotApi api, PollSettings settings);
  ~Poller();
  void start();
  // Aborts a long poll in flight, returns when the thread has ended, releases the lease.
  void stop();

  static std::string cursor_key(const std::string& account) {
    return "telegram." + account + ".offset";
  }

 private:
  void run();
  // One term of holding the lease: read the offset, poll until stopped or the lease is gone.
  void poll_while_held();
  // Waits up to `duration` unless stopped or the lease is lost; false then.
  bool pause(std::chrono::milliseconds duration);

  GatewayContext& context_;
  BotSettings bot_;
  BotApi api_;
  PollSettings settings_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> abort_{false};  // stopping, or the lease lost: ends a long poll in flight
  std::unique_ptr<Lease> lease_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::thread thread_;
};

}  // namespace omnigate::telegram

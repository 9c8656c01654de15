// Bots Long Poll for communities without a public endpoint: groups.getLongPollServer, then
// a_check held `wait` seconds, as a source of the shared poll loop (gateway/state/poll_loop.hpp),
// which holds the community's lease, stores the `ts` in omnigate_cursors only after a whole
// answer's events are durable, and backs off on errors. The updates are the Callback API's
// event objects, mapped by the same parse_callback, so an event has the same interaction id
// whichever way it arrives.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "connectors/vk/vk_api.hpp"
#include "connectors/vk/vk_parse.hpp"
#include "gateway/kit/accounts.hpp"
#include "gateway/kit/connector.hpp"
#include "gateway/state/poll_loop.hpp"

namespace omnigate::vk {

// Fills the display names of submissions (users.get through the core's name cache,
// gateway/state/name_cache.hpp) spending at most `left`; empty = no names are looked up.
using NameFiller =
    std::function<void(const std::vector<Submission*>&, std::chrono::milliseconds left)>;

struct LongPollSettings {
  int64_t group_id = 0;
  std::chrono::seconds wait{25};           // VK holds a_check this long (at most 90)
  std::chrono::milliseconds lease_ttl{0};  // 0: leases.ttl
};

class LongPoller : public AccountWorker {
 public:
  LongPoller(GatewayContext& context, CommunitySettings community, VkApi api,
             LongPollSettings settings, NameFiller names = {});
  void start() { loop_.start(); }
  // Aborts an a_check in flight, returns when the thread has ended, releases the lease.
  void stop() override { loop_.stop(); }

  static std::string cursor_key(const std::string& account) { return "vk." + account + ".ts"; }

 private:
  PollLoop loop_;
};

// The PollSource itself, for tests that drive it without a gateway.
std::unique_ptr<PollSource> make_long_poll_source(CommunitySettings community, VkApi api,
                                                  LongPollSettings settings, NameFiller names = {});

}  // namespace omnigate::vk

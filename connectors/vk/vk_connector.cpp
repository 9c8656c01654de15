// VK communities, Callback API: POST /v1/vk/<account>. VK pauses a server that answers anything
// but `ok` several times in a row, so every event is answered `ok` once durable -- in JetStream,
// or in the local spool while NATS is away (on_nats_down: spool, the default) -- and the
// confirmation request with the community's confirmation string.
// Not built yet: Bots Long Poll (mode: longpoll), display names from users.get, and the
// `omnigate vk setup-callback` / `info` commands (issue 11, items 4-6).
#include <string>

#include "connectors/vk/vk_parse.hpp"
#include "gateway/config/config.hpp"
#include "gateway/http/verify.hpp"
#include "gateway/kit/accounts.hpp"
#include "gateway/pipeline/pipeline.hpp"

namespace omnigate::vk {
namespace {

struct CommunityAccount : AccountBase {
  int64_t group_id = 0;
  std::string mode = "callback";
  std::string secret;        // Callback API secret key: VK puts it in every body
  std::string confirmation;  // what VK asks the server to return for type: confirmation
  std::string access_token;  // community token (Long Poll, users.get, setup: not built yet)
  std::string api_url = "https://api.vk.com/method";
  std::string api_version = "5.199";

  CommunitySettings settings() const { return {name, stop_words}; }
};

class VkConnector : public ChannelConnector<CommunityAccount> {
 public:
  std::string_view channel() const override { return "vk"; }

 protected:
  bool uses_stop_words() const override { return true; }
  // One event per POST; a message with many forwarded messages stays well below this.
  uint64_t default_max_body() const override { return 1024 * 1024; }

  void read(CommunityAccount& a, ConfigMap& entry) override {
    // Positive, as VK's settings page shows it (not the -id owner form).
    a.group_id = entry.integer("group_id", 0, 0, int64_t{1} << 53);
    if (a.group_id <= 0)
      entry.problem("group_id", "is required: the community's id (Manage > API usage), positive");
    a.mode = entry.string("mode", a.mode);
    if (a.mode == "longpoll") {
      entry.problem("mode", "longpoll is not built yet: use callback (the Callback API) for now");
    } else if (a.mode != "callback") {
      entry.problem("mode", "must be callback (longpoll is not built yet)");
    }
    a.secret = entry.secret("secret", true);
    a.confirmation = entry.required_string("confirmation");
    if (a.confirmation.size() > 64)
      entry.problem("confirmation", "must be the short string VK shows (Callback API > Server)");
    a.access_token = entry.secret("access_token", false);
    a.api_url = entry.string("api_url", a.api_url);
    a.api_version = entry.string("api_version", a.api_version);
  }

  void start_channel(GatewayContext&, Router& router) override {
    router.add_channel_route(
        {"POST", "vk", 0, [this](const InboundRequest& r) { return callback(r); }});
  }

 private:
  Reply callback(const InboundRequest& request) {
    const CommunityAccount& a = account(request.account);
    auto parsed = parse_callback(request.body, a.settings(), now_millis());
    if (!parsed) return reject(parsed.error());
    const Envelope& envelope = parsed->envelope;
    // The secret is in the body: checked (constant time) before anything else is looked at.
    if (auto ok = verify::secret(envelope.secret, a.secret, "secret (the Callback API secret key)",
                                 ErrorCode::forbidden);
        !ok) {
      return reject(ok.error());
    }
    if (envelope.group_id != a.group_id) {
      return reject(
          make_error(ErrorCode::forbidden, "verify", "group_id: not this account's community"),
          "other_group_id");
    }
    if (envelope.type == "confirmation") return Reply::text(200, a.confirmation, "text/plain");
    auto accepted =
        context().pipeline.submit_mapped(std::move(parsed->mapped), "vk", request.deadline);
    // Not durable: 503, which VK retries (X-Retry-Counter); the retry publishes nothing twice.
    if (!accepted) return Reply::error(accepted.error());
    return Reply::text(200, "ok", "text/plain");
  }
};

}  // namespace

OMNIGATE_REGISTER_CONNECTOR("vk", VkConnector);

}  // namespace omnigate::vk

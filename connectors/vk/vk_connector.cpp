// VK communities. Callback API: POST /v1/vk/<account>. VK pauses a server that answers
// anything but `ok` several times in a row, so every event is answered `ok` once durable -- in
// JetStream, or in the local spool while NATS is away (on_nats_down: spool, the default) --
// and the confirmation request with the community's confirmation string. Bots Long Poll
// (mode: longpoll) for communities without a public endpoint: vk_longpoll.hpp. Either way,
// display names come from users.get through the core's name cache (VK events carry none), and
// `omnigate vk setup-callback|info` registers and shows the community's callback servers.
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "connectors/vk/vk_api.hpp"
#include "connectors/vk/vk_longpoll.hpp"
#include "connectors/vk/vk_parse.hpp"
#include "gateway/config/config.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/http/verify.hpp"
#include "gateway/kit/accounts.hpp"
#include "gateway/pipeline/pipeline.hpp"
#include "gateway/state/name_cache.hpp"

namespace omnigate::vk {
namespace {

using std::chrono::milliseconds;

// The event types setup-callback subscribes to: the ones this connector maps.
// message_reply (our own replies) is left out: it is never published.
constexpr const char* kMappedEvents[] = {"message_new",   "message_edit",  "message_allow",
                                         "message_deny",  "message_event", "wall_reply_new",
                                         "lead_forms_new"};

struct CommunityAccount : AccountBase {
  int64_t group_id = 0;
  std::string mode = "callback";
  std::string secret;        // Callback API secret key: VK puts it in every body
  std::string confirmation;  // what VK asks the server to return for type: confirmation
  std::string access_token;  // community token: Long Poll, users.get, setup-callback, info
  std::string api_url = "https://api.vk.com/method";
  std::string api_version = "5.199";
  bool names = true;                // look up display names with users.get
  milliseconds names_timeout{300};  // the most a lookup may add to an event
  milliseconds lease_ttl{0};        // longpoll: 0 = leases.ttl
  // Fills display names through users.get and the name cache (set by prepare(); empty when the
  // account looks none up).
  NameFiller fill_names;

  CommunitySettings settings() const { return {name, stop_words}; }
  VkApi api() const { return VkApi(api_url, access_token, api_version); }
};

class VkConnector : public ChannelConnector<CommunityAccount> {
 public:
  std::string_view channel() const override { return "vk"; }

  std::string command_usage() const override {
    return "omnigate vk setup-callback <account>        register http.public_url as the "
           "community's callback server\n"
           "omnigate vk info <account>                  the community's callback servers and "
           "their status\n";
  }

  std::string account_mode(std::string_view account) const override {
    AccountRef a = find(account);
    return a ? a->mode : "";
  }

  int command(const std::vector<std::string>& args, const Config& config) override {
    if (args.size() != 2 || (args[0] != "setup-callback" && args[0] != "info")) {
      std::fprintf(stderr, "usage (each takes --config FILE too):\n%s", command_usage().c_str());
      return 2;
    }
    AccountRef found = find(args[1]);
    if (!found) {
      std::fprintf(stderr, "omnigate vk: no vk account named '%s'\n", args[1].c_str());
      return 2;
    }
    if (found->access_token.empty()) {
      std::fprintf(stderr,
                   "omnigate vk: %s has no access_token (a community token: Manage > API usage "
                   "> Access tokens, with the \"manage\" right)\n",
                   args[1].c_str());
      return 2;
    }
    return args[0] == "info" ? info(*found) : setup_callback(*found, config);
  }

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
    if (a.mode != "callback" && a.mode != "longpoll")
      entry.problem("mode", "must be callback (the Callback API) or longpoll (Bots Long Poll)");
    const bool callback = a.mode != "longpoll";
    a.secret = entry.secret("secret", callback);
    a.confirmation =
        callback ? entry.required_string("confirmation") : entry.string("confirmation", "");
    if (a.confirmation.size() > 64)
      entry.problem("confirmation", "must be the short string VK shows (Callback API > Server)");
    a.access_token = entry.secret("access_token", !callback);
    a.api_url = entry.string("api_url", a.api_url);
    a.api_version = entry.string("api_version", a.api_version);
    a.names = entry.boolean("names", a.names);
    a.names_timeout = entry.duration("names_timeout", a.names_timeout);
    if (a.names_timeout < milliseconds(0) || a.names_timeout > milliseconds(5'000))
      entry.problem("names_timeout", "must be between 0 and 5s: it is added to an event's answer");
    a.lease_ttl = entry.duration("lease_ttl", a.lease_ttl);
    if (a.lease_ttl.count() != 0 && a.lease_ttl < milliseconds(1000))
      entry.problem("lease_ttl", "must be 0 (leases.ttl) or at least 1s");
  }

  void start_channel(GatewayContext& context, Router& router) override {
    router.add_channel_route(
        {"POST", "vk", 0, [this](const InboundRequest& r) { return callback(r); }});
  }

  void prepare(CommunityAccount& a) override { a.fill_names = enricher(a); }

  std::unique_ptr<AccountWorker> start_worker(const AccountRef& a) override {
    if (a->mode != "longpoll") return nullptr;
    LongPollSettings settings;
    settings.group_id = a->group_id;
    settings.lease_ttl = a->lease_ttl;
    auto poller =
        std::make_unique<LongPoller>(context(), a->settings(), a->api(), settings, a->fill_names);
    poller->start();
    return poller;
  }

 private:
  // Fills the display names of an event's submissions (users.get through the name cache);
  // empty when the account looks none up.
  NameFiller enricher(const CommunityAccount& a) {
    if (!a.names || a.access_token.empty()) return {};
    GatewayContext& ctx = context();
    return [&ctx, api = a.api(), budget = a.names_timeout](
               const std::vector<Submission*>& submissions, milliseconds left) {
      NameLookup lookup =
          [&api](const std::vector<std::string>& ids,
                 milliseconds timeout) -> Result<std::vector<std::pair<std::string, std::string>>> {
        std::vector<int64_t> numbers;
        for (const auto& id : ids) numbers.push_back(std::stoll(id));  // vk_user_id: digits
        auto names = get_user_names(api, numbers, timeout);
        if (!names.ok) return names.failure.error;
        std::vector<std::pair<std::string, std::string>> out;
        for (auto& [id, name] : names.value) out.emplace_back(std::to_string(id), std::move(name));
        return out;
      };
      fill_display_names(submissions, "vk", "vk_user_id", ctx.names, lookup, std::min(budget, left),
                         ctx.metrics);
    };
  }

  Reply callback(const InboundRequest& request) {
    AccountRef found = account(request.account);
    if (!found) return unknown_account(request.account);
    const CommunityAccount& a = *found;
    auto parsed = parse_callback(request.body, a.settings(), now_millis());
    if (!parsed) return reject(parsed.error());
    const Envelope& envelope = parsed->envelope;
    // The secret is in the body: checked (constant time) before anything else is looked at.
    // A longpoll account has no secret: its Callback route is closed.
    if (a.secret.empty()) {
      return reject(make_error(ErrorCode::forbidden, "verify",
                               "this account reads Bots Long Poll (mode: longpoll); its Callback "
                               "API route is closed"),
                    "longpoll_account");
    }
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
    if (const NameFiller& fill = a.fill_names; fill && !parsed->mapped.submissions.empty()) {
      // Half of what is left: the other half is for JetStream's ack.
      const auto left = std::chrono::duration_cast<milliseconds>(request.deadline -
                                                                 std::chrono::steady_clock::now());
      std::vector<Submission*> submissions;
      for (auto& submission : parsed->mapped.submissions) submissions.push_back(&submission);
      fill(submissions, left / 2);
    }
    auto accepted =
        context().pipeline.submit_mapped(std::move(parsed->mapped), "vk", request.deadline);
    // Not durable: 503, which VK retries (X-Retry-Counter); the retry publishes nothing twice.
    if (!accepted) return Reply::error(accepted.error());
    return Reply::text(200, "ok", "text/plain");
  }

  int info(const CommunityAccount& a) {
    auto servers = a.api().call("groups.getCallbackServers",
                                {{"group_id", std::to_string(a.group_id)}}, milliseconds(15'000));
    if (!servers.ok) {
      std::fprintf(stderr, "omnigate vk: %s\n", servers.failure.error.detail.c_str());
      return 1;
    }
    std::printf("community:        %lld (mode: %s)\n", static_cast<long long>(a.group_id),
                a.mode.c_str());
    const auto& items = servers.value.contains("items") ? servers.value["items"] : nlohmann::json();
    if (!items.is_array() || items.empty()) {
      std::printf("callback servers: none (run `omnigate vk setup-callback %s`)\n", a.name.c_str());
      return 0;
    }
    std::printf("callback servers:\n");
    for (const auto& s : items) {
      auto text = [&](const char* key) {
        return s.contains(key) && s[key].is_string() ? s[key].get<std::string>() : std::string("-");
      };
      const long long id =
          s.contains("id") && s["id"].is_number_integer() ? s["id"].get<long long>() : 0;
      // status: ok, failed (VK could not confirm it), wait (confirming), unconfigured.
      std::printf("  #%lld %-10s %s (%s)\n", id, text("status").c_str(), text("url").c_str(),
                  text("title").c_str());
    }
    return 0;
  }

  int setup_callback(const CommunityAccount& a, const Config& config) {
    if (a.mode != "callback") {
      std::fprintf(stderr,
                   "omnigate vk: %s is configured with mode: longpoll; set mode: callback (with "
                   "secret and confirmation) first\n",
                   a.name.c_str());
      return 2;
    }
    const VkApi api = a.api();
    const std::string group = std::to_string(a.group_id);
    auto fail = [](const ApiFailure& f) {
      std::fprintf(stderr, "omnigate vk: %s\n", f.error.detail.c_str());
      return 1;
    };
    // VK confirms a new server address by POSTing `confirmation`; the running gateway answers
    // the configured string, so it must be the community's.
    auto code =
        api.call("groups.getCallbackConfirmationCode", {{"group_id", group}}, milliseconds(15'000));
    if (!code.ok) return fail(code.failure);
    const std::string expected = code.value.contains("code") && code.value["code"].is_string()
                                     ? code.value["code"].get<std::string>()
                                     : "";
    if (expected != a.confirmation) {
      std::fprintf(stderr,
                   "omnigate vk: the community's confirmation string is \"%s\", the config has "
                   "\"%s\": set channels.vk[%s].confirmation to \"%s\", restart the gateway, and "
                   "run this again\n",
                   expected.c_str(), a.confirmation.c_str(), a.name.c_str(), expected.c_str());
      return 1;
    }
    std::string base = config.http.public_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    const std::string url = base + "/v1/vk/" + a.name;
    const std::string title = "omnigate " + a.name;  // VK allows 14 characters
    auto servers =
        api.call("groups.getCallbackServers", {{"group_id", group}}, milliseconds(15'000));
    if (!servers.ok) return fail(servers.failure);
    long long server_id = 0;
    const auto& items = servers.value.contains("items") ? servers.value["items"] : nlohmann::json();
    for (const auto& s : items.is_array() ? items : nlohmann::json::array()) {
      if (s.contains("url") && s["url"] == url && s.contains("id") && s["id"].is_number_integer())
        server_id = s["id"].get<long long>();
    }
    Params server = {{"group_id", group},
                     {"url", url},
                     {"title", title.substr(0, 14)},
                     {"secret_key", a.secret}};
    if (server_id != 0) {
      server.emplace_back("server_id", std::to_string(server_id));
      auto edited = api.call("groups.editCallbackServer", server, milliseconds(30'000));
      if (!edited.ok) return fail(edited.failure);
      std::printf("updated callback server #%lld: %s (secret key set)\n", server_id, url.c_str());
    } else {
      auto added = api.call("groups.addCallbackServer", server, milliseconds(30'000));
      if (!added.ok) return fail(added.failure);
      if (added.value.contains("server_id") && added.value["server_id"].is_number_integer())
        server_id = added.value["server_id"].get<long long>();
      std::printf("added callback server #%lld: %s (secret key set)\n", server_id, url.c_str());
    }
    Params settings = {{"group_id", group},
                       {"server_id", std::to_string(server_id)},
                       {"api_version", a.api_version}};
    std::string events;
    for (const char* type : kMappedEvents) {
      settings.emplace_back(type, "1");
      events += events.empty() ? type : std::string(", ") + type;
    }
    auto set = api.call("groups.setCallbackSettings", settings, milliseconds(15'000));
    if (!set.ok) return fail(set.failure);
    std::printf("events: %s (API version %s)\n", events.c_str(), a.api_version.c_str());
    // VK confirmed the address while adding it: its status says whether our answer matched.
    auto after = api.call("groups.getCallbackServers",
                          {{"group_id", group}, {"server_ids", std::to_string(server_id)}},
                          milliseconds(15'000));
    std::string status = "unknown";
    if (after.ok && after.value.contains("items") && after.value["items"].is_array()) {
      for (const auto& s : after.value["items"])
        if (s.contains("status") && s["status"].is_string()) status = s["status"];
    }
    std::printf("status: %s\n", status.c_str());
    if (status != "ok") {
      std::fprintf(stderr,
                   "omnigate vk: VK reports the server as \"%s\": is the gateway running and "
                   "reachable at %s (http.public_url)?\n",
                   status.c_str(), url.c_str());
      return 1;
    }
    return 0;
  }
};

}  // namespace

OMNIGATE_REGISTER_CONNECTOR("vk", VkConnector);

}  // namespace omnigate::vk

// WhatsApp Business Cloud API: GET /v1/whatsapp/<account> (Meta's subscription check) and
// POST /v1/whatsapp/<account> (signed webhooks of up to 1000 changes), and the operator command
// `omnigate whatsapp info <account>`.
#include <chrono>
#include <cstdio>

#include "connectors/whatsapp/graph_api.hpp"
#include "connectors/whatsapp/whatsapp_parse.hpp"
#include "gateway/config/config.hpp"
#include "gateway/http/verify.hpp"
#include "gateway/kit/accounts.hpp"
#include "gateway/model/formats.hpp"

namespace omnigate::whatsapp {
namespace {

using std::chrono::milliseconds;

struct NumberAccount : AccountBase {
  std::string phone_number_id;
  std::string app_secret;    // signs every POST (X-Hub-Signature-256)
  std::string verify_token;  // Meta sends it back in the GET subscription check
  std::string access_token;  // Graph API (media, info)
  std::string api_url = "https://graph.facebook.com/v21.0";
  std::string media_token;  // bearer token of the media proxy (wired by the core's media route)

  AccountSettings settings() const { return {name, phone_number_id, stop_words}; }
  GraphApi graph() const { return GraphApi(api_url, access_token); }
};

// Meta's hub.challenge is a number; anything long or odd is not echoed.
bool plausible_challenge(std::string_view challenge) {
  if (challenge.empty() || challenge.size() > 256) return false;
  for (char c : challenge) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

class WhatsAppConnector : public ChannelConnector<NumberAccount> {
 public:
  std::string_view channel() const override { return "whatsapp"; }

  std::string command_usage() const override {
    return "omnigate whatsapp info <account>            the number's display name and quality "
           "rating\n";
  }

  int command(const std::vector<std::string>& args, const Config&) override {
    if (args.size() != 2 || args[0] != "info") {
      std::fprintf(stderr, "usage (each takes --config FILE too):\n%s", command_usage().c_str());
      return 2;
    }
    AccountRef found = find(args[1]);
    if (!found) {
      std::fprintf(stderr, "omnigate whatsapp: no whatsapp account named '%s'\n", args[1].c_str());
      return 2;
    }
    if (found->access_token.empty()) {
      std::fprintf(stderr, "omnigate whatsapp: %s has no access_token\n", args[1].c_str());
      return 2;
    }
    auto info = phone_number_info(found->graph(), found->phone_number_id, milliseconds(15'000));
    if (!info) {
      std::fprintf(stderr, "omnigate whatsapp: %s\n", info.error().detail.c_str());
      return 1;
    }
    auto field = [&](const char* key) {
      const auto& v = info.value();
      return v.contains(key) && v[key].is_string() ? v[key].get<std::string>() : std::string("-");
    };
    std::printf("phone number id:      %s\n", found->phone_number_id.c_str());
    std::printf("display phone number: %s\n", field("display_phone_number").c_str());
    std::printf("verified name:        %s\n", field("verified_name").c_str());
    std::printf("quality rating:       %s\n", field("quality_rating").c_str());
    return 0;
  }

 protected:
  bool uses_stop_words() const override { return true; }
  // Meta sends bodies up to 3 MB (1000 changes).
  uint64_t default_max_body() const override { return 4 * 1024 * 1024; }

  void read(NumberAccount& a, ConfigMap& entry) override {
    a.phone_number_id = entry.required_string("phone_number_id");
    if (!a.phone_number_id.empty() && !formats::is_token(a.phone_number_id, 64, false))
      entry.problem("phone_number_id",
                    "must be the number's Graph id (digits, from WhatsApp > API Setup)");
    a.app_secret = entry.secret("app_secret", true);
    a.verify_token = entry.secret("verify_token", true);
    a.access_token = entry.secret("access_token", false);
    a.api_url = entry.string("api_url", a.api_url);
    a.media_token = entry.secret("media_token", false);
  }

  void start_channel(GatewayContext&, Router& router) override {
    router.add_channel_route(
        {"GET", "whatsapp", 0, [this](const InboundRequest& r) { return subscribe(r); }});
    RouteSpec callback{"POST", "whatsapp"};
    callback.intake = [this](const InboundRequest& r) { return webhook(r); };
    router.add_channel_route(std::move(callback));
    router.add_media_source("whatsapp", media_source());
  }

 private:
  // GET /v1/media/whatsapp/<account>/<media_id> (the core's media proxy): the account's
  // media_token opens it; the Graph API turns the media id into a URL valid for 5 minutes that
  // is downloaded with the same access token (never shown to the CRM).
  MediaSource media_source() const {
    MediaSource source;
    source.bearer_token = [this](std::string_view name) -> std::optional<std::string> {
      AccountRef a = find(name);
      if (!a) return std::nullopt;
      return a->media_token;
    };
    source.resolve = [this](std::string_view name,
                            std::string_view media_id) -> Result<MediaTarget> {
      AccountRef found = find(name);
      if (!found) return no_such_account(name);
      const NumberAccount& a = *found;
      auto location = resolve_media(a.graph(), media_id, std::chrono::milliseconds(15'000));
      if (!location) return location.error();
      MediaTarget target;
      target.url = location->url;
      target.headers = {{"Authorization", "Bearer " + a.access_token}};
      target.content_type = location->mime_type;
      return target;
    };
    return source;
  }

  // GET ?hub.mode=subscribe&hub.challenge=…&hub.verify_token=…: Meta checks the URL is ours.
  Reply subscribe(const InboundRequest& request) {
    AccountRef found = account(request.account);
    if (!found) return unknown_account(request.account);
    const NumberAccount& a = *found;
    if (request.query_param("hub.mode") != "subscribe") {
      return reject(make_error(ErrorCode::forbidden, "verify", "hub.mode must be subscribe"));
    }
    if (auto ok =
            verify::secret(request.query_param("hub.verify_token"), a.verify_token,
                           "hub.verify_token (this account's verify_token)", ErrorCode::forbidden);
        !ok) {
      return reject(ok.error());
    }
    std::string_view challenge = request.query_param("hub.challenge");
    if (!plausible_challenge(challenge)) {
      return reject(make_error(ErrorCode::bad_request, "verify",
                               "hub.challenge must be 1-256 characters of A-Z a-z 0-9 - _ ."));
    }
    return Reply::text(200, std::string(challenge), "text/plain");
  }

  Intake webhook(const InboundRequest& request) {
    AccountRef found = account(request.account);
    if (!found) return unknown_account(request.account);
    const NumberAccount& a = *found;
    // Over the bytes received: Meta signs its \u-escaped JSON, a re-serialization differs.
    if (auto ok =
            verify::hmac_sha256(request.body, a.app_secret, request.header("X-Hub-Signature-256"));
        !ok) {
      return reject(ok.error());
    }
    auto mapped = parse_webhook(request.body, a.settings());
    if (!mapped) return reject(mapped.error());
    // Meta retries a non-200 for 7 days; the retry publishes only what is missing.
    return Intake(std::move(mapped.value()),
                  [](const std::vector<Accepted>&) { return Reply::text(200, ""); });
  }
};

}  // namespace

OMNIGATE_REGISTER_CONNECTOR("whatsapp", WhatsAppConnector);

}  // namespace omnigate::whatsapp

// POST /v1/api/<account>: already-normalized interactions from custom sources (a call-tracking
// service, a shop backend). Bearer token per account, Idempotency-Key required.
#include "connectors/api/api_parse.hpp"
#include "gateway/http/verify.hpp"
#include "gateway/kit/accounts.hpp"

namespace omnigate::api {
namespace {

struct ApiAccount : AccountBase {
  std::string token;
};

class ApiConnector : public ChannelConnector<ApiAccount> {
 public:
  std::string_view channel() const override { return "api"; }
  // API callers retry on their own: a 503 with Retry-After is the honest answer.
  bool spools_by_default() const override { return false; }

 protected:
  uint64_t default_max_body() const override { return 256 * 1024; }

  void read(ApiAccount& account, ConfigMap& entry) override {
    account.token = entry.secret("token", true);
  }

  void start_channel(GatewayContext& context, Router& router) override {
    router.add_channel_route({"POST", "api", 0, nullptr,
                              [this](const InboundRequest& request) { return handle(request); }});
  }

 private:
  Intake handle(const InboundRequest& request) {
    AccountRef api = account(request.account);
    if (!api) return unknown_account(request.account);
    if (auto auth = verify::bearer(request, api->token); !auth) return reject(auth.error());
    if (request.media_type() != "application/json") {
      return reject(make_error(ErrorCode::unsupported_media, "route",
                               "send the interaction as Content-Type: application/json"));
    }
    std::string_view key = request.header("Idempotency-Key");
    if (!valid_idempotency_key(key)) {
      return reject(make_error(ErrorCode::missing_header, "route",
                               "Idempotency-Key header is required (1-255 printable ASCII "
                               "characters); the interaction id derives from it"),
                    "missing_idempotency_key");
    }
    auto submission = parse_submission(request.body, request.account, key);
    if (!submission) return reject(submission.error());
    Mapped mapped;
    mapped.submissions.push_back(std::move(submission.value()));
    // The same answer for the first delivery and every retry of the same key.
    return Intake(std::move(mapped), [](const std::vector<Accepted>& accepted) {
      return Reply::json(202, {{"id", accepted.front().id}, {"status", "accepted"}});
    });
  }
};

}  // namespace

OMNIGATE_REGISTER_CONNECTOR("api", ApiConnector);

}  // namespace omnigate::api

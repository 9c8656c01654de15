// POST /v1/api/<account>: already-normalized interactions from custom sources (a call-tracking
// service, a shop backend). Bearer token per account, Idempotency-Key required.
#include <map>

#include "connectors/api/api_parse.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/core/secrets.hpp"
#include "gateway/http/verify.hpp"
#include "gateway/kit/connector.hpp"
#include "gateway/pipeline/pipeline.hpp"

namespace omnigate::api {
namespace {

struct AccountConfig {
  std::string token;
  uint64_t max_body = 256 * 1024;
};

class ApiConnector : public Connector {
 public:
  std::string_view channel() const override { return "api"; }

  void read_account(const std::string& account, ConfigMap& entry) override {
    AccountConfig config;
    config.token = entry.secret("token", true);
    config.max_body = entry.size("max_body", config.max_body);
    max_body_ = std::max(max_body_, config.max_body);
    accounts_[account] = std::move(config);
  }

  bool has_account(std::string_view account) const override {
    return accounts_.find(std::string(account)) != accounts_.end();
  }
  // API callers retry on their own: a 503 with Retry-After is the honest answer.
  bool spools_by_default() const override { return false; }

  void start(GatewayContext& context, Router& router) override {
    pipeline_ = &context.pipeline;
    metrics_ = &context.metrics;
    router.add_channel_route({"POST", "api", max_body_,
                              [this](const InboundRequest& request) { return handle(request); }});
  }

 private:
  Reply reject(const Error& error, const char* reason) {
    metrics_->rejected.inc({"api", reason});
    return Reply::error(error);
  }

  Reply handle(const InboundRequest& request) {
    const AccountConfig& account = accounts_.at(std::string(request.account));
    if (request.body.size() > account.max_body) {
      return reject(make_error(ErrorCode::payload_too_large, "route",
                               "the body is larger than " + std::to_string(account.max_body) +
                                   " bytes allowed for this account"),
                    "payload_too_large");
    }
    if (!constant_time_equals(verify::bearer_token(request.header("Authorization")),
                              account.token)) {
      return reject(make_error(ErrorCode::unauthorized, "verify",
                               "missing or wrong bearer token for this account"),
                    "unauthorized");
    }
    std::string_view content_type = request.header("Content-Type");
    if (content_type.substr(0, content_type.find(';')) != "application/json") {
      return reject(make_error(ErrorCode::unsupported_media, "route",
                               "send the interaction as Content-Type: application/json"),
                    "unsupported_media_type");
    }
    std::string_view key = request.header("Idempotency-Key");
    if (!valid_idempotency_key(key)) {
      return reject(make_error(ErrorCode::missing_header, "route",
                               "Idempotency-Key header is required (1-255 printable ASCII "
                               "characters); the interaction id derives from it"),
                    "missing_idempotency_key");
    }
    auto submission = parse_submission(request.body, request.account, key);
    if (!submission) return reject(submission.error(), submission.error().name().data());
    auto accepted = pipeline_->submit(std::move(submission.value()), request.deadline);
    if (!accepted) return Reply::error(accepted.error());
    // The same answer for the first delivery and every retry of the same key.
    return Reply::json(202, {{"id", accepted->id}, {"status", "accepted"}});
  }

  std::map<std::string, AccountConfig, std::less<>> accounts_;
  uint64_t max_body_ = 256 * 1024;
  Pipeline* pipeline_ = nullptr;
  Metrics* metrics_ = nullptr;
};

}  // namespace

OMNIGATE_REGISTER_CONNECTOR("api", ApiConnector);

}  // namespace omnigate::api

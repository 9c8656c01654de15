#include "connectors/api/api_parse.hpp"

#include "gateway/model/json_input.hpp"

namespace omnigate::api {

bool valid_idempotency_key(std::string_view key) {
  if (key.empty() || key.size() > 255) return false;
  for (char c : key) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

Result<Submission> parse_submission(std::string_view body, std::string_view account,
                                    std::string_view idempotency_key) {
  auto document = parse_request_json(body);
  if (!document) return document.error();
  auto interaction = interaction_from_json(*document, ReadMode::api_submission);
  if (!interaction) return interaction.error();
  Interaction& in = interaction.value();
  if (!in.channel.empty() && in.channel != "api") {
    return make_error(ErrorCode::invalid_field, "parse",
                      "channel: the API channel publishes interactions as channel 'api', not '" +
                          in.channel + "'");
  }
  if (!in.account.empty() && in.account != account) {
    return make_error(ErrorCode::invalid_field, "parse",
                      "account: '" + in.account + "' differs from the route's account '" +
                          std::string(account) + "'");
  }
  in.channel = "api";
  in.account = std::string(account);
  Submission submission;
  submission.interaction = std::move(in);
  submission.native_key = std::string(idempotency_key);
  submission.raw_bytes = body;
  submission.raw_content_type = "application/json";
  return submission;
}

}  // namespace omnigate::api

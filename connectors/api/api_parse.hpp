// The API channel's parse + normalize: a pure function of (body, account, key, clock).
#pragma once

#include <string>
#include <string_view>

#include "gateway/model/submission.hpp"

namespace omnigate::api {

// Idempotency-Key: 1–255 printable ASCII characters.
bool valid_idempotency_key(std::string_view key);

// Reads an interaction.v1 document without schema, id and received_at (channel and account
// may be given, and must then be "api" and the route's account). Errors name the field:
// bad_request for JSON that does not parse (with line and column), invalid_field otherwise.
Result<Submission> parse_submission(std::string_view body, std::string_view account,
                                    std::string_view idempotency_key);

}  // namespace omnigate::api

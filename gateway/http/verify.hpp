// How a connector checks that a request comes from its provider, written once: every check is
// constant time (a wrong secret takes as long as a right one) and fails with the kit's error
// codes, so the status, the metric label and the auth throttle are the same for every channel.
#pragma once

#include <string>
#include <string_view>

#include "gateway/core/error.hpp"

namespace omnigate {
struct InboundRequest;
}

namespace omnigate::verify {

// The token of an "Authorization: Bearer <token>" header, "" when absent or malformed.
std::string_view bearer_token(std::string_view authorization_header);

// A shared secret sent by the provider (a header such as X-Telegram-Bot-Api-Secret-Token, or a
// body field such as VK's `secret`) against the configured one. `what` names it in the error.
// Fails with `code` (unauthorized, or forbidden where the provider's contract says 403).
Status secret(std::string_view presented, std::string_view expected, std::string_view what,
              ErrorCode code = ErrorCode::unauthorized);

// Authorization: Bearer <expected>; unauthorized otherwise.
Status bearer(const InboundRequest& request, std::string_view expected);

// Lower-case hex HMAC-SHA256 of `data` under `key` (OpenSSL).
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

// A signature header of the form "<prefix><hex HMAC-SHA256 of the raw body>" (Meta:
// X-Hub-Signature-256: sha256=<hex>), checked before anything parses the body. Missing,
// malformed or wrong: signature_invalid. Hex digits are compared case-insensitively.
Status hmac_sha256(std::string_view raw_body, std::string_view key, std::string_view header_value,
                   std::string_view prefix = "sha256=");

}  // namespace omnigate::verify

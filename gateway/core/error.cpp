#include "gateway/core/error.hpp"

#include <array>

namespace omnigate {

const ErrorSpec& spec_of(ErrorCode code) {
  // Indexed by ErrorCode; the order must follow the enum.
  static constexpr std::array<ErrorSpec, 19> table{{
      {"bad_request", 400},
      {"invalid_field", 400},
      {"missing_header", 400},
      {"unauthorized", 401},
      {"signature_invalid", 401},
      {"forbidden", 403},
      {"not_found", 404},
      {"unknown_account", 404},
      {"method_not_allowed", 405},
      {"gone", 410},
      {"payload_too_large", 413},
      {"unsupported_media_type", 415},
      {"unprocessable", 422},
      {"rate_limited", 429},
      {"internal", 500},
      {"not_durable", 503},
      {"bad_gateway", 502},
      {"overloaded", 503},
      {"upstream_timeout", 504},
  }};
  static_assert(table.size() == static_cast<size_t>(ErrorCode::upstream_timeout) + 1);
  return table[static_cast<size_t>(code)];
}

}  // namespace omnigate

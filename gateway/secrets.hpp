#pragma once

#include <string_view>

namespace omnigate {

// Compares a presented secret with the configured one in time independent of where they
// differ and of the configured secret's length (both are hashed first).
bool constant_time_equals(std::string_view presented, std::string_view expected);

// The token of an "Authorization: Bearer <token>" header, "" when absent or malformed.
std::string_view bearer_token(std::string_view authorization_header);

}  // namespace omnigate

// The one way request bodies are read as JSON: nesting capped at limits::kMaxJsonDepth for
// every parser, and every failure (syntax, a number past a double such as 1e400, invalid
// UTF-8) a bad_request that says what is wrong -- never an exception, never a 500.
#pragma once

#include <nlohmann/json.hpp>

#include <string_view>

#include "gateway/core/error.hpp"
#include "gateway/core/limits.hpp"

namespace omnigate {

// The deepest nesting of arrays and objects in JSON text, counted by one pass over the bytes
// (strings and their escapes skipped), stopping as soon as `max_depth` is exceeded. For text
// that is not JSON the count is meaningless but finite; the parser then reports the error.
bool json_depth_within(std::string_view text, size_t max_depth = limits::kMaxJsonDepth);

// The error a body nested deeper than the cap gets (shared by the simdjson readers).
Error json_too_deep_error();

// Parses a request body: bad_request "the body is not valid JSON: <where and why>" or
// "... nested deeper than 64 levels".
Result<nlohmann::json> parse_request_json(std::string_view body);

}  // namespace omnigate

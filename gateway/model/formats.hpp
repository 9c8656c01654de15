// The string formats of interaction.v1 as character loops: no std::regex (it recurses per
// character and overflows the stack on long input), no backtracking, O(length) for any input.
// Each function accepts a subset of what the schema's validator (Ajv with ajv-formats, full
// mode) accepts, so that a value that passes here passes there.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include "gateway/model/ids.hpp"

namespace omnigate::formats {

// An absolute URI of RFC 3986 (scheme ":" hier-part ["?" query] ["#" fragment]), ASCII only,
// every "%" followed by two hex digits, a port of digits only. IP-literal hosts ("[::1]") are
// refused rather than parsed.
bool is_uri(std::string_view text);
// An http:// or https:// URI with a host, as a browser sends for a page.
bool is_web_url(std::string_view text);
// 8-4-4-4-12 hexadecimal digits (either case).
bool is_uuid(std::string_view text);
// [A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})* : "ru", "en-US", "zh-Hant-TW".
bool is_language_tag(std::string_view text);
// [a-z][a-z0-9_]* of at most max_length characters: consent purposes and channels.
bool is_snake_key(std::string_view text, size_t max_length = 64);
// 64 lower-case hex digits.
bool is_sha256_hex(std::string_view text);
// [A-Za-z0-9_.:-]{1,max_length}: submission ids, media path segments.
bool is_token(std::string_view text, size_t max_length, bool allow_dot_colon = true);

// The years interaction.v1 timestamps are written with: four digits, not before the epoch.
bool in_timestamp_range(SysMillis time);
// Unix seconds (a provider's "date") as a time; nullopt outside 1970..9999 instead of the
// signed overflow that multiplying by 1000 would give.
std::optional<SysMillis> from_unix_seconds(long long seconds);

}  // namespace omnigate::formats

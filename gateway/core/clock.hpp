// The clock formats of interaction.v1 and of log lines: UTC milliseconds and RFC 3339.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace omnigate {

using SysMillis = std::chrono::sys_time<std::chrono::milliseconds>;

// "2026-11-22T06:30:00.123Z"; always UTC.
std::string format_rfc3339(SysMillis time);
// Accepts RFC 3339 with "Z" or a numeric offset, with or without fractional seconds.
std::optional<SysMillis> parse_rfc3339(std::string_view text);
SysMillis now_millis();

}  // namespace omnigate

// Minimal structured logging to stderr. Messages never carry message text, phone numbers or
// e-mail addresses: log ids, channels, accounts, codes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "gateway/core/clock.hpp"

namespace omnigate::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3 };
// text: "<ts> <level> <component>: <msg> key=value ..." for a person reading a terminal;
// json: one object per line {"ts","level","component","msg", <field keys>...} for a collector.
enum class Format { text, json };

// A value of a structured field: a string (written as is in text, escaped in JSON) or a number.
using FieldValue = std::variant<std::string, int64_t, double>;
using Fields = std::vector<std::pair<std::string, FieldValue>>;

void set_level(std::string_view level);
// "text" or "json"; anything else leaves the format unchanged (the config reader validates).
void set_format(std::string_view format);
bool enabled(Level level);
void write(Level level, std::string_view component, std::string_view message,
           const Fields& fields = {});

// The line write() emits at `time`, with its '\n' (write() uses the configured format).
std::string format_line(Format format, Level level, std::string_view component,
                        std::string_view message, const Fields& fields, SysMillis time);

// The HTTP request this thread serves, for its one request log line (gateway/app/gateway.cpp
// sets it around each request; the pipeline notes what it made durable). Outside a request
// (a poller's thread) the calls do nothing and keep nothing.
struct RequestRecord {
  bool active = false;
  std::string route = "unmatched";  // the route pattern ("POST /v1/api/:account"), never the path
  std::string account;
  std::string first_interaction;  // the first interaction id made durable, "" when none
  int64_t interactions = 0;
  double latency_ms = -1;  // since request_begin(); -1 when it was never called
};
void request_begin();
// A request whose time started earlier (the event-loop front: when its body was complete).
void request_begin(std::chrono::steady_clock::time_point started);
void request_route(std::string_view route, std::string_view account);
void request_interaction(std::string_view id);
RequestRecord request_end();  // the record, and this thread is outside a request again
// A request that waits on an event loop (its PubAck) while the loop's thread serves others:
// suspended, this thread is outside it; resumed where it goes on (the same thread or another),
// its record and its start time are back as they were.
struct SuspendedRequest {
  RequestRecord record;
  std::chrono::steady_clock::time_point started;
};
SuspendedRequest request_suspend();
void request_resume(SuspendedRequest request);

inline void debug(std::string_view c, std::string_view m) {
  write(Level::debug, c, m);
}
inline void info(std::string_view c, std::string_view m) {
  write(Level::info, c, m);
}
inline void warn(std::string_view c, std::string_view m) {
  write(Level::warn, c, m);
}
inline void error(std::string_view c, std::string_view m) {
  write(Level::error, c, m);
}

}  // namespace omnigate::log

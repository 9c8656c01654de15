#include "gateway/core/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "gateway/core/clock.hpp"

namespace omnigate::log {
namespace {
std::atomic<int> threshold{static_cast<int>(Level::info)};
std::atomic<int> output_format{static_cast<int>(Format::text)};
constexpr const char* kNames[] = {"debug", "info", "warn", "error"};
thread_local RequestRecord current_request;
thread_local std::chrono::steady_clock::time_point request_started;

void append_text_value(std::string& line, const FieldValue& value) {
  if (const auto* text = std::get_if<std::string>(&value)) {
    line += *text;
  } else if (const auto* integer = std::get_if<int64_t>(&value)) {
    line += std::to_string(*integer);
  } else {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.3f", std::get<double>(value));
    line += buffer;
  }
}
}  // namespace

void set_level(std::string_view level) {
  for (int i = 0; i < 4; ++i) {
    if (level == kNames[i]) threshold = i;
  }
}

void set_format(std::string_view format) {
  if (format == "text") output_format = static_cast<int>(Format::text);
  if (format == "json") output_format = static_cast<int>(Format::json);
}

bool enabled(Level level) {
  return static_cast<int>(level) >= threshold.load();
}

std::string format_line(Format format, Level level, std::string_view component,
                        std::string_view message, const Fields& fields, SysMillis time) {
  if (format == Format::json) {
    // ordered_json: ts, level, component, msg first, as a person scanning the file expects.
    // dump() with error_handler replace: a stray invalid UTF-8 byte never throws out of a log.
    nlohmann::ordered_json line = {{"ts", format_rfc3339(time)},
                                   {"level", kNames[static_cast<int>(level)]},
                                   {"component", component},
                                   {"msg", message}};
    for (const auto& [key, value] : fields) {
      std::visit([&line, &key](const auto& v) { line[key] = v; }, value);
    }
    return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  std::string line = format_rfc3339(time);
  line += ' ';
  line += kNames[static_cast<int>(level)];
  line += ' ';
  line += component;
  line += ": ";
  line += message;
  for (const auto& [key, value] : fields) {
    line += ' ';
    line += key;
    line += '=';
    append_text_value(line, value);
  }
  line += '\n';
  return line;
}

void request_begin() {
  request_begin(std::chrono::steady_clock::now());
}

void request_begin(std::chrono::steady_clock::time_point started) {
  current_request = RequestRecord{};
  current_request.active = true;
  request_started = started;
}

void request_route(std::string_view route, std::string_view account) {
  if (!current_request.active) return;
  current_request.route = route;
  current_request.account = account;
}

void request_interaction(std::string_view id) {
  if (!current_request.active) return;
  if (current_request.interactions++ == 0) current_request.first_interaction = id;
}

RequestRecord request_end() {
  RequestRecord record = std::move(current_request);
  if (record.active) {
    record.latency_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                                  request_started)
                            .count();
  }
  current_request = RequestRecord{};
  return record;
}

SuspendedRequest request_suspend() {
  SuspendedRequest suspended{std::move(current_request), request_started};
  current_request = RequestRecord{};
  return suspended;
}

void request_resume(SuspendedRequest request) {
  current_request = std::move(request.record);
  request_started = request.started;
}

void write(Level level, std::string_view component, std::string_view message,
           const Fields& fields) {
  if (!enabled(level)) return;
  std::string line = format_line(static_cast<Format>(output_format.load()), level, component,
                                 message, fields, now_millis());
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace omnigate::log

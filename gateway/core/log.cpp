#include "gateway/core/log.hpp"

#include <atomic>
#include <cstdio>
#include <string>

#include "gateway/core/clock.hpp"

namespace omnigate::log {
namespace {
std::atomic<int> threshold{static_cast<int>(Level::info)};
constexpr const char* kNames[] = {"debug", "info", "warn", "error"};
}  // namespace

void set_level(std::string_view level) {
  for (int i = 0; i < 4; ++i) {
    if (level == kNames[i]) threshold = i;
  }
}

bool enabled(Level level) {
  return static_cast<int>(level) >= threshold.load();
}

void write(Level level, std::string_view component, std::string_view message) {
  if (!enabled(level)) return;
  std::string line = format_rfc3339(now_millis());
  line += ' ';
  line += kNames[static_cast<int>(level)];
  line += ' ';
  line += component;
  line += ": ";
  line += message;
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace omnigate::log

// Minimal structured logging to stderr. Messages never carry message text, phone numbers or
// e-mail addresses: log ids, channels, accounts, codes.
#pragma once

#include <string_view>

namespace omnigate::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3 };

void set_level(std::string_view level);
bool enabled(Level level);
void write(Level level, std::string_view component, std::string_view message);

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

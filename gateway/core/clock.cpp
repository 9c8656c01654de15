#include "gateway/core/clock.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>

namespace omnigate {
namespace {

int two_digits(std::string_view text, size_t at) {
  if (at + 2 > text.size() || !std::isdigit(static_cast<unsigned char>(text[at])) ||
      !std::isdigit(static_cast<unsigned char>(text[at + 1]))) {
    return -1;
  }
  return (text[at] - '0') * 10 + (text[at + 1] - '0');
}

}  // namespace

std::string format_rfc3339(SysMillis time) {
  using namespace std::chrono;
  auto day = floor<days>(time);
  year_month_day ymd{day};
  hh_mm_ss hms{time - day};
  const int year = static_cast<int>(ymd.year());
  if (year < 0 || year > 9999) {
    // Outside RFC 3339's four-digit years: printed as before ("-001-", "10000-").
    char out[40];
    std::snprintf(out, sizeof out, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", year,
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                  static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                  static_cast<int>(hms.seconds().count()),
                  static_cast<int>(hms.subseconds().count()));
    return out;
  }
  // Every interaction formats two of these (occurred_at, received_at): the digits are written in
  // place, without snprintf parsing its format each time.
  std::string out = "0000-00-00T00:00:00.000Z";
  auto digits = [&out](size_t at, size_t width, unsigned value) {
    for (size_t i = width; i-- > 0; value /= 10) out[at + i] = static_cast<char>('0' + value % 10);
  };
  digits(0, 4, static_cast<unsigned>(year));
  digits(5, 2, static_cast<unsigned>(ymd.month()));
  digits(8, 2, static_cast<unsigned>(ymd.day()));
  digits(11, 2, static_cast<unsigned>(hms.hours().count()));
  digits(14, 2, static_cast<unsigned>(hms.minutes().count()));
  digits(17, 2, static_cast<unsigned>(hms.seconds().count()));
  digits(20, 3, static_cast<unsigned>(hms.subseconds().count()));
  return out;
}

std::optional<SysMillis> parse_rfc3339(std::string_view text) {
  using namespace std::chrono;
  // YYYY-MM-DDTHH:MM:SS
  if (text.size() < 20 || text[4] != '-' || text[7] != '-' ||
      (text[10] != 'T' && text[10] != 't' && text[10] != ' ') || text[13] != ':' ||
      text[16] != ':') {
    return std::nullopt;
  }
  int year = 0;
  if (std::from_chars(text.data(), text.data() + 4, year).ptr != text.data() + 4)
    return std::nullopt;
  int month = two_digits(text, 5), day = two_digits(text, 8), hour = two_digits(text, 11),
      minute = two_digits(text, 14), second = two_digits(text, 17);
  if (month < 1 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 ||
      second > 60) {
    return std::nullopt;
  }
  year_month_day ymd{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                     std::chrono::day{static_cast<unsigned>(day)}};
  if (!ymd.ok()) return std::nullopt;
  size_t pos = 19;
  int millis = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
      if (digits < 3) millis = millis * 10 + (text[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (int d = digits; d < 3; ++d) millis *= 10;
  }
  if (pos >= text.size()) return std::nullopt;
  minutes offset{0};
  if (text[pos] == 'Z' || text[pos] == 'z') {
    ++pos;
  } else if (text[pos] == '+' || text[pos] == '-') {
    int oh = two_digits(text, pos + 1), om = two_digits(text, pos + 4);
    if (oh < 0 || om < 0 || pos + 3 >= text.size() || text[pos + 3] != ':') return std::nullopt;
    offset = minutes(oh * 60 + om);
    if (text[pos] == '-') offset = -offset;
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != text.size()) return std::nullopt;
  SysMillis local = sys_days{ymd} + hours(hour) + minutes(minute) + seconds(std::min(second, 59)) +
                    milliseconds(millis);
  return local - offset;
}

SysMillis now_millis() {
  return std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

}  // namespace omnigate

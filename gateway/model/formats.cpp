#include "gateway/model/formats.hpp"

#include <chrono>

namespace omnigate::formats {
namespace {

bool alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool digit(char c) {
  return c >= '0' && c <= '9';
}
bool hex(char c) {
  return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool unreserved(char c) {
  return alpha(c) || digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}
bool sub_delim(char c) {
  switch (c) {
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
      return true;
    default:
      return false;
  }
}

// Every character is unreserved, a sub-delim, one of `extra`, or a valid %XX escape.
bool all_of_class(std::string_view text, std::string_view extra) {
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size() || !hex(text[i + 1]) || !hex(text[i + 2])) return false;
      i += 2;
    } else if (!unreserved(c) && !sub_delim(c) && extra.find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool is_uri(std::string_view text) {
  // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
  size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0 || !alpha(text[0])) return false;
  for (size_t i = 1; i < colon; ++i) {
    char c = text[i];
    if (!alpha(c) && !digit(c) && c != '+' && c != '-' && c != '.') return false;
  }
  std::string_view rest = text.substr(colon + 1);
  if (size_t hash = rest.find('#'); hash != std::string_view::npos) {
    if (!all_of_class(rest.substr(hash + 1), ":@/?")) return false;
    rest = rest.substr(0, hash);
  }
  if (size_t question = rest.find('?'); question != std::string_view::npos) {
    if (!all_of_class(rest.substr(question + 1), ":@/?")) return false;
    rest = rest.substr(0, question);
  }
  if (rest.empty()) return false;  // "x:" or "x:?q": no hier-part
  std::string_view path = rest;
  if (rest.substr(0, 2) == "//") {
    std::string_view authority = rest.substr(2);
    size_t slash = authority.find('/');
    path = slash == std::string_view::npos ? std::string_view{} : authority.substr(slash);
    authority = authority.substr(0, slash);
    if (size_t at = authority.find('@'); at != std::string_view::npos) {
      if (!all_of_class(authority.substr(0, at), ":")) return false;
      authority = authority.substr(at + 1);
    }
    if (size_t port = authority.find(':'); port != std::string_view::npos) {
      for (char c : authority.substr(port + 1)) {
        if (!digit(c)) return false;
      }
      authority = authority.substr(0, port);
    }
    if (!all_of_class(authority, "")) return false;  // no "@", "[", "]" left in the host
  }
  return all_of_class(path, ":@/");
}

bool is_web_url(std::string_view text) {
  std::string_view after;
  if (text.substr(0, 7) == "http://")
    after = text.substr(7);
  else if (text.substr(0, 8) == "https://")
    after = text.substr(8);
  else
    return false;
  if (after.empty() || after[0] == '/' || after[0] == '?' || after[0] == '#') return false;
  return is_uri(text);
}

bool is_uuid(std::string_view text) {
  if (text.size() != 36) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? text[i] != '-' : !hex(text[i])) return false;
  }
  return true;
}

bool is_language_tag(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && alpha(text[i])) ++i;
  if (i < 2 || i > 3) return false;
  while (i < text.size()) {
    if (text[i] != '-') return false;
    size_t start = ++i;
    while (i < text.size() && (alpha(text[i]) || digit(text[i]))) ++i;
    if (i - start < 2 || i - start > 8) return false;
  }
  return true;
}

bool is_snake_key(std::string_view text, size_t max_length) {
  if (text.empty() || text.size() > max_length || text[0] < 'a' || text[0] > 'z') return false;
  for (char c : text) {
    if (!(c >= 'a' && c <= 'z') && !digit(c) && c != '_') return false;
  }
  return true;
}

bool is_sha256_hex(std::string_view text) {
  if (text.size() != 64) return false;
  for (char c : text) {
    if (!digit(c) && !(c >= 'a' && c <= 'f')) return false;
  }
  return true;
}

bool is_token(std::string_view text, size_t max_length, bool allow_dot_colon) {
  if (text.empty() || text.size() > max_length) return false;
  for (char c : text) {
    bool ok =
        alpha(c) || digit(c) || c == '_' || c == '-' || (allow_dot_colon && (c == '.' || c == ':'));
    if (!ok) return false;
  }
  return true;
}

namespace {
// 1970-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z
constexpr long long kLastSecond = 253402300799LL;
}  // namespace

bool in_timestamp_range(SysMillis time) {
  auto ms = time.time_since_epoch().count();
  return ms >= 0 && ms <= kLastSecond * 1000 + 999;
}

std::optional<SysMillis> from_unix_seconds(long long seconds) {
  if (seconds < 0 || seconds > kLastSecond) return std::nullopt;
  return SysMillis(std::chrono::seconds(seconds));
}

}  // namespace omnigate::formats

// Small string helpers every part of the gateway needs, written once. ASCII only: provider
// keys, header names and template placeholders are ASCII; text people write is never folded here.
#pragma once

#include <string>
#include <string_view>

namespace omnigate {

// Case-insensitive ASCII comparison (header names, schemes, keywords of a protocol).
bool iequals(std::string_view a, std::string_view b);
// `text` without leading and trailing ASCII whitespace (space, \t, \r, \n, \v, \f).
std::string_view trim(std::string_view text);
// Every occurrence of `needle` replaced by `with`, left to right, never re-scanning `with`.
std::string replace_all(std::string text, std::string_view needle, std::string_view with);
// ASCII letters lower-cased; other bytes (UTF-8 included) unchanged.
std::string ascii_lower(std::string_view text);

}  // namespace omnigate

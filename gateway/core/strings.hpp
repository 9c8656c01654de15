// Small string helpers every part of the gateway needs, written once: ASCII case and
// whitespace (provider keys, header names, placeholders -- text people write is never folded
// here), and the codecs of URLs and HTML.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/core/limits.hpp"

namespace omnigate {

// Case-insensitive ASCII comparison (header names, schemes, keywords of a protocol).
bool iequals(std::string_view a, std::string_view b);
// `text` without leading and trailing ASCII whitespace (space, \t, \r, \n, \v, \f).
std::string_view trim(std::string_view text);
// Every occurrence of `needle` replaced by `with`, left to right, never re-scanning `with`.
std::string replace_all(std::string text, std::string_view needle, std::string_view with);
// ASCII letters lower-cased; other bytes (UTF-8 included) unchanged.
std::string ascii_lower(std::string_view text);
// Bytes as lower-case hex, two digits a byte (digests).
std::string hex_lower(std::string_view bytes);

// Decodes an application/x-www-form-urlencoded body (or query string) into ordered pairs,
// at most `max_pairs` of them: a caller that allows N passes N + 1 and refuses N + 1 pairs,
// without decoding the rest of a body made of 30 000 "a&a&a...".
std::vector<std::pair<std::string, std::string>> parse_urlencoded(
    std::string_view text, size_t max_pairs = limits::kMaxMapEntries + 1);
std::string url_encode(std::string_view text);
// A request path's "%2F" and the like decoded, '+' kept (a path is not a form); nullopt for a
// malformed escape.
std::optional<std::string> percent_decode_path(std::string_view path);
// HTML text and attribute escaping of & < > " '.
std::string html_escape(std::string_view text);

}  // namespace omnigate

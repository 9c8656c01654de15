// Where a person came from, read the same way for every channel: tracking parameters (a web
// form's fields or page URL, a Telegram or VK deep link, an ad's click id) routed into
// interaction.v1's `source`.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/model/interaction.hpp"

namespace omnigate {

using Pairs = std::vector<std::pair<std::string, std::string>>;

enum class OtherParams { keep, drop };

// utm_source, utm_medium, utm_campaign, utm_content, utm_term → source.utm (trimmed; empty
// values skipped; the first value of a key wins, so a form field beats the page URL's query
// when the field is routed first). Other keys go to source.params when `other` is keep.
void route_tracking_params(Source& source, const Pairs& pairs, OtherParams other);

// The query string of a URL ("a=1&b=2" of "https://x/p?a=1&b=2#f"), "" when it has none.
std::string_view query_of(std::string_view url);

// The deep-link payload convention of messengers (Telegram's /start, VK's ref): base64url of
// "key=value&key=value". nullopt when the payload is not that (binary, or no '='): it is then
// kept only as source.deep_link.
std::optional<Pairs> decode_deep_link(std::string_view payload);

// source.deep_link = payload, and its decoded pairs routed as tracking parameters (other keys
// kept in source.params).
void route_deep_link(Source& source, std::string_view payload);

}  // namespace omnigate

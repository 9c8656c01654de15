#include "gateway/model/tracking.hpp"

#include "gateway/core/secrets.hpp"
#include "gateway/core/strings.hpp"

namespace omnigate {

void route_tracking_params(Source& source, const Pairs& pairs, OtherParams other) {
  auto utm_field = [&](std::string_view key) -> OptString* {
    if (key == "utm_source") return &source.utm.source;
    if (key == "utm_medium") return &source.utm.medium;
    if (key == "utm_campaign") return &source.utm.campaign;
    if (key == "utm_content") return &source.utm.content;
    if (key == "utm_term") return &source.utm.term;
    return nullptr;
  };
  for (const auto& [key, raw] : pairs) {
    std::string value(trim(raw));
    if (value.empty()) continue;
    if (OptString* field = utm_field(key)) {
      if (!*field) *field = std::move(value);
    } else if (other == OtherParams::keep) {
      source.params.emplace_back(key, std::move(value));
    }
  }
}

std::string_view query_of(std::string_view url) {
  size_t query = url.find('?');
  if (query == std::string_view::npos) return {};
  std::string_view rest = url.substr(query + 1);
  return rest.substr(0, rest.find('#'));
}

std::optional<Pairs> decode_deep_link(std::string_view payload) {
  auto decoded = base64url_decode(payload);
  if (!decoded || decoded->find('=') == std::string::npos) return std::nullopt;
  for (unsigned char c : *decoded) {
    if (c < 0x20 || c == 0x7f) return std::nullopt;  // binary: not the key=value convention
  }
  auto pairs = parse_urlencoded(*decoded);
  if (pairs.empty()) return std::nullopt;
  return pairs;
}

void route_deep_link(Source& source, std::string_view payload) {
  if (payload.empty()) return;
  source.deep_link = std::string(payload);
  if (auto pairs = decode_deep_link(payload))
    route_tracking_params(source, *pairs, OtherParams::keep);
}

}  // namespace omnigate

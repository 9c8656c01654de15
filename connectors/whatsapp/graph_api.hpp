// A small client of Meta's Graph API for one WhatsApp business number, on the kit's outbound
// HTTP client (gateway/http/client.hpp): what the connector reads with the account's
// access_token. The token is only ever a header, never in a URL, an error or a log line.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/core/error.hpp"

namespace omnigate::whatsapp {

class GraphApi {
 public:
  // `api_url` is https://graph.facebook.com/v21.0 in production, a local fake in tests.
  GraphApi(std::string api_url, std::string access_token);

  // GET <api_url>/<path> with "Authorization: Bearer <access_token>"; the answer as a JSON
  // object. Errors: not_durable when Meta is not reachable or answers 5xx (worth retrying),
  // not_found for 404 and Graph error 100 (an unknown or expired id), unauthorized for a
  // refused token (401/403, Graph error 190), internal for anything else; the detail carries
  // Meta's error message, never the token.
  Result<nlohmann::json> get(const std::string& path, std::chrono::milliseconds timeout) const;

 private:
  std::string api_url_;
  std::string access_token_;
};

// What GET /<media_id> answers: a download URL valid for 5 minutes (fetched with the same bearer
// token) and the media's type.
struct MediaLocation {
  std::string url;
  std::string mime_type;
  std::optional<std::string> sha256;
  std::optional<int64_t> file_size;
};

// Resolves a media id of a webhook (provider_ref.id) to its download URL. `media_id` must be a
// Graph id ([A-Za-z0-9_-], at most 128): anything else is not_found without a call.
Result<MediaLocation> resolve_media(const GraphApi& api, std::string_view media_id,
                                    std::chrono::milliseconds timeout);

// GET /<phone_number_id>?fields=display_phone_number,verified_name,quality_rating.
Result<nlohmann::json> phone_number_info(const GraphApi& api, std::string_view phone_number_id,
                                         std::chrono::milliseconds timeout);

}  // namespace omnigate::whatsapp

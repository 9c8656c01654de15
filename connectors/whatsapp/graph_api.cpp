#include "connectors/whatsapp/graph_api.hpp"

#include "gateway/http/client.hpp"
#include "gateway/model/formats.hpp"

namespace omnigate::whatsapp {
namespace {

// Meta's error object: {"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}.
Error graph_error(long status, const nlohmann::json& answer) {
  int code = 0;
  std::string message = "no error message";
  if (answer.is_object() && answer.contains("error") && answer["error"].is_object()) {
    const auto& e = answer["error"];
    if (e.contains("code") && e["code"].is_number_integer()) code = e["code"].get<int>();
    if (e.contains("message") && e["message"].is_string())
      message = e["message"].get<std::string>();
  }
  std::string detail = "the Graph API answered HTTP " + std::to_string(status) +
                       (code ? " (error " + std::to_string(code) + ")" : "") + ": " + message;
  if (status >= 500) return make_error(ErrorCode::not_durable, "graph", detail);
  if (status == 404 || code == 100) return make_error(ErrorCode::not_found, "graph", detail);
  if (status == 401 || status == 403 || code == 190)
    return make_error(ErrorCode::unauthorized, "graph", detail);
  return make_error(ErrorCode::internal, "graph", detail);
}

}  // namespace

GraphApi::GraphApi(std::string api_url, std::string access_token)
    : api_url_(std::move(api_url)), access_token_(std::move(access_token)) {
  while (!api_url_.empty() && api_url_.back() == '/') api_url_.pop_back();
}

Result<nlohmann::json> GraphApi::get(const std::string& path,
                                     std::chrono::milliseconds timeout) const {
  http::CallRequest request;
  request.url = api_url_ + "/" + path;
  request.headers = {{"Authorization", "Bearer " + access_token_}};
  request.timeout = timeout;
  request.max_response_bytes = 1024 * 1024;  // Graph answers here are a few hundred bytes
  auto answer = http::call(request);
  if (!answer) {
    return make_error(ErrorCode::not_durable, "graph",
                      "the Graph API is not reachable: " + answer.error().detail);
  }
  const http::CallResponse& response = answer.value();
  if (response.status < 200 || response.status > 299)
    return graph_error(response.status, response.json);
  if (response.json.is_discarded() || !response.json.is_object()) {
    return make_error(ErrorCode::not_durable, "graph",
                      "the Graph API answered HTTP " + std::to_string(response.status) +
                          " without a JSON object");
  }
  return response.json;
}

Result<MediaLocation> resolve_media(const GraphApi& api, std::string_view media_id,
                                    std::chrono::milliseconds timeout) {
  if (!formats::is_token(media_id, 128, false))
    return make_error(ErrorCode::not_found, "graph", "not a WhatsApp media id");
  auto answer = api.get(std::string(media_id), timeout);
  if (!answer) return answer.error();
  const auto& media = answer.value();
  MediaLocation out;
  if (!media.contains("url") || !media["url"].is_string() ||
      media["url"].get<std::string>().empty())
    return make_error(ErrorCode::not_found, "graph", "the Graph API gave no url for this media id");
  out.url = media["url"].get<std::string>();
  out.mime_type = media.contains("mime_type") && media["mime_type"].is_string()
                      ? media["mime_type"].get<std::string>()
                      : "application/octet-stream";
  if (media.contains("sha256") && media["sha256"].is_string())
    out.sha256 = media["sha256"].get<std::string>();
  if (media.contains("file_size") && media["file_size"].is_number_integer())
    out.file_size = media["file_size"].get<int64_t>();
  return out;
}

Result<nlohmann::json> phone_number_info(const GraphApi& api, std::string_view phone_number_id,
                                         std::chrono::milliseconds timeout) {
  if (!formats::is_token(phone_number_id, 64, false))
    return make_error(ErrorCode::invalid_field, "graph", "phone_number_id is not a Graph id");
  return api.get(
      std::string(phone_number_id) + "?fields=display_phone_number,verified_name,quality_rating",
      timeout);
}

}  // namespace omnigate::whatsapp

#include "gateway/http_types.hpp"

#include <cctype>

namespace omnigate {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view InboundRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) return value;
  }
  return {};
}

bool InboundRequest::has_header(std::string_view name) const {
  for (const auto& entry : headers) {
    if (iequals(entry.first, name)) return true;
  }
  return false;
}

std::string_view InboundRequest::query_param(std::string_view name) const {
  for (const auto& [key, value] : query) {
    if (key == name) return value;
  }
  return {};
}

Reply Reply::json(int status, const nlohmann::json& body) {
  Reply reply;
  reply.status = status;
  reply.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return reply;
}

Reply Reply::text(int status, std::string body, std::string content_type) {
  Reply reply;
  reply.status = status;
  reply.content_type = std::move(content_type);
  reply.body = std::move(body);
  return reply;
}

Reply Reply::error(const Error& error, std::optional<std::chrono::seconds> retry_after) {
  Reply reply =
      json(error.http_status(), {{"error", {{"code", error.name()}, {"message", error.detail}}}});
  if (retry_after && (error.http_status() == 429 || error.http_status() == 503)) {
    reply.headers.emplace_back("Retry-After", std::to_string(retry_after->count()));
  }
  return reply;
}

}  // namespace omnigate

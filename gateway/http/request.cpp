#include "gateway/http/request.hpp"

#include "gateway/core/strings.hpp"

#include <cctype>
#include <cstdio>

namespace omnigate {

std::string_view InboundRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) return value;
  }
  return {};
}

std::string InboundRequest::header_joined(std::string_view name) const {
  std::string out;
  for (const auto& [key, value] : headers) {
    if (!iequals(key, name)) continue;
    if (!out.empty()) out += ", ";
    out += value;
  }
  return out;
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

std::string InboundRequest::media_type() const {
  std::string_view value = header("Content-Type");
  value = value.substr(0, value.find(';'));
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  std::string out(value);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

Reply Reply::html(int status, std::string body) {
  return text(status, std::move(body), "text/html; charset=utf-8");
}

Reply Reply::redirect(std::string location) {
  Reply reply = text(303, "", "text/plain; charset=utf-8");
  reply.headers.emplace_back("Location", std::move(location));
  return reply;
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

Reply Reply::error(const Error& error, std::optional<std::chrono::seconds> retry_after,
                   const nlohmann::json& details) {
  nlohmann::json body = {{"code", error.name()}, {"message", error.detail}};
  if (details.is_object()) {
    for (const auto& [key, value] : details.items()) body[key] = value;
  }
  Reply reply = json(error.http_status(), {{"error", std::move(body)}});
  if (retry_after && (error.http_status() == 429 || error.http_status() == 503)) {
    reply.headers.emplace_back("Retry-After", std::to_string(retry_after->count()));
  }
  return reply;
}

}  // namespace omnigate

#include "connectors/telegram/bot_api.hpp"

#include "gateway/core/limits.hpp"
#include "gateway/http/client.hpp"

namespace omnigate::telegram {

BotApi::BotApi(std::string base_url, std::string token)
    : base_url_(std::move(base_url)), token_(std::move(token)) {
  while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
}

ApiResponse BotApi::call(const std::string& method, const nlohmann::json& params,
                         std::chrono::milliseconds timeout, const std::atomic<bool>* cancel) const {
  ApiResponse out;
  http::CallRequest request;
  request.method = "POST";
  request.url = base_url_ + "/bot" + token_ + "/" + method;
  request.headers = {{"Content-Type", "application/json"}};
  request.body = params.dump();
  request.timeout = timeout;
  request.cancel = cancel;
  auto answer = http::call(request);
  if (!answer) {
    out.transport_error = answer.error().detail;  // never the URL: it holds the token
    return out;
  }
  out.transport_ok = true;
  out.http_status = answer->status;
  const nlohmann::json& json = answer->json;
  if (json.is_discarded() || !json.is_object()) {
    out.description = "the Bot API answered HTTP " + std::to_string(answer->status) +
                      " without a JSON object (or one nested deeper than " +
                      std::to_string(limits::kMaxJsonDepth) + ")";
    return out;
  }
  // Read by type: a field of an unexpected type is absent, never an exception.
  auto field = [&](const nlohmann::json& object, const char* name) -> const nlohmann::json* {
    auto it = object.find(name);
    return it == object.end() ? nullptr : &*it;
  };
  if (auto* ok = field(json, "ok"); ok && ok->is_boolean()) out.ok = ok->get<bool>();
  if (auto* result = field(json, "result")) out.result = *result;
  if (auto* code = field(json, "error_code"); code && code->is_number_integer())
    out.error_code = code->get<int>();
  if (auto* text = field(json, "description"); text && text->is_string())
    out.description = text->get<std::string>();
  if (auto* parameters = field(json, "parameters"); parameters && parameters->is_object()) {
    if (auto* retry = field(*parameters, "retry_after"); retry && retry->is_number_integer())
      out.retry_after = retry->get<int>();
  }
  return out;
}

std::string BotApi::file_url(const std::string& file_path) const {
  return base_url_ + "/file/bot" + token_ + "/" + file_path;
}

}  // namespace omnigate::telegram

#include "connectors/vk/vk_api.hpp"

#include "gateway/core/strings.hpp"
#include "gateway/http/client.hpp"

namespace omnigate::vk {
namespace {

// Answers of these methods are a few KB (users.get for 1000 ids ~ 100 KB); a long-poll answer
// holds at most a few hundred events.
constexpr size_t kMaxAnswerBytes = 4 * 1024 * 1024;

template <typename T>
ApiResult<T> failed(ErrorCode code, std::string detail, int vk_code = 0) {
  ApiResult<T> r;
  r.failure = {make_error(code, "vk_api", std::move(detail)), vk_code};
  return r;
}

ErrorCode code_of_vk_error(int vk_code) {
  switch (vk_code) {
    case kAuthFailed:
      return ErrorCode::unauthorized;
    case kTooManyPerSecond:
    case kFloodControl:
    case kRateLimitReached:
      return ErrorCode::rate_limited;
    case 15:  // access denied
    case 27:  // group authorization failed: a user token where a community token is needed
      return ErrorCode::forbidden;
    case 100:
      return ErrorCode::bad_request;
    default:
      return ErrorCode::bad_gateway;
  }
}

std::string form_encode(const Params& params) {
  std::string body;
  for (const auto& [name, value] : params) {
    if (!body.empty()) body += '&';
    body += url_encode(name);
    body += '=';
    body += url_encode(value);
  }
  return body;
}

// VK writes ts as a string in this API version and as a number in older ones.
std::string ts_text(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_unsigned()) return std::to_string(value.get<uint64_t>());
  if (value.is_number_integer()) return std::to_string(value.get<int64_t>());
  return "";
}

template <typename T>
ApiResult<T> transport_failure(const Error& error, std::string_view what) {
  return failed<T>(error.code == ErrorCode::upstream_timeout ? ErrorCode::upstream_timeout
                                                             : ErrorCode::bad_gateway,
                   std::string(what) + ": VK is not reachable: " + error.detail);
}

}  // namespace

VkApi::VkApi(std::string api_url, std::string access_token, std::string api_version)
    : api_url_(std::move(api_url)),
      access_token_(std::move(access_token)),
      api_version_(std::move(api_version)) {
  while (!api_url_.empty() && api_url_.back() == '/') api_url_.pop_back();
}

ApiResult<nlohmann::json> VkApi::call(std::string_view method, const Params& params,
                                      std::chrono::milliseconds timeout,
                                      const std::atomic<bool>* cancel) const {
  Params form = params;
  form.emplace_back("access_token", access_token_);
  form.emplace_back("v", api_version_);
  http::CallRequest request;
  request.method = "POST";
  request.url = api_url_ + "/" + std::string(method);
  request.headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
  request.body = form_encode(form);
  request.timeout = timeout;
  request.connect_timeout = std::min(timeout, std::chrono::milliseconds(10'000));
  request.max_response_bytes = kMaxAnswerBytes;
  request.cancel = cancel;
  auto answer = http::call(request);
  if (!answer) return transport_failure<nlohmann::json>(answer.error(), method);
  const nlohmann::json& json = answer->json;
  if (json.is_object() && json.contains("error") && json["error"].is_object()) {
    const auto& e = json["error"];
    const int vk_code = e.contains("error_code") && e["error_code"].is_number_integer()
                            ? e["error_code"].get<int>()
                            : 0;
    std::string message = e.contains("error_msg") && e["error_msg"].is_string()
                              ? e["error_msg"].get<std::string>()
                              : "no error message";
    return failed<nlohmann::json>(
        code_of_vk_error(vk_code),
        std::string(method) + ": VK error " + std::to_string(vk_code) + ": " + message, vk_code);
  }
  if (answer->status < 200 || answer->status > 299 || !json.is_object() ||
      !json.contains("response")) {
    return failed<nlohmann::json>(ErrorCode::bad_gateway,
                                  std::string(method) + ": VK answered HTTP " +
                                      std::to_string(answer->status) + " without a response");
  }
  ApiResult<nlohmann::json> r;
  r.ok = true;
  r.value = json["response"];
  return r;
}

ApiResult<LongPollServer> get_long_poll_server(const VkApi& api, int64_t group_id,
                                               std::chrono::milliseconds timeout,
                                               const std::atomic<bool>* cancel) {
  auto r = api.call("groups.getLongPollServer", {{"group_id", std::to_string(group_id)}}, timeout,
                    cancel);
  if (!r.ok) return {false, {}, std::move(r.failure)};
  const auto& v = r.value;
  LongPollServer server;
  if (v.is_object()) {
    if (v.contains("server") && v["server"].is_string()) server.server = v["server"];
    if (v.contains("key") && v["key"].is_string()) server.key = v["key"];
    if (v.contains("ts")) server.ts = ts_text(v["ts"]);
  }
  if (server.server.empty() || server.key.empty() || server.ts.empty()) {
    return failed<LongPollServer>(ErrorCode::bad_gateway,
                                  "groups.getLongPollServer: the answer has no server, key or ts");
  }
  return {true, std::move(server), {}};
}

ApiResult<LongPollAnswer> check_long_poll(const LongPollServer& server, const std::string& ts,
                                          std::chrono::seconds wait,
                                          const std::atomic<bool>* cancel) {
  http::CallRequest request;
  // The key is a query parameter by VK's design; it is short-lived and never logged (client
  // errors never carry the URL).
  request.url = server.server + (server.server.find('?') == std::string::npos ? "?" : "&") +
                "act=a_check&key=" + url_encode(server.key) + "&ts=" + url_encode(ts) +
                "&wait=" + std::to_string(wait.count());
  request.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(wait) +
                    std::chrono::milliseconds(10'000);
  request.max_response_bytes = kMaxAnswerBytes;
  request.cancel = cancel;
  auto answer = http::call(request);
  if (!answer) return transport_failure<LongPollAnswer>(answer.error(), "a_check");
  const nlohmann::json& json = answer->json;
  if (answer->status < 200 || answer->status > 299 || !json.is_object()) {
    return failed<LongPollAnswer>(ErrorCode::bad_gateway,
                                  "a_check: the long-poll server answered HTTP " +
                                      std::to_string(answer->status) + " without a JSON object");
  }
  LongPollAnswer out;
  if (json.contains("failed") && json["failed"].is_number_integer()) {
    out.failed = json["failed"].get<int>();
    if (json.contains("ts")) out.ts = ts_text(json["ts"]);
    return {true, std::move(out), {}};
  }
  if (!json.contains("ts") || !json.contains("updates") || !json["updates"].is_array()) {
    return failed<LongPollAnswer>(ErrorCode::bad_gateway,
                                  "a_check: the answer has no ts or updates");
  }
  out.ts = ts_text(json["ts"]);
  out.updates = json["updates"];
  if (out.ts.empty())
    return failed<LongPollAnswer>(ErrorCode::bad_gateway, "a_check: unreadable ts");
  return {true, std::move(out), {}};
}

ApiResult<std::vector<std::pair<int64_t, std::string>>> get_user_names(
    const VkApi& api, const std::vector<int64_t>& user_ids, std::chrono::milliseconds timeout) {
  using Names = std::vector<std::pair<int64_t, std::string>>;
  std::string ids;
  for (int64_t id : user_ids) {
    if (!ids.empty()) ids += ',';
    ids += std::to_string(id);
  }
  auto r = api.call("users.get", {{"user_ids", ids}}, timeout);
  if (!r.ok) return {false, {}, std::move(r.failure)};
  if (!r.value.is_array()) return failed<Names>(ErrorCode::bad_gateway, "users.get: not a list");
  Names names;
  for (const auto& user : r.value) {
    if (!user.is_object() || !user.contains("id") || !user["id"].is_number_integer()) continue;
    if (user.contains("deactivated")) continue;  // "deleted" / "banned": shown as DELETED
    std::string name;
    for (const char* part : {"first_name", "last_name"}) {
      if (!user.contains(part) || !user[part].is_string()) continue;
      const std::string& full = user[part].get_ref<const std::string&>();
      std::string value(trim(full));
      if (value.empty()) continue;
      if (!name.empty()) name += ' ';
      name += value;
    }
    if (!name.empty()) names.emplace_back(user["id"].get<int64_t>(), std::move(name));
  }
  return {true, std::move(names), {}};
}

}  // namespace omnigate::vk

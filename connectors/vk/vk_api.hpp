// A small client of the VK API (https://dev.vk.com/method) for one community, on the kit's
// outbound HTTP client: the methods the connector needs (Bots Long Poll, users.get, the
// callback-server methods) and the long-poll request itself. The community token travels in
// the POST body only: never in a URL, an error detail or a log line.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/core/error.hpp"

namespace omnigate::vk {

using Params = std::vector<std::pair<std::string, std::string>>;

// A failed call: the Error to report, and VK's own error_code (0 when the failure was not an
// answer of VK: a transport error, an HTTP error, a body that is not JSON).
struct ApiFailure {
  Error error;
  int vk_code = 0;
};

template <typename T>
struct ApiResult {
  bool ok = false;
  T value{};
  ApiFailure failure;
};

// VK's error codes the connector tells apart (https://dev.vk.com/reference/errors).
inline constexpr int kAuthFailed = 5;         // the token is invalid or revoked
inline constexpr int kTooManyPerSecond = 6;   // > 20 calls/s for a community token
inline constexpr int kFloodControl = 9;       // the same action too often
inline constexpr int kRateLimitReached = 29;  // the method's daily quota is used up

class VkApi {
 public:
  // `api_url` is https://api.vk.com/method in production, a local fake in tests.
  VkApi(std::string api_url, std::string access_token, std::string api_version);

  // POST <api_url>/<method> with the params, access_token and v form-encoded; `response` of the
  // answer. Errors: VK's {"error": {error_code, error_msg}} -> unauthorized (5), rate_limited
  // (6, 9, 29), forbidden (15, 27: the token lacks the right), bad_request (100: a parameter),
  // bad_gateway otherwise; a transport failure -> bad_gateway / upstream_timeout. The detail
  // names the method and VK's message.
  ApiResult<nlohmann::json> call(std::string_view method, const Params& params,
                                 std::chrono::milliseconds timeout,
                                 const std::atomic<bool>* cancel = nullptr) const;

  const std::string& api_version() const { return api_version_; }

 private:
  std::string api_url_;
  std::string access_token_;
  std::string api_version_;
};

// groups.getLongPollServer: where and with which key the community's events are read.
struct LongPollServer {
  std::string server;  // e.g. https://lp.vk.com/whp/218765432
  std::string key;
  std::string ts;  // the newest event number, as VK writes it (a decimal string)
};

ApiResult<LongPollServer> get_long_poll_server(const VkApi& api, int64_t group_id,
                                               std::chrono::milliseconds timeout,
                                               const std::atomic<bool>* cancel = nullptr);

// One a_check answer: updates after `ts`, or VK's `failed` code (1: the ts is outside the
// kept history, continue from `ts` -- events in between are lost; 2: the key expired; 3: the
// key and the ts are lost: both come anew from getLongPollServer).
struct LongPollAnswer {
  int failed = 0;
  std::string ts;
  nlohmann::json updates = nlohmann::json::array();
};

// GET <server>?act=a_check&key=..&ts=..&wait=.. (held by VK up to `wait` seconds).
ApiResult<LongPollAnswer> check_long_poll(const LongPollServer& server, const std::string& ts,
                                          std::chrono::seconds wait,
                                          const std::atomic<bool>* cancel);

// users.get for up to 1000 ids: id -> "first_name last_name". Deleted and banned profiles
// (`deactivated`) have no name worth showing and are left out.
ApiResult<std::vector<std::pair<int64_t, std::string>>> get_user_names(
    const VkApi& api, const std::vector<int64_t>& user_ids, std::chrono::milliseconds timeout);

}  // namespace omnigate::vk

// The Telegram Bot API on the kit's HTTP client (gateway/http/client.hpp): JSON methods and
// file URLs. The bot token is part of every URL, so no error or log text ever contains a URL.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <string>

#include "gateway/core/error.hpp"

namespace omnigate::telegram {

struct ApiResponse {
  bool transport_ok = false;  // false: no HTTP answer (connection refused, timeout, aborted)
  std::string transport_error;
  int http_status = 0;
  bool ok = false;  // the API's "ok" field
  nlohmann::json result;
  int error_code = 0;
  std::string description;
  int retry_after = 0;  // parameters.retry_after on 429
};

class BotApi {
 public:
  // `base_url` is https://api.telegram.org in production, a local fake in tests.
  BotApi(std::string base_url, std::string token);

  // POST <base>/bot<token>/<method> with a JSON body. `cancel` (optional) aborts a long poll.
  ApiResponse call(const std::string& method, const nlohmann::json& params,
                   std::chrono::milliseconds timeout,
                   const std::atomic<bool>* cancel = nullptr) const;

  // <base>/file/bot<token>/<file_path>: where getFile's file_path is downloaded. It holds the
  // token: never log it.
  std::string file_url(const std::string& file_path) const;

 private:
  std::string base_url_;
  std::string token_;
};

}  // namespace omnigate::telegram

// A small Telegram Bot API client on libcurl: JSON methods, and file downloads streamed to a
// sink. The bot token is part of every URL, so no error or log text ever contains a URL.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <functional>
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

  // GET <base>/file/bot<token>/<file_path>, each chunk handed to `sink` (false stops).
  // `on_headers` receives the HTTP status and Content-Type before the first chunk.
  Status download(
      const std::string& file_path,
      const std::function<void(int status, const std::string& content_type)>& on_headers,
      const std::function<bool(std::string_view)>& sink, std::chrono::milliseconds timeout) const;

 private:
  std::string base_url_;
  std::string token_;
};

}  // namespace omnigate::telegram

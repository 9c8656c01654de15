#include "connectors/telegram/bot_api.hpp"

#include <curl/curl.h>

#include <memory>
#include <mutex>

#include "gateway/model/json_input.hpp"

namespace omnigate::telegram {
namespace {

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;
using CurlList = std::unique_ptr<curl_slist, SlistDeleter>;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t append_body(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

int cancel_check(void* flag, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* cancel = static_cast<const std::atomic<bool>*>(flag);
  return cancel != nullptr && cancel->load() ? 1 : 0;
}

}  // namespace

BotApi::BotApi(std::string base_url, std::string token)
    : base_url_(std::move(base_url)), token_(std::move(token)) {
  while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
  global_init();
}

ApiResponse BotApi::call(const std::string& method, const nlohmann::json& params,
                         std::chrono::milliseconds timeout, const std::atomic<bool>* cancel) const {
  ApiResponse out;
  CurlHandle curl(curl_easy_init());
  if (!curl) {
    out.transport_error = "cannot create a curl handle";
    return out;
  }
  std::string url = base_url_ + "/bot" + token_ + "/" + method;
  std::string body = params.dump();
  std::string response;
  CurlList headers(curl_slist_append(nullptr, "Content-Type: application/json"));
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT_MS, 10'000L);
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  if (cancel != nullptr) {
    curl_easy_setopt(curl.get(), CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl.get(), CURLOPT_XFERINFOFUNCTION, cancel_check);
    curl_easy_setopt(curl.get(), CURLOPT_XFERINFODATA, cancel);
  }
  CURLcode code = curl_easy_perform(curl.get());
  if (code != CURLE_OK) {
    out.transport_error = curl_easy_strerror(code);  // never the URL: it holds the token
    return out;
  }
  out.transport_ok = true;
  long status = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
  out.http_status = static_cast<int>(status);
  // The answer is copied into `result` and each update re-read: cap its nesting like a request's.
  if (!json_depth_within(response)) {
    out.description = "the Bot API answered HTTP " + std::to_string(status) +
                      " with JSON nested deeper than " + std::to_string(limits::kMaxJsonDepth);
    return out;
  }
  auto json = nlohmann::json::parse(response, nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    out.description =
        "the Bot API answered HTTP " + std::to_string(status) + " without a JSON object";
    return out;
  }
  out.ok = json.value("ok", false);
  if (json.contains("result")) out.result = json["result"];
  out.error_code = json.value("error_code", 0);
  out.description = json.value("description", "");
  if (json.contains("parameters") && json["parameters"].is_object()) {
    out.retry_after = json["parameters"].value("retry_after", 0);
  }
  return out;
}

Status BotApi::download(const std::string& file_path,
                        const std::function<void(int, const std::string&)>& on_headers,
                        const std::function<bool(std::string_view)>& sink,
                        std::chrono::milliseconds timeout) const {
  struct Transfer {
    CURL* curl;
    const std::function<void(int, const std::string&)>* on_headers;
    const std::function<bool(std::string_view)>* sink;
    bool started = false;
    bool stopped = false;
  } transfer{nullptr, &on_headers, &sink};
  CurlHandle curl(curl_easy_init());
  if (!curl) return make_error(ErrorCode::internal, "media", "cannot create a curl handle");
  transfer.curl = curl.get();
  std::string url = base_url_ + "/file/bot" + token_ + "/" + file_path;
  auto write = [](char* data, size_t size, size_t count, void* user) -> size_t {
    auto* t = static_cast<Transfer*>(user);
    if (!t->started) {
      long status = 0;
      char* type = nullptr;
      curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
      curl_easy_getinfo(t->curl, CURLINFO_CONTENT_TYPE, &type);
      (*t->on_headers)(static_cast<int>(status), type ? type : "application/octet-stream");
      t->started = true;
    }
    if (!(*t->sink)(std::string_view(data, size * count))) {
      t->stopped = true;
      return 0;
    }
    return size * count;
  };
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, +write);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl.get(), CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  CURLcode code = curl_easy_perform(curl.get());
  if (code != CURLE_OK && !transfer.stopped) {
    return make_error(
        ErrorCode::not_durable, "media",
        std::string("downloading the file from Telegram failed: ") + curl_easy_strerror(code));
  }
  if (!transfer.started) on_headers(200, "application/octet-stream");  // an empty file
  return ok_status();
}

}  // namespace omnigate::telegram

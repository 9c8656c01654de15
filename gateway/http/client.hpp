// The one outbound HTTP client (libcurl): JSON calls and streamed downloads. libcurl is
// initialised once for the process here, and every curl handle of the codebase (the SMTP
// mailer's too) is owned by the deleters below. Nothing throws out of this file: failures are
// an Error with bad_gateway (no usable answer), upstream_timeout (no answer in time) or
// internal (no curl handle). Error details never contain the URL: provider URLs carry secrets
// (Telegram's bot token is a path segment).
#pragma once

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/core/error.hpp"

namespace omnigate::http {

// curl_global_init for the whole process, exactly once (it is not thread-safe and must precede
// every easy handle). Every function here calls it; other curl users call it before
// curl_easy_init.
void ensure_curl_initialized();

struct CurlEasyDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;
using CurlSlist = std::unique_ptr<curl_slist, CurlSlistDeleter>;

// A new easy handle after the process-wide init; empty when curl cannot allocate one.
CurlEasy make_curl_easy();
// Appends one line ("Name: value" or an SMTP recipient) to `list`; false when curl cannot.
bool append_line(CurlSlist& list, const std::string& line);

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct CallRequest {
  std::string method = "GET";  // GET, POST, PUT, DELETE
  std::string url;
  HeaderList headers;
  std::string body;                           // sent when not empty (or when method is POST/PUT)
  std::chrono::milliseconds timeout{15'000};  // the whole exchange
  std::chrono::milliseconds connect_timeout{10'000};
  size_t max_response_bytes = 8 * 1024 * 1024;  // a longer answer is bad_gateway
  const std::atomic<bool>* cancel = nullptr;    // set to abort (a long poll at shutdown)
};

struct CallResponse {
  int status = 0;
  std::string content_type;
  std::string body;
  // The body parsed as JSON; discarded (is_discarded()) when it is not JSON or nests deeper
  // than limits::kMaxJsonDepth.
  nlohmann::json json = nlohmann::json(nlohmann::json::value_t::discarded);
};

// One request, the whole answer in memory. Any HTTP status is a CallResponse (a 4xx answer is
// the provider's, for the caller to read); a transport failure is an Error: upstream_timeout
// when `timeout` passed, bad_gateway otherwise (refused, reset, an answer above the cap,
// cancelled).
Result<CallResponse> call(const CallRequest& request);
Result<CallResponse> get_json(const std::string& url, const HeaderList& headers,
                              std::chrono::milliseconds timeout);
Result<CallResponse> post_json(const std::string& url, const nlohmann::json& body,
                               const HeaderList& headers, std::chrono::milliseconds timeout);

struct DownloadRequest {
  std::string url;
  HeaderList headers;
  std::chrono::milliseconds timeout{120'000};  // the whole transfer
  std::chrono::milliseconds connect_timeout{10'000};
};

struct DownloadHandlers {
  // Once, before the first chunk (or when a 2xx answer with an empty body completes): the
  // status and the upstream Content-Type ("" when absent). Returning false cancels.
  std::function<bool(int status, std::string_view content_type)> on_first_byte;
  // Every chunk of the body, in order. Returning false cancels the transfer.
  std::function<bool(std::string_view chunk)> on_chunk;
  // Polled about once a second and on every chunk; true cancels the transfer.
  std::function<bool()> cancelled;
};

struct DownloadResult {
  int status = 0;
  uint64_t bytes = 0;
  bool cancelled = false;  // a handler or `cancelled` stopped it: not an error
};

// GET `url`, streamed. An HTTP status >= 400 is bad_gateway before any handler runs (the body
// of an error answer is not delivered), a transfer longer than `timeout` is upstream_timeout,
// any other transport failure bad_gateway. A cancelled transfer is a DownloadResult.
Result<DownloadResult> download(const DownloadRequest& request, const DownloadHandlers& handlers);

}  // namespace omnigate::http

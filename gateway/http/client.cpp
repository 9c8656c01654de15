#include "gateway/http/client.hpp"

#include <mutex>

#include "gateway/model/json_input.hpp"

namespace omnigate::http {
namespace {

using std::chrono::milliseconds;

Error transport_error(CURLcode code, milliseconds timeout) {
  if (code == CURLE_OPERATION_TIMEDOUT) {
    return make_error(ErrorCode::upstream_timeout, "upstream",
                      "no complete answer within " + std::to_string(timeout.count()) + " ms");
  }
  // curl_easy_strerror never names the URL (it may hold a token).
  return make_error(ErrorCode::bad_gateway, "upstream", curl_easy_strerror(code));
}

// Headers as a curl list; false when curl cannot allocate it.
bool header_list(const HeaderList& headers, CurlSlist& list) {
  for (const auto& [name, value] : headers) {
    if (!append_line(list, name + ": " + value)) return false;
  }
  return true;
}

void common_options(CURL* curl, const std::string& url, milliseconds timeout,
                    milliseconds connect_timeout) {
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for DNS timeouts
}

std::string content_type_of(CURL* curl) {
  char* type = nullptr;
  curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
  return type ? type : "";
}

struct Collected {
  std::string body;
  size_t cap;
  bool over_cap = false;
  const std::atomic<bool>* cancel;
};

size_t collect(char* data, size_t size, size_t count, void* user) {
  auto* out = static_cast<Collected*>(user);
  if (out->body.size() + size * count > out->cap) {
    out->over_cap = true;
    return 0;
  }
  out->body.append(data, size * count);
  return size * count;
}

int call_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* out = static_cast<Collected*>(user);
  return out->cancel != nullptr && out->cancel->load() ? 1 : 0;
}

struct Transfer {
  CURL* curl;
  const DownloadHandlers* handlers;
  DownloadResult result;
  bool started = false;
};

// The first byte (or the end of an empty body): the status and type go to on_first_byte.
void start(Transfer& t) {
  t.started = true;
  long status = 0;
  curl_easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &status);
  t.result.status = static_cast<int>(status);
  if (t.handlers->on_first_byte &&
      !t.handlers->on_first_byte(t.result.status, content_type_of(t.curl))) {
    t.result.cancelled = true;
  }
}

}  // namespace

void ensure_curl_initialized() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

CurlEasy make_curl_easy() {
  ensure_curl_initialized();
  return CurlEasy(curl_easy_init());
}

bool append_line(CurlSlist& list, const std::string& line) {
  curl_slist* grown = curl_slist_append(list.get(), line.c_str());
  if (grown == nullptr) return false;
  list.release();  // curl_slist_append returns the same head, now one longer
  list.reset(grown);
  return true;
}

Result<CallResponse> call(const CallRequest& request) {
  CurlEasy curl = make_curl_easy();
  if (!curl) return make_error(ErrorCode::internal, "upstream", "cannot create a curl handle");
  CurlSlist headers;
  if (!header_list(request.headers, headers))
    return make_error(ErrorCode::internal, "upstream", "cannot build the request headers");
  CURL* h = curl.get();
  common_options(h, request.url, request.timeout, request.connect_timeout);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  if (request.method == "POST" || request.method == "PUT" || !request.body.empty()) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  }
  if (request.method != "GET" && request.method != "POST")
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  Collected collected{{}, request.max_response_bytes, false, request.cancel};
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &collected);
  if (request.cancel != nullptr) {
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, call_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &collected);
  }
  CURLcode code = curl_easy_perform(h);
  if (collected.over_cap) {
    return make_error(
        ErrorCode::bad_gateway, "upstream",
        "the answer is larger than " + std::to_string(request.max_response_bytes) + " bytes");
  }
  if (code != CURLE_OK) return transport_error(code, request.timeout);
  CallResponse response;
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  response.status = static_cast<int>(status);
  response.content_type = content_type_of(h);
  response.body = std::move(collected.body);
  // An answer is re-read by the caller: cap its nesting like a request's.
  if (json_depth_within(response.body))
    response.json = nlohmann::json::parse(response.body, nullptr, false);
  return response;
}

Result<CallResponse> get_json(const std::string& url, const HeaderList& headers,
                              milliseconds timeout) {
  CallRequest request;
  request.url = url;
  request.headers = headers;
  request.headers.emplace_back("Accept", "application/json");
  request.timeout = timeout;
  return call(request);
}

Result<CallResponse> post_json(const std::string& url, const nlohmann::json& body,
                               const HeaderList& headers, milliseconds timeout) {
  CallRequest request;
  request.method = "POST";
  request.url = url;
  request.headers = headers;
  request.headers.emplace_back("Content-Type", "application/json");
  request.body = body.dump();
  request.timeout = timeout;
  return call(request);
}

Result<DownloadResult> download(const DownloadRequest& request, const DownloadHandlers& handlers) {
  CurlEasy curl = make_curl_easy();
  if (!curl) return make_error(ErrorCode::internal, "upstream", "cannot create a curl handle");
  CurlSlist headers;
  if (!header_list(request.headers, headers))
    return make_error(ErrorCode::internal, "upstream", "cannot build the request headers");
  Transfer transfer{curl.get(), &handlers, {}, false};
  auto write = [](char* data, size_t size, size_t count, void* user) -> size_t {
    auto* t = static_cast<Transfer*>(user);
    if (!t->started) start(*t);
    if (t->result.cancelled || (t->handlers->cancelled && t->handlers->cancelled())) {
      t->result.cancelled = true;
      return 0;
    }
    if (t->handlers->on_chunk && !t->handlers->on_chunk(std::string_view(data, size * count))) {
      t->result.cancelled = true;
      return 0;
    }
    t->result.bytes += size * count;
    return size * count;
  };
  auto progress = [](void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> int {
    auto* t = static_cast<Transfer*>(user);
    if (t->handlers->cancelled && t->handlers->cancelled()) t->result.cancelled = true;
    return t->result.cancelled ? 1 : 0;
  };
  CURL* h = curl.get();
  common_options(h, request.url, request.timeout, request.connect_timeout);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);  // an error answer's body is not the file
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, +write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, +progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &transfer);
  CURLcode code = curl_easy_perform(h);
  if (transfer.result.cancelled) return transfer.result;
  if (code == CURLE_HTTP_RETURNED_ERROR) {
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    return make_error(ErrorCode::bad_gateway, "upstream",
                      "the upstream answered HTTP " + std::to_string(status));
  }
  if (code != CURLE_OK) return transport_error(code, request.timeout);
  if (!transfer.started) start(transfer);  // a complete empty body
  return transfer.result;
}

}  // namespace omnigate::http

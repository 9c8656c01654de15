// What a connector sees of an HTTP request and hands back: plain values, no server types,
// so handlers can be driven by tests without a socket.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/core/error.hpp"
#include "gateway/core/limits.hpp"
#include "gateway/core/strings.hpp"

namespace omnigate {

struct InboundRequest {
  std::string_view method;
  std::string_view path;
  std::string_view account;  // the <account> path segment of /v1/<channel>/<account>
  std::string_view body;
  std::string_view remote_addr;
  // The body's size as received, multipart files included (what an account's max_body caps);
  // `body` is empty for a multipart body, whose fields are in `multipart`.
  uint64_t body_bytes = 0;
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  std::vector<std::pair<std::string_view, std::string_view>> query;
  // multipart/form-data fields as parsed by the server (name, content); files are not kept.
  std::vector<std::pair<std::string_view, std::string_view>> multipart;
  // When the gateway must have answered; publishing retries stop here.
  std::chrono::steady_clock::time_point deadline;

  // First value of a header (case-insensitive name), "" when absent.
  std::string_view header(std::string_view name) const;
  bool has_header(std::string_view name) const;
  // Every value of a repeated header joined with ", " (X-Forwarded-For added by several proxies).
  std::string header_joined(std::string_view name) const;
  std::string_view query_param(std::string_view name) const;
  // The media type of Content-Type, lower-cased, without parameters ("application/json").
  std::string media_type() const;
};

struct Reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Set for a body that is produced while it is sent (a proxied file): called once with a
  // writer; returns false when the transfer failed (the connection is then cut).
  using Writer = std::function<bool(std::string_view chunk)>;
  std::function<bool(const Writer& write)> stream;

  static Reply json(int status, const nlohmann::json& body);
  static Reply text(int status, std::string body,
                    std::string content_type = "text/plain; charset=utf-8");
  // The JSON error format of ARCHITECTURE: {"error": {"code": ..., "message": ...}}.
  // 429 and 503 carry Retry-After: `retry_after` when given, else the gateway adds the
  // configured http.retry_after.
  static Reply html(int status, std::string body);
  static Reply redirect(std::string location);  // 303 See Other
  // `details`: extra members of the error object (e.g. "fields" a form misses).
  static Reply error(const Error& error, std::optional<std::chrono::seconds> retry_after = {},
                     const nlohmann::json& details = nullptr);
};

}  // namespace omnigate

// One error type for the request path, and the one table that maps its codes to HTTP
// statuses and metric labels. Nothing on the request path throws across a component
// boundary: functions return Result<T>.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace omnigate {

enum class ErrorCode {
  bad_request,         // 400: the body cannot be parsed (bad JSON, bad encoding)
  invalid_field,       // 400: parsed, but a field has the wrong type or value
  missing_header,      // 400: a required header (Idempotency-Key) is absent
  unauthorized,        // 401: missing or wrong token / secret
  signature_invalid,   // 401: a signature over the body (HMAC) is missing or does not match
  forbidden,           // 403: authenticated, not allowed (e.g. bad signature on a body field)
  not_found,           // 404: unknown route
  unknown_account,     // 404: the route exists, the account is not configured
  method_not_allowed,  // 405
  gone,                // 410: a link or token that was valid has expired
  payload_too_large,   // 413
  unsupported_media,   // 415
  unprocessable,       // 422: well-formed, but required content missing
  rate_limited,        // 429 (+ Retry-After)
  internal,            // 500: a bug; logged with its detail
  not_durable,         // 503 (+ Retry-After): cannot make the interaction durable now
  bad_gateway,         // 502: an upstream (a provider's file server) failed or answered an error
  overloaded,          // 503 (+ Retry-After): every worker of a bounded pool is busy
  upstream_timeout,    // 504: an upstream did not answer in time
};

struct ErrorSpec {
  std::string_view name;  // the JSON "code" and the metric label
  int http_status;
};

// The single code → (name, status) table.
const ErrorSpec& spec_of(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::internal;
  std::string stage;   // route | verify | parse | normalize | enrich | publish | config
  std::string detail;  // human-readable, safe to show the caller: never message text or PII

  std::string_view name() const { return spec_of(code).name; }
  int http_status() const { return spec_of(code).http_status; }
};

inline Error make_error(ErrorCode code, std::string stage, std::string detail) {
  return Error{code, std::move(stage), std::move(detail)};
}

// A value or an Error; the request path's replacement for exceptions.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

struct Ok {};
using Status = Result<Ok>;
inline Status ok_status() {
  return Ok{};
}

}  // namespace omnigate

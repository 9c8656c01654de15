// HTTP/1.1 request framing and the connection limits, shared by both servers: the guarded
// cpp-httplib server (gateway/http/http_guard.hpp, which parses heads with cpp-httplib) and the
// event-loop front (gateway/http/loop_server.hpp, which parses them here). Nothing here blocks,
// allocates per byte or recurses: every function takes bytes already read and says how far
// they go.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/http/client_ip.hpp"

namespace omnigate {

struct HttpGuardLimits {
  size_t threads = 64;
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds keep_alive_timeout{5'000};
  std::chrono::milliseconds read_timeout{10'000};
  std::chrono::milliseconds write_timeout{10'000};
  size_t max_headers = 100;
  size_t max_header_bytes = 32 * 1024;
  int max_connections_per_ip = 64;
  int keep_alive_max_requests = 100'000;
  TrustedProxies exempt;  // trusted proxies: no per-IP connection cap
};

// Why the guard cut a request or connection short (a metrics label, a bounded set).
enum class GuardEvent {
  per_ip_cap,        // connection refused: too many open from one address
  header_timeout,    // the request head did not arrive within http.header_timeout
  header_too_large,  // more than http.max_headers lines or http.max_header_bytes
  bad_framing,       // conflicting Content-Length, unsupported Transfer-Encoding, bad chunk
  incomplete_body,   // answered before the body was complete: connection closed
};
std::string_view guard_event_name(GuardEvent event);

// RFC 9112 §7.1 chunked framing, checked on the bytes as they are read: strict hex sizes, CRLF
// after every chunk, no trailers (neither server reads them), and the end is the end.
class ChunkedFraming {
 public:
  // Consumes bytes up to the end of the body; returns how many, or -1 when the framing is bad.
  // With `data_out`, the chunks' data is appended to it (the decoded body).
  ssize_t feed(const char* data, size_t n, std::string* data_out = nullptr);
  bool done() const { return state_ == State::done; }

 private:
  enum class State { size, extension, size_lf, data, data_cr, data_lf, last_cr, last_lf, done };
  State state_ = State::size;
  uint64_t size_ = 0;
  int digits_ = 0;
  int extension_ = 0;
};

// How a request's body is framed, from every value of its Content-Length and
// Transfer-Encoding headers (RFC 9112 §6.3). A request with both, with two lengths, with a
// length that is not a number or with a transfer coding other than chunked is refused: a proxy
// in front may have framed it differently (request smuggling, CWE-444).
struct BodyFraming {
  enum class Kind { none, length, chunked, refused };
  Kind kind = Kind::none;
  uint64_t length = 0;       // Kind::length
  const char* problem = "";  // Kind::refused: why, for the 400 answer
};
BodyFraming body_framing(std::span<const std::string_view> content_lengths,
                         std::span<const std::string_view> transfer_encodings);

// A request head as read by the event-loop front: views into the connection's buffer.
struct RequestHead {
  std::string_view method;
  std::string_view target;  // as sent: path and query
  std::string_view path;    // target before '?', not decoded
  std::string_view query;   // after '?', not decoded ("" when absent)
  int minor_version = 1;    // HTTP/1.<minor>
  std::vector<std::pair<std::string_view, std::string_view>> headers;  // values trimmed

  // First value of a header (case-insensitive name), "" when absent.
  std::string_view header(std::string_view name) const;
  // Whether the connection may serve another request after this one (RFC 9112 §9.3).
  bool keep_alive() const;
  // "Expect: 100-continue": the client waits for an interim answer before sending its body.
  bool expects_continue() const;
};

// Where a request head ends: the offset just past the empty line that ends it, or npos.
// `scanned` (in/out) is how much of `bytes` earlier calls searched already, `lines` (in/out)
// the line ends among them; a caller checks both against its limits before reading more.
size_t find_head_end(std::string_view bytes, size_t& scanned, size_t& lines);

struct HeadParse {
  int status = 0;  // 0: parsed; else the answer (400, 501, 505)
  const char* problem = "";
};
// Parses a complete head (what find_head_end delimited). Strict where leniency lets two parsers
// disagree: no whitespace before a header's colon, no folded lines, no control bytes, an
// origin-form target.
HeadParse parse_request_head(std::string_view head, RequestHead& out);

// "Not Found" for 404, "" for a code without a phrase here.
std::string_view status_reason(int status);

}  // namespace omnigate

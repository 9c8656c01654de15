#include "gateway/http/framing.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>

#include "gateway/core/strings.hpp"

namespace omnigate {

std::string_view guard_event_name(GuardEvent event) {
  switch (event) {
    case GuardEvent::per_ip_cap:
      return "per_ip_cap";
    case GuardEvent::header_timeout:
      return "header_timeout";
    case GuardEvent::header_too_large:
      return "header_too_large";
    case GuardEvent::bad_framing:
      return "bad_framing";
    case GuardEvent::incomplete_body:
      return "incomplete_body";
  }
  return "unknown";
}

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  return (c | 0x20) - 'a' + 10;
}

bool all_digits(std::string_view s) {
  return !s.empty() && s.size() <= 19 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// RFC 9110 §5.6.2 tchar, as a table: no locale lookup per byte of every header name.
constexpr std::array<bool, 256> kTokenChars = [] {
  std::array<bool, 256> table{};
  for (int c = '0'; c <= '9'; ++c) table[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) table[c] = table[c - 'a' + 'A'] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) table[static_cast<unsigned char>(c)] = true;
  return table;
}();

bool is_token_char(unsigned char c) {
  return kTokenChars[c];
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return is_token_char(static_cast<unsigned char>(c));
  });
}

// A field value's bytes: HTAB, SP, visible ASCII and obs-text; never CR, LF, NUL or DEL.
bool is_field_value(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c == '\t' || (c >= 0x20 && c != 0x7f);
  });
}

// A request target's bytes: visible ASCII (RFC 3986 characters; obs-text and spaces refused).
bool is_target(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c > 0x20 && c < 0x7f;
  });
}

std::string_view strip_cr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Whether a comma-separated header value lists `token` (case-insensitive).
bool lists_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    if (iequals(trim_ows(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

ssize_t ChunkedFraming::feed(const char* data, size_t n, std::string* data_out) {
  size_t i = 0;
  while (i < n && state_ != State::done) {
    char c = data[i];
    switch (state_) {
      case State::size:
        if (std::isxdigit(static_cast<unsigned char>(c))) {
          if (++digits_ > 15) return -1;
          size_ = size_ * 16 + static_cast<uint64_t>(hex_value(c));
        } else if (digits_ > 0 && c == ';') {
          state_ = State::extension;
        } else if (digits_ > 0 && c == '\r') {
          state_ = State::size_lf;
        } else {
          return -1;
        }
        ++i;
        break;
      case State::extension:
        if (c == '\n' || ++extension_ > 256) return -1;
        if (c == '\r') state_ = State::size_lf;
        ++i;
        break;
      case State::size_lf:
        if (c != '\n') return -1;
        state_ = size_ == 0 ? State::last_cr : State::data;
        ++i;
        break;
      case State::data: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(size_, n - i));
        if (data_out) data_out->append(data + i, take);
        size_ -= take;
        i += take;
        if (size_ == 0) state_ = State::data_cr;
        break;
      }
      case State::data_cr:
        if (c != '\r') return -1;
        state_ = State::data_lf;
        ++i;
        break;
      case State::data_lf:
        if (c != '\n') return -1;
        state_ = State::size;
        digits_ = 0;
        extension_ = 0;
        ++i;
        break;
      case State::last_cr:
        if (c != '\r') return -1;  // a trailer section: not supported
        state_ = State::last_lf;
        ++i;
        break;
      case State::last_lf:
        if (c != '\n') return -1;
        state_ = State::done;
        ++i;
        break;
      case State::done:
        break;
    }
  }
  return static_cast<ssize_t>(i);
}

BodyFraming body_framing(std::span<const std::string_view> content_lengths,
                         std::span<const std::string_view> transfer_encodings) {
  BodyFraming framing;
  auto refuse = [&](const char* why) {
    framing.kind = BodyFraming::Kind::refused;
    framing.problem = why;
    return framing;
  };
  if (!transfer_encodings.empty()) {
    if (!content_lengths.empty())
      return refuse("both Content-Length and Transfer-Encoding are present");
    if (transfer_encodings.size() > 1 || !iequals(transfer_encodings[0], "chunked"))
      return refuse("Transfer-Encoding other than chunked is not supported");
    framing.kind = BodyFraming::Kind::chunked;
    return framing;
  }
  if (content_lengths.size() > 1) return refuse("more than one Content-Length");
  if (content_lengths.size() == 1) {
    if (!all_digits(content_lengths[0])) return refuse("Content-Length is not a number");
    framing.kind = BodyFraming::Kind::length;
    framing.length = std::stoull(std::string(content_lengths[0]));
  }
  return framing;
}

std::string_view RequestHead::header(std::string_view name) const {
  for (const auto& [key, value] : headers)
    if (iequals(key, name)) return value;
  return {};
}

bool RequestHead::keep_alive() const {
  bool close = false, keep = false;
  for (const auto& [key, value] : headers) {
    if (!iequals(key, "Connection")) continue;
    close = close || lists_token(value, "close");
    keep = keep || lists_token(value, "keep-alive");
  }
  if (close) return false;
  return minor_version >= 1 || keep;
}

bool RequestHead::expects_continue() const {
  return minor_version >= 1 && iequals(header("Expect"), "100-continue");
}

size_t find_head_end(std::string_view bytes, size_t& scanned, size_t& lines) {
  const char* data = bytes.data();
  size_t i = scanned;
  while (i < bytes.size()) {
    const void* found = std::memchr(data + i, '\n', bytes.size() - i);
    if (!found) break;
    size_t at = static_cast<size_t>(static_cast<const char*>(found) - data);
    ++lines;
    // An empty line (LF or CRLF right after the previous LF) ends the head.
    bool empty_line = (at >= 1 && data[at - 1] == '\n') ||
                      (at >= 2 && data[at - 1] == '\r' && data[at - 2] == '\n');
    if (empty_line) {
      scanned = at + 1;
      return at + 1;
    }
    i = at + 1;
  }
  scanned = bytes.size();
  return std::string_view::npos;
}

HeadParse parse_request_head(std::string_view head, RequestHead& out) {
  auto bad = [](int status, const char* why) { return HeadParse{status, why}; };
  size_t eol = head.find('\n');
  if (eol == std::string_view::npos) return bad(400, "the request line does not end");
  std::string_view line = strip_cr(head.substr(0, eol));
  head.remove_prefix(eol + 1);

  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return bad(400, "the request line is not \"METHOD target HTTP/1.x\"");
  out.method = line.substr(0, sp1);
  out.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!is_token(out.method) || out.method.size() > 32) return bad(400, "the method is not a token");
  if (!is_target(out.target)) return bad(400, "the request target holds spaces or control bytes");
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      !std::isdigit(static_cast<unsigned char>(version[5])) ||
      !std::isdigit(static_cast<unsigned char>(version[7])))
    return bad(400, "the protocol is not HTTP/1.x");
  if (version[5] != '1' || (version[7] != '0' && version[7] != '1'))
    return bad(505, "only HTTP/1.0 and HTTP/1.1 are served");
  out.minor_version = version[7] - '0';
  if (out.target.front() != '/') {
    if (out.target != "*" || out.method != "OPTIONS")
      return bad(400, "the request target is not a path (origin-form)");
  }
  size_t question = out.target.find('?');
  out.path = out.target.substr(0, question);
  out.query =
      question == std::string_view::npos ? std::string_view{} : out.target.substr(question + 1);

  out.headers.clear();
  while (!head.empty()) {
    eol = head.find('\n');
    if (eol == std::string_view::npos) return bad(400, "a header line does not end");
    line = strip_cr(head.substr(0, eol));
    head.remove_prefix(eol + 1);
    if (line.empty()) break;  // the end of the head
    if (line.front() == ' ' || line.front() == '\t')
      return bad(400, "folded header lines are not accepted");
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return bad(400, "a header line has no colon");
    std::string_view name = line.substr(0, colon);
    if (!is_token(name)) return bad(400, "a header name is not a token (no space before ':')");
    std::string_view value = trim_ows(line.substr(colon + 1));
    if (!is_field_value(value)) return bad(400, "a header value holds control bytes");
    out.headers.emplace_back(name, value);
  }
  return {};
}

std::string_view status_reason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
  }
  return "";
}

}  // namespace omnigate

// The shared HTTP/1.1 framing: where a head ends (however the bytes are split), what a head
// parses to and which heads are refused, how a body is framed, chunked decoding.
#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "gateway/http/framing.hpp"

using namespace omnigate;

namespace {

HeadParse parse(std::string_view head, RequestHead& out) {
  return parse_request_head(head, out);
}

int status_of(std::string_view head) {
  RequestHead out;
  return parse(head, out).status;
}

}  // namespace

TEST_CASE("find_head_end finds the empty line however the bytes arrive", "[http][framing]") {
  const std::string head =
      "POST /v1/telegram/main HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n";
  const std::string bytes = head + "{}";
  for (size_t split = 0; split <= bytes.size(); ++split) {
    size_t scanned = 0, lines = 0;
    size_t end = find_head_end(std::string_view(bytes).substr(0, split), scanned, lines);
    if (split < head.size()) {
      CHECK(end == std::string_view::npos);
      end = find_head_end(bytes, scanned, lines);  // the rest arrives
    }
    CHECK(end == head.size());
    CHECK(lines == 4);
  }
  // Bare LF line ends are line ends too (RFC 9112 §2.2).
  size_t scanned = 0, lines = 0;
  CHECK(find_head_end("GET / HTTP/1.1\nHost: x\n\nrest", scanned, lines) == 24);
}

TEST_CASE("parse_request_head reads the request line and the headers", "[http][framing]") {
  RequestHead head;
  auto parsed = parse(
      "POST /v1/api/crm?x=1&y=%20 HTTP/1.1\r\nHost: gw\r\nX-Key:   spaced value \t\r\n"
      "x-key: second\r\n\r\n",
      head);
  REQUIRE(parsed.status == 0);
  CHECK(head.method == "POST");
  CHECK(head.target == "/v1/api/crm?x=1&y=%20");
  CHECK(head.path == "/v1/api/crm");
  CHECK(head.query == "x=1&y=%20");
  CHECK(head.minor_version == 1);
  REQUIRE(head.headers.size() == 3);
  CHECK(head.header("x-KEY") == "spaced value");  // first value, case-insensitive, trimmed
  CHECK(head.header("Absent").empty());
  CHECK(head.keep_alive());
  CHECK_FALSE(head.expects_continue());
}

TEST_CASE("parse_request_head refuses what two parsers could read differently", "[http][framing]") {
  CHECK(status_of("GET / HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
  CHECK(status_of("OPTIONS * HTTP/1.1\r\n\r\n") == 0);
  CHECK(status_of("GET / HTTP/1.1\r\nHost : x\r\n\r\n") == 400);         // space before colon
  CHECK(status_of("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n") == 400);  // obs-fold
  CHECK(status_of("GET / HTTP/1.1\r\nNoColon\r\n\r\n") == 400);
  CHECK(status_of("GET / HTTP/1.1\r\nA: b\x01\r\n\r\n") == 400);  // a control byte
  CHECK(status_of("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n") == 400);   // a bare CR
  CHECK(status_of("GET http://evil/ HTTP/1.1\r\n\r\n") == 400);   // absolute-form
  CHECK(status_of("GET /a b HTTP/1.1\r\n\r\n") == 400);           // a space in the target
  CHECK(status_of("G(T / HTTP/1.1\r\n\r\n") == 400);              // not a token
  CHECK(status_of("GET / HTTP/2.0\r\n\r\n") == 505);
  CHECK(status_of("GET / HTTP/1.2\r\n\r\n") == 505);
  CHECK(status_of("GET / FTP/1.1\r\n\r\n") == 400);
  CHECK(status_of("GET /\r\n\r\n") == 400);  // HTTP/0.9
  RequestHead head;
  auto refused = parse("GET / HTTP/1.1\r\nHost : x\r\n\r\n", head);
  CHECK(std::string(refused.problem).find("header name") != std::string::npos);
}

TEST_CASE("keep-alive follows the version and the Connection header", "[http][framing]") {
  RequestHead head;
  REQUIRE(parse("GET / HTTP/1.0\r\n\r\n", head).status == 0);
  CHECK_FALSE(head.keep_alive());
  REQUIRE(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", head).status == 0);
  CHECK(head.keep_alive());
  REQUIRE(parse("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n", head).status == 0);
  CHECK_FALSE(head.keep_alive());
  REQUIRE(parse("POST / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n", head).status == 0);
  CHECK(head.expects_continue());
}

TEST_CASE("body_framing accepts one length or chunked and refuses the rest", "[http][framing]") {
  using Kind = BodyFraming::Kind;
  using Views = std::vector<std::string_view>;
  CHECK(body_framing(Views{}, Views{}).kind == Kind::none);
  auto length = body_framing(Views{"42"}, Views{});
  CHECK(length.kind == Kind::length);
  CHECK(length.length == 42);
  CHECK(body_framing(Views{}, Views{"Chunked"}).kind == Kind::chunked);
  CHECK(body_framing(Views{"1", "1"}, Views{}).kind == Kind::refused);
  CHECK(body_framing(Views{"-1"}, Views{}).kind == Kind::refused);
  CHECK(body_framing(Views{"1e3"}, Views{}).kind == Kind::refused);
  CHECK(body_framing(Views{"99999999999999999999"}, Views{}).kind == Kind::refused);
  CHECK(body_framing(Views{"3"}, Views{"chunked"}).kind == Kind::refused);
  CHECK(body_framing(Views{}, Views{"gzip, chunked"}).kind == Kind::refused);
  CHECK(body_framing(Views{}, Views{"chunked", "chunked"}).kind == Kind::refused);
  CHECK(std::string(body_framing(Views{"3"}, Views{"chunked"}).problem).find("both") !=
        std::string::npos);
}

TEST_CASE("ChunkedFraming decodes byte by byte and stops at the end", "[http][framing]") {
  const std::string body = "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\nGET /next";
  ChunkedFraming framing;
  std::string decoded;
  size_t taken = 0;
  for (char c : body) {
    if (framing.done()) break;
    ssize_t n = framing.feed(&c, 1, &decoded);
    REQUIRE(n >= 0);
    taken += static_cast<size_t>(n);
  }
  CHECK(framing.done());
  CHECK(decoded == "hello, world");
  CHECK(body.substr(taken) == "GET /next");  // the next request is not eaten

  for (std::string bad :
       {"x\r\n", "5\r\nhelloX", "5\nhello", "0\r\nTrailer: x\r\n\r\n", "ffffffffffffffff\r\n"}) {
    ChunkedFraming refuses;
    CHECK(refuses.feed(bad.data(), bad.size()) < 0);
  }
}

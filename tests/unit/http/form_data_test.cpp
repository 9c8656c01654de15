// The front's own decoding of what cpp-httplib decodes for a handler: multipart/form-data
// fields (RFC 7578) and a percent-encoded path.
#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include "gateway/core/strings.hpp"
#include "gateway/http/form_data.hpp"

using namespace omnigate;

namespace {

const std::string kType = "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW";

std::string part(std::string_view disposition, std::string_view content) {
  std::string out = "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\nContent-Disposition: ";
  out.append(disposition).append("\r\n\r\n").append(content).append("\r\n");
  return out;
}

const std::string kClose = "------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n";

}  // namespace

TEST_CASE("multipart: fields and a file as a browser sends them", "[unit][form_data]") {
  std::string body = part("form-data; name=\"name\"", "Иван Петров") +
                     part("form-data; name=\"comment\"", "line one\r\nline two") +
                     "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n"
                     "Content-Disposition: form-data; name=\"cv\"; filename=\"cv.txt\"\r\n"
                     "Content-Type: text/plain\r\n\r\nfile bytes\r\n" +
                     kClose;
  FormParse parsed = parse_multipart_form(kType, body, 10);
  REQUIRE(parsed.problem == nullptr);
  REQUIRE(parsed.parts.size() == 3);
  CHECK(parsed.parts[0].name == "name");
  CHECK(parsed.parts[0].content == "Иван Петров");
  CHECK(parsed.parts[0].filename.empty());
  CHECK(parsed.parts[1].content == "line one\r\nline two");  // a line end inside is content
  CHECK(parsed.parts[2].name == "cv");
  CHECK(parsed.parts[2].filename == "cv.txt");
  CHECK(parsed.parts[2].content == "file bytes");
}

TEST_CASE("multipart: a quoted boundary, a preamble and an empty field", "[unit][form_data]") {
  const std::string type = "multipart/form-data; charset=utf-8; boundary=\"a b:c\"";
  const std::string body =
      "preamble\r\n--a b:c\r\nContent-Disposition: form-data; name=phone\r\n\r\n\r\n--a b:c--";
  FormParse parsed = parse_multipart_form(type, body, 10);
  REQUIRE(parsed.problem == nullptr);
  REQUIRE(parsed.parts.size() == 1);
  CHECK(parsed.parts[0].name == "phone");
  CHECK(parsed.parts[0].content.empty());
}

TEST_CASE("multipart: malformed bodies are refused with what is wrong", "[unit][form_data]") {
  CHECK(parse_multipart_form("multipart/form-data", "x", 10).problem != nullptr);
  CHECK(parse_multipart_form(kType, "no boundary line here", 10).problem != nullptr);
  // A part its boundary never closes (the body was cut).
  CHECK(parse_multipart_form(kType, part("form-data; name=\"a\"", "value"), 10).problem != nullptr);
  // A part without Content-Disposition: form-data.
  std::string anonymous =
      "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\nContent-Type: text/plain\r\n\r\nx\r\n" + kClose;
  CHECK(parse_multipart_form(kType, anonymous, 10).problem != nullptr);
  // More parts than allowed.
  std::string many;
  for (int i = 0; i < 5; ++i) many += part("form-data; name=\"f\"", "v");
  many += kClose;
  CHECK(parse_multipart_form(kType, many, 5).problem == nullptr);
  CHECK(std::string(parse_multipart_form(kType, many, 4).problem).find("too many") !=
        std::string::npos);
  // A boundary longer than RFC 2046 allows.
  CHECK(multipart_boundary("multipart/form-data; boundary=" + std::string(71, 'b')).empty());
}

TEST_CASE("multipart: a part is read within its own delimiters only", "[unit][form_data]") {
  // The delimiter right after the headers' last line end: an empty value, the next part kept.
  const std::string tight =
      "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\nContent-Disposition: form-data; name=\"a\"\r\n"
      "\r\n------WebKitFormBoundary7MA4YWxkTrZu0gW\r\nContent-Disposition: form-data; "
      "name=\"b\"\r\n\r\nvalue\r\n" +
      kClose;
  FormParse parsed = parse_multipart_form(kType, tight, 10);
  REQUIRE(parsed.problem == nullptr);
  REQUIRE(parsed.parts.size() == 2);
  CHECK(parsed.parts[0].name == "a");
  CHECK(parsed.parts[0].content.empty());
  CHECK(parsed.parts[1].name == "b");
  CHECK(parsed.parts[1].content == "value");
  // Headers without their empty line are not merged into the next part: refused.
  const std::string unended =
      "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\nContent-Disposition: form-data; name=\"a\""
      "\r\n------WebKitFormBoundary7MA4YWxkTrZu0gW\r\nContent-Disposition: form-data; "
      "name=\"b\"\r\n\r\nvalue\r\n" +
      kClose;
  CHECK(std::string(parse_multipart_form(kType, unended, 10).problem).find("empty line") !=
        std::string::npos);
  // A part without a name says nothing a handler could use: refused.
  CHECK(parse_multipart_form(kType, part("form-data", "x") + kClose, 10).problem != nullptr);
}

TEST_CASE("a path is percent-decoded, a bad escape reported", "[unit][form_data]") {
  CHECK(percent_decode_path("/v1/media/tg/%61cc/x%2Fy") == "/v1/media/tg/acc/x/y");
  CHECK(percent_decode_path("/a+b") == "/a+b");
  CHECK_FALSE(percent_decode_path("/bad%2").has_value());
  CHECK_FALSE(percent_decode_path("/bad%zz").has_value());
  CHECK_FALSE(percent_decode_path("%").has_value());
}

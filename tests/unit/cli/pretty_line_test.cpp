// `omnigate tail --pretty` (gateway/app/tail.hpp): one line per interaction for a person.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "gateway/app/tail.hpp"

using nlohmann::json;

namespace {
size_t code_points(const std::string& text) {
  size_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}
}  // namespace

TEST_CASE("pretty lines cut the text at 80 characters, not bytes, and stay on one line",
          "[cli][pretty]") {
  std::string text;
  for (int i = 0; i < 30; ++i) text += "Привет\n";  // 210 characters, 2 bytes each but \n
  json in = {{"kind", "message"},
             {"channel", "telegram"},
             {"account", "shopbot"},
             {"occurred_at", "2026-12-01T09:30:00Z"},
             {"contact", {{"display_name", "Анна\tК."}}},
             {"message", {{"native_id", "1"}, {"text", text}}}};
  std::string line = omnigate::pretty_line(in);
  CAPTURE(line);
  CHECK(line.find('\n') == std::string::npos);
  CHECK(line.find('\t') == std::string::npos);
  CHECK_THAT(line, Catch::Contains("  telegram/shopbot  message  Анна К.: Привет Привет"));
  const std::string shown = line.substr(line.find(": ") + 2);
  CHECK(code_points(shown) == 81);  // 80 characters and the ellipsis
  CHECK_THAT(shown, Catch::EndsWith("…"));
  CHECK(json(shown).dump().size() > 0);  // valid UTF-8: nlohmann would throw on a cut byte
}

TEST_CASE("pretty lines summarize every kind without a text", "[cli][pretty]") {
  json lead = {{"kind", "lead"},
               {"channel", "webform"},
               {"account", "callback"},
               {"occurred_at", "bad time"},
               {"lead", {{"form", "callback"}, {"fields", {{"name", "Иван"}}}}}};
  CHECK_THAT(omnigate::pretty_line(lead),
             Catch::StartsWith("bad time  webform/callback  lead  -: callback name=Иван"));
  json consent = {{"kind", "consent"},
                  {"channel", "webform"},
                  {"account", "callback"},
                  {"consent", {{{"purpose", "marketing"}, {"status", "withdrawn"}}}}};
  CHECK_THAT(omnigate::pretty_line(consent), Catch::EndsWith("consent  -: marketing withdrawn"));
  json reaction = {{"kind", "reaction"},
                   {"channel", "telegram"},
                   {"account", "b"},
                   {"reaction", {{"of", "1"}, {"emoji", "👍"}}}};
  CHECK_THAT(omnigate::pretty_line(reaction), Catch::EndsWith("reaction  -: 👍"));
  json photo = {{"kind", "message"},
                {"channel", "vk"},
                {"account", "main"},
                {"message", {{"native_id", "1"}, {"attachments", json::array({json::object()})}}}};
  CHECK_THAT(omnigate::pretty_line(photo), Catch::EndsWith("message  -: [1 attachment(s)]"));
}

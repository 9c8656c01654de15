#include "gateway/model/json_input.hpp"

#include <string>

namespace omnigate {

bool json_depth_within(std::string_view text, size_t max_depth) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;  // the escaped character cannot end the string
      else if (c == '"')
        in_string = false;
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > max_depth) return false;
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return true;
}

Error json_too_deep_error() {
  return make_error(ErrorCode::bad_request, "parse",
                    "the body is not valid JSON: arrays and objects are nested deeper than " +
                        std::to_string(limits::kMaxJsonDepth) + " levels");
}

Result<nlohmann::json> parse_request_json(std::string_view body) {
  if (!json_depth_within(body)) return json_too_deep_error();
  try {
    return nlohmann::json::parse(body.begin(), body.end());
  } catch (const nlohmann::json::exception& e) {
    // e.what() reads "[json.exception.parse_error.101] parse error at line 1, column 9: ..."
    // or "[json.exception.out_of_range.406] number overflow parsing '1e400'".
    std::string what = e.what();
    if (auto pos = what.find("] "); pos != std::string::npos) what = what.substr(pos + 2);
    return make_error(ErrorCode::bad_request, "parse", "the body is not valid JSON: " + what);
  }
}

}  // namespace omnigate

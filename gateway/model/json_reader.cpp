#include "gateway/model/json_reader.hpp"

#include <charconv>

#include "gateway/model/json_input.hpp"

namespace omnigate {

using simdjson::SUCCESS;
using simdjson::dom::element;

JsonNode JsonNode::operator[](std::string_view key) const {
  element child;
  if (!present_ || !e_.is_object() || e_.at_key(key).get(child) != SUCCESS) return JsonNode();
  return JsonNode(child);
}

std::optional<std::string_view> JsonNode::view() const {
  std::string_view v;
  if (!present_ || e_.get_string().get(v) != SUCCESS) return std::nullopt;
  return v;
}

std::optional<std::string> JsonNode::str() const {
  if (auto v = view()) return std::string(*v);
  return std::nullopt;
}

std::optional<int64_t> JsonNode::i64() const {
  int64_t v;
  if (!present_ || e_.get_int64().get(v) != SUCCESS) return std::nullopt;
  return v;
}

std::optional<double> JsonNode::num() const {
  double v;
  if (!present_ || e_.get_double().get(v) != SUCCESS) return std::nullopt;
  return v;
}

std::optional<bool> JsonNode::boolean() const {
  bool v;
  if (!present_ || e_.get_bool().get(v) != SUCCESS) return std::nullopt;
  return v;
}

std::optional<std::string> JsonNode::id_text() const {
  if (auto v = i64()) return std::to_string(*v);
  return str();
}

std::optional<int64_t> JsonNode::integer_or_numeric_string() const {
  if (auto v = i64()) return v;
  auto text = view();
  if (!text || text->empty()) return std::nullopt;
  int64_t out = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), out);
  if (ec != std::errc() || end != text->data() + text->size()) return std::nullopt;
  return out;
}

std::vector<JsonNode> JsonNode::array() const {
  std::vector<JsonNode> out;
  simdjson::dom::array a;
  if (!present_ || e_.get_array().get(a) != SUCCESS) return out;
  for (element item : a) out.emplace_back(item);
  return out;
}

std::vector<std::pair<std::string_view, JsonNode>> JsonNode::members() const {
  std::vector<std::pair<std::string_view, JsonNode>> out;
  simdjson::dom::object o;
  if (!present_ || e_.get_object().get(o) != SUCCESS) return out;
  for (auto field : o) out.emplace_back(field.key, JsonNode(field.value));
  return out;
}

nlohmann::json JsonNode::to_json() const {
  if (!present_) return nullptr;
  return nlohmann::json::parse(simdjson::minify(e_), nullptr, false);
}

std::string JsonNode::minified() const {
  if (!present_) return {};
  return simdjson::minify(e_);
}

JsonReader::JsonReader() {
  // simdjson's own cap is 1024 levels; the gateway's is limits::kMaxJsonDepth for every parser.
  // Given to the parser, it costs nothing: stage 2 counts depth anyway (a separate scan of
  // every body was ~1.5 % of a Telegram webhook's CPU). simdjson refuses a document once its
  // depth reaches max_depth, counting the root, so 64 levels need 65; an empty [] or {} is
  // not counted, so one such at level 65 passes, which no reader of ours minds.
  depth_capped_ = parser_.allocate(64 * 1024, limits::kMaxJsonDepth + 1) == SUCCESS;
}

Result<JsonNode> JsonReader::value(std::string_view body, std::string_view what) {
  if (!depth_capped_ && !json_depth_within(body)) return json_too_deep_error();
  element root;
  auto parsed = parser_.parse(body.data(), body.size()).get(root);
  if (parsed == simdjson::DEPTH_ERROR) return json_too_deep_error();
  if (parsed != SUCCESS) {
    return make_error(ErrorCode::bad_request, "parse",
                      "the body is not valid JSON (" + std::string(what) + ")");
  }
  // A literal null parses, but reads as absent everywhere: callers check present().
  return JsonNode(root);
}

Result<JsonNode> JsonReader::object(std::string_view body, std::string_view what) {
  auto root = value(body, what);
  if (!root) return root.error();
  if (!root->is_object()) {
    return make_error(ErrorCode::bad_request, "parse",
                      "the body is not a JSON object (" + std::string(what) + ")");
  }
  return root;
}

}  // namespace omnigate

// How a connector reads a provider's JSON: simdjson's DOM behind a node that never throws and
// never fails -- a missing key or a value of another type reads as absent, so a mapping is a
// list of optional reads instead of error handling. Parsing goes through the gateway's caps
// (depth limits::kMaxJsonDepth; the body's size is capped by the route) and says what is wrong.
#pragma once

#include <simdjson.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/core/error.hpp"

namespace omnigate {

class JsonNode {
 public:
  JsonNode() = default;
  explicit JsonNode(simdjson::dom::element e) : e_(e), present_(!e.is_null()) {}

  // A member of an object; absent for a missing key or when this is not an object.
  JsonNode operator[](std::string_view key) const;
  bool present() const { return present_; }
  bool is_object() const { return present_ && e_.is_object(); }
  bool is_array() const { return present_ && e_.is_array(); }

  std::optional<std::string> str() const;
  std::optional<std::string_view> view() const;  // valid while the reader's document lives
  std::optional<int64_t> i64() const;
  std::optional<double> num() const;
  std::optional<bool> boolean() const;
  // An id as interaction.v1 keeps it (a string): integers are printed, strings kept.
  std::optional<std::string> id_text() const;
  // Integers and numeric strings as int64 (providers write ids and timestamps either way).
  std::optional<int64_t> integer_or_numeric_string() const;

  std::vector<JsonNode> array() const;                                 // empty when not an array
  std::vector<std::pair<std::string_view, JsonNode>> members() const;  // empty when not an object
  // The subtree as nlohmann JSON (provider_ref, ad), null when absent.
  nlohmann::json to_json() const;
  // The subtree as minified JSON text in the sender's key order (to_json sorts keys), "" when
  // absent: a payload a CRM compares byte for byte with what it put on a button.
  std::string minified() const;

 private:
  simdjson::dom::element e_;
  bool present_ = false;
};

// Owns a parser; nodes it returns are valid until its next parse. One per thread:
// `thread_local JsonReader reader;` in a mapping function.
class JsonReader {
 public:
  JsonReader();

  // The body as a JSON object. bad_request "the body is not a JSON object (<what>)" for
  // anything else, or the depth error of json_input.hpp.
  Result<JsonNode> object(std::string_view body, std::string_view what);
  // Any JSON value (arrays of a poll batch, string payloads that contain JSON).
  Result<JsonNode> value(std::string_view body, std::string_view what);

 private:
  simdjson::dom::parser parser_;
  // The parser refuses documents deeper than limits::kMaxJsonDepth itself (set once, kept when
  // it grows); only if that first allocation failed does value() pre-scan the depth.
  bool depth_capped_ = false;
};

}  // namespace omnigate

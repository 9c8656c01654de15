// How a connector reads a provider's JSON in one forward pass: simdjson On-Demand, no tree.
// Each member is seen once, in the sender's order; the mapping keeps what it needs in its own
// payload structs and never asks for a key twice. Reading never throws and never fails for a
// value of another type: `str` of a number is nullopt and the value is skipped. What does fail
// the whole body, with a bad_request that says so:
//
// - bytes that are not JSON where the scan reads them: a broken string escape, number or
//   literal (also one read as another type: `"text":tru` fails, it does not read as absent), a
//   truncated document, trailing content. On-Demand checks the UTF-8 of the whole body, but of a
//   member no mapping reads only that its brackets balance in number, not in kind:
//   `{"a":[1 2]}` and `{"a":[1}}` with "a" unread are accepted. The body came with a valid
//   signature or secret, and the interaction holds only values that were read.
// - nesting deeper than limits::kMaxJsonDepth where the scan descends (fields, items, to_json
//   -- the only recursion). Where it skips, On-Demand counts brackets without recursing, and
//   what it skips goes nowhere: the interaction holds only values that were read, and a
//   webhook's bytes are hashed (raw.sha256), not kept. A separate pass over every body to
//   refuse depth there too was 15 % of the Telegram mapping's CPU (bench/mapping_bench).
//
// One per thread: `thread_local JsonScan scan;` in a mapping function. Values and the
// string_views it hands out are valid until its next object().
#pragma once

#include <simdjson.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "gateway/core/error.hpp"
#include "gateway/core/limits.hpp"

namespace omnigate {

// The integer a numeric string spells, all of it ("1700000000"; not "", "12a", " 1"): providers
// write ids and timestamps as strings as often as numbers.
std::optional<int64_t> integer_of_text(std::string_view text);

class JsonScan {
 public:
  using Value = simdjson::ondemand::value;

  JsonScan();

  // Parses `body` as one JSON object and calls on_field(std::string_view key, Value value) for
  // each member, in order. bad_request "the body is not valid JSON (<what>)", "... not a JSON
  // object (<what>)" or the depth error of json_input.hpp.
  template <typename OnField>
  Status object(std::string_view body, std::string_view what, OnField&& on_field);

  // The members of a nested object (none when `value` is not an object) and the items of an
  // array (none when it is not an array).
  template <typename OnField>
  void fields(Value value, OnField&& on_field);
  template <typename OnItem>
  void items(Value value, OnItem&& on_item);

  // Scalars; nullopt for a value of another type (a malformed one fails the body).
  std::optional<std::string> str(Value value);
  std::optional<int64_t> i64(Value value);  // integers that fit; not 1.5, not 2^63
  std::optional<double> num(Value value);   // any number
  std::optional<bool> boolean(Value value);
  bool is_null(Value value);
  // Read nothing: a read of the value may follow.
  bool is_array(Value value);
  bool is_object(Value value);
  bool is_string(Value value);
  // An id as interaction.v1 keeps it (a string): integers are printed, strings kept. With
  // `integer`, also the id as an integer when it was one (a value is read only once).
  std::optional<std::string> id_text(Value value, std::optional<int64_t>* integer = nullptr);
  // The value as nlohmann JSON, for the free-form parts interaction.v1 keeps as sent (entities,
  // forward_origin). Object keys sorted, as nlohmann keeps them; null for a JSON null.
  nlohmann::json to_json(Value value);
  // The value as minified JSON text in the sender's key order (to_json sorts keys), written
  // by RapidJSON: strings with the writer's escaping (UTF-8 and '/' as they are, so VK's "\/"
  // reads "/"), numbers as parsed (2.50 is 2.5). A payload a CRM compares byte for byte with
  // what it put on a button. nullopt when the value is malformed (the body fails).
  std::optional<std::string> minified(Value value);

 private:
  // Records the first error; every loop stops once one is recorded.
  bool failed(simdjson::error_code error) {
    if (error != simdjson::SUCCESS && error_ == simdjson::SUCCESS) error_ = error;
    return error_ != simdjson::SUCCESS;
  }
  std::optional<simdjson::ondemand::json_type> type_of(Value& value);
  // minified()'s walk, into a RapidJSON Writer (defined and used in json_scan.cpp only).
  template <typename Writer>
  bool write(Value value, Writer& writer);
  // A scalar read as another type is still checked (a broken literal fails the body).
  void check_scalar(Value& value, std::optional<simdjson::ondemand::json_type> type);
  template <typename OnField>
  void fields_of(simdjson::ondemand::object object, OnField& on_field);
  Status begin(std::string_view body, std::string_view what, simdjson::ondemand::object& root);
  // Fails the body when anything but whitespace follows the root object.
  void end_of_document();
  Status finish(std::string_view what) const;

  simdjson::ondemand::parser parser_;
  std::string padded_;  // the body and SIMDJSON_PADDING bytes: the parser reads past the end
  simdjson::ondemand::document document_;
  simdjson::error_code error_ = simdjson::SUCCESS;
  size_t depth_ = 0;  // objects and arrays the scan is inside now (fields, items)
  bool enter() {
    if (++depth_ <= limits::kMaxJsonDepth) return true;
    failed(simdjson::DEPTH_ERROR);
    return false;
  }
};

template <typename OnField>
Status JsonScan::object(std::string_view body, std::string_view what, OnField&& on_field) {
  simdjson::ondemand::object root;
  if (auto begun = begin(body, what, root); !begun) return begun;
  fields_of(root, on_field);
  end_of_document();
  return finish(what);
}

template <typename OnField>
void JsonScan::fields_of(simdjson::ondemand::object object, OnField& on_field) {
  for (auto member : object) {
    simdjson::ondemand::field field;
    std::string_view key;
    if (failed(std::move(member).get(field)) || failed(field.unescaped_key().get(key))) return;
    on_field(key, field.value());
    if (error_ != simdjson::SUCCESS) return;
  }
}

template <typename OnField>
void JsonScan::fields(Value value, OnField&& on_field) {
  if (type_of(value) != simdjson::ondemand::json_type::object) return;
  simdjson::ondemand::object object;
  if (failed(value.get_object().get(object)) || !enter()) return;
  fields_of(object, on_field);
  --depth_;
}

template <typename OnItem>
void JsonScan::items(Value value, OnItem&& on_item) {
  if (type_of(value) != simdjson::ondemand::json_type::array) return;
  simdjson::ondemand::array array;
  if (failed(value.get_array().get(array)) || !enter()) return;
  for (auto item : array) {
    Value element;
    if (failed(std::move(item).get(element))) break;
    on_item(element);
    if (error_ != simdjson::SUCCESS) break;
  }
  --depth_;
}

}  // namespace omnigate

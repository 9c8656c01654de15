#include "gateway/model/json_scan.hpp"

#include <charconv>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "gateway/core/limits.hpp"
#include "gateway/model/json_input.hpp"

namespace omnigate {

using simdjson::SUCCESS;
using simdjson::ondemand::json_type;

std::optional<int64_t> integer_of_text(std::string_view text) {
  int64_t out = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return out;
}

JsonScan::JsonScan() {
  // A capacity that holds a webhook body without growing; a larger body grows the parser in
  // iterate(), which is also where an allocation that failed here is tried again.
  if (parser_.allocate(64 * 1024, limits::kMaxJsonDepth + 1) != SUCCESS) padded_.clear();
}

Status JsonScan::begin(std::string_view body, std::string_view what,
                       simdjson::ondemand::object& root) {
  error_ = SUCCESS;
  depth_ = 1;  // the root object is the first level, as simdjson's DOM counts it
  padded_.assign(body);
  padded_.append(simdjson::SIMDJSON_PADDING, '\0');
  auto error = parser_.iterate(padded_.data(), body.size(), padded_.size()).get(document_);
  if (error == SUCCESS) error = document_.get_object().get(root);
  if (error == simdjson::INCORRECT_TYPE) {
    return make_error(ErrorCode::bad_request, "parse",
                      "the body is not a JSON object (" + std::string(what) + ")");
  }
  if (error != SUCCESS) error_ = error;
  return finish(what);
}

void JsonScan::end_of_document() {
  if (error_ != SUCCESS) return;
  // Past the root's closing brace the iterator is out of bounds unless more tokens follow.
  const char* trailing = nullptr;
  if (document_.current_location().get(trailing) == SUCCESS) failed(simdjson::TRAILING_CONTENT);
}

Status JsonScan::finish(std::string_view what) const {
  if (error_ == SUCCESS) return ok_status();
  if (error_ == simdjson::DEPTH_ERROR) return json_too_deep_error();
  return make_error(ErrorCode::bad_request, "parse",
                    "the body is not valid JSON (" + std::string(what) + ")");
}

std::optional<json_type> JsonScan::type_of(Value& value) {
  json_type type;
  if (failed(value.type().get(type))) return std::nullopt;
  return type;
}

void JsonScan::check_scalar(Value& value, std::optional<json_type> type) {
  if (!type) return;
  switch (*type) {
    case json_type::string: {
      std::string_view text;
      failed(value.get_string().get(text));
      break;
    }
    case json_type::number: {
      simdjson::ondemand::number number;
      failed(value.get_number().get(number));
      break;
    }
    case json_type::boolean: {
      bool flag = false;
      failed(value.get_bool().get(flag));
      break;
    }
    case json_type::null:
      is_null(value);
      break;
    case json_type::object:
    case json_type::array:
      break;  // skipped by structure, as any member not read
  }
}

std::optional<std::string> JsonScan::str(Value value) {
  if (auto type = type_of(value); type != json_type::string) {
    check_scalar(value, type);
    return std::nullopt;
  }
  std::string_view text;
  if (failed(value.get_string().get(text))) return std::nullopt;
  return std::string(text);
}

std::optional<int64_t> JsonScan::i64(Value value) {
  if (auto type = type_of(value); type != json_type::number) {
    check_scalar(value, type);
    return std::nullopt;
  }
  simdjson::ondemand::number number;
  if (failed(value.get_number().get(number)) || !number.is_int64()) return std::nullopt;
  return number.get_int64();
}

std::optional<double> JsonScan::num(Value value) {
  if (auto type = type_of(value); type != json_type::number) {
    check_scalar(value, type);
    return std::nullopt;
  }
  simdjson::ondemand::number number;
  if (failed(value.get_number().get(number))) return std::nullopt;
  return number.as_double();
}

std::optional<bool> JsonScan::boolean(Value value) {
  if (auto type = type_of(value); type != json_type::boolean) {
    check_scalar(value, type);
    return std::nullopt;
  }
  bool flag = false;
  if (failed(value.get_bool().get(flag))) return std::nullopt;
  return flag;
}

bool JsonScan::is_null(Value value) {
  if (type_of(value) != json_type::null) return false;
  // type() looks at the first byte only: the literal itself is checked here ("nul" fails).
  bool null = false;
  if (failed(value.is_null().get(null))) return false;
  if (!null) failed(simdjson::N_ATOM_ERROR);
  return null;
}

bool JsonScan::is_array(Value value) {
  return type_of(value) == json_type::array;
}

bool JsonScan::is_object(Value value) {
  return type_of(value) == json_type::object;
}

bool JsonScan::is_string(Value value) {
  return type_of(value) == json_type::string;
}

template <typename Writer>
bool JsonScan::write(Value value, Writer& writer) {
  auto type = type_of(value);
  if (!type) return false;
  bool ok = true;
  switch (*type) {
    case json_type::object:
      // fields() and items() stop at limits::kMaxJsonDepth: that bounds this recursion.
      writer.StartObject();
      fields(value, [&](std::string_view key, Value member) {
        ok = ok && writer.Key(key.data(), static_cast<rapidjson::SizeType>(key.size())) &&
             write(member, writer);
      });
      return ok && writer.EndObject();
    case json_type::array:
      writer.StartArray();
      items(value, [&](Value item) { ok = ok && write(item, writer); });
      return ok && writer.EndArray();
    case json_type::number: {
      simdjson::ondemand::number number;
      if (failed(value.get_number().get(number))) return false;
      if (number.is_int64()) return writer.Int64(number.get_int64());
      if (number.is_uint64()) return writer.Uint64(number.get_uint64());
      return writer.Double(number.get_double());
    }
    case json_type::string: {
      std::string_view text;
      if (failed(value.get_string().get(text))) return false;
      return writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
    }
    case json_type::boolean: {
      auto flag = boolean(value);
      return flag && writer.Bool(*flag);
    }
    case json_type::null:
      return is_null(value) && writer.Null();
  }
  return false;
}

std::optional<std::string> JsonScan::minified(Value value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  if (!write(value, writer) || error_ != SUCCESS) return std::nullopt;
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::optional<std::string> JsonScan::id_text(Value value, std::optional<int64_t>* integer) {
  auto type = type_of(value);
  if (type == json_type::string) return str(value);
  if (type != json_type::number) {
    check_scalar(value, type);
    return std::nullopt;
  }
  auto number = i64(value);
  if (integer) *integer = number;
  if (number) return std::to_string(*number);
  return std::nullopt;
}

nlohmann::json JsonScan::to_json(Value value) {
  auto type = type_of(value);
  if (!type) return nullptr;
  switch (*type) {
    case json_type::object:
    case json_type::array: {
      // fields() and items() stop at limits::kMaxJsonDepth: that bounds this recursion.
      nlohmann::json out;
      if (*type == json_type::object) {
        out = nlohmann::json::object();
        fields(value, [&](std::string_view key, Value member) {
          out[std::string(key)] = to_json(member);
        });
      } else {
        out = nlohmann::json::array();
        items(value, [&](Value item) { out.push_back(to_json(item)); });
      }
      return out;
    }
    case json_type::number: {
      simdjson::ondemand::number number;
      if (failed(value.get_number().get(number))) return nullptr;
      if (number.is_int64()) return number.get_int64();
      if (number.is_uint64()) return number.get_uint64();
      return number.get_double();
    }
    case json_type::string: {
      auto text = str(value);
      return text ? nlohmann::json(*text) : nlohmann::json();
    }
    case json_type::boolean: {
      auto flag = boolean(value);
      return flag ? nlohmann::json(*flag) : nlohmann::json();
    }
    case json_type::null:
      is_null(value);  // checks the literal
      return nullptr;
  }
  return nullptr;
}

}  // namespace omnigate

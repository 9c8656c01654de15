#include "gateway/config/config_reader.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace omnigate {
namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += sep;
    out += item;
  }
  return out;
}

}  // namespace

std::string ConfigProblem::to_string() const {
  std::ostringstream out;
  out << file;
  if (line > 0) out << ':' << line << ':' << column;
  out << ": " << message;
  return out.str();
}

ConfigContext::ConfigContext(std::string file_name) : file(std::move(file_name)) {
  getenv = [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

void ConfigContext::problem(const YAML::Mark& mark, std::string message) {
  ConfigProblem p;
  p.file = file;
  if (!mark.is_null()) {
    p.line = mark.line + 1;
    p.column = mark.column + 1;
  }
  p.message = std::move(message);
  problems.push_back(std::move(p));
}

std::string ConfigContext::problems_text() const {
  std::string out;
  for (const auto& p : problems) out += p.to_string() + "\n";
  return out;
}

std::optional<std::string> substitute_env(const std::string& text, const YAML::Mark& mark,
                                          ConfigContext& ctx) {
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t start = text.find("${", pos);
    if (start == std::string::npos) {
      out.append(text, pos);
      return out;
    }
    size_t end = text.find('}', start);
    if (end == std::string::npos) {
      ctx.problem(mark, "unterminated ${...} in value");
      return std::nullopt;
    }
    out.append(text, pos, start - pos);
    std::string expr = text.substr(start + 2, end - start - 2);
    if (expr.rfind("file:", 0) == 0) {
      std::string path = expr.substr(5);
      std::ifstream in(path, std::ios::binary);
      if (!in) {
        ctx.problem(mark, "cannot read secret file '" + path + "'");
        return std::nullopt;
      }
      std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      while (!content.empty() && (content.back() == '\n' || content.back() == '\r')) {
        content.pop_back();
      }
      out += content;
    } else {
      std::string name = expr;
      std::optional<std::string> fallback;
      if (size_t dash = expr.find(":-"); dash != std::string::npos) {
        name = expr.substr(0, dash);
        fallback = expr.substr(dash + 2);
      }
      auto value = ctx.getenv(name);
      if (value && !value->empty()) {
        out += *value;
      } else if (fallback) {
        out += *fallback;
      } else {
        ctx.problem(mark, "environment variable " + name + " is not set (used as ${" + expr + "})");
        return std::nullopt;
      }
    }
    pos = end + 1;
  }
}

std::optional<std::chrono::milliseconds> parse_duration(const std::string& text) {
  double number = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, number);
  if (ec != std::errc() || number < 0) return std::nullopt;
  std::string unit(ptr, last);
  double ms_per_unit = 0;
  if (unit == "ms")
    ms_per_unit = 1;
  else if (unit == "s" || unit.empty())
    ms_per_unit = 1000;
  else if (unit == "m")
    ms_per_unit = 60'000;
  else if (unit == "h")
    ms_per_unit = 3'600'000;
  else if (unit == "d")
    ms_per_unit = 86'400'000;
  else
    return std::nullopt;
  double total = number * ms_per_unit;
  if (!(total < 9.2e18)) return std::nullopt;  // also rejects inf and nan
  return std::chrono::milliseconds(static_cast<int64_t>(total));
}

std::optional<uint64_t> parse_size(const std::string& text) {
  uint64_t number = 0;
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), last, number);
  if (ec != std::errc()) return std::nullopt;
  std::string unit(ptr, last);
  uint64_t factor = 0;
  if (unit.empty() || unit == "B")
    factor = 1;
  else if (unit == "KiB")
    factor = 1024;
  else if (unit == "MiB")
    factor = 1024 * 1024;
  else if (unit == "GiB")
    factor = 1024ull * 1024 * 1024;
  else if (unit == "KB")
    factor = 1000;
  else if (unit == "MB")
    factor = 1000 * 1000;
  else
    return std::nullopt;
  if (number > UINT64_MAX / factor) return std::nullopt;
  return number * factor;
}

ConfigMap::ConfigMap(YAML::Node node, std::string path, std::string display, ConfigContext& ctx)
    : node_(node), path_(std::move(path)), display_(std::move(display)), ctx_(ctx) {
  if (node_ && !node_.IsNull()) mark_ = node_.Mark();
  if (node_ && !node_.IsNull() && !node_.IsMap()) {
    ctx_.problem(mark_, "'" + display_ + "' must be a mapping of keys to values");
    node_ = YAML::Node();
  }
}

void ConfigMap::declare(const std::string& key) {
  declared_.push_back(key);
  ctx_.known_paths.insert(path_.empty() ? key : path_ + "." + key);
}

bool ConfigMap::has(const std::string& key) const {
  return node_ && node_.IsMap() && node_[key] && !node_[key].IsNull();
}

void ConfigMap::problem(const std::string& key, std::string message) {
  YAML::Mark mark = has(key) ? node_[key].Mark() : mark_;
  std::string where = display_.empty() ? key : display_ + "." + key;
  ctx_.problem(mark, where + ": " + message);
}

std::optional<std::string> ConfigMap::scalar(const std::string& key) {
  declare(key);
  if (!has(key)) return std::nullopt;
  YAML::Node value = node_[key];
  if (!value.IsScalar()) {
    problem(key, "must be a single value, not a list or mapping");
    return std::nullopt;
  }
  auto substituted = substitute_env(value.Scalar(), value.Mark(), ctx_);
  if (substituted) ctx_.values[display_.empty() ? key : display_ + "." + key] = *substituted;
  return substituted;
}

std::string ConfigMap::string(const std::string& key, const std::string& fallback) {
  return scalar(key).value_or(fallback);
}

std::string ConfigMap::required_string(const std::string& key) {
  bool present = has(key);
  auto value = scalar(key);
  if (!present) {
    problem(key, "is required");
    return "";
  }
  if (value && value->empty()) problem(key, "must not be empty");
  return value.value_or("");
}

std::string ConfigMap::secret(const std::string& key, bool required, size_t min_length) {
  std::string value = required ? required_string(key) : string(key, "");
  if (!value.empty() && value.size() < min_length) {
    // openssl rand -hex N prints 2N characters.
    problem(key, "is " + std::to_string(value.size()) + " characters; a secret must be at least " +
                     std::to_string(min_length) + " (generate one with `openssl rand -hex " +
                     std::to_string(std::max<size_t>(24, (min_length + 1) / 2)) + "`)");
  }
  return value;
}

int64_t ConfigMap::integer(const std::string& key, int64_t fallback, int64_t min, int64_t max) {
  auto text = scalar(key);
  if (!text) return fallback;
  int64_t number = 0;
  auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), number);
  if (ec != std::errc() || ptr != text->data() + text->size()) {
    problem(key, "must be an integer, got '" + *text + "'");
    return fallback;
  }
  if (number < min || number > max) {
    problem(key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    return fallback;
  }
  return number;
}

bool ConfigMap::boolean(const std::string& key, bool fallback) {
  auto text = scalar(key);
  if (!text) return fallback;
  if (*text == "true" || *text == "yes" || *text == "on") return true;
  if (*text == "false" || *text == "no" || *text == "off") return false;
  problem(key, "must be true or false, got '" + *text + "'");
  return fallback;
}

std::chrono::milliseconds ConfigMap::duration(const std::string& key,
                                              std::chrono::milliseconds fallback) {
  auto text = scalar(key);
  if (!text) return fallback;
  auto parsed = parse_duration(*text);
  if (!parsed) {
    problem(key, "must be a duration such as 500ms, 5s, 2m, 24h or 7d, got '" + *text + "'");
    return fallback;
  }
  return *parsed;
}

uint64_t ConfigMap::size(const std::string& key, uint64_t fallback) {
  auto text = scalar(key);
  if (!text) return fallback;
  auto parsed = parse_size(*text);
  if (!parsed) {
    problem(key, "must be a size such as 65536, 64KiB or 1MiB, got '" + *text + "'");
    return fallback;
  }
  return *parsed;
}

std::vector<std::string> ConfigMap::string_list(const std::string& key) {
  declare(key);
  std::vector<std::string> out;
  if (!has(key)) return out;
  YAML::Node list = node_[key];
  if (!list.IsSequence()) {
    problem(key, "must be a list");
    return out;
  }
  const std::string where = display_.empty() ? key : display_ + "." + key;
  // A list present, even empty, differs from one left out (stop_words: [] turns the defaults off).
  ctx_.values[where + "[]"] = std::to_string(list.size());
  size_t index = 0;
  for (const auto& item : list) {
    if (!item.IsScalar()) {
      ctx_.problem(item.Mark(), where + ": every item must be a single value");
      continue;
    }
    if (auto value = substitute_env(item.Scalar(), item.Mark(), ctx_)) {
      ctx_.values[where + "[" + std::to_string(index++) + "]"] = *value;
      out.push_back(*value);
    }
  }
  return out;
}

ConfigMap ConfigMap::map(const std::string& key) {
  declare(key);
  std::string child_path = path_.empty() ? key : path_ + "." + key;
  std::string child_display = display_.empty() ? key : display_ + "." + key;
  return ConfigMap(has(key) ? node_[key] : YAML::Node(), child_path, child_display, ctx_);
}

std::vector<std::string> ConfigMap::keys() const {
  std::vector<std::string> out;
  if (!node_ || !node_.IsMap()) return out;
  for (const auto& entry : node_) out.push_back(entry.first.as<std::string>());
  return out;
}

std::vector<ConfigMap> ConfigMap::list_of_maps(const std::string& key) {
  declare(key);
  std::vector<ConfigMap> out;
  if (!has(key)) return out;
  YAML::Node list = node_[key];
  if (!list.IsSequence()) {
    problem(key, "must be a list of mappings (each item starting with '- ')");
    return out;
  }
  std::string child_path = (path_.empty() ? key : path_ + "." + key) + "[]";
  std::string display = display_.empty() ? key : display_ + "." + key;
  for (size_t i = 0; i < list.size(); ++i) {
    out.emplace_back(list[i], child_path, display + "[" + std::to_string(i) + "]", ctx_);
  }
  return out;
}

void ConfigMap::finish() {
  if (!node_ || !node_.IsMap()) return;
  for (const auto& entry : node_) {
    std::string key = entry.first.as<std::string>();
    if (std::find(declared_.begin(), declared_.end(), key) != declared_.end()) continue;
    std::vector<std::string> valid = declared_;
    std::sort(valid.begin(), valid.end());
    valid.erase(std::unique(valid.begin(), valid.end()), valid.end());
    std::string message = "unknown key '" + key + "'";
    if (!display_.empty()) message += " in " + display_;
    std::string closest;
    size_t best = 3;
    for (const auto& candidate : valid) {
      size_t d = edit_distance(key, candidate);
      if (d < best) {
        best = d;
        closest = candidate;
      }
    }
    if (!closest.empty()) message += " (did you mean '" + closest + "'?)";
    message += "; valid keys: " + join(valid, ", ");
    ctx_.problem(entry.first.Mark(), message);
  }
}

}  // namespace omnigate

// Table-free, declaration-driven YAML reading: every key a component asks for is a known key,
// with its default; whatever the file holds beyond those is rejected with file, line and the
// valid keys. The keys asked are also recorded (with their dotted path) so a test can prove
// that config/omnigate.example.yaml documents every one of them.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace omnigate {

struct ConfigProblem {
  std::string file;
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based
  std::string message;
  std::string to_string() const;
};

// Shared state of one config load: the file name, problems found, key paths asked.
struct ConfigContext {
  std::string file;
  std::vector<ConfigProblem> problems;
  std::set<std::string> known_paths;  // "http.port", "channels.api[].token", ...
  // Every value present in the file as read (after ${...} substitution), by where it is:
  // "http.port", "channels.telegram[0].token", "consent.texts[1].channels[0]". A reload
  // compares two loads with it; it holds secrets, so it is never logged.
  std::map<std::string, std::string> values;
  // Looks up an environment variable; replaceable in tests.
  std::function<std::optional<std::string>(const std::string&)> getenv;

  explicit ConfigContext(std::string file_name);
  void problem(const YAML::Mark& mark, std::string message);
  std::string problems_text() const;
};

// Substitutes ${VAR}, ${VAR:-default} and ${file:/path} in a scalar. Returns nullopt and
// reports a problem when a variable is unset (and has no default) or a file is unreadable.
std::optional<std::string> substitute_env(const std::string& text, const YAML::Mark& mark,
                                          ConfigContext& ctx);

// Parses "250ms", "5s", "2m", "168h", "7d" (or a bare number of seconds).
std::optional<std::chrono::milliseconds> parse_duration(const std::string& text);
// Parses "1048576", "512KiB", "1MiB", "3MB".
std::optional<uint64_t> parse_size(const std::string& text);

class ConfigMap {
 public:
  // `path` is the dotted location used in messages and in known_paths ("http",
  // "channels.api[]"); `display` is what a human reads ("channels.api[0]").
  ConfigMap(YAML::Node node, std::string path, std::string display, ConfigContext& ctx);

  bool has(const std::string& key) const;
  std::string string(const std::string& key, const std::string& fallback);
  // Reports a problem (and returns "") when the key is absent or empty.
  std::string required_string(const std::string& key);
  // A secret the gateway checks callers against (a token, a webhook secret): absent → "" (or a
  // problem when `required`); shorter than `min_length` → a problem that says how to generate
  // one. Guessable secrets make every other check moot, so there is no way to opt out.
  std::string secret(const std::string& key, bool required, size_t min_length = kMinSecretLength);
  static constexpr size_t kMinSecretLength = 16;
  int64_t integer(const std::string& key, int64_t fallback, int64_t min, int64_t max);
  bool boolean(const std::string& key, bool fallback);
  std::chrono::milliseconds duration(const std::string& key, std::chrono::milliseconds fallback);
  uint64_t size(const std::string& key, uint64_t fallback);
  std::vector<std::string> string_list(const std::string& key);
  // A nested mapping (absent → an empty one, so its keys get their defaults).
  ConfigMap map(const std::string& key);
  // A key that names an open set (e.g. the channels): the caller resolves names itself.
  std::vector<std::string> keys() const;
  // A sequence of mappings, e.g. channels.telegram[].
  std::vector<ConfigMap> list_of_maps(const std::string& key);
  // Rejects every key present in the file but never asked for.
  void finish();

  const YAML::Mark& mark() const { return mark_; }
  const std::string& display() const { return display_; }
  ConfigContext& context() { return ctx_; }
  void problem(const std::string& key, std::string message);

 private:
  std::optional<std::string> scalar(const std::string& key);
  void declare(const std::string& key);

  YAML::Node node_;
  std::string path_;
  std::string display_;
  ConfigContext& ctx_;
  YAML::Mark mark_;
  std::vector<std::string> declared_;
};

}  // namespace omnigate

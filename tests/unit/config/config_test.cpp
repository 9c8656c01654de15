// Configuration loading (gateway/config/config.hpp, gateway/config/config_reader.hpp), driven
// through load_config_text with a fake environment.
#include <catch2/catch.hpp>

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/config/config_reader.hpp"

using namespace std::chrono;
using omnigate::Config;
using omnigate::ConfigContext;
using omnigate::parse_duration;
using omnigate::parse_size;

namespace {

using Env = std::map<std::string, std::string>;

const std::string kToken = "0123456789abcdef-test-token";
const std::string kSigningKey = "signing-key-0123456789abcdef-0123456789";

struct Loaded {
  omnigate::Result<Config> result;
  std::string problems;  // the error detail, "" when it loaded
};

Loaded load(const std::string& text, const Env& env = {}) {
  ConfigContext context("file.yaml");
  context.getenv = [env](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  auto result = omnigate::load_config_text(text, "file.yaml", context);
  std::string problems = result ? std::string() : result.error().detail;
  return {std::move(result), problems};
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Every dotted key path of a YAML document; a sequence adds "[]" ("channels.api[].token").
void collect_paths(const YAML::Node& node, const std::string& prefix, std::set<std::string>& out) {
  if (node.IsMap()) {
    for (const auto& entry : node) {
      std::string path = (prefix.empty() ? "" : prefix + ".") + entry.first.as<std::string>();
      out.insert(path);
      collect_paths(entry.second, path, out);
    }
  } else if (node.IsSequence()) {
    for (const auto& item : node) collect_paths(item, prefix + "[]", out);
  }
}

// A temporary file removed at the end of the test.
struct TempFile {
  std::filesystem::path path;
  explicit TempFile(const std::string& content) {
    path = std::filesystem::temp_directory_path() /
           ("omnigate-unit-" + std::to_string(::getpid()) + "-" +
            std::to_string(reinterpret_cast<uintptr_t>(this)) + ".secret");
    std::ofstream(path, std::ios::binary) << content;
  }
  ~TempFile() { std::filesystem::remove(path); }
};

std::string api_channel(const std::string& entries) {
  return "channels:\n  api:\n" + entries;
}

}  // namespace

// --------------------------------------------------------------------------- the example

TEST_CASE("config/omnigate.example.yaml loads and documents every known key", "[config][example]") {
  std::string text =
      read_text(std::filesystem::path(OMNIGATE_SOURCE_DIR) / "config" / "omnigate.example.yaml");
  auto loaded = load(text, {{"OMNIGATE_API_TOKEN", kToken},
                            {"OMNIGATE_CONSENT_KEY", kSigningKey},
                            {"TELEGRAM_WEBHOOK_SECRET", "test_secret_0123456789"},
                            {"WHATSAPP_APP_SECRET", "wa_app_secret_0123456789"},
                            {"WHATSAPP_VERIFY_TOKEN", "wa_verify_token_0123456789"},
                            {"VK_CALLBACK_SECRET", "vk_callback_secret_0123456789"},
                            {"OMNIGATE_EMAIL_TOKEN", "email_pipe_token_0123456789"}});
  INFO(loaded.problems);
  REQUIRE(loaded.result.ok());
  const Config& config = loaded.result.value();

  std::set<std::string> present;
  collect_paths(YAML::Load(text), "", present);
  REQUIRE_FALSE(config.known_paths.empty());
  std::vector<std::string> undocumented;
  for (const auto& path : config.known_paths) {
    if (!present.count(path)) undocumented.push_back(path);
  }
  CAPTURE(undocumented);
  CHECK(undocumented.empty());
  // Spot checks that the walk and the loader agree on the path notation.
  CHECK(config.known_paths.count("http.port") == 1);
  CHECK(config.known_paths.count("nats.stream.duplicate_window") == 1);
  CHECK(config.known_paths.count("channels.api[].token") == 1);
  CHECK(present.count("channels.api[].token") == 1);
}

TEST_CASE("the example's values are what the loader reads", "[config][example]") {
  std::string text =
      read_text(std::filesystem::path(OMNIGATE_SOURCE_DIR) / "config" / "omnigate.example.yaml");
  auto loaded = load(text, {{"OMNIGATE_API_TOKEN", kToken},
                            {"OMNIGATE_CONSENT_KEY", kSigningKey},
                            {"TELEGRAM_WEBHOOK_SECRET", "test_secret_0123456789"},
                            {"WHATSAPP_APP_SECRET", "wa_app_secret_0123456789"},
                            {"WHATSAPP_VERIFY_TOKEN", "wa_verify_token_0123456789"},
                            {"VK_CALLBACK_SECRET", "vk_callback_secret_0123456789"},
                            {"OMNIGATE_EMAIL_TOKEN", "email_pipe_token_0123456789"},
                            {"OMNIGATE_HTTP_PORT", "9090"}});
  INFO(loaded.problems);
  REQUIRE(loaded.result.ok());
  const Config& config = loaded.result.value();
  CHECK(config.http.address == "127.0.0.1");  // ${OMNIGATE_HTTP_ADDRESS:-127.0.0.1}
  CHECK(config.http.port == 9090);            // from the environment
  CHECK(config.http.max_body == 1024 * 1024);
  CHECK(config.nats.url == "nats://127.0.0.1:4222");
  CHECK(config.nats.dedup_horizon == hours(7 * 24));
  CHECK(config.nats.stream.duplicate_window == minutes(2));
  REQUIRE(config.connector("api") != nullptr);
  CHECK(config.connector("api")->has_account("crm-import"));
  CHECK_FALSE(config.connector("api")->has_account("other"));
  REQUIRE(config.connector("telegram") != nullptr);
  CHECK(config.connector("telegram")->has_account("shopbot"));
  REQUIRE(config.connector("webform") != nullptr);
  CHECK(config.connector("webform")->has_account("callback"));
  REQUIRE(config.connector("whatsapp") != nullptr);
  CHECK(config.connector("whatsapp")->has_account("main"));
  CHECK(config.connector("whatsapp")->max_body("main") == 4 * 1024 * 1024);
}

TEST_CASE("the example without OMNIGATE_API_TOKEN fails naming the variable", "[config][example]") {
  std::string text =
      read_text(std::filesystem::path(OMNIGATE_SOURCE_DIR) / "config" / "omnigate.example.yaml");
  auto loaded = load(text);
  REQUIRE_FALSE(loaded.result.ok());
  CHECK(loaded.problems.find("environment variable OMNIGATE_API_TOKEN is not set") !=
        std::string::npos);
}

// --------------------------------------------------------------------------- defaults

TEST_CASE("an empty file gives the documented defaults and no connectors", "[config][defaults]") {
  auto text = GENERATE(as<std::string>{}, "", "# only a comment\n", "http:\nnats:\n");
  CAPTURE(text);
  auto loaded = load(text);
  INFO(loaded.problems);
  REQUIRE(loaded.result.ok());
  const Config& config = loaded.result.value();
  CHECK(config.file == "file.yaml");
  CHECK(config.http.port == 8080);
  CHECK(config.http.threads == 64);
  CHECK(config.http.tcp_nodelay);
  CHECK(config.http.address == "127.0.0.1");
  CHECK(config.http.keep_alive_timeout == seconds(5));
  CHECK(config.http.max_body == 1024 * 1024);
  CHECK(config.nats.stream.name == "OMNIGATE_INTERACTIONS");
  CHECK(config.nats.stream.replicas == 1);
  CHECK(config.nats.stream.max_bytes == -1);
  // Retention is bounded, and long enough to be the dedup record of the whole horizon.
  CHECK(config.nats.stream.max_age == hours(30 * 24));
  CHECK(config.nats.stream.max_age >= config.nats.dedup_horizon);
  CHECK(config.identity.default_region == "RU");
  CHECK(config.log.level == "info");
  CHECK_FALSE(config.http.noop_route);
  CHECK(config.connectors.empty());
  CHECK(config.connector("api") == nullptr);
  CHECK(config.known_paths.count("identity.default_region") == 1);
}

// --------------------------------------------------------------------------- unknown keys

TEST_CASE("an unknown key names file, line, column, the closest key and the valid keys",
          "[config][unknown]") {
  auto loaded = load("http:\n  port: 8080\n  prot: 9090\n");
  REQUIRE_FALSE(loaded.result.ok());
  CAPTURE(loaded.problems);
  CHECK(loaded.problems.find("file.yaml:3:3: ") != std::string::npos);
  CHECK(loaded.problems.find("unknown key 'prot'") != std::string::npos);
  CHECK(loaded.problems.find("did you mean 'port'") != std::string::npos);
  CHECK(loaded.problems.find("valid keys:") != std::string::npos);
  std::string valid = loaded.problems.substr(loaded.problems.find("valid keys:"));
  CHECK(valid.find("address") != std::string::npos);
  CHECK(valid.find("threads") != std::string::npos);
  CHECK(valid.find("max_body") != std::string::npos);
  CHECK(loaded.result.error().code == omnigate::ErrorCode::invalid_field);
  CHECK(loaded.result.error().stage == "config");
}

TEST_CASE("unknown keys are reported at every level, one problem per line", "[config][unknown]") {
  auto loaded = load(
      "htp:\n"              // 1: top level
      "  port: 1\n"         // 2
      "nats:\n"             // 3
      "  stream:\n"         // 4
      "    nam: X\n"        // 5: nested two deep
      "log:\n"              // 6
      "  levle: debug\n");  // 7
  REQUIRE_FALSE(loaded.result.ok());
  CAPTURE(loaded.problems);
  CHECK(loaded.problems.find("file.yaml:1:1: unknown key 'htp' (did you mean 'http'?)") !=
        std::string::npos);
  CHECK(loaded.problems.find(
            "file.yaml:5:5: unknown key 'nam' in nats.stream (did you mean 'name'?)") !=
        std::string::npos);
  CHECK(loaded.problems.find("file.yaml:7:3: unknown key 'levle' in log (did you mean 'level'?)") !=
        std::string::npos);
  size_t lines = std::count(loaded.problems.begin(), loaded.problems.end(), '\n');
  CHECK(lines == 3);
}

TEST_CASE("a key far from every valid one gets no suggestion", "[config][unknown]") {
  auto loaded = load("http:\n  completely_unrelated: 1\n");
  REQUIRE_FALSE(loaded.result.ok());
  CHECK(loaded.problems.find("unknown key 'completely_unrelated'") != std::string::npos);
  CHECK(loaded.problems.find("did you mean") == std::string::npos);
}

TEST_CASE("YAML that does not parse is reported with its position", "[config]") {
  auto loaded = load("http:\n  port: [1, 2\n");
  REQUIRE_FALSE(loaded.result.ok());
  CAPTURE(loaded.problems);
  CHECK(loaded.problems.rfind("file.yaml:", 0) == 0);
  CHECK(loaded.problems.find("not valid YAML") != std::string::npos);
}

// --------------------------------------------------------------------------- wrong types

TEST_CASE("a value of the wrong type names the key and its line", "[config][types]") {
  struct Row {
    std::string section, key, value, message;
  };
  const std::vector<Row> rows = {
      {"http", "threads", "x", "http.threads: must be an integer, got 'x'"},
      {"http", "threads", "1", "http.threads: must be between 2 and 4096"},
      {"http", "port", "80.5", "http.port: must be an integer, got '80.5'"},
      {"http", "port", "70000", "http.port: must be between 0 and 65535"},
      {"http", "tcp_nodelay", "maybe", "http.tcp_nodelay: must be true or false, got 'maybe'"},
      {"http", "keep_alive_timeout", "5 parsecs",
       "http.keep_alive_timeout: must be a duration such as 500ms, 5s, 2m, 24h or 7d, got '5 "
       "parsecs'"},
      {"http", "keep_alive_timeout", "10ms", "http.keep_alive_timeout: must be at least 1000ms"},
      {"http", "max_body", "lots",
       "http.max_body: must be a size such as 65536, 64KiB or 1MiB, got 'lots'"},
      {"http", "max_body", "10", "http.max_body: must be at least 1KiB"},
      {"http", "address", "[a, b]", "http.address: must be a single value, not a list or mapping"},
      {"log", "level", "verbose", "log.level: must be one of debug, info, warn, error"},
      {"log", "format", "xml", "log.format: must be text or json"},
      {"log", "requests", "sometimes", "log.requests: must be true or false, got 'sometimes'"},
      {"identity", "default_region", "XX", "identity.default_region: 'XX' is not a region"},
      {"nats", "user", "svc", "nats.password: is required with user"},
  };
  for (const auto& row : rows) {
    std::string text =
        "# comment line\n" + row.section + ":\n  " + row.key + ": " + row.value + "\n";
    CAPTURE(text);
    auto loaded = load(text);
    REQUIRE_FALSE(loaded.result.ok());
    CAPTURE(loaded.problems);
    CHECK(loaded.problems.find(row.message) != std::string::npos);
    // The value (or, for a missing companion key, its section) is on line 3 or 2.
    bool on_line = loaded.problems.rfind("file.yaml:3:", 0) == 0 ||
                   loaded.problems.rfind("file.yaml:2:", 0) == 0;
    CHECK(on_line);
  }
}

TEST_CASE("several wrong values are all reported, each with its own line", "[config][types]") {
  auto loaded = load(
      "http:\n"
      "  threads: x\n"
      "  tcp_nodelay: maybe\n"
      "  keep_alive_timeout: 5 parsecs\n"
      "  max_body: lots\n");
  REQUIRE_FALSE(loaded.result.ok());
  CAPTURE(loaded.problems);
  CHECK(loaded.problems.find("file.yaml:2:12: http.threads:") != std::string::npos);
  CHECK(loaded.problems.find("file.yaml:3:16: http.tcp_nodelay:") != std::string::npos);
  CHECK(loaded.problems.find("file.yaml:4:23: http.keep_alive_timeout:") != std::string::npos);
  CHECK(loaded.problems.find("file.yaml:5:13: http.max_body:") != std::string::npos);
}

TEST_CASE("a section that is not a mapping is reported", "[config][types]") {
  auto loaded = load("http: 8080\n");
  REQUIRE_FALSE(loaded.result.ok());
  CHECK(loaded.problems.find("'http' must be a mapping of keys to values") != std::string::npos);
}

TEST_CASE("booleans accept true/false, yes/no, on/off", "[config][types]") {
  struct Row {
    std::string text;
    bool value;
  };
  const std::vector<Row> rows = {{"true", true},   {"yes", true}, {"on", true},
                                 {"false", false}, {"no", false}, {"off", false}};
  for (const auto& row : rows) {
    CAPTURE(row.text);
    auto loaded = load("http:\n  noop_route: " + row.text + "\n");
    INFO(loaded.problems);
    REQUIRE(loaded.result.ok());
    CHECK(loaded.result->http.noop_route == row.value);
  }
}

// --------------------------------------------------------------------------- substitution

TEST_CASE("${VAR} is replaced from the environment", "[config][env]") {
  auto loaded = load("nats:\n  token: ${NATS_TOKEN}\n  url: nats://${HOST}:${PORT}\n",
                     {{"NATS_TOKEN", "s3cret"}, {"HOST", "nats.internal"}, {"PORT", "4223"}});
  INFO(loaded.problems);
  REQUIRE(loaded.result.ok());
  CHECK(loaded.result->nats.token == "s3cret");
  CHECK(loaded.result->nats.url == "nats://nats.internal:4223");
}

TEST_CASE("${VAR:-default} uses the default when the variable is unset or empty", "[config][env]") {
  struct Row {
    std::string what;
    Env env;
    std::string expected;
  };
  const std::vector<Row> rows = {
      {"unset", {}, "fallback-name"},
      {"empty", {{"NAME", ""}}, "fallback-name"},
      {"set", {{"NAME", "from-env"}}, "from-env"},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    auto loaded = load("nats:\n  client_name: ${NAME:-fallback-name}\n", row.env);
    INFO(loaded.problems);
    REQUIRE(loaded.result.ok());
    CHECK(loaded.result->nats.client_name == row.expected);
  }
  // An empty default is allowed.
  auto empty_default = load("nats:\n  token: ${NOPE:-}\n");
  REQUIRE(empty_default.result.ok());
  CHECK(empty_default.result->nats.token.empty());
}

TEST_CASE("a substituted value is then parsed by the key's type", "[config][env]") {
  auto good =
      load("http:\n  port: ${PORT}\n  keep_alive_timeout: ${KA:-45s}\n", {{"PORT", "9091"}});
  INFO(good.problems);
  REQUIRE(good.result.ok());
  CHECK(good.result->http.port == 9091);
  CHECK(good.result->http.keep_alive_timeout == seconds(45));

  auto bad = load("http:\n  port: ${PORT}\n", {{"PORT", "eighty"}});
  REQUIRE_FALSE(bad.result.ok());
  CHECK(bad.problems.find("http.port: must be an integer, got 'eighty'") != std::string::npos);
}

TEST_CASE("an unset variable without default is an error naming the variable and line",
          "[config][env]") {
  auto loaded = load("http:\n  port: 8080\nnats:\n  password: ${NATS_PASSWORD}\n");
  REQUIRE_FALSE(loaded.result.ok());
  CAPTURE(loaded.problems);
  CHECK(loaded.problems.find("file.yaml:4:") == 0);
  CHECK(loaded.problems.find("environment variable NATS_PASSWORD is not set") != std::string::npos);
}

TEST_CASE("an unterminated ${ is an error", "[config][env]") {
  auto loaded = load("nats:\n  token: ${NATS_TOKEN\n");
  REQUIRE_FALSE(loaded.result.ok());
  CHECK(loaded.problems.find("unterminated ${...}") != std::string::npos);
}

TEST_CASE("${file:/path} reads a secret file without its trailing newline", "[config][env]") {
  auto content = GENERATE(as<std::string>{}, "file-secret\n", "file-secret", "file-secret\r\n",
                          "file-secret\n\n");
  CAPTURE(content);
  TempFile secret(content);
  auto loaded = load("nats:\n  token: ${file:" + secret.path.string() + "}\n");
  INFO(loaded.problems);
  REQUIRE(loaded.result.ok());
  CHECK(loaded.result->nats.token == "file-secret");
}

TEST_CASE("a secret file keeps inner newlines and may be combined with text", "[config][env]") {
  TempFile secret("line1\nline2\n");
  auto loaded = load("nats:\n  token: \"x-${file:" + secret.path.string() + "}-y\"\n");
  INFO(loaded.problems);
  REQUIRE(loaded.result.ok());
  CHECK(loaded.result->nats.token == "x-line1\nline2-y");
}

TEST_CASE("an unreadable secret file is an error naming the path", "[config][env]") {
  auto loaded = load("nats:\n  token: ${file:/nonexistent/omnigate/secret}\n");
  REQUIRE_FALSE(loaded.result.ok());
  CHECK(loaded.problems.find("file.yaml:2:") == 0);
  CHECK(loaded.problems.find("cannot read secret file '/nonexistent/omnigate/secret'") !=
        std::string::npos);
}

TEST_CASE("substitute_env works on a bare string", "[config][env]") {
  ConfigContext context("f.yaml");
  context.getenv = [](const std::string& name) -> std::optional<std::string> {
    if (name == "A") return std::string("1");
    return std::nullopt;
  };
  YAML::Mark mark;
  CHECK(omnigate::substitute_env("no variables", mark, context) ==
        std::optional<std::string>("no variables"));
  CHECK(omnigate::substitute_env("${A}${A}-${B:-2}", mark, context) ==
        std::optional<std::string>("11-2"));
  CHECK(context.problems.empty());
  CHECK_FALSE(omnigate::substitute_env("${B}", mark, context).has_value());
  REQUIRE(context.problems.size() == 1);
  CHECK(context.problems[0].message == "environment variable B is not set (used as ${B})");
}

// --------------------------------------------------------------------------- channels

TEST_CASE("a valid api channel yields one connector with its accounts", "[config][channels]") {
  auto loaded = load(api_channel("    - account: crm-import\n      token: " + kToken +
                                 "\n    - account: shop_2\n      token: ${SHOP_TOKEN}\n      "
                                 "max_body: 64KiB\n"),
                     {{"SHOP_TOKEN", "abcdefghijklmnopqrstuvwxyz"}});
  INFO(loaded.problems);
  REQUIRE(loaded.result.ok());
  REQUIRE(loaded.result->connectors.size() == 1);
  auto* api = loaded.result->connector("api");
  REQUIRE(api != nullptr);
  CHECK(api->channel() == "api");
  CHECK(api->has_account("crm-import"));
  CHECK(api->has_account("shop_2"));
  CHECK_FALSE(api->has_account("crm"));
}

TEST_CASE("an unknown channel is listed with the valid channels", "[config][channels]") {
  auto loaded = load("channels:\n  telegrm:\n    - account: x\n");
  REQUIRE_FALSE(loaded.result.ok());
  CAPTURE(loaded.problems);
  CHECK(loaded.problems.find("file.yaml:2:3: unknown key 'telegrm' in channels") !=
        std::string::npos);
  CHECK(loaded.problems.find("valid keys: ") != std::string::npos);
  CHECK(loaded.problems.find("api") != std::string::npos);
}

TEST_CASE("channel account entries are validated", "[config][channels]") {
  struct Row {
    std::string what, entries, message;
  };
  const std::vector<Row> rows = {
      {"duplicate account",
       "    - account: crm\n      token: " + kToken +
           "\n    - account: crm\n      token: " + kToken + "\n",
       "channels.api[1].account: 'crm' is configured twice for this channel"},
      {"account with a space", "    - account: a b\n      token: " + kToken + "\n",
       "channels.api[0].account: 'a b' must match [A-Za-z0-9_-]{1,64}"},
      {"account with a colon (would make ids ambiguous)",
       "    - account: \"a:b\"\n      token: " + kToken + "\n",
       "channels.api[0].account: 'a:b' must match"},
      {"account longer than 64",
       "    - account: " + std::string(65, 'a') + "\n      token: " + kToken + "\n",
       "must match [A-Za-z0-9_-]{1,64}"},
      {"missing account", "    - token: " + kToken + "\n", "channels.api[0].account: is required"},
      {"missing token", "    - account: crm\n", "channels.api[0].token: is required"},
      {"empty token", "    - account: crm\n      token: \"\"\n",
       "channels.api[0].token: must not be empty"},
      {"short token", "    - account: crm\n      token: short-token-15c\n",
       "channels.api[0].token: is 15 characters; a secret must be at least 16 (generate one "
       "with `openssl rand -hex 24`)"},
      {"unknown key in an account",
       "    - account: crm\n      token: " + kToken + "\n      tokn: x\n",
       "unknown key 'tokn' in channels.api[0] (did you mean 'token'?)"},
      {"bad max_body", "    - account: crm\n      token: " + kToken + "\n      max_body: big\n",
       "channels.api[0].max_body: must be a size"},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    auto loaded = load(api_channel(row.entries));
    REQUIRE_FALSE(loaded.result.ok());
    CAPTURE(loaded.problems);
    CHECK(loaded.problems.find(row.message) != std::string::npos);
    CHECK(loaded.problems.rfind("file.yaml:", 0) == 0);
  }
}

TEST_CASE("a token of exactly 16 characters is accepted", "[config][channels]") {
  auto loaded = load(api_channel("    - account: crm\n      token: 0123456789abcdef\n"));
  INFO(loaded.problems);
  CHECK(loaded.result.ok());
}

TEST_CASE("a channel that is not a list of mappings is reported", "[config][channels]") {
  auto loaded = load("channels:\n  api:\n    account: crm\n");
  REQUIRE_FALSE(loaded.result.ok());
  CHECK(loaded.problems.find("channels.api: must be a list of mappings") != std::string::npos);
}

// --------------------------------------------------------------------------- durations, sizes

TEST_CASE("parse_duration reads ms, s, m, h, d and bare seconds", "[config][duration]") {
  struct Row {
    std::string text;
    milliseconds expected;
  };
  const std::vector<Row> rows = {
      {"250ms", milliseconds(250)}, {"5s", seconds(5)},           {"2m", minutes(2)},
      {"168h", hours(168)},         {"7d", hours(7 * 24)},        {"30", seconds(30)},
      {"0", milliseconds(0)},       {"1.5s", milliseconds(1500)}, {"0.5ms", milliseconds(0)},
      {"0ms", milliseconds(0)},
  };
  for (const auto& row : rows) {
    CAPTURE(row.text);
    auto parsed = parse_duration(row.text);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == row.expected);
  }
}

TEST_CASE("parse_duration rejects what is not a duration", "[config][duration]") {
  auto text = GENERATE(as<std::string>{}, "", "s", "5 s", " 5s", "5sec", "5S", "-1s", "5w",
                       "five seconds", "5s ", "1h30m");
  CAPTURE(text);
  CHECK_FALSE(parse_duration(text).has_value());
}

TEST_CASE("parse_duration rejects non-finite and overflowing numbers", "[config][duration]") {
  // Regression (fixed): from_chars(double) accepts "inf", "nan" and 1e30; the cast to int64 is
  // undefined and yields INT64_MIN on x86, a negative duration (nats.stream.max_age has no lower
  // bound).
  auto text = GENERATE(as<std::string>{}, "inf", "nan", "infinity", "1e30d", "1e300");
  CAPTURE(text);
  auto parsed = parse_duration(text);
  CAPTURE(parsed.has_value() ? parsed->count() : 0);
  CHECK_FALSE(parsed.has_value());
}

TEST_CASE("a non-finite nats.stream.max_age is rejected", "[config][duration]") {
  auto loaded = load("nats:\n  stream:\n    max_age: inf\n");
  CAPTURE(loaded.result.ok() ? loaded.result->nats.stream.max_age.count() : 0);
  CHECK_FALSE(loaded.result.ok());
}

TEST_CASE("parse_size reads bytes and binary and decimal units", "[config][size]") {
  struct Row {
    std::string text;
    uint64_t expected;
  };
  const std::vector<Row> rows = {
      {"1048576", 1048576},  {"0", 0},
      {"10B", 10},           {"512KiB", 512 * 1024},
      {"1MiB", 1024 * 1024}, {"2GiB", 2ull * 1024 * 1024 * 1024},
      {"1KB", 1000},         {"3MB", 3'000'000},
  };
  for (const auto& row : rows) {
    CAPTURE(row.text);
    auto parsed = parse_size(row.text);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == row.expected);
  }
}

TEST_CASE("parse_size rejects what is not a size", "[config][size]") {
  auto text = GENERATE(as<std::string>{}, "", "lots", "MiB", "-1", "1.5MiB", "1 MiB", "1mib", "1kb",
                       "1TiB", "1MiBs", "+5");
  CAPTURE(text);
  CHECK_FALSE(parse_size(text).has_value());
}

TEST_CASE("parse_size rejects sizes that overflow 64 bits", "[config][size]") {
  // Regression (fixed): number * factor is unchecked and wraps ("18446744073709551615KiB" →
  // 18446744073709550592).
  auto text =
      GENERATE(as<std::string>{}, "18446744073709551615KiB", "17179869184GiB", "20000000000000MB");
  CAPTURE(text);
  auto parsed = parse_size(text);
  CAPTURE(parsed.value_or(0));
  CHECK_FALSE(parsed.has_value());
}

TEST_CASE("parse_size at the 64-bit limit", "[config][size]") {
  CHECK(parse_size("18446744073709551615") == std::optional<uint64_t>(UINT64_MAX));
  CHECK_FALSE(parse_size("18446744073709551616").has_value());
}

TEST_CASE("dedup_horizon is 0 (off) or at least the stream's duplicate window", "[config][nats]") {
  CHECK(load("nats:\n  dedup_horizon: 0\n").result.ok());
  CHECK(load("nats:\n  dedup_horizon: 24h\n").result.ok());
  auto shorter = load("nats:\n  dedup_horizon: 30s\n  stream:\n    duplicate_window: 2m\n");
  CHECK_FALSE(shorter.result.ok());
  CHECK_THAT(shorter.problems,
             Catch::Contains("file.yaml:2:18: nats.dedup_horizon: must be 0 (off) or at least"));
}

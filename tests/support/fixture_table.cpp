#include "tests/support/fixture_table.hpp"

#include <yaml-cpp/yaml.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <stdexcept>

#include "gateway/core/clock.hpp"
#include "gateway/http/verify.hpp"
#include "gateway/model/ids.hpp"

namespace omnigate::testing {

using nlohmann::json;

namespace {

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

YAML::Node to_yaml(const json& value) {
  switch (value.type()) {
    case json::value_t::object: {
      YAML::Node node(YAML::NodeType::Map);
      for (const auto& [key, item] : value.items()) node[key] = to_yaml(item);
      return node;
    }
    case json::value_t::array: {
      YAML::Node node(YAML::NodeType::Sequence);
      for (const auto& item : value) node.push_back(to_yaml(item));
      return node;
    }
    case json::value_t::string:
      return YAML::Node(value.get<std::string>());
    case json::value_t::boolean:
      return YAML::Node(value.get<bool>());
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return YAML::Node(value.get<int64_t>());
    case json::value_t::number_float:
      return YAML::Node(value.get<double>());
    default:
      return YAML::Node();
  }
}

json from_yaml(const YAML::Node& node) {
  if (node.IsMap()) {
    json out = json::object();
    for (const auto& item : node) out[item.first.as<std::string>()] = from_yaml(item.second);
    return out;
  }
  if (node.IsSequence()) {
    json out = json::array();
    for (const auto& item : node) out.push_back(from_yaml(item));
    return out;
  }
  if (node.IsScalar()) return node.as<std::string>();  // the config reader reads scalars as text
  return nullptr;
}

std::string case_prefix(const std::string& name) {
  return "case '" + name + "': ";
}

// {"$starts_with": s, "$contains": s | [s], "$not_contains": s | [s]}, any of them.
bool is_text_matcher(const json& expected) {
  if (!expected.is_object() || expected.empty()) return false;
  for (const auto& [key, value] : expected.items()) {
    if (key != "$starts_with" && key != "$contains" && key != "$not_contains") return false;
  }
  return true;
}

// Whether `actual` is what `expected` says (the forms of the header's "expected value");
// "" when it is, otherwise what differs.
std::string value_mismatch(const json& actual, const json& expected, const std::string& sent_body,
                           SysMillis before, SysMillis after) {
  if (expected.is_string() && expected == "$now") {
    auto at = actual.is_string() ? parse_rfc3339(actual.get<std::string>()) : std::nullopt;
    if (!at) return "expected a time, got " + actual.dump();
    if (*at < before || *at > after) {
      return "expected the gateway's clock during the request (" + format_rfc3339(before) + " .. " +
             format_rfc3339(after) + "), got " + actual.dump();
    }
    return "";
  }
  if (expected.is_string() && expected == "$body_sha256") {
    return actual == sha256_hex(sent_body)
               ? ""
               : "expected the SHA-256 of the body sent, got " + actual.dump();
  }
  if (is_text_matcher(expected)) {
    if (!actual.is_string()) return "expected a string, got " + actual.dump();
    const std::string text = actual.get<std::string>();
    if (expected.contains("$starts_with") &&
        text.rfind(expected["$starts_with"].get<std::string>(), 0) != 0) {
      return "expected to start with " + expected["$starts_with"].dump() + ", got " + actual.dump();
    }
    const auto parts = [&](const char* key) {
      if (!expected.contains(key)) return json::array();
      return expected[key].is_array() ? expected[key] : json::array({expected[key]});
    };
    for (const auto& part : parts("$contains")) {
      if (text.find(part.get<std::string>()) == std::string::npos)
        return "expected to contain " + part.dump() + ", got " + actual.dump();
    }
    for (const auto& part : parts("$not_contains")) {
      if (text.find(part.get<std::string>()) != std::string::npos)
        return "expected not to contain " + part.dump() + ", got " + actual.dump();
    }
    return "";
  }
  return actual == expected ? "" : "expected " + expected.dump() + ", got " + actual.dump();
}

// Problems of `document` against {pointer: value}: each names the pointer.
void check_fields(const json& document, const json& fields, const std::string& where,
                  const std::string& sent_body, SysMillis before, SysMillis after,
                  std::vector<std::string>& problems) {
  for (const auto& [pointer_text, expected] : fields.items()) {
    json::json_pointer pointer;
    try {
      pointer = json::json_pointer(pointer_text);
    } catch (const json::exception&) {
      problems.push_back(where + pointer_text + ": not a JSON pointer");
      continue;
    }
    if (!document.contains(pointer)) {
      problems.push_back(where + pointer_text + ": missing (expected " + expected.dump() + ")");
      continue;
    }
    auto m = value_mismatch(document.at(pointer), expected, sent_body, before, after);
    if (!m.empty()) problems.push_back(where + pointer_text + ": " + m);
  }
}

const std::set<std::string> kTableKeys = {"channel",    "config", "signing",
                                          "compliance", "cases",  "note"};
const std::set<std::string> kCaseKeys = {
    "name",    "payload", "method", "path",        "account",          "query",
    "headers", "status",  "body",   "body_fields", "response_headers", "interactions",
    "ignored", "metrics", "source", "note"};

FixtureCase read_case(const json& item, const std::filesystem::path& directory,
                      const std::string& file) {
  if (!item.is_object()) throw std::runtime_error(file + ": a case is not an object");
  const std::string name = item.value("name", "");
  if (name.empty()) throw std::runtime_error(file + ": a case without a name: " + item.dump());
  auto fail = [&](const std::string& what) {
    throw std::runtime_error(file + ": " + case_prefix(name) + what);
  };
  for (const auto& [key, value] : item.items()) {
    if (!kCaseKeys.count(key)) fail("unknown key '" + key + "'");
  }
  FixtureCase c;
  c.name = name;
  try {
    c.payload = item.value("payload", "");
    if (!c.payload.empty()) c.body = read_bytes(directory / c.payload);
    c.method = item.value("method", "POST");
    c.path = item.value("path", "");
    c.account = item.value("account", "");
    c.query = item.value("query", "");
    const json headers = item.value("headers", json::object());
    for (const auto& [header, value] : headers.items()) {
      c.headers.emplace_back(header, value.get<std::string>());
    }
    if (!item.contains("status")) fail("no status");
    c.status = item.at("status").get<int>();
    c.expected_body = item.value("body", "");
    c.body_fields = item.value("body_fields", json::object());
    c.response_headers = item.value("response_headers", json::object());
    if (!item.contains("interactions")) fail("no interactions ([] for none)");
    c.interactions = item.at("interactions");
    for (const auto& interaction : c.interactions) {
      for (const auto& [key, value] : interaction.items()) {
        if (key != "fields" && key != "absent" && key != "subject")
          fail("unknown key '" + key + "' in interactions");
      }
    }
    c.ignored = item.value("ignored", 0);
    c.metrics = item.value("metrics", json::object());
  } catch (const json::exception& e) {
    fail(e.what());
  }
  return c;
}

}  // namespace

const FixtureCase* FixtureTable::find(const std::string& name) const {
  for (const auto& c : cases)
    if (c.name == name) return &c;
  return nullptr;
}

std::string FixtureTable::first_account() const {
  const json::json_pointer pointer("/channels/" + channel + "/0/account");
  return config.contains(pointer) ? config.at(pointer).get<std::string>() : "";
}

std::filesystem::path fixture_table_path(const std::string& channel) {
  return std::filesystem::path(OMNIGATE_SOURCE_DIR) / "connectors" / channel / "fixtures" /
         "cases.json";
}

FixtureTable load_fixture_table(const std::filesystem::path& cases_json) {
  const std::string file = cases_json.string();
  json document;
  try {
    document = json::parse(read_bytes(cases_json));
  } catch (const json::exception& e) {
    throw std::runtime_error(file + ": not JSON: " + e.what());
  }
  if (!document.is_object()) throw std::runtime_error(file + ": not a JSON object");
  for (const auto& [key, value] : document.items()) {
    if (!kTableKeys.count(key)) throw std::runtime_error(file + ": unknown key '" + key + "'");
  }
  FixtureTable table;
  table.directory = cases_json.parent_path();
  table.channel = document.value("channel", "");
  if (table.channel.empty()) throw std::runtime_error(file + ": no channel");
  const json config = document.value("config", json::object());
  try {
    table.config = config.is_string() ? from_yaml(YAML::Load(config.get<std::string>())) : config;
  } catch (const YAML::Exception& e) {
    throw std::runtime_error(file + ": config is not YAML: " + e.what());
  }
  table.signing = document.value("signing", json());
  table.compliance = document.value("compliance", json());
  std::set<std::string> names;
  for (const auto& item : document.value("cases", json::array())) {
    FixtureCase c = read_case(item, table.directory, file);
    if (!names.insert(c.name).second) {
      throw std::runtime_error(file + ": two cases named '" + c.name + "'");
    }
    table.cases.push_back(std::move(c));
  }
  return table;
}

std::vector<std::string> unused_payloads(const FixtureTable& table) {
  std::set<std::string> used;
  for (const auto& c : table.cases) used.insert(c.payload);
  std::vector<std::string> unused;
  for (const auto& entry : std::filesystem::directory_iterator(table.directory)) {
    const std::string name = entry.path().filename().string();
    // Besides the table and its notes, a folder may keep the scripts that generate a large
    // payload (FIXTURES.md says which); they are not payloads.
    if (name == "cases.json" || entry.path().extension() == ".md" ||
        entry.path().extension() == ".py")
      continue;
    if (!used.count(name)) unused.push_back(name);
  }
  std::sort(unused.begin(), unused.end());
  return unused;
}

std::string fixture_config_yaml(const json& config, const std::string& nats_url) {
  YAML::Node merged = YAML::Load(test_config_yaml(nats_url));
  for (const auto& [section, value] : config.items()) {
    if (section == "channels") {
      for (const auto& [channel, accounts] : value.items())
        merged["channels"][channel] = to_yaml(accounts);
    } else {
      merged[section] = to_yaml(value);
    }
  }
  YAML::Emitter out;
  out << merged;
  return std::string(out.c_str()) + "\n";
}

std::string CaseResponse::header(const std::string& name) const {
  for (const auto& [key, value] : headers) {
    if (key.size() == name.size() &&
        std::equal(key.begin(), key.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        }))
      return value;
  }
  return "";
}

FixtureRunner::FixtureRunner(const FixtureTable& table) : FixtureRunner(table, table.config) {}

FixtureRunner::FixtureRunner(const FixtureTable& table, const json& config) : table_(table) {
  nats_ = std::make_unique<NatsServer>();
  gateway_ = std::make_unique<RunningGateway>(fixture_config_yaml(config, nats_->url()));
  if (!wait_ready()) throw std::runtime_error("the gateway did not become ready");
}

bool FixtureRunner::wait_ready(std::chrono::milliseconds timeout) const {
  return eventually(
      [&] {
        auto ready = gateway_->client().Get("/readyz");
        return ready && ready->status == 200;
      },
      timeout);
}

bool FixtureRunner::wait_nats_lost(std::chrono::milliseconds timeout) const {
  return eventually(
      [&] {
        auto ready = gateway_->client().Get("/readyz");
        if (!ready) return false;
        // A spooling gateway stays ready (200) without NATS; the body says what it sees.
        auto body = json::parse(ready->body, nullptr, false);
        return body.is_object() && body["nats"].is_object() &&
               body["nats"].value("connected", true) == false;
      },
      timeout);
}

std::map<std::string, double> FixtureRunner::metrics() const {
  std::map<std::string, double> out;
  auto exposition = gateway_->client().Get("/metrics");
  if (!exposition) return out;
  std::istringstream lines(exposition->body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    try {
      out[line.substr(0, space)] = std::stod(line.substr(space + 1));
    } catch (const std::exception&) {
    }
  }
  return out;
}

namespace {

std::string signature_for(const json& signing, const std::string& body, bool valid) {
  if (!signing.is_object()) return valid ? "" : "not-a-signature";
  const std::string scheme = signing.value("scheme", "");
  const std::string prefix = signing.value("prefix", "");
  std::string secret = signing.value("secret", "");
  if (!valid) secret = "wrong-" + secret;
  if (scheme == "hmac_sha256_hex") return prefix + verify::hmac_sha256_hex(secret, body);
  if (scheme == "secret") return prefix + secret;
  throw std::runtime_error("signing.scheme '" + scheme + "' is not hmac_sha256_hex or secret");
}

bool same_header(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

CaseResponse FixtureRunner::send(const FixtureCase& c, const CaseVariant& variant,
                                 std::string* sent_body) const {
  httplib::Request request;
  request.method = c.method;
  const std::string account = c.account.empty() ? table_.first_account() : c.account;
  request.path = variant.path     ? *variant.path
                 : c.path.empty() ? "/v1/" + table_.channel + "/" + account
                                  : c.path;
  if (!c.query.empty()) request.path += "?" + c.query;
  request.body = variant.body ? *variant.body : c.body;
  const std::string signing_header =
      table_.signing.is_object() ? table_.signing.value("header", "") : "";
  bool signed_header_sent = false;
  for (const auto& [name, value] : c.headers) {
    std::string actual = value;
    const bool is_signing = !signing_header.empty() && same_header(name, signing_header);
    if (is_signing && variant.signature == CaseVariant::Signature::missing) continue;
    if (is_signing && variant.signature == CaseVariant::Signature::bad) {
      actual = signature_for(table_.signing, request.body, false);
    } else if (value == "$signature") {
      actual = signature_for(table_.signing, request.body, true);
    } else if (value == "$bad_signature") {
      actual = signature_for(table_.signing, request.body, false);
    }
    signed_header_sent = signed_header_sent || is_signing;
    request.headers.emplace(name, actual);
  }
  if (!signed_header_sent && !signing_header.empty() &&
      variant.signature == CaseVariant::Signature::bad) {
    request.headers.emplace(signing_header, signature_for(table_.signing, request.body, false));
  }
  if (!request.body.empty() && !request.has_header("Content-Type")) {
    request.headers.emplace("Content-Type", "application/octet-stream");
  }
  if (sent_body) *sent_body = request.body;
  auto client = gateway_->client();
  client.set_read_timeout(std::chrono::seconds(30));
  auto result = client.send(request);
  CaseResponse response;
  if (!result) return response;
  response.answered = true;
  response.status = result->status;
  response.body = result->body;
  response.headers = result->headers;
  return response;
}

std::vector<std::string> FixtureRunner::check_published(const FixtureCase& c,
                                                        const std::string& sent_body,
                                                        SysMillis before, SysMillis after) {
  std::vector<std::string> problems;
  const std::string where = case_prefix(c.name);
  auto messages = read_stream(nats_->url());
  std::vector<StreamMessage> fresh(
      messages.begin() + static_cast<long>(std::min(seen_.size(), messages.size())),
      messages.end());
  if (fresh.size() != c.interactions.size()) {
    std::string kinds;
    for (const auto& m : fresh) kinds.append(" ").append(m.body.value("kind", "?"));
    problems.push_back(where + "published " + std::to_string(fresh.size()) +
                       " interactions (kinds:" + kinds + "), expected " +
                       std::to_string(c.interactions.size()));
  }
  for (size_t i = 0; i < fresh.size() && i < c.interactions.size(); ++i) {
    const json& doc = fresh[i].body;
    const json& expected = c.interactions[i];
    const std::string at = where + "interaction " + std::to_string(i) + " ";
    if (fresh[i].msg_id != doc.value("id", "")) {
      problems.push_back(at + "Nats-Msg-Id " + fresh[i].msg_id + " is not /id " +
                         doc.value("id", ""));
    }
    if (fresh[i].schema_header != doc.value("schema", "")) {
      problems.push_back(at + "Omnigate-Schema header '" + fresh[i].schema_header +
                         "' is not /schema");
    }
    if (expected.contains("subject") && fresh[i].subject != expected["subject"]) {
      problems.push_back(at + "subject " + fresh[i].subject + ", expected " +
                         expected["subject"].get<std::string>());
    }
    check_fields(doc, expected.value("fields", json::object()), at, sent_body, before, after,
                 problems);
    const json absent = expected.value("absent", json::array());
    for (const auto& pointer : absent) {
      if (doc.contains(json::json_pointer(pointer.get<std::string>()))) {
        problems.push_back(at + pointer.get<std::string>() + ": must be absent, is " +
                           doc.at(json::json_pointer(pointer.get<std::string>())).dump());
      }
    }
  }
  for (auto& m : fresh) {
    seen_.push_back(std::move(m));
    seen_by_.push_back(c.name);
  }
  return problems;
}

std::vector<std::string> FixtureRunner::check_nothing_published(const std::string& what) {
  FixtureCase nothing;
  nothing.name = what;
  return check_published(nothing, "", SysMillis{}, SysMillis{});
}

std::vector<std::string> FixtureRunner::run(const FixtureCase& c) {
  std::vector<std::string> problems;
  const std::string where = case_prefix(c.name);
  const auto metrics_before = metrics();
  std::string sent_body;
  const SysMillis before = now_millis();
  CaseResponse response = send(c, {}, &sent_body);
  const SysMillis after = now_millis();
  if (!response.answered) return {where + "no HTTP answer"};
  const std::string answer =
      " (answer " + std::to_string(response.status) + " " + response.body.substr(0, 300) + ")";
  if (response.status != c.status) {
    problems.push_back(where + "status " + std::to_string(response.status) + ", expected " +
                       std::to_string(c.status) + answer);
  }
  if (!c.expected_body.empty() && response.body != c.expected_body) {
    problems.push_back(where + "body " + json(response.body).dump() + ", expected " +
                       json(c.expected_body).dump());
  }
  if (!c.body_fields.empty()) {
    json parsed = json::parse(response.body, nullptr, false);
    if (parsed.is_discarded()) {
      problems.push_back(where + "the answer is not JSON" + answer);
    } else {
      check_fields(parsed, c.body_fields, where + "answer ", sent_body, before, after, problems);
    }
  }
  for (const auto& [name, expected] : c.response_headers.items()) {
    const bool present = response.headers.count(name) > 0 || !response.header(name).empty();
    if (expected.is_null()) {
      if (present)
        problems.push_back(where + "header " + name + " must be absent, is " +
                           response.header(name));
    } else if (!present || response.header(name) != expected.get<std::string>()) {
      problems.push_back(where + "header " + name + ": expected " + expected.dump() + ", got " +
                         (present ? json(response.header(name)).dump() : "nothing"));
    }
  }
  auto published = check_published(c, sent_body, before, after);
  problems.insert(problems.end(), published.begin(), published.end());

  const auto metrics_after = metrics();
  auto delta = [&](const std::string& series) {
    auto at = [&](const std::map<std::string, double>& m) {
      auto it = m.find(series);
      return it == m.end() ? 0.0 : it->second;
    };
    return at(metrics_after) - at(metrics_before);
  };
  const std::string ignored_prefix =
      "omnigate_ignored_events_total{channel=\"" + table_.channel + "\",";
  double ignored = 0;
  for (const auto& [series, value] : metrics_after) {
    if (series.rfind(ignored_prefix, 0) == 0) ignored += delta(series);
  }
  if (ignored != c.ignored) {
    problems.push_back(where + "ignored " + std::to_string(static_cast<int>(ignored)) +
                       " events (omnigate_ignored_events_total), expected " +
                       std::to_string(c.ignored));
  }
  for (const auto& [series, expected] : c.metrics.items()) {
    if (delta(series) != expected.get<double>()) {
      problems.push_back(where + series + " rose by " + std::to_string(delta(series)) +
                         ", expected " + expected.dump());
    }
  }
  return problems;
}

std::vector<std::string> FixtureRunner::finish() {
  std::vector<std::string> problems = check_nothing_published("after the last case");
  if (seen_.empty()) return problems;
  std::string schema = schema_problems(seen_);
  if (!schema.empty()) {
    schema += "\n(line N of published.ndjson is published by case:";
    for (size_t i = 0; i < seen_by_.size(); ++i) {
      schema += "\n  " + std::to_string(i + 1) + " = '" + seen_by_[i] + "'";
    }
    problems.push_back("schema: " + schema + ")");
  }
  return problems;
}

void run_fixture_table(const std::string& channel) {
  const FixtureTable table = load_fixture_table(fixture_table_path(channel));
  REQUIRE_FALSE(table.cases.empty());
  FixtureRunner runner(table);
  for (const auto& c : table.cases) {
    for (const auto& problem : runner.run(c)) FAIL_CHECK(problem);
  }
  for (const auto& problem : runner.finish()) FAIL_CHECK(problem);
}

}  // namespace omnigate::testing

// Seeded mutation fuzz of every connector through a real gateway and a real nats-server: the
// real fixtures of each channel (connectors/{telegram,api,webform}/fixtures) with byte flips,
// truncations, type swaps, field removals, hostile strings, deep nesting and huge numbers.
// Whatever is sent, the gateway answers (no crash, no hang), answers no 5xx but 503, and
// every interaction it published is valid interaction.v1 (Ajv over the whole stream).
//
// Deterministic: the seed is OMNIGATE_FUZZ_SEED or a fixed default, printed with every
// failure together with the case number and its mutation, so a failure replays exactly.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>

#include "gateway/http/request.hpp"
#include "gateway/http/verify.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using nlohmann::json;

namespace {

const std::string kTelegramSecret = "fuzz_Secret-0123456789abcdefghij";
const std::string kBotToken = "7212345678:AAHfuzz_TOKEN-for-the-fuzz-tests000";

uint64_t fuzz_seed() {
  if (const char* env = std::getenv("OMNIGATE_FUZZ_SEED")) return std::strtoull(env, nullptr, 10);
  return 20261201;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The fixtures of one channel whose name ends with `extension`, sorted by name.
std::vector<std::string> fixtures(const std::string& channel, const std::string& extension) {
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(
           std::filesystem::path(OMNIGATE_SOURCE_DIR) / "connectors" / channel / "fixtures")) {
    // cases.json is the fixture table (tests/support/fixture_table.hpp), not a payload.
    if (entry.path().extension() == extension && entry.path().filename() != "cases.json")
      paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  std::vector<std::string> out;
  for (const auto& p : paths) out.push_back(read_file(p));
  return out;
}

// The .json fixtures of a channel that are JSON objects: the seeds to mutate (a fixture table
// also sends malformed bodies, which have no structure to mutate).
std::vector<std::string> json_documents(const std::string& channel) {
  std::vector<std::string> out;
  for (auto& body : fixtures(channel, ".json")) {
    if (json::parse(body, nullptr, false).is_object()) out.push_back(std::move(body));
  }
  return out;
}

// Strings that have broken a schema constraint or a parser somewhere.
std::vector<std::string> hostile_strings() {
  return {"",
          " ",
          "\r\n",
          "not a uri <script>",
          "https://shop.example/{a}[b]",
          "https://shop.example/%zz",
          "https://shop.example/%",
          "http://[::1]:80/",
          "http://host:port/",
          "javascript:alert(1)",
          "ftp://",
          "x:",
          std::string(150 * 1024, 'a'),
          std::string(5000, 'b'),
          std::string("nul\0byte", 8),
          "\xff\xfe invalid utf-8 \xc3",
          "Marketing Emails!",
          "-1",
          "10000000000000000",
          "2026-13-45T25:61:61Z",
          "9999-12-31T23:59:59Z",
          "0000-01-01T00:00:00Z",
          "1969-12-31T23:59:59Z",
          "ru\r\n",
          "en-US",
          "not-a-uuid",
          "4b3f0c1e-2a5d-5f6b-8c9d-0e1f2a3b4c5d",
          "😀😀😀😀",
          "../../etc/passwd",
          "/start",
          "/start dXRtX3NvdXJjZT12aw",
          "stop"};
}

// Numbers past every type a parser might map them to; spliced in as text.
const std::vector<std::string> kHugeNumbers = {"1e400",
                                               "-1e400",
                                               "1e308",
                                               "18446744073709551616",
                                               "-9223372036854775809",
                                               "1e-400",
                                               "-0",
                                               "123456789012345678901234567890.5",
                                               "1E+99999"};

const std::vector<json> kExtremeNumbers = {json(1e15),
                                           json(-1),
                                           json(0),
                                           json(1000000000000000000LL),
                                           json(INT64_MAX),
                                           json(INT64_MIN),
                                           json(UINT64_MAX),
                                           json(1000.5),
                                           json(-1000),
                                           json(253402300800LL),
                                           json(-62135596800LL)};

constexpr const char* kSplice = "\x01SPLICE\x01";

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  size_t below(size_t n) {
    return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng_);
  }
  bool chance(int percent) { return below(100) < static_cast<size_t>(percent); }

  // Every JSON pointer of `doc` but the root, by an explicit stack.
  static std::vector<json::json_pointer> pointers(const json& doc) {
    std::vector<json::json_pointer> out;
    std::vector<std::pair<json::json_pointer, const json*>> stack{{json::json_pointer(), &doc}};
    while (!stack.empty()) {
      auto [ptr, node] = stack.back();
      stack.pop_back();
      if (node->is_object()) {
        for (auto it = node->begin(); it != node->end(); ++it) {
          stack.emplace_back(ptr / it.key(), &*it);
          out.push_back(ptr / it.key());
        }
      } else if (node->is_array()) {
        for (size_t i = 0; i < node->size(); ++i) {
          stack.emplace_back(ptr / i, &(*node)[i]);
          out.push_back(ptr / i);
        }
      }
    }
    return out;
  }

  json random_value() {
    switch (below(8)) {
      case 0:
        return nullptr;
      case 1:
        return chance(50);
      case 2:
        return kExtremeNumbers[below(kExtremeNumbers.size())];
      case 3:
        return json::array({1, "x", nullptr});
      case 4:
        return json::object({{"unexpected", json::array()}});
      case 5:
        return json::array();
      case 6:
        return json::object();
      default: {
        auto strings = hostile_strings();
        return strings[below(strings.size())];
      }
    }
  }

  // One mutation of a JSON document; `what` names it for the failure message.
  std::string mutate_json(json doc, std::string& what) {
    auto ptrs = pointers(doc);
    std::string splice;  // text that replaces the kSplice string after dumping
    int rounds = chance(25) ? 3 : 1;
    for (int round = 0; round < rounds && !ptrs.empty(); ++round) {
      const auto ptr = ptrs[below(ptrs.size())];
      switch (below(7)) {
        case 0:
          what += "type swap at " + ptr.to_string() + "; ";
          doc[ptr] = random_value();
          break;
        case 1: {
          what += "removal of " + ptr.to_string() + "; ";
          json& parent = doc[ptr.parent_pointer()];
          if (parent.is_object())
            parent.erase(ptr.back());
          else if (parent.is_array())
            parent.erase(std::stoul(ptr.back()));
          break;
        }
        case 2: {
          if (!doc[ptr].is_string()) {
            doc[ptr] = random_value();
          } else {
            auto strings = hostile_strings();
            doc[ptr] = strings[below(strings.size())];
          }
          what += "hostile value at " + ptr.to_string() + "; ";
          break;
        }
        case 3:
          what += "extreme number at " + ptr.to_string() + "; ";
          doc[ptr] = kExtremeNumbers[below(kExtremeNumbers.size())];
          break;
        case 4: {
          static const size_t depths[] = {63, 64, 65, 100, 5000, 40000, 60000};
          size_t depth = depths[below(std::size(depths))];
          bool objects = chance(30);
          what += "nesting " + std::to_string(depth) + (objects ? " objects" : " arrays") + " at " +
                  ptr.to_string() + "; ";
          splice.clear();
          for (size_t i = 0; i < depth; ++i) splice += objects ? "{\"a\":" : "[";
          splice += "1";
          for (size_t i = 0; i < depth; ++i) splice += objects ? "}" : "]";
          doc[ptr] = kSplice;
          break;
        }
        case 5:
          splice = kHugeNumbers[below(kHugeNumbers.size())];
          what += "number " + splice + " at " + ptr.to_string() + "; ";
          doc[ptr] = kSplice;
          break;
        default: {
          json& node = doc[ptr.parent_pointer()];
          if (node.is_object()) {
            what += "unknown key in " + ptr.parent_pointer().to_string() + "; ";
            node["fuzz_unknown"] = random_value();
          } else {
            what += "type swap at " + ptr.to_string() + "; ";
            doc[ptr] = random_value();
          }
        }
      }
      ptrs = pointers(doc);  // a swapped subtree took its children's pointers with it
    }
    std::string text = doc.dump(-1, ' ', false, json::error_handler_t::replace);
    std::string quoted = json(kSplice).dump();
    if (size_t at = text.find(quoted); at != std::string::npos)
      text.replace(at, quoted.size(), splice);
    return text;
  }

  // Byte-level damage of any body.
  std::string damage_bytes(std::string text, std::string& what) {
    if (text.empty()) return text;
    if (chance(40)) {
      size_t at = below(text.size());
      what += "truncation at " + std::to_string(at) + "; ";
      text.resize(at);
      return text;
    }
    size_t flips = 1 + below(4);
    for (size_t i = 0; i < flips; ++i) {
      size_t at = below(text.size());
      text[at] = static_cast<char>(text[at] ^ (1 + below(255)));
    }
    what += std::to_string(flips) + " byte flips; ";
    return text;
  }

 private:
  std::mt19937_64 rng_;
};

struct Outcome {
  size_t cases = 0;
  std::map<int, size_t> statuses;
};

// Sends one body; fails the test (with seed, case and mutation) on no answer or a bad 5xx.
void send_case(const RunningGateway& gateway, const std::string& path,
               const httplib::Headers& headers, const std::string& body,
               const std::string& content_type, const std::string& what, size_t index,
               Outcome& outcome) {
  auto res = gateway.client().Post(path.c_str(), headers, body, content_type.c_str());
  ++outcome.cases;
  INFO("seed " << fuzz_seed() << ", case " << index << ": " << what << " body " << body.size()
               << " bytes: " << body.substr(0, 300));
  REQUIRE(res);  // no answer: the gateway crashed or hung
  ++outcome.statuses[res->status];
  if (res->status >= 500) REQUIRE(res->status == 503);
}

// After the cases: the gateway still serves, and everything it published is valid.
void check_published(const RunningGateway& gateway, const NatsServer& nats, const char* channel,
                     const Outcome& outcome, std::chrono::steady_clock::time_point started,
                     size_t min_published) {
  auto health = gateway.client().Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  auto published = read_stream(nats.url());
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::ostringstream statuses;
  for (const auto& [status, count] : outcome.statuses) statuses << " " << status << "x" << count;
  std::cout << "fuzz " << channel << ": seed " << fuzz_seed() << ", " << outcome.cases << " cases, "
            << published.size() << " published, statuses" << statuses.str() << ", " << seconds
            << " s\n";
  INFO("seed " << fuzz_seed());
  CHECK(published.size() >= min_published);  // the fuzz reaches the publisher, not only 400s
  CHECK(schema_problems(published) == "");
}

}  // namespace

TEST_CASE("telegram webhook: mutated fixtures publish only valid interactions", "[fuzz]") {
  auto started = std::chrono::steady_clock::now();
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url(), "",
                                          "  telegram:\n"
                                          "    - account: fuzzbot\n"
                                          "      token: \"" +
                                              kBotToken +
                                              "\"\n"
                                              "      mode: webhook\n"
                                              "      api_url: http://127.0.0.1:9\n"
                                              "      secret_token: " +
                                              kTelegramSecret + "\n"));
  Mutator mutator(fuzz_seed());
  auto bodies = fixtures("telegram", ".json");
  REQUIRE(bodies.size() > 20);
  httplib::Headers headers = {{"X-Telegram-Bot-Api-Secret-Token", kTelegramSecret}};
  Outcome outcome;
  const size_t kCases = 5000;
  for (size_t i = 0; i < kCases; ++i) {
    std::string what;
    const std::string& fixture = bodies[i % bodies.size()];
    json doc = json::parse(fixture, nullptr, false);
    std::string body;
    if (doc.is_object()) {
      doc["update_id"] = 1000000 + static_cast<int64_t>(i);  // each case its own update
      body = mutator.chance(30) ? mutator.damage_bytes(doc.dump(), what)
                                : mutator.mutate_json(doc, what);
    } else {
      body = mutator.damage_bytes(fixture, what);  // the malformed fixture
    }
    send_case(gateway, "/v1/telegram/fuzzbot", headers, body, "application/json", what, i, outcome);
  }
  check_published(gateway, nats, "telegram", outcome, started, kCases / 5);
}

TEST_CASE("api channel: mutated interactions publish only valid interactions", "[fuzz]") {
  auto started = std::chrono::steady_clock::now();
  NatsServer nats;
  // test_config_yaml's API account takes 4 KiB: give the deep and long mutations room to reach
  // the parser rather than a 413.
  std::string yaml = test_config_yaml(nats.url());
  const std::string small = "      max_body: 4KiB\n";
  yaml.replace(yaml.find(small), small.size(), "      max_body: 1MiB\n");
  RunningGateway gateway(yaml);
  Mutator mutator(fuzz_seed() + 1);
  auto bodies = json_documents("api");
  REQUIRE(bodies.size() >= 5);
  Outcome outcome;
  const size_t kCases = 4000;
  for (size_t i = 0; i < kCases; ++i) {
    std::string what;
    json doc = json::parse(bodies[i % bodies.size()]);
    std::string body = mutator.chance(25) ? mutator.damage_bytes(doc.dump(), what)
                                          : mutator.mutate_json(doc, what);
    httplib::Headers headers = {{"Authorization", "Bearer " + kApiToken},
                                {"Idempotency-Key", "fuzz-" + std::to_string(i)}};
    send_case(gateway, "/v1/api/crm", headers, body, "application/json", what, i, outcome);
  }
  check_published(gateway, nats, "api", outcome, started, kCases / 20);
}

namespace {

std::string webform_section() {
  return "  webform:\n"
         "    - account: fuzzform\n"
         "      max_body: 1MiB\n"
         "      required: [name, phone]\n"
         "      consents:\n"
         "        - field: consent_pd\n"
         "          text: pd-processing\n"
         "          required: true\n"
         "        - field: consent_marketing\n"
         "          text: marketing-email\n"
         "      rate_limit_per_minute: 100000\n"
         "consent:\n"
         "  signing_key: fuzz-signing-key-0123456789abcdefghij\n"
         "  texts:\n"
         "    - id: pd-processing\n"
         "      version: \"1\"\n"
         "      purpose: processing\n"
         "      channels: [email, phone]\n"
         "      text: 'Я согласен на обработку персональных данных.'\n"
         "      policy_url: https://shop.example/privacy\n"
         "    - id: marketing-email\n"
         "      version: \"3\"\n"
         "      purpose: marketing\n"
         "      channels: [email]\n"
         "      text: 'Хочу получать новости.'\n";
}

using Pairs = std::vector<std::pair<std::string, std::string>>;

// Splits an urlencoded body into its (still encoded) pairs.
Pairs split_pairs(const std::string& body) {
  Pairs out;
  std::stringstream in(body);
  std::string item;
  while (std::getline(in, item, '&')) {
    size_t eq = item.find('=');
    out.emplace_back(item.substr(0, eq), eq == std::string::npos ? "" : item.substr(eq + 1));
  }
  return out;
}

std::string join_pairs(const Pairs& pairs) {
  std::string out;
  for (const auto& [k, v] : pairs) out += (out.empty() ? "" : "&") + k + "=" + v;
  return out;
}

std::string mutate_urlencoded(Mutator& m, Pairs pairs, std::string& what) {
  auto strings = hostile_strings();
  switch (m.below(7)) {
    case 0: {
      size_t at = m.below(pairs.size());
      what += "removal of " + pairs[at].first + "; ";
      pairs.erase(pairs.begin() + static_cast<long>(at));
      break;
    }
    case 1: {
      size_t at = m.below(pairs.size());
      const std::string& value = strings[m.below(strings.size())];
      bool raw = m.chance(40);  // unencoded, as a careless client sends it
      what += "hostile value for " + pairs[at].first + (raw ? " (raw); " : "; ");
      pairs[at].second = raw ? value : omnigate::url_encode(value);
      break;
    }
    case 2: {
      size_t at = m.below(pairs.size());
      what += "duplicate of " + pairs[at].first + "; ";
      pairs.push_back(pairs[at]);
      break;
    }
    case 3: {
      size_t count = 150 + m.below(150);
      what += std::to_string(count) + " extra fields; ";
      for (size_t i = 0; i < count; ++i) pairs.emplace_back("f" + std::to_string(i), "v");
      break;
    }
    case 4: {
      static const char* bad[] = {"%", "%z", "%E0%A4", "%00", "%FF%FE", "%%41", "+%2"};
      size_t at = m.below(pairs.size());
      what += "bad escape in " + pairs[at].first + "; ";
      pairs[at].second += bad[m.below(std::size(bad))];
      break;
    }
    case 5:
      what += "page_url hostile; ";
      pairs.emplace_back("_page_url", omnigate::url_encode(strings[m.below(strings.size())]));
      break;
    default: {
      std::string body = join_pairs(pairs);
      return m.damage_bytes(body, what);
    }
  }
  return join_pairs(pairs);
}

}  // namespace

TEST_CASE("web form: mutated submissions publish only valid interactions", "[fuzz]") {
  auto started = std::chrono::steady_clock::now();
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url(), "", webform_section()));
  Mutator mutator(fuzz_seed() + 2);
  auto encoded = fixtures("webform", ".urlencoded");
  auto documents = json_documents("webform");
  REQUIRE(!encoded.empty());
  REQUIRE(!documents.empty());
  Outcome outcome;
  const size_t kCases = 4000;
  for (size_t i = 0; i < kCases; ++i) {
    std::string what;
    std::string id = "fuzz-" + std::to_string(i);
    std::string body, content_type;
    if (i % 2 == 0) {
      Pairs pairs = split_pairs(encoded[(i / 2) % encoded.size()]);
      for (auto& [k, v] : pairs) {
        if (k == "_submission_id") v = id;
      }
      body = mutate_urlencoded(mutator, pairs, what);
      content_type = "application/x-www-form-urlencoded";
    } else {
      json doc = json::parse(documents[(i / 2) % documents.size()]);
      doc["_submission_id"] = id;
      body = mutator.chance(25) ? mutator.damage_bytes(doc.dump(), what)
                                : mutator.mutate_json(doc, what);
      content_type = "application/json";
    }
    send_case(gateway, "/v1/webform/fuzzform", {}, body, content_type, what, i, outcome);
  }
  check_published(gateway, nats, "webform", outcome, started, kCases / 5);
}

TEST_CASE("whatsapp webhook: mutated, re-signed fixtures publish only valid interactions",
          "[fuzz]") {
  auto started = std::chrono::steady_clock::now();
  NatsServer nats;
  const std::string app_secret = "fuzz-app-secret-0123456789abcdef";
  RunningGateway gateway(
      test_config_yaml(nats.url(), "",
                       "  whatsapp:\n"
                       "    - account: fuzznumber\n"
                       "      phone_number_id: \"106540352242922\"\n"
                       "      app_secret: " +
                           app_secret +
                           "\n"
                           "      verify_token: fuzz-verify-token-0123456789\n"));
  Mutator mutator(fuzz_seed());
  auto bodies = fixtures("whatsapp", ".json");
  REQUIRE(bodies.size() > 30);
  Outcome outcome;
  const size_t kCases = 3000;
  for (size_t i = 0; i < kCases; ++i) {
    std::string what;
    // Each case its own events: every wamid gets the case number.
    std::string fixture = bodies[i % bodies.size()];
    const std::string unique = "wamid." + std::to_string(i) + ".";
    for (size_t at = fixture.find("wamid."); at != std::string::npos;
         at = fixture.find("wamid.", at + unique.size())) {
      fixture.replace(at, 6, unique);
    }
    json doc = json::parse(fixture, nullptr, false);
    std::string body;
    if (doc.is_object() && !doc.contains("cases")) {
      body = mutator.chance(30) ? mutator.damage_bytes(doc.dump(), what)
                                : mutator.mutate_json(doc, what);
    } else {
      body = mutator.damage_bytes(fixture, what);  // the malformed fixture, the table
    }
    // Signed after the mutation: the fuzz is of what a holder of the app secret could send.
    httplib::Headers headers = {
        {"X-Hub-Signature-256", "sha256=" + omnigate::verify::hmac_sha256_hex(app_secret, body)}};
    send_case(gateway, "/v1/whatsapp/fuzznumber", headers, body, "application/json", what, i,
              outcome);
  }
  check_published(gateway, nats, "whatsapp", outcome, started, kCases / 5);
}

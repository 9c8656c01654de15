// The fixture-table runner: a channel's table (connectors/<channel>/fixtures/cases.json) run
// through the real HTTP route of a real gateway against a real nats-server, case by case in
// table order, on one gateway per table (so a case may be a retry of an earlier one).
//
// The table format (cases.json):
//   "channel":    the connector's channel name.
//   "config":     the config of the test accounts: an object (or a YAML string) of top-level
//                 sections merged over the harness's test config (test_config_yaml):
//                 {"channels": {"<channel>": [{"account": ..., secrets inline}]}, "consent": ...}.
//                 A section given here replaces the harness's one; "channels" per channel.
//   "signing":    how the header value "$signature" is made (null: the channel signs nothing):
//                 {"header": "X-Hub-Signature-256", "scheme": "hmac_sha256_hex",
//                  "prefix": "sha256=", "secret": "..."}: prefix + hex HMAC-SHA256 of the body;
//                 {"header": "...", "scheme": "secret", "prefix": "Bearer ", "secret": "..."}:
//                 prefix + the secret itself. "$bad_signature" is the same made with a wrong
//                 secret.
//   "compliance": {"valid": "<case name>", "unauthenticated": "<case name>" | null}, what
//                 tests/compliance runs the kit's checks with.
//   "cases":      [{
//     "name":     unique; every failure names it.
//     "payload":  a file in the fixtures folder, sent byte for byte; "" = no body.
//     "method":   default POST.          "path": default /v1/<channel>/<account>.
//     "account":  default the first account of config.channels.<channel>.
//     "query":    without "?", default "".
//     "headers":  name -> value ("$signature", "$bad_signature" as above).
//     "status":   the HTTP status.       "body": the exact answer body, "" = not checked.
//     "body_fields": JSON pointer into the answer (parsed as JSON) -> expected value.
//     "response_headers": name -> expected value, null = must be absent.
//     "interactions": [{"fields": {pointer: value}, "absent": [pointer], "subject": "..."}],
//                 what this case publishes, in stream order; nothing else may be published.
//                 Every message must also carry Nats-Msg-Id == /id and Omnigate-Schema.
//     "ignored":  how many events the case acknowledges without publishing: the delta of
//                 omnigate_ignored_events_total{channel="<channel>"}.
//     "metrics":  exposition series (e.g. omnigate_rejected_total{channel="api",reason="x"})
//                 -> expected delta over this case.
//     "source":   where the shape comes from.   "note": free text.
//   }]
// An expected value is compared with == except these forms:
//   "$now"           an RFC 3339 time within the case's request (the gateway's clock);
//   "$body_sha256"   the lower-case hex SHA-256 of the bytes the case sent;
//   {"$starts_with": "a", "$contains": "b" | ["b", ...], "$not_contains": "c" | [...]}: a string
//                    that starts with a, contains every b and none of c (any of the keys).
// Every interaction published by a table is validated against schemas/ (schema_problems).
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/harness.hpp"

namespace omnigate::testing {

struct FixtureCase {
  std::string name;
  std::string payload;  // file name, "" for no body
  std::string body;     // the payload's bytes
  std::string method = "POST";
  std::string path;  // "" = /v1/<channel>/<account>
  std::string account;
  std::string query;
  std::vector<std::pair<std::string, std::string>> headers;
  int status = 0;
  std::string expected_body;
  nlohmann::json body_fields = nlohmann::json::object();
  nlohmann::json response_headers = nlohmann::json::object();
  nlohmann::json interactions = nlohmann::json::array();
  int ignored = 0;
  nlohmann::json metrics = nlohmann::json::object();
};

struct FixtureTable {
  std::string channel;
  std::filesystem::path directory;  // connectors/<channel>/fixtures
  nlohmann::json config;            // object form (a YAML string is converted on load)
  nlohmann::json signing;           // null when the channel signs nothing
  nlohmann::json compliance;        // null when the table has no compliance block
  std::vector<FixtureCase> cases;

  // The case named `name`, or nullptr.
  const FixtureCase* find(const std::string& name) const;
  // The first account of config.channels.<channel>, "" when there is none.
  std::string first_account() const;
};

// connectors/<channel>/fixtures/cases.json in the source tree.
std::filesystem::path fixture_table_path(const std::string& channel);

// Reads and checks a table: unknown keys, missing names, unreadable payload files and
// duplicate case names throw std::runtime_error naming the file and the case.
FixtureTable load_fixture_table(const std::filesystem::path& cases_json);

// The payload files (not cases.json, not *.md) of the table's folder that no case sends.
std::vector<std::string> unused_payloads(const FixtureTable& table);

// The full gateway config: test_config_yaml(nats_url) with `config`'s sections merged in.
std::string fixture_config_yaml(const nlohmann::json& config, const std::string& nats_url);

struct CaseResponse {
  bool answered = false;  // false: no HTTP answer (connection error)
  int status = 0;
  std::string body;
  httplib::Headers headers;
  std::string header(const std::string& name) const;  // "" when absent
};

// How to send a case otherwise than the table says (the compliance checks).
struct CaseVariant {
  enum class Signature { as_in_table, bad, missing };
  std::optional<std::string> path;
  std::optional<std::string> body;
  Signature signature = Signature::as_in_table;
};

// A real nats-server and a real gateway configured with a table's config, and the state of
// the stream between cases.
class FixtureRunner {
 public:
  explicit FixtureRunner(const FixtureTable& table);
  FixtureRunner(const FixtureTable& table, const nlohmann::json& config);

  // Sends the case as the variant says; `sent_body` gets the bytes sent.
  CaseResponse send(const FixtureCase& c, const CaseVariant& variant = {},
                    std::string* sent_body = nullptr) const;
  // Sends the case as the table says and checks everything the case expects. Returns the
  // problems, each starting with "case '<name>': ".
  std::vector<std::string> run(const FixtureCase& c);
  // Checks the messages published since the last check against the case's interactions
  // ("$now" is taken between `before` and `after`); the messages are then counted as seen.
  std::vector<std::string> check_published(const FixtureCase& c, const std::string& sent_body,
                                           SysMillis before, SysMillis after);
  // Problems of the messages published since the last check (there should be none).
  std::vector<std::string> check_nothing_published(const std::string& what);
  // The schema check of everything seen, and that the stream holds nothing unseen.
  std::vector<std::string> finish();

  // Waits for /readyz 200 (NATS connected, stream present, dedup index caught up).
  bool wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(20)) const;
  // Waits until /readyz says NATS is not connected: the gateway has seen the server go.
  bool wait_nats_lost(std::chrono::milliseconds timeout = std::chrono::seconds(20)) const;
  std::map<std::string, double> metrics() const;  // the /metrics exposition, series -> value

  NatsServer& nats() { return *nats_; }
  RunningGateway& gateway() { return *gateway_; }
  const std::vector<StreamMessage>& seen() const { return seen_; }

 private:
  const FixtureTable& table_;
  std::unique_ptr<NatsServer> nats_;
  std::unique_ptr<RunningGateway> gateway_;
  std::vector<StreamMessage> seen_;   // every message checked so far, in stream order
  std::vector<std::string> seen_by_;  // the case that published each
};

// Runs every case of the channel's table on one gateway: one Catch2 failure per problem.
void run_fixture_table(const std::string& channel);

}  // namespace omnigate::testing

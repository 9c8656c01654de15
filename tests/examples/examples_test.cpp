// The CRM examples (examples/node, examples/go) against a real nats-server and gateway: each
// creates its durable consumer, prints what was published, acks it, resumes after a restart
// with only what is new, and replays from a time with --since; and the NATS permissions that
// examples/README.md gives a CRM account are enough for that and for nothing more.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <optional>
#include <sstream>

#include "gateway/model/ids.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using namespace std::chrono_literals;

namespace {

// The commands that run each example, set by tests/CMakeLists.txt where its toolchain exists.
struct Example {
  std::string name;
  std::string command;
};

std::vector<Example> examples() {
  std::vector<Example> found;
#ifdef OMNIGATE_NODE_EXAMPLE
  found.push_back({"node", OMNIGATE_NODE_EXAMPLE});
#endif
#ifdef OMNIGATE_GO_EXAMPLE
  found.push_back({"go", OMNIGATE_GO_EXAMPLE});
#endif
  return found;
}

std::string message_body(const std::string& key) {
  return R"({"kind": "message", "occurred_at": "2026-12-01T10:00:00Z",
             "contact": {"display_name": "Test Person"},
             "message": {"native_id": ")" +
         key + R"(", "text": "please call me back"}})";
}

// Publishes one message per key through the API channel; returns the lines the examples print
// for them ("<id> api message"), in order.
std::vector<std::string> publish(const RunningGateway& gateway,
                                 const std::vector<std::string>& keys) {
  std::vector<std::string> lines;
  for (const auto& key : keys) {
    auto reply = gateway.post_api(key, message_body(key));
    REQUIRE(reply);
    INFO(reply->body);
    REQUIRE(reply->status == 202);
    std::string id = omnigate::interaction_id("api", "crm", key);
    REQUIRE(reply->body.find(id) != std::string::npos);
    lines.push_back(id + " api message");
  }
  return lines;
}

struct ExampleRun {
  int exit_code = -1;
  std::vector<std::string> lines;  // stdout
  std::string diagnostics;         // stderr
};

// Runs an example with `arguments` and the environment `env` ("NAME=value ..."), stdout and
// stderr apart; at most 60 s (a consumer that never reaches --max is killed and fails).
ExampleRun run_example(const Example& example, const std::string& env,
                       const std::string& arguments) {
  TempDir dir;
  std::string err_file = dir.path() + "/stderr";
  auto result = run_command("{ env " + env + " timeout 60 " + example.command + " " + arguments +
                            " 2>" + err_file + "; }");
  ExampleRun run;
  run.exit_code = result.exit_code;
  std::istringstream out(result.output);
  for (std::string line; std::getline(out, line);) run.lines.push_back(line);
  std::ifstream err(err_file);
  run.diagnostics.assign(std::istreambuf_iterator<char>(err), {});
  return run;
}

struct ConsumerState {
  uint64_t ack_floor = 0;  // the last stream sequence acked in order
  int64_t ack_pending = -1;
  uint64_t pending = 0;  // not delivered yet
};

// The consumer's state as the server has it; nullopt while it does not exist.
std::optional<ConsumerState> find_consumer(const std::string& nats_url,
                                           const std::string& durable) {
  NatsClient client(nats_url);
  jsConsumerInfo* raw = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_GetConsumerInfo(&raw, client.jetstream(), "OMNIGATE_INTERACTIONS",
                                    durable.c_str(), nullptr, &code);
  std::unique_ptr<jsConsumerInfo, decltype(&jsConsumerInfo_Destroy)> owned(raw,
                                                                           &jsConsumerInfo_Destroy);
  if (s != NATS_OK) return std::nullopt;
  return ConsumerState{raw->AckFloor.Stream, raw->NumAckPending, raw->NumPending};
}

ConsumerState consumer_state(const std::string& nats_url, const std::string& durable) {
  auto state = find_consumer(nats_url, durable);
  REQUIRE(state);
  return *state;
}

// An RFC 3339 time (UTC, milliseconds) at least 1 ms after every message stored so far, which
// the clock has passed when this returns: what is published next is stored after it.
std::string time_between() {
  auto at =
      std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()) +
      2ms;
  REQUIRE(eventually([&] { return std::chrono::system_clock::now() > at + 1ms; }, 1s));
  std::time_t seconds = std::chrono::system_clock::to_time_t(at);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  std::ostringstream text;
  text << std::put_time(&utc, "%Y-%m-%dT%H:%M:%S") << '.' << std::setw(3) << std::setfill('0')
       << (at.time_since_epoch().count() % 1000) << 'Z';
  return text.str();
}

// The fenced block after `marker` in examples/README.md: the nats-server config a CRM copies.
std::string readme_block(const std::string& marker) {
  std::ifstream file(std::string(OMNIGATE_SOURCE_DIR) + "/examples/README.md");
  std::string text((std::istreambuf_iterator<char>(file)), {});
  auto at = text.find(marker);
  REQUIRE(at != std::string::npos);
  auto start = text.find('\n', text.find("```", at)) + 1;
  auto end = text.find("\n```", start);
  REQUIRE(end != std::string::npos);
  return text.substr(start, end - start + 1);
}

}  // namespace

TEST_CASE("every CRM example prints what was published, acks it, resumes, and replays from a time",
          "[examples]") {
  REQUIRE_FALSE(examples().empty());
  for (const auto& example : examples()) {
    SECTION(example.name) {
      NatsServer nats;
      RunningGateway gateway(test_config_yaml(nats.url()));
      std::string env = "NATS_URL=" + nats.url();

      auto first = publish(gateway, {"k1", "k2", "k3"});
      std::string between = time_between();
      auto run = run_example(example, env, "--durable crm --max 3");
      INFO(run.diagnostics);
      CHECK(run.exit_code == 0);
      CHECK(run.lines == first);
      // Every interaction printed was acked, and the acks reached the server before the exit.
      auto state = consumer_state(nats.url(), "crm");
      CHECK(state.ack_floor == 3);
      CHECK(state.ack_pending == 0);

      auto second = publish(gateway, {"k4", "k5"});
      auto resumed = run_example(example, env, "--durable crm --max 2");
      INFO(resumed.diagnostics);
      CHECK(resumed.exit_code == 0);
      CHECK(resumed.lines == second);  // only the new ones: the durable consumer resumed
      state = consumer_state(nats.url(), "crm");
      CHECK(state.ack_floor == 5);
      CHECK(state.ack_pending == 0);
      CHECK(state.pending == 0);

      // A new consumer from a time replays only what came after it, whatever the old one did.
      auto replay =
          run_example(example, env, "--durable crm-replay --since " + between + " --max 2");
      INFO(replay.diagnostics);
      CHECK(replay.exit_code == 0);
      CHECK(replay.lines == second);
      CHECK(consumer_state(nats.url(), "crm-replay").ack_floor == 5);

      // --since on an existing consumer would silently be ignored: it is refused instead.
      auto refused = run_example(example, env, "--durable crm --since " + between + " --max 1");
      CHECK(refused.exit_code == 2);
      CHECK(refused.lines.empty());
      CHECK(refused.diagnostics.find("--since applies to a new consumer only") !=
            std::string::npos);

      auto bad_time = run_example(example, env, "--durable crm --since yesterday --max 1");
      CHECK(bad_time.exit_code == 2);
      CHECK(bad_time.diagnostics.find("RFC 3339") != std::string::npos);
    }
  }
}

TEST_CASE("every CRM example goes on by itself across a NATS restart", "[examples][reconnect]") {
  for (const auto& example : examples()) {
    SECTION(example.name) {
      NatsServer nats;
      RunningGateway gateway(test_config_yaml(nats.url()));
      auto expected = publish(gateway, {"before"});
      ExampleRun run;
      std::thread consumer(
          [&] { run = run_example(example, "NATS_URL=" + nats.url(), "--durable crm --max 2"); });
      bool first_acked = eventually([&] {
        auto state = find_consumer(nats.url(), "crm");
        return state && state->ack_floor == 1;
      });
      nats.stop();  // the consumer is waiting in a fetch
      nats.start();
      // The gateway reconnects too: 503 until then.
      bool published = eventually(
          [&] {
            auto reply = gateway.post_api("after", message_body("after"));
            return reply && reply->status == 202;
          },
          20s);
      consumer.join();
      REQUIRE(first_acked);
      REQUIRE(published);
      expected.push_back(omnigate::interaction_id("api", "crm", "after") + " api message");
      INFO(run.diagnostics);
      CHECK(run.exit_code == 0);
      CHECK(run.lines == expected);
      CHECK(consumer_state(nats.url(), "crm").ack_floor == 2);
    }
  }
}

namespace {

std::atomic<int> g_permission_errors{0};

void count_permission_error(natsConnection*, natsSubscription*, natsStatus status, void*) {
  if (status == NATS_NOT_PERMITTED) g_permission_errors++;
}

}  // namespace

TEST_CASE("the CRM account of examples/README.md consumes and acks, and cannot publish or purge",
          "[examples][permissions]") {
  // Exactly the README's snippet, its passwords from the environment as there.
  ::setenv("OMNIGATE_NATS_PASSWORD", "gateway-pass-0123", 1);
  ::setenv("CRM_NATS_PASSWORD", "crm-pass-0123", 1);
  TempDir dir;
  std::string config_path = dir.path() + "/nats-server.conf";
  std::ofstream(config_path) << readme_block("<!-- nats-server permissions -->");
  NatsServer nats(NatsServer::Start::later);
  nats.set_extra_args({"-c", config_path});
  nats.start();
  std::string gateway_url =
      "nats://omnigate:gateway-pass-0123@127.0.0.1:" + std::to_string(nats.port());
  RunningGateway gateway(
      test_config_yaml(nats.url(), "  user: omnigate\n  password: ${OMNIGATE_NATS_PASSWORD}\n"));
  auto published = publish(gateway, {"p1", "p2"});

  for (const auto& example : examples()) {
    INFO(example.name);
    auto run = run_example(example,
                           "NATS_URL=" + nats.url() + " NATS_USER=crm NATS_PASSWORD=crm-pass-0123",
                           "--durable crm-" + example.name + " --max 2");
    INFO(run.diagnostics);
    CHECK(run.exit_code == 0);
    CHECK(run.lines == published);
    CHECK(consumer_state(gateway_url, "crm-" + example.name).ack_floor == 2);
  }

  // Without a password the CRM's connection is refused.
  auto anonymous = run_example(examples().front(), "NATS_URL=" + nats.url(), "--max 1");
  CHECK(anonymous.exit_code == 1);

  natsOptions* raw_options = nullptr;
  REQUIRE(natsOptions_Create(&raw_options) == NATS_OK);
  omnigate::nats::Options options(raw_options);
  natsOptions_SetURL(raw_options, nats.url().c_str());
  natsOptions_SetUserInfo(raw_options, "crm", "crm-pass-0123");
  natsOptions_SetErrorHandler(raw_options, count_permission_error, nullptr);
  natsConnection* raw_connection = nullptr;
  REQUIRE(natsConnection_Connect(&raw_connection, raw_options) == NATS_OK);
  omnigate::nats::Connection crm(raw_connection);
  g_permission_errors = 0;
  REQUIRE(
      natsConnection_PublishString(raw_connection, "omnigate.interactions.api.crm.lead", "{}") ==
      NATS_OK);  // the server answers asynchronously with a permissions violation
  natsConnection_Flush(raw_connection);
  CHECK(eventually([] { return g_permission_errors.load() >= 1; }, 5s));

  jsCtx* raw_js = nullptr;
  REQUIRE(natsConnection_JetStream(&raw_js, raw_connection, nullptr) == NATS_OK);
  omnigate::nats::JetStream js(raw_js);
  jsErrCode code = static_cast<jsErrCode>(0);
  jsOptions purge_options;
  jsOptions_Init(&purge_options);
  purge_options.Wait = 1000;
  CHECK(js_PurgeStream(raw_js, "OMNIGATE_INTERACTIONS", &purge_options, &code) != NATS_OK);
  CHECK(js_DeleteStream(raw_js, "OMNIGATE_INTERACTIONS", &purge_options, &code) != NATS_OK);

  // Nothing the CRM tried reached or removed anything.
  CHECK(read_stream(gateway_url).size() == 2);
}

namespace {

// The stream's max_age as the server has it, in milliseconds; -1 while there is no stream.
int64_t stream_max_age_ms(const std::string& nats_url) {
  NatsClient client(nats_url);
  jsStreamInfo* raw = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s =
      js_GetStreamInfo(&raw, client.jetstream(), "OMNIGATE_INTERACTIONS", nullptr, &code);
  omnigate::nats::StreamInfo info(raw);
  if (s != NATS_OK) return -1;
  return raw->Config->MaxAge / 1'000'000;
}

}  // namespace

TEST_CASE("retention: the stream keeps 30 days by default, also on a stream created unbounded",
          "[examples][retention]") {
  NatsServer nats;
  {
    // A stream made by an older gateway, whose default kept everything.
    RunningGateway unbounded(test_config_yaml(nats.url(), "  stream:\n    max_age: 0\n"));
    publish(unbounded, {"r1"});
    CHECK(stream_max_age_ms(nats.url()) == 0);
  }
  RunningGateway gateway(test_config_yaml(nats.url()));
  // The gateway updates the existing stream's config at start: the bound applies to it.
  CHECK(eventually([&] { return stream_max_age_ms(nats.url()) == 30LL * 24 * 3600 * 1000; }));
  publish(gateway, {"r2"});
  CHECK(read_stream(nats.url()).size() == 2);
}

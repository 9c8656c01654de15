// The omnigate binary as an operator and a CRM developer use it: check-config and tail.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using nlohmann::json;

namespace {

std::vector<json> json_lines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '{') out.push_back(json::parse(line));
  }
  return out;
}

std::string body_with_kind(const std::string& kind, const std::string& native_id) {
  if (kind == "lead") {
    return R"({"kind":"lead","lead":{"form":"callback","fields":{"name":"Анна"}}})";
  }
  return R"({"kind":"message","message":{"native_id":")" + native_id + R"(","text":"Привет"}})";
}

}  // namespace

TEST_CASE("check-config accepts the example and rejects a misspelt key with its line",
          "[integration][cli]") {
  const std::string binary = OMNIGATE_BINARY;
  const std::string source = OMNIGATE_SOURCE_DIR;
  auto good = run_command(
      "OMNIGATE_API_TOKEN=abcdefabcdefabcdef TELEGRAM_WEBHOOK_SECRET=s3cret-0123456789abcdef "
      "WHATSAPP_APP_SECRET=wa-s3cret-0123456789abcdef WHATSAPP_VERIFY_TOKEN=wa-verify-0123456789 "
      "VK_CALLBACK_SECRET=vk-s3cret-0123456789abcdef "
      "OMNIGATE_EMAIL_TOKEN=email-pipe-0123456789abcdef "
      "OMNIGATE_CONSENT_KEY=" +
      std::string(40, 'k') + " " + binary + " check-config " + source +
      "/config/omnigate.example.yaml");
  CHECK(good.exit_code == 0);
  CHECK_THAT(good.output, Catch::Contains("ok"));

  auto unset = run_command("env -u OMNIGATE_API_TOKEN " + binary + " check-config " + source +
                           "/config/omnigate.example.yaml");
  CHECK(unset.exit_code == 2);
  CHECK_THAT(unset.output, Catch::Contains("OMNIGATE_API_TOKEN is not set"));

  TempDir dir;
  std::string path = dir.path() + "/bad.yaml";
  std::ofstream(path) << "http:\n  port: 8080\n  treads: 8\n";
  auto bad = run_command(binary + " check-config " + path);
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Catch::Contains(path + ":3:3: unknown key 'treads' in http"));
  CHECK_THAT(bad.output, Catch::Contains("did you mean 'threads'"));
}

TEST_CASE("tail prints interactions, a durable consumer resumes where it stopped",
          "[integration][cli][tail]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url()));
  const std::string tail = std::string(OMNIGATE_BINARY) + " tail --nats " + nats.url();

  REQUIRE(gateway.post_api("t-1", body_with_kind("message", "1"))->status == 202);
  REQUIRE(gateway.post_api("t-2", body_with_kind("lead", ""))->status == 202);

  auto first = run_command(tail + " --durable crm-sync --count 2 --idle-exit 5000");
  REQUIRE(first.exit_code == 0);
  auto lines = json_lines(first.output);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["kind"] == "message");
  CHECK(lines[1]["kind"] == "lead");

  REQUIRE(gateway.post_api("t-3", body_with_kind("message", "3"))->status == 202);
  auto second = run_command(tail + " --durable crm-sync --idle-exit 1000");
  REQUIRE(second.exit_code == 0);
  lines = json_lines(second.output);
  REQUIRE(lines.size() == 1);  // only what arrived after the first run
  CHECK(lines[0]["message"]["native_id"] == "3");

  auto leads = run_command(tail + " --from-start --kind lead --idle-exit 1000");
  REQUIRE(leads.exit_code == 0);
  lines = json_lines(leads.output);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["lead"]["fields"]["name"] == "Анна");
  CHECK(schema_problems(read_stream(nats.url())).empty());
}

TEST_CASE("tail --config needs only the nats section, not the channels' secrets",
          "[integration][cli][tail]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url()));
  REQUIRE(gateway.post_api("c-1", body_with_kind("message", "1"))->status == 202);
  // A second terminal after `make run`: OMNIGATE_API_TOKEN is not exported there.
  auto result = run_command("env -u OMNIGATE_API_TOKEN OMNIGATE_NATS_URL=" + nats.url() + " " +
                            std::string(OMNIGATE_BINARY) + " tail --config " + OMNIGATE_SOURCE_DIR +
                            "/config/omnigate.example.yaml --from-start --count 1");
  CHECK(result.exit_code == 0);
  auto lines = json_lines(result.output);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["message"]["native_id"] == "1");
}

TEST_CASE("tail says clearly when NATS is not there", "[integration][cli][tail]") {
  int port = free_tcp_port();
  auto result = run_command(std::string(OMNIGATE_BINARY) +
                            " tail --nats nats://127.0.0.1:" + std::to_string(port) + " --count 1");
  CHECK(result.exit_code == 1);
  CHECK_THAT(result.output, Catch::Contains("cannot connect to NATS"));
}

namespace {

const std::string kBinary = OMNIGATE_BINARY;

// The test config for the real binary (GatewayProcess): its port from the environment, logs at
// info in `format`.
std::string process_config_yaml(const std::string& nats_url, const std::string& format) {
  std::string yaml = test_config_yaml(nats_url);
  auto replace = [&yaml](const std::string& from, const std::string& to) {
    auto at = yaml.find(from);
    REQUIRE(at != std::string::npos);
    yaml.replace(at, from.size(), to);
  };
  replace("  port: 0\n", "  port: ${OMNIGATE_HTTP_PORT}\n");
  replace("  level: error\n", "  level: info\n  format: " + format + "\n");
  return yaml;
}

// Runs `command`, which must be refused (exit 2) with every one of `expected` in its output.
void check_refused(const std::string& command, const std::vector<std::string>& expected) {
  auto result = run_command("timeout 10 " + command);
  CAPTURE(command, result.output);
  CHECK(result.exit_code == 2);
  for (const auto& text : expected) CHECK_THAT(result.output, Catch::Contains(text));
}

}  // namespace

TEST_CASE("omnigate without a command prints the usage, every command answers --help",
          "[integration][cli][help]") {
  for (const char* ask : {"", " --help", " help", " -h"}) {
    // `timeout`: a binary that started a server here would hang the test instead of failing.
    auto usage = run_command("timeout 10 " + kBinary + ask);
    CAPTURE(ask);
    CHECK(usage.exit_code == 0);
    CHECK_THAT(usage.output, Catch::Contains("usage: omnigate <command>"));
    for (const char* line :
         {"run [--config FILE]", "check-config FILE", "tail [options]", "consent-link",
          "outbox list|resend", "spool stats", "version", "telegram set-webhook <account>",
          "whatsapp info <account>", "vk setup-callback <account>"})
      CHECK_THAT(usage.output, Catch::Contains(line));
  }
  const std::vector<std::pair<std::string, std::string>> commands = {
      {"run", "usage: omnigate run"},
      {"check-config", "usage: omnigate check-config"},
      {"tail", "usage: omnigate tail"},
      {"consent-link", "usage: omnigate consent-link"},
      {"outbox", "usage: omnigate outbox"},
      {"outbox list", "usage: omnigate outbox"},
      {"spool", "usage: omnigate spool stats"},
      {"version", "usage: omnigate version"},
      {"telegram", "omnigate telegram info <account>"},
      {"telegram set-webhook", "omnigate telegram set-webhook <account>"},
      {"whatsapp", "omnigate whatsapp info <account>"},
      {"vk", "omnigate vk setup-callback <account>"},
      {"vk info", "omnigate vk info <account>"},
  };
  for (const auto& [command, expected] : commands) {
    // Without any secret in the environment: --help needs no config.
    auto help =
        run_command("env -u OMNIGATE_API_TOKEN timeout 10 " + kBinary + " " + command + " --help");
    CAPTURE(command, help.output);
    CHECK(help.exit_code == 0);
    CHECK_THAT(help.output, Catch::Contains(expected));
  }
  // An unknown option is named, with what is valid.
  check_refused(kBinary + " tail --follow", {"unknown option '--follow'", "--since T"});
  check_refused(kBinary + " run --port 8080", {"unknown option '--port'", "--config FILE"});
  check_refused(kBinary + " consent-link --adress x@example.ru",
                {"unknown option '--adress'", "--email E"});
  check_refused(kBinary + " serve", {"unknown command 'serve'", "run [--config FILE]"});
  check_refused(kBinary + " version --short",
                {"unknown option '--short'", "usage: omnigate version"});
}

TEST_CASE("version names the commit and build date, /metrics has omnigate_build_info",
          "[integration][cli][version]") {
  auto version = run_command(kBinary + " version");
  REQUIRE(version.exit_code == 0);
  CHECK_THAT(version.output, Catch::StartsWith("omnigate 0."));
  std::string commit = version.output.substr(version.output.find("commit: ") + 8);
  commit = commit.substr(0, commit.find('\n'));
  // In a checkout: an abbreviated hash of a commit of this repository (HEAD when CMake last
  // configured; a build after a commit configures again), "-dirty" with uncommitted changes.
  const std::string hash = commit.substr(0, commit.find("-dirty"));
  auto known = run_command(std::string("git -C ") + OMNIGATE_SOURCE_DIR + " cat-file -e " + hash +
                           "^{commit}");
  auto in_git = run_command(std::string("git -C ") + OMNIGATE_SOURCE_DIR + " rev-parse HEAD");
  if (in_git.exit_code == 0) {
    CAPTURE(commit);
    CHECK(hash.size() == 12);
    CHECK(known.exit_code == 0);
  } else {
    CHECK(commit == "unknown");
  }
  CHECK_THAT(version.output,
             Catch::Matches("(.|\n)*built:  20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]T(.|\n)*"));

  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url()));
  auto metrics = gateway.client().Get("/metrics");
  REQUIRE(metrics);
  CHECK_THAT(metrics->body, Catch::Contains("# TYPE omnigate_build_info gauge"));
  CHECK_THAT(metrics->body,
             Catch::Contains("omnigate_build_info{version=\"0.1.0\",commit=\"" + commit + "\"} 1"));
}

TEST_CASE("tail refuses unknown kinds and channels with the valid list, and bad values",
          "[integration][cli][tail]") {
  const std::string tail = kBinary + " tail --nats nats://127.0.0.1:1 ";
  check_refused(tail + "--kind leads", {"unknown kind 'leads'; valid kinds: message, "
                                        "message_edit, lead, consent, status, reaction, action"});
  // The channels of the connector registry.
  check_refused(tail + "--channel telegramm", {"unknown channel 'telegramm'; valid channels: ",
                                               "api", "webform", "telegram", "whatsapp", "vk"});
  check_refused(tail + "--since yesterday", {"--since needs an RFC 3339 time"});
  check_refused(tail + "--count many", {"--count needs a whole number"});
}

TEST_CASE("tail --since replays from a time or a duration ago, --pretty is one line each",
          "[integration][cli][tail]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url()));
  const std::string tail = kBinary + " tail --nats " + nats.url();
  REQUIRE(gateway
              .post_api("p-1", R"({"kind":"message","contact":{"display_name":"Иван Петров"},)"
                               R"("message":{"native_id":"1","text":")" +
                                   std::string(100, 'x') + R"("}})")
              ->status == 202);
  REQUIRE(gateway.post_api("p-2", body_with_kind("lead", ""))->status == 202);

  auto pretty = run_command(tail + " --since 10m --count 2 --pretty");
  REQUIRE(pretty.exit_code == 0);
  std::istringstream lines(pretty.output);
  std::string first, second;
  std::getline(lines, first);
  std::getline(lines, second);
  CAPTURE(pretty.output);
  CHECK_THAT(first,
             Catch::Contains("  api/crm  message  Иван Петров: " + std::string(80, 'x') + "…"));
  CHECK_THAT(first, !Catch::Contains(std::string(81, 'x')));
  CHECK_THAT(first, Catch::Matches("20[0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9:]{8}  .*"));
  CHECK_THAT(second, Catch::Contains("  api/crm  lead  -: callback name=Анна"));

  auto future = run_command(tail + " --since 2099-01-01T00:00:00Z --idle-exit 1000");
  CHECK(future.exit_code == 0);
  CHECK(json_lines(future.output).empty());
  auto recent = run_command(tail + " --since 10m --kind lead --idle-exit 1000");
  REQUIRE(recent.exit_code == 0);
  auto docs = json_lines(recent.output);
  REQUIRE(docs.size() == 1);
  CHECK(docs[0]["kind"] == "lead");
}

TEST_CASE("tail goes on printing across a restart of nats-server, nothing twice",
          "[integration][cli][tail][reconnect]") {
  // An ephemeral consumer (created again after the last sequence printed) and a durable one.
  const std::string consumer = GENERATE(as<std::string>{}, "--since 1m", "--durable crm-restart");
  CAPTURE(consumer);
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url()));
  TempDir dir;
  const std::string out = dir.path() + "/tail.out";
  CommandResult tail_result;
  std::thread tail_thread([&] {
    tail_result = run_command("timeout 60 " + kBinary + " tail --nats " + nats.url() + " " +
                              consumer + " --count 3 > " + out + " 2>&1");
  });
  auto printed = [&] {
    std::ifstream in(out);
    std::stringstream text;
    text << in.rdbuf();
    return json_lines(text.str());
  };
  REQUIRE(gateway.post_api("r-1", body_with_kind("message", "1"))->status == 202);
  REQUIRE(eventually([&] { return printed().size() == 1; }));

  nats.stop();  // SIGTERM; the same port and store come back
  nats.start();
  // The API channel answers 503 until the gateway has reconnected and verified the stream.
  REQUIRE(eventually(
      [&] {
        auto r = gateway.post_api("r-2", body_with_kind("message", "2"));
        return r && r->status == 202;
      },
      std::chrono::seconds(20)));
  REQUIRE(gateway.post_api("r-3", body_with_kind("message", "3"))->status == 202);
  tail_thread.join();
  CHECK(tail_result.exit_code == 0);
  auto lines = printed();
  REQUIRE(lines.size() == 3);
  CHECK(lines[0]["message"]["native_id"] == "1");
  CHECK(lines[1]["message"]["native_id"] == "2");
  CHECK(lines[2]["message"]["native_id"] == "3");
}

TEST_CASE("the request log line names route, account, status, latency and id, never contents",
          "[integration][cli][logs]") {
  NatsServer nats;
  GatewayProcess gateway(process_config_yaml(nats.url(), "json"));
  REQUIRE(gateway.wait_ready());
  auto client = gateway.client();
  httplib::Headers headers = {{"Authorization", "Bearer " + kApiToken},
                              {"Idempotency-Key", "log-1"}};
  const std::string body =
      R"({"kind":"message","contact":{"display_name":"Анна Секретова","identifiers":[)"
      R"({"type":"phone","raw":"+7 912 345-67-89"},{"type":"email","raw":"anna.s@example.ru"}]},)"
      R"("message":{"native_id":"pii-1","text":"Перезвоните мне завтра"}})";
  auto posted = client.Post("/v1/api/crm", headers, body, "application/json");
  REQUIRE(posted);
  REQUIRE(posted->status == 202);
  const std::string id = json::parse(posted->body)["id"];
  REQUIRE(client.Get("/v1/api/crm/nothing-here"));
  gateway.stop();  // SIGTERM: a clean stop

  const std::string log = gateway.log_tail(64 * 1024);
  CAPTURE(log);
  auto lines = json_lines(log);
  REQUIRE_FALSE(lines.empty());
  for (const auto& line : lines) {
    for (const char* key : {"ts", "level", "component", "msg"}) CHECK(line.contains(key));
  }
  auto find = [&](const std::string& msg, const std::string& route) -> const json* {
    for (const auto& line : lines) {
      if (line.value("msg", "") == msg && (route.empty() || line.value("route", "") == route))
        return &line;
    }
    return nullptr;
  };
  const json* request = find("request", "/v1/api/:account");
  REQUIRE(request != nullptr);
  CHECK((*request)["level"] == "info");
  CHECK((*request)["method"] == "POST");
  CHECK((*request)["account"] == "crm");
  CHECK((*request)["status"] == 202);
  CHECK((*request)["latency_ms"].is_number());
  CHECK((*request)["interaction_id"] == id);
  const json* unmatched = find("request", "unmatched");
  REQUIRE(unmatched != nullptr);
  CHECK((*unmatched)["status"] == 404);
  CHECK_FALSE(unmatched->contains("interaction_id"));

  const json* starting = find("starting", "");
  REQUIRE(starting != nullptr);
  CHECK((*starting)["version"] == "0.1.0");
  CHECK((*starting)["nats"] == nats.url());
  CHECK((*starting)["stream"] == "OMNIGATE_INTERACTIONS");
  CHECK((*starting)["replicas"] == 1);
  CHECK((*starting)["channels"] == "api: crm(reject)");
  CHECK(find("stopped", "") != nullptr);
  for (const auto& line : lines) CHECK(line["level"] != "warn");  // no NATS warning at stop

  // Nothing the person sent is in the log, in any form. The phone is matched in forms at least
  // seven digits long: three digits alone ("912") turn up by chance in an interaction id, a
  // timestamp's milliseconds or a latency, which failed this test about one run in fifty.
  for (const char* secret :
       {"Анна", "Секретова", "912 345", "9123456789", "345-67-89", "79123456789", "anna.s",
        "example.ru", "Перезвоните", "pii-1", kApiToken.c_str()})
    CHECK_THAT(log, !Catch::Contains(secret));
}

TEST_CASE("log.requests: false leaves the request line out, text format keeps key=value",
          "[integration][cli][logs]") {
  NatsServer nats;
  std::string yaml = process_config_yaml(nats.url(), "text");
  yaml.replace(yaml.find("  format: text\n"), 15, "  format: text\n  requests: false\n");
  GatewayProcess quiet(yaml);
  REQUIRE(quiet.client().Get("/healthz"));
  quiet.stop();
  CHECK_THAT(quiet.log_tail(), !Catch::Contains("http: request"));
  CHECK_THAT(quiet.log_tail(), Catch::Contains("info main: stopped"));

  GatewayProcess chatty(process_config_yaml(nats.url(), "text"));
  REQUIRE(chatty.client().Get("/healthz"));
  chatty.stop();
  CHECK_THAT(chatty.log_tail(), Catch::Contains("info http: request method=GET route=/healthz "
                                                "status=200 latency_ms="));
}

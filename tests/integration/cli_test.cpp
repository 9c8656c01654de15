// The omnigate binary as an operator and a CRM developer use it: check-config and tail.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>

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

TEST_CASE("tail prints interactions; a durable consumer resumes where it stopped",
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

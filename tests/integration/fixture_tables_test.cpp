// Every channel's fixture table (connectors/<channel>/fixtures/cases.json) through the real
// route of a real gateway and nats-server: status, answer, what reached the stream, what was
// ignored (tests/support/fixture_table.hpp has the format).
#include <catch2/catch.hpp>

#include <filesystem>

#include "tests/support/fixture_table.hpp"

using namespace omnigate::testing;

namespace {

// Every payload file of a channel's folder is sent by some case of its table.
void check_every_payload_is_used(const std::string& channel) {
  const FixtureTable table = load_fixture_table(fixture_table_path(channel));
  for (const auto& file : unused_payloads(table)) {
    FAIL_CHECK(channel << ": no case of cases.json sends " << file);
  }
}

}  // namespace

TEST_CASE("fixture table: telegram", "[integration][fixtures][telegram]") {
  check_every_payload_is_used("telegram");
  run_fixture_table("telegram");
}

TEST_CASE("every fixture table in connectors/ is readable and sends files that exist",
          "[integration][fixtures]") {
  // Every folder's table, also of a channel whose connector is not registered yet.
  size_t tables = 0;
  for (const auto& entry : std::filesystem::directory_iterator(
           std::filesystem::path(OMNIGATE_SOURCE_DIR) / "connectors")) {
    const auto cases = entry.path() / "fixtures" / "cases.json";
    if (!std::filesystem::exists(cases)) continue;
    INFO(cases.string());
    FixtureTable table;
    REQUIRE_NOTHROW(table = load_fixture_table(cases));
    CHECK(table.channel == entry.path().filename().string());
    CHECK_FALSE(table.cases.empty());
    // The cases tests/compliance will run once the channel's connector is registered.
    for (const char* role : {"valid", "unauthenticated"}) {
      if (!table.compliance.is_object() || !table.compliance.contains(role) ||
          table.compliance[role].is_null())
        continue;
      INFO("compliance." << role);
      CHECK(table.find(table.compliance[role].get<std::string>()) != nullptr);
    }
    ++tables;
  }
  CHECK(tables >= 3);
}

TEST_CASE("fixture table: whatsapp", "[integration][fixtures][whatsapp]") {
  check_every_payload_is_used("whatsapp");
  run_fixture_table("whatsapp");
}

TEST_CASE("fixture table: vk", "[integration][fixtures][vk]") {
  check_every_payload_is_used("vk");
  run_fixture_table("vk");
}

TEST_CASE("fixture table: email", "[integration][fixtures][email]") {
  check_every_payload_is_used("email");
  run_fixture_table("email");
}

TEST_CASE("fixture table: api", "[integration][fixtures][api]") {
  check_every_payload_is_used("api");
  run_fixture_table("api");
}

TEST_CASE("fixture table: webform", "[integration][fixtures][webform]") {
  check_every_payload_is_used("webform");
  run_fixture_table("webform");
}

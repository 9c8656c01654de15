// VK Callback API end to end beyond the fixture table (which runs in fixture_tables_test): a NATS
// outage during delivery. VK pauses a server that answers anything but `ok` several times in a
// row, so while NATS is away every event must still be answered `ok` -- spooled -- and reach the
// stream exactly once when NATS returns. Facts: connectors/vk/fixtures/FIXTURES.md.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "gateway/model/ids.hpp"
#include "tests/support/fixture_table.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using nlohmann::json;

namespace {

// The test community of FIXTURES.md.
std::string vk_section() {
  return "  vk:\n"
         "    - account: main\n"
         "      group_id: 218765432\n"
         "      secret: vk-callback-secret-0123456789\n"
         "      confirmation: a1b2c3d4\n";
}

httplib::Result deliver(const RunningGateway& gateway, const FixtureCase& c) {
  httplib::Headers headers;
  for (const auto& [name, value] : c.headers) {
    if (name != "Content-Type") headers.emplace(name, value);
  }
  return gateway.client().Post("/v1/vk/main", headers, c.body, "application/json");
}

json readyz(const RunningGateway& gateway) {
  auto ready = gateway.client().Get("/readyz");
  return ready ? json::parse(ready->body) : json{};
}

}  // namespace

TEST_CASE(
    "vk: NATS stopped during Callback delivery: every event answered ok (spooled), every one in "
    "the stream once NATS returns, refusals stay refusals",
    "[integration][vk][spool]") {
  const FixtureTable table = load_fixture_table(fixture_table_path("vk"));
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url(), "", vk_section()));
  auto& metrics = gateway.gateway().metrics();

  // Every event the table answers `ok`, with the ids it publishes (a VK retry publishes none).
  std::vector<const FixtureCase*> events;
  std::multiset<std::string> expected_ids;
  for (const auto& c : table.cases) {
    if (c.status != 200 || c.expected_body != "ok") continue;
    events.push_back(&c);
    for (const auto& in : c.interactions) expected_ids.insert(in["fields"]["/id"]);
  }
  REQUIRE(events.size() >= 30);
  REQUIRE(expected_ids.size() >= 25);

  nats.kill();
  REQUIRE(eventually([&] { return readyz(gateway).value("reason", "") == "spooling"; }));

  size_t spooled = 0;
  for (const FixtureCase* c : events) {
    INFO(c->name);
    auto answer = deliver(gateway, *c);
    REQUIRE(answer);
    CHECK(answer->status == 200);
    CHECK(answer->body == "ok");
    CHECK(answer->get_header_value("Content-Type").rfind("text/plain", 0) == 0);
    spooled += c->interactions.size();
  }
  CHECK(gateway.gateway().spooling_sink().stats().depth == spooled);
  CHECK(metrics.spooled.value({"vk"}) == spooled);

  // VK retries an event (X-Retry-Counter) when an answer is late: recognised in the spool.
  FixtureCase retry = *events.front();
  retry.headers.emplace_back("X-Retry-Counter", "2");
  auto again = deliver(gateway, retry);
  REQUIRE(again);
  CHECK(again->status == 200);
  CHECK(again->body == "ok");
  CHECK(gateway.gateway().spooling_sink().stats().depth == spooled);

  // The confirmation needs no NATS; a wrong secret is refused whatever NATS does.
  for (const auto& c : table.cases) {
    if (c.status == 200 && c.expected_body == "ok") continue;
    INFO(c.name);
    auto answer = deliver(gateway, c);
    REQUIRE(answer);
    CHECK(answer->status == c.status);
    if (!c.expected_body.empty()) CHECK(answer->body == c.expected_body);
  }
  CHECK(gateway.gateway().spooling_sink().stats().depth == spooled);

  nats.start();  // same port, same store
  REQUIRE(eventually([&] { return gateway.gateway().spooling_sink().stats().depth == 0; },
                     std::chrono::seconds(20)));
  auto messages = read_stream(nats.url());
  std::multiset<std::string> published;
  for (const auto& m : messages) published.insert(m.msg_id);
  CHECK(published == expected_ids);  // every acknowledged event exactly once
  CHECK(schema_problems(messages).empty());

  // After the drain a retry is still a duplicate: nothing new.
  auto late = deliver(gateway, retry);
  REQUIRE(late);
  CHECK(late->body == "ok");
  CHECK(read_stream(nats.url()).size() == messages.size());
}

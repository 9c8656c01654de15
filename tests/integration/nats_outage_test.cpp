// Nothing is answered 2xx without durability: NATS away → 503 with Retry-After and nothing in
// the stream; NATS back → the gateway reconnects by itself and accepts again.
#include <catch2/catch.hpp>

#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using nlohmann::json;

namespace {
std::string message_body(const std::string& native_id) {
  return R"({"kind":"message","message":{"native_id":")" + native_id + R"(","text":"Тест"}})";
}

// Stalls `nats` (SIGSTOP), posts one API message, and runs `then` on another thread once the
// gateway has seen that message's first attempt time out; the post's answer.
httplib::Result post_while_stalled(RunningGateway& gateway, NatsServer& nats,
                                   const std::string& native_id,
                                   const std::function<void()>& then) {
  auto& metrics = gateway.gateway().metrics();
  const uint64_t timeouts_before = metrics.publish_failures.value({"ack_timeout"});
  nats.pause();
  std::thread after_first_timeout([&] {
    eventually([&] { return metrics.publish_failures.value({"ack_timeout"}) > timeouts_before; });
    then();
  });
  auto response = gateway.post_api(native_id, message_body(native_id));
  after_first_timeout.join();
  return response;
}
}  // namespace

TEST_CASE("NATS stopped: 503 with Retry-After and nothing acked, NATS back: accepted again",
          "[integration][outage]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url()));
  auto client = gateway.client();

  REQUIRE(gateway.post_api("before", message_body("1"))->status == 202);

  nats.kill();
  // The client notices the lost connection within its ping/read cycle; until then a publish
  // may still be attempted and must fail, never be answered 2xx.
  auto during = gateway.post_api("during", message_body("2"));
  REQUIRE(during);
  CHECK(during->status == 503);
  CHECK(during->get_header_value("Retry-After") == "7");
  CHECK(json::parse(during->body)["error"]["code"] == "not_durable");
  REQUIRE(eventually([&] {
    auto ready = client.Get("/readyz");
    return ready && ready->status == 503;
  }));
  CHECK(client.Get("/readyz")->get_header_value("Retry-After") == "7");

  nats.start();  // same port, same store
  REQUIRE(eventually(
      [&] {
        auto ready = client.Get("/readyz");
        return ready && ready->status == 200 && json::parse(ready->body)["status"] == "ready";
      },
      std::chrono::seconds(20)));

  // The provider retries what was refused; it is accepted now, once.
  auto retried = gateway.post_api("during", message_body("2"));
  REQUIRE(retried);
  CHECK(retried->status == 202);
  REQUIRE(gateway.post_api("after", message_body("3"))->status == 202);

  auto messages = read_stream(nats.url());
  std::vector<std::string> native_ids;
  for (const auto& m : messages) native_ids.push_back(m.body["message"]["native_id"]);
  CHECK(native_ids == std::vector<std::string>{"1", "2", "3"});
  CHECK(gateway.gateway().metrics().nats_reconnects.load() >= 1);
  CHECK(schema_problems(messages).empty());
}

TEST_CASE("the gateway starts while NATS is down and serves once it appears",
          "[integration][outage]") {
  NatsServer nats(NatsServer::Start::later);
  RunningGateway gateway(test_config_yaml(nats.url()));
  auto client = gateway.client();
  CHECK(client.Get("/healthz")->status == 200);  // alive, not ready
  CHECK(client.Get("/readyz")->status == 503);
  auto refused = gateway.post_api("early", message_body("1"));
  REQUIRE(refused);
  CHECK(refused->status == 503);
  CHECK(gateway.gateway().metrics().publish_failures.value({"disconnected"}) == 1);

  nats.start();
  REQUIRE(eventually(
      [&] {
        auto ready = client.Get("/readyz");
        return ready && ready->status == 200 && json::parse(ready->body)["status"] == "ready";
      },
      std::chrono::seconds(20)));
  auto accepted = gateway.post_api("early", message_body("1"));
  REQUIRE(accepted);
  CHECK(accepted->status == 202);
  auto messages = read_stream(nats.url());
  CHECK(messages.size() == 1);
  CHECK(schema_problems(messages).empty());
}

TEST_CASE("a stream deleted under the gateway is recreated (manage_streams on)",
          "[integration][outage]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url()));
  REQUIRE(gateway.post_api("one", message_body("1"))->status == 202);

  NatsClient client(nats.url());
  REQUIRE(js_DeleteStream(client.jetstream(), "OMNIGATE_INTERACTIONS", nullptr, nullptr) ==
          NATS_OK);

  auto response = gateway.post_api("two", message_body("2"));
  REQUIRE(response);
  CHECK(response->status == 202);
  auto messages = read_stream(nats.url());
  REQUIRE(messages.size() == 1);
  CHECK(messages[0].body["message"]["native_id"] == "2");
  CHECK(schema_problems(messages).empty());
}

TEST_CASE("with manage_streams off and no stream, the gateway is not ready and answers 503",
          "[integration][outage]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url(), "  manage_streams: false\n"));
  auto client = gateway.client();
  auto ready = client.Get("/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 503);
  CHECK_THAT(json::parse(ready->body)["error"]["message"].get<std::string>(),
             Catch::Contains("OMNIGATE_INTERACTIONS"));
  auto response = gateway.post_api("x", message_body("1"));
  REQUIRE(response);
  CHECK(response->status == 503);
  CHECK(response->has_header("Retry-After"));
}

TEST_CASE("a PubAck timeout is an unknown outcome: retried with the same id, stored once",
          "[integration][outage]") {
  NatsServer nats;
  // ack_wait 500ms per attempt, publish_timeout 2s per request (test_config_yaml).
  RunningGateway gateway(test_config_yaml(nats.url()));
  auto& metrics = gateway.gateway().metrics();
  REQUIRE(gateway.post_api("warm-up", message_body("0"))->status == 202);

  // Resumed only once an attempt has timed out, so the retry path runs.
  auto response = post_while_stalled(gateway, nats, "1", [&] { nats.resume(); });
  REQUIRE(response);
  CHECK(response->status == 202);
  CHECK(metrics.publish_failures.value({"ack_timeout"}) >= 1);

  auto messages = read_stream(nats.url());
  REQUIRE(messages.size() == 2);  // warm-up + one copy of "stalled", never two
  CHECK(messages[1].body["message"]["native_id"] == "1");
  CHECK(schema_problems(messages).empty());
}

TEST_CASE("attempts whose ack never comes are taken back from nats.c at the disconnect",
          "[integration][outage]") {
  // Attempts go out without a nats.c MaxWait, so nats.c holds each sent message until its ack.
  // A stalled server that then dies never acks: the disconnect must take those messages back
  // (counted as ack_lost), or they would stay in nats.c for the life of the process.
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url()));
  auto& metrics = gateway.gateway().metrics();
  REQUIRE(gateway.post_api("warm-up", message_body("0"))->status == 202);
  CHECK(metrics.publish_failures.value({"ack_lost"}) == 0);

  auto response = post_while_stalled(gateway, nats, "1", [&] { nats.kill(); });
  REQUIRE(response);
  CHECK(response->status == 503);  // the API channel's policy: not durable, retry later
  CHECK(response->has_header("Retry-After"));
  if (gateway.gateway().config().http.server == "loop") {
    // The front publishes on its loop's own connection, where nats.c holds nothing: what is in
    // flight fails at the disconnect itself.
    CHECK(metrics.publish_failures.value({"disconnected"}) >= 1);
    CHECK(metrics.publish_failures.value({"ack_lost"}) == 0);
  } else {
    // At least the attempt that timed out was still held by nats.c and is taken back.
    CHECK(eventually([&] { return metrics.publish_failures.value({"ack_lost"}) >= 1; }));
  }
}

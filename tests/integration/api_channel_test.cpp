// The spine end to end: POST /v1/api/<account> → JetStream → a consumer, with a real
// nats-server. Every interaction these tests publish is validated against the schema.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway/model/ids.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using nlohmann::json;

namespace {

const std::string kMessageBody = R"({
  "kind": "message",
  "occurred_at": "2026-11-22T12:30:00+03:00",
  "contact": {
    "display_name": "Иван Петров",
    "identifiers": [
      {"type": "phone", "raw": "8 (912) 345-67-89"},
      {"type": "email", "value": "  Ivan.Petrov@Example.RU "},
      {"type": "phone", "raw": "позвоните мне"}
    ],
    "language": "ru"
  },
  "conversation": {"id": "call-2291"},
  "message": {"native_id": "call-2291-note", "text": "Перезвоните после 18:00, \"срочно\" 📞"},
  "source": {"utm": {"source": "yandex", "campaign": "winter"}},
  "tags": ["calltracking", "calltracking"]
})";

}  // namespace

TEST_CASE("the same Idempotency-Key twice gives one message and the same answer",
          "[integration][api][dedup]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url()));

  auto first = gateway.post_api("order-77", kMessageBody);
  auto second = gateway.post_api("order-77", kMessageBody);
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->status == 202);
  CHECK(second->status == first->status);
  CHECK(second->body == first->body);

  auto other = gateway.post_api("order-78", kMessageBody);
  REQUIRE(other);
  CHECK(other->status == 202);
  CHECK(other->body != first->body);

  auto messages = read_stream(nats.url());
  CHECK(messages.size() == 2);
  CHECK(gateway.gateway().metrics().duplicates.value({"api"}) == 1);
  CHECK(gateway.gateway().metrics().interactions_published.value({"api", "message"}) == 2);
  CHECK(schema_problems(messages).empty());
}

TEST_CASE("a retry after the stream's duplicate window is still recognised by the dedup index",
          "[integration][api][dedup]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url(), "  stream:\n    duplicate_window: 1s\n"));

  auto first = gateway.post_api("late-retry", kMessageBody);
  REQUIRE(first);
  REQUIRE(first->status == 202);
  std::string id = omnigate::interaction_id("api", "crm", "late-retry");
  // The stream is the record: nothing is written besides the interaction.
  NatsClient client(nats.url());
  kvStore* raw_kv = nullptr;
  CHECK(js_KeyValue(&raw_kv, client.jetstream(), "omnigate_seen") != NATS_OK);
  kvStore_Destroy(raw_kv);

  // Outlive JetStream's own 1 s duplicate window: only the dedup index can catch this retry.
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  auto retry = gateway.post_api("late-retry", kMessageBody);
  REQUIRE(retry);
  CHECK(retry->status == 202);
  CHECK(retry->body == first->body);

  // Another instance behind the same load balancer, started later, learns the id from the
  // stream (its follower's catch-up) and recognises a retry sent to it.
  RunningGateway second(test_config_yaml(nats.url(), "  stream:\n    duplicate_window: 1s\n"));
  REQUIRE(eventually([&] { return second.gateway().publisher().seen_index().caught_up(); }));
  CHECK(second.gateway().publisher().seen_index().contains(id));
  auto retry_elsewhere = second.post_api("late-retry", kMessageBody);
  REQUIRE(retry_elsewhere);
  CHECK(retry_elsewhere->status == 202);
  CHECK(retry_elsewhere->body == first->body);
  CHECK(second.gateway().metrics().duplicates.value({"api"}) == 1);

  // Both running: what the second takes lies between the first's own interactions in the
  // stream. The first's follower skips its own (known from their PubAcks) and reads the
  // second's, so a late retry of it sent to the first is a duplicate too.
  const auto& first_index = gateway.gateway().publisher().seen_index();
  const uint64_t read_before = first_index.messages_read();
  for (int i = 0; i < 20; ++i)
    REQUIRE(gateway.post_api("mine-" + std::to_string(i), kMessageBody)->status == 202);
  REQUIRE(second.post_api("elsewhere", kMessageBody)->status == 202);
  REQUIRE(gateway.post_api("mine-last", kMessageBody)->status == 202);
  const std::string elsewhere = omnigate::interaction_id("api", "crm", "elsewhere");
  CHECK(eventually([&] { return first_index.contains(elsewhere); }, std::chrono::seconds(10)));
  // What it read back: the second's interaction, perhaps the first's one after it in the same
  // round -- never its own twenty before it.
  const uint64_t read = first_index.messages_read() - read_before;
  CHECK(read >= 1);
  CHECK(read <= 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // past the 1 s window again
  REQUIRE(gateway.post_api("elsewhere", kMessageBody)->status == 202);
  CHECK(gateway.gateway().metrics().duplicates.value({"api"}) == 2);
  auto messages = read_stream(nats.url());
  CHECK(messages.size() == 23);
  CHECK(schema_problems(messages).empty());
}

TEST_CASE("health, readiness and metrics endpoints", "[integration][http]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url()));
  auto client = gateway.client();

  auto health = client.Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  auto ready = client.Get("/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 200);
  CHECK(json::parse(ready->body)["stream"] == "OMNIGATE_INTERACTIONS");

  REQUIRE(gateway.post_api("m-1", kMessageBody)->status == 202);
  REQUIRE(gateway.post_api("m-1", kMessageBody)->status == 202);
  auto unknown = client.Get("/v2/nothing");
  REQUIRE(unknown);
  CHECK(unknown->status == 404);
  CHECK(json::parse(unknown->body)["error"]["code"] == "not_found");

  auto metrics = client.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->status == 200);
  CHECK_THAT(metrics->get_header_value("Content-Type"),
             Catch::StartsWith("text/plain; version=0.0.4"));
  const std::string& text = metrics->body;
  CHECK_THAT(text,
             Catch::Contains(
                 R"(omnigate_http_requests_total{route="POST /v1/api/:account",status="202"} 2)"));
  CHECK_THAT(text, Catch::Contains(
                       R"(omnigate_interactions_published_total{channel="api",kind="message"} 1)"));
  CHECK_THAT(text, Catch::Contains(R"(omnigate_duplicates_total{channel="api"} 1)"));
  // The retry is answered by the dedup index in front of the sink: one publish, not two.
  CHECK_THAT(text, Catch::Contains("omnigate_publish_duration_seconds_count 1"));
  CHECK_THAT(text, Catch::Contains("omnigate_nats_connected 1"));
}

TEST_CASE("one keep-alive connection carries many requests", "[integration][http]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url()));
  // A raw socket, so that a server-side close cannot be hidden by a client that reconnects.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(gateway.port()));
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
  int answered = 0;
  std::string buffer;
  for (int i = 0; i < 20; ++i) {
    REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size()));
    // Read one whole response: headers, then Content-Length bytes of body.
    while (true) {
      size_t end = buffer.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t cl = buffer.find("Content-Length: ");
        REQUIRE(cl != std::string::npos);
        size_t length = std::stoul(buffer.substr(cl + 16));
        if (buffer.size() >= end + 4 + length) {
          CHECK(buffer.rfind("HTTP/1.1 200", 0) == 0);
          CHECK(buffer.find("Connection: close") == std::string::npos);
          buffer.erase(0, end + 4 + length);
          ++answered;
          break;
        }
      }
      char chunk[4096];
      ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      REQUIRE(n > 0);  // 0 would mean the server closed the connection
      buffer.append(chunk, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  CHECK(answered == 20);
}

TEST_CASE("with dedup_horizon 0 there is no seen bucket and the stream's window still dedups",
          "[integration][api][dedup]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url(), "  dedup_horizon: 0\n"));
  REQUIRE(gateway.post_api("k-1", kMessageBody)->status == 202);
  REQUIRE(gateway.post_api("k-1", kMessageBody)->status == 202);
  CHECK(read_stream(nats.url()).size() == 1);
  CHECK(gateway.gateway().metrics().duplicates.value({"api"}) == 1);

  NatsClient client(nats.url());
  kvStore* raw_kv = nullptr;
  CHECK(js_KeyValue(&raw_kv, client.jetstream(), "omnigate_seen") != NATS_OK);
  kvStore_Destroy(raw_kv);
  CHECK_FALSE(gateway.gateway().publisher().seen_index().enabled());
}

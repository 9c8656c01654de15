// The spine end to end: POST /v1/api/<account> → JetStream → a consumer, with a real
// nats-server. Every interaction these tests publish is validated against the schema.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway/model/ids.hpp"
#include "tests/integration/harness.hpp"

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

TEST_CASE("an API interaction is normalized, published with its id and readable from the stream",
          "[integration][api]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url()));

  auto response = gateway.post_api("call-2291", kMessageBody);
  REQUIRE(response);
  REQUIRE(response->status == 202);
  json answer = json::parse(response->body);
  std::string expected_id = omnigate::interaction_id("api", "crm", "call-2291");
  CHECK(answer["id"] == expected_id);
  CHECK(answer["status"] == "accepted");

  auto messages = read_stream(nats.url());
  REQUIRE(messages.size() == 1);
  const auto& m = messages[0];
  CHECK(m.subject == "omnigate.interactions.api.crm.message");
  CHECK(m.msg_id == expected_id);
  CHECK(m.schema_header == "interaction.v1");
  const json& doc = m.body;
  CHECK(doc["schema"] == "interaction.v1");
  CHECK(doc["id"] == expected_id);
  CHECK(doc["channel"] == "api");
  CHECK(doc["account"] == "crm");
  CHECK(doc["occurred_at"] == "2026-11-22T09:30:00.000Z");
  const json& ids = doc["contact"]["identifiers"];
  REQUIRE(ids.size() == 3);
  CHECK(ids[0] == json{{"type", "phone"},
                       {"value", "+79123456789"},
                       {"verified", false},
                       {"raw", "8 (912) 345-67-89"}});
  CHECK(ids[1]["value"] == "Ivan.Petrov@example.ru");
  CHECK_FALSE(ids[2].contains("value"));  // garbage keeps its raw text only
  CHECK(ids[2]["raw"] == "позвоните мне");
  CHECK(doc["message"]["text"] == "Перезвоните после 18:00, \"срочно\" 📞");
  CHECK(doc["tags"] == json::array({"calltracking"}));
  CHECK(doc["raw"]["sha256"] == omnigate::sha256_hex(kMessageBody));
  CHECK_FALSE(doc.contains("lead"));  // absent sections are absent

  INFO(schema_problems(messages));
  CHECK(schema_problems(messages).empty());
}

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
  auto messages = read_stream(nats.url());
  CHECK(messages.size() == 1);
  CHECK(schema_problems(messages).empty());
}

TEST_CASE(
    "the API channel refuses what it cannot take, with the right status and nothing published",
    "[integration][api][errors]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url()));
  auto client = gateway.client();
  const httplib::Headers auth = {{"Authorization", "Bearer " + kApiToken},
                                 {"Idempotency-Key", "k-1"}};

  struct Row {
    std::string label;
    std::string path;
    httplib::Headers headers;
    std::string body;
    std::string content_type;
    int status;
    std::string code;
    std::string message_part;
  };
  std::vector<Row> rows = {
      {"wrong token",
       "/v1/api/crm",
       {{"Authorization", "Bearer nope-nope-nope-nope"}, {"Idempotency-Key", "k"}},
       kMessageBody,
       "application/json",
       401,
       "unauthorized",
       "bearer token"},
      {"no token",
       "/v1/api/crm",
       {{"Idempotency-Key", "k"}},
       kMessageBody,
       "application/json",
       401,
       "unauthorized",
       "bearer token"},
      {"unknown account", "/v1/api/shop", auth, kMessageBody, "application/json", 404,
       "unknown_account", "shop"},
      {"bad JSON", "/v1/api/crm", auth, R"({"kind": "message",})", "application/json", 400,
       "bad_request", "line 1, column"},
      {"unknown kind", "/v1/api/crm", auth, R"({"kind": "letter"})", "application/json", 400,
       "invalid_field", "kind: 'letter' is not one of"},
      {"bad identifier type", "/v1/api/crm", auth,
       R"({"kind":"message","message":{"native_id":"1"},"contact":{"identifiers":[{"type":"ip","value":"1.2.3.4"}]}})",
       "application/json", 400, "invalid_field", "contact.identifiers[0].type"},
      {"unknown field", "/v1/api/crm", auth,
       R"({"kind":"message","message":{"native_id":"1"},"priority":1})", "application/json", 400,
       "invalid_field", "priority: unknown field"},
      {"id is the gateway's", "/v1/api/crm", auth,
       R"({"id":"x","kind":"message","message":{"native_id":"1"}})", "application/json", 400,
       "invalid_field", "id: unknown field"},
      {"missing Idempotency-Key",
       "/v1/api/crm",
       {{"Authorization", "Bearer " + kApiToken}},
       kMessageBody,
       "application/json",
       400,
       "missing_header",
       "Idempotency-Key"},
      {"not JSON content type", "/v1/api/crm", auth, "kind=message",
       "application/x-www-form-urlencoded", 415, "unsupported_media_type", "application/json"},
      {"too large", "/v1/api/crm", auth, std::string(5000, ' ') + kMessageBody, "application/json",
       413, "payload_too_large", "4096"},
  };
  for (const auto& row : rows) {
    INFO(row.label);
    auto response = client.Post(row.path.c_str(), row.headers, row.body, row.content_type.c_str());
    REQUIRE(response);
    CHECK(response->status == row.status);
    json error = json::parse(response->body);
    CHECK(error["error"]["code"] == row.code);
    CHECK_THAT(error["error"]["message"].get<std::string>(), Catch::Contains(row.message_part));
  }
  CHECK(read_stream(nats.url()).empty());
  auto& metrics = gateway.gateway().metrics();
  CHECK(metrics.rejected.value({"api", "bad_request"}) == 1);
  CHECK(metrics.rejected.value({"api", "unauthorized"}) == 2);
  CHECK(metrics.http_requests.value({"POST /v1/api/:account", "400"}) == 6);
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

// The durable sink: deadlines when NATS goes away, dedup across restarts from the stream
// itself, and (with the spool) 2xx for webhooks while NATS is away, drained exactly once.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "gateway/model/ids.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using nlohmann::json;
using omnigate::ConfigContext;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

std::string message_body(const std::string& native_id) {
  return R"({"kind":"message","message":{"native_id":")" + native_id + R"(","text":"Тест"}})";
}

std::string with_threads(std::string yaml, int threads) {
  const std::string from = "  threads: 8\n";
  yaml.replace(yaml.find(from), from.size(), "  threads: " + std::to_string(threads) + "\n");
  return yaml;
}

}  // namespace

TEST_CASE("graceful NATS stop under 20 concurrent requests: each answered within publish_timeout",
          "[integration][sink][deadline]") {
  NatsServer nats;
  RunningGateway gateway(with_threads(test_config_yaml(nats.url()), 32));
  REQUIRE(gateway.post_api("warm-up", message_body("0"))->status == 202);

  const auto publish_timeout = milliseconds(2000);  // test_config_yaml
  const auto margin = milliseconds(700);
  std::atomic<bool> stop{false};
  std::atomic<int> answered{0}, unanswered{0}, bad_status{0};
  std::mutex slowest_mutex;
  milliseconds slowest{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < 20; ++t) {
    senders.emplace_back([&, t] {
      auto client = gateway.client();
      for (int i = 0; !stop; ++i) {
        auto started = Clock::now();
        auto response = gateway.post_api("c-" + std::to_string(t) + "-" + std::to_string(i),
                                         message_body(std::to_string(t * 100000 + i)));
        auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
        if (!response) {
          ++unanswered;
          continue;
        }
        ++answered;
        if (response->status != 202 && response->status != 503) ++bad_status;
        std::lock_guard lock(slowest_mutex);
        slowest = std::max(slowest, took);
      }
    });
  }
  REQUIRE(eventually([&] { return answered.load() >= 40; }));
  nats.stop();  // SIGTERM: a clean shutdown, as an orchestrator's rolling restart does
  // While requests hang on a NATS that is going away, liveness answers at once.
  milliseconds slowest_health{0};
  auto until = Clock::now() + milliseconds(3000);
  int probes = 0;
  while (Clock::now() < until) {
    auto started = Clock::now();
    auto health = gateway.client().Get("/healthz");
    auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
    REQUIRE(health);
    CHECK(health->status == 200);
    slowest_health = std::max(slowest_health, took);
    ++probes;
    std::this_thread::sleep_for(milliseconds(50));  // a probe interval, not a wait for a state
  }
  stop = true;
  for (auto& sender : senders) sender.join();
  INFO("slowest request " << slowest.count() << " ms, slowest /healthz " << slowest_health.count()
                          << " ms over " << probes << " probes");
  CHECK(unanswered == 0);
  CHECK(bad_status == 0);
  CHECK(slowest <= publish_timeout + margin);
  CHECK(slowest_health <= milliseconds(100));
  auto ready = gateway.client().Get("/readyz");
  REQUIRE(ready);
  CHECK(json::parse(ready->body)["reason"] == "nats_disconnected");
}

TEST_CASE("a restarted gateway recognises a resend after the duplicate window, from the stream",
          "[integration][sink][dedup]") {
  NatsServer nats;
  const std::string yaml = test_config_yaml(nats.url(), "  stream:\n    duplicate_window: 1s\n");
  std::string id = omnigate::interaction_id("api", "crm", "acked-once");
  {
    RunningGateway first(yaml);
    auto response = first.post_api("acked-once", message_body("1"));
    REQUIRE(response);
    REQUIRE(response->status == 202);
  }
  // The gateway is gone, its memory with it; only the stream knows the id now. Outlive
  // JetStream's 1 s Msg-Id window, so that only the index can recognise the resend.
  std::this_thread::sleep_for(milliseconds(1200));
  RunningGateway second(yaml);
  auto resend = second.post_api("acked-once", message_body("1"));
  REQUIRE(resend);
  CHECK(resend->status == 202);
  CHECK(json::parse(resend->body)["id"] == id);
  CHECK(second.gateway().metrics().duplicates.value({"api"}) == 1);
  auto messages = read_stream(nats.url());
  CHECK(messages.size() == 1);
  CHECK(schema_problems(messages).empty());
}

namespace {

const std::string kTelegramSecret = "sink-test-secret-0123456789";
const std::string kSigningKey = "sink-test-signing-key-0123456789abcdef";

// The API account "crm" (on_nats_down: reject by default), a Telegram webhook bot and a web
// form (both spool by default).
std::string spooling_config(const std::string& nats_url, const std::string& extra_top = "") {
  std::string channels =
      "  telegram:\n"
      "    - account: hookbot\n"
      "      token: \"123456:TEST-token-for-sink-tests\"\n"
      "      mode: webhook\n"
      "      api_url: http://127.0.0.1:9\n"
      "      secret_token: " +
      kTelegramSecret +
      "\n"
      "  webform:\n"
      "    - account: site\n"
      "      language: en\n"
      "      rate_limit_per_minute: 100000\n"
      "consent:\n"
      "  signing_key: " +
      kSigningKey + "\n" + extra_top;
  return test_config_yaml(nats_url, "", channels);
}

std::string telegram_update(int64_t update_id, const std::string& text = "привет") {
  json update = {{"update_id", update_id},
                 {"message",
                  {{"message_id", update_id},
                   {"date", 1764547200},
                   {"chat", {{"id", 42}, {"type", "private"}, {"first_name", "Anna"}}},
                   {"from", {{"id", 42}, {"is_bot", false}, {"first_name", "Anna"}}},
                   {"text", text}}}};
  return update.dump();
}

httplib::Result post_telegram(const RunningGateway& gateway, int64_t update_id,
                              const std::string& text = "привет") {
  httplib::Headers headers = {{"X-Telegram-Bot-Api-Secret-Token", kTelegramSecret}};
  return gateway.client().Post("/v1/telegram/hookbot", headers, telegram_update(update_id, text),
                               "application/json");
}

httplib::Result post_form(const RunningGateway& gateway, const std::string& submission) {
  httplib::Headers headers = {{"Idempotency-Key", submission}};
  return gateway.client().Post("/v1/webform/site", headers, "name=Ann&phone=%2B442079460958",
                               "application/x-www-form-urlencoded");
}

json readyz(const RunningGateway& gateway, int* status = nullptr) {
  auto ready = gateway.client().Get("/readyz");
  if (!ready) return json{};
  if (status) *status = ready->status;
  return json::parse(ready->body);
}

std::multiset<std::string> msg_ids(const std::vector<StreamMessage>& messages) {
  std::multiset<std::string> ids;
  for (const auto& m : messages) ids.insert(m.msg_id);
  return ids;
}

}  // namespace

TEST_CASE("NATS killed: webhooks and forms are spooled (2xx), the API gets 503, back: drained once",
          "[integration][sink][spool]") {
  NatsServer nats;
  RunningGateway gateway(spooling_config(nats.url()));
  auto& metrics = gateway.gateway().metrics();
  std::multiset<std::string> acknowledged;
  REQUIRE(post_telegram(gateway, 100)->status == 200);
  acknowledged.insert(omnigate::interaction_id("telegram", "hookbot", "100"));

  nats.kill();
  REQUIRE(eventually([&] { return readyz(gateway).value("reason", "") == "spooling"; }));
  int status = 0;
  json ready = readyz(gateway, &status);
  CHECK(status == 200);  // a load balancer keeps sending webhooks to a spooling instance
  CHECK(ready["status"] == "degraded");
  CHECK(ready["nats_problem"] == "nats_disconnected");

  for (int64_t update_id = 101; update_id <= 105; ++update_id) {
    auto response = post_telegram(gateway, update_id);
    REQUIRE(response);
    CHECK(response->status == 200);
    acknowledged.insert(omnigate::interaction_id("telegram", "hookbot", std::to_string(update_id)));
  }
  for (std::string submission : {"form-1", "form-2"}) {
    auto response = post_form(gateway, submission);
    REQUIRE(response);
    CHECK(response->status == 200);
    acknowledged.insert(omnigate::interaction_id("webform", "site", submission));
  }
  auto api = gateway.post_api("api-during", message_body("1"));
  REQUIRE(api);
  CHECK(api->status == 503);
  CHECK(api->get_header_value("Retry-After") == "7");
  CHECK(metrics.spooled.value({"telegram"}) == 5);
  CHECK(metrics.spooled.value({"webform"}) == 2);
  CHECK(gateway.gateway().spooling_sink().stats().depth == 7);

  // A provider retry of a spooled event is recognised in the spool, not spooled twice.
  auto retry = post_telegram(gateway, 103);
  REQUIRE(retry);
  CHECK(retry->status == 200);
  CHECK(gateway.gateway().spooling_sink().stats().depth == 7);
  CHECK(metrics.duplicates.value({"telegram"}) == 1);
  CHECK_THAT(metrics.render(), Catch::Contains("omnigate_spool_depth 7"));

  nats.start();  // same port, same store
  REQUIRE(eventually([&] { return gateway.gateway().spooling_sink().stats().depth == 0; },
                     std::chrono::seconds(20)));
  CHECK(metrics.spool_replayed.value({"published"}) == 7);
  // A retry after the drain is a duplicate too (the index learned the replayed ids).
  REQUIRE(post_telegram(gateway, 104)->status == 200);
  REQUIRE(eventually([&] { return readyz(gateway).value("status", "") == "ready"; }));
  auto messages = read_stream(nats.url());
  CHECK(msg_ids(messages) == acknowledged);  // every 2xx id exactly once
  CHECK(schema_problems(messages).empty());
}

TEST_CASE("a full spool answers 503 and loses nothing it acknowledged", "[integration][spool]") {
  NatsServer nats;
  TempDir dir;
  RunningGateway gateway(spooling_config(
      nats.url(), "spool:\n  path: " + dir.path() + "/spool.db\n  max_bytes: 1MiB\n"));
  nats.kill();
  REQUIRE(eventually([&] { return !gateway.gateway().publisher().connected(); }));
  const std::string long_text(3000, 'x');
  std::multiset<std::string> acknowledged;
  bool refused = false;
  for (int64_t update_id = 1; update_id <= 2000 && !refused; ++update_id) {
    auto response = post_telegram(gateway, update_id, long_text);
    REQUIRE(response);
    if (response->status == 200) {
      acknowledged.insert(
          omnigate::interaction_id("telegram", "hookbot", std::to_string(update_id)));
    } else {
      CHECK(response->status == 503);
      CHECK(response->has_header("Retry-After"));
      refused = true;
    }
  }
  REQUIRE(refused);
  CHECK(acknowledged.size() > 100);
  CHECK(gateway.gateway().spooling_sink().stats().bytes <= 1024 * 1024);
  int status = 0;
  json ready = readyz(gateway, &status);
  CHECK(status == 503);
  CHECK(ready["status"] == "not_ready");

  nats.start();
  REQUIRE(eventually([&] { return gateway.gateway().spooling_sink().stats().depth == 0; },
                     std::chrono::seconds(60)));
  auto messages = read_stream(nats.url());
  CHECK(msg_ids(messages) == acknowledged);
}

TEST_CASE("a corrupt spool file: the gateway refuses to start and says why",
          "[integration][spool]") {
  NatsServer nats;
  TempDir dir;
  const std::string path = dir.path() + "/spool.db";
  {
    std::ofstream garbage(path, std::ios::binary);
    garbage << std::string(8192, '\x5a');
  }
  ConfigContext context("test.yaml");
  auto config = omnigate::load_config_text(
      test_config_yaml(nats.url()) + "spool:\n  path: " + path + "\n", "test.yaml", context);
  REQUIRE(config);
  auto gateway = omnigate::Gateway::create(std::move(config.value()));
  REQUIRE_FALSE(gateway);
  CHECK_THAT(gateway.error().detail, Catch::Contains(path));
}

TEST_CASE("bench: the dedup index rebuilds from a stream of 1 M interactions",
          "[integration][dedup][.bench]") {
  // Hidden ([.bench]): `integration_tests "bench: the dedup index*"`; the README quotes it.
  NatsServer nats;
  const int n =
      std::getenv("OMNIGATE_BENCH_IDS") ? std::atoi(std::getenv("OMNIGATE_BENCH_IDS")) : 1'000'000;
  {
    // The stream as the gateway creates it, then n messages with ids, published async.
    RunningGateway creator(test_config_yaml(nats.url()));
  }
  NatsClient client(nats.url());
  const std::string payload(600, 'x');  // about the size of a small interaction
  for (int i = 0; i < n; ++i) {
    std::string id = omnigate::interaction_id("api", "crm", "bench-" + std::to_string(i));
    jsPubOptions options;
    jsPubOptions_Init(&options);
    options.MsgId = id.c_str();
    natsStatus s = js_PublishAsync(client.jetstream(), "omnigate.interactions.api.crm.message",
                                   payload.data(), static_cast<int>(payload.size()), &options);
    REQUIRE(s == NATS_OK);
  }
  jsPubOptions wait;
  jsPubOptions_Init(&wait);
  wait.MaxWait = 120'000;
  REQUIRE(js_PublishAsyncComplete(client.jetstream(), &wait) == NATS_OK);

  auto started = Clock::now();
  RunningGateway gateway(test_config_yaml(nats.url()));
  auto& index = gateway.gateway().publisher().seen_index();
  REQUIRE(eventually([&] { return index.caught_up(); }, std::chrono::seconds(120)));
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
  std::printf("dedup index rebuild: %zu ids from the stream in %lld ms, %.1f bytes/id\n",
              index.size(), static_cast<long long>(took.count()),
              static_cast<double>(index.memory_bytes()) / static_cast<double>(index.size()));
  CHECK(index.size() == static_cast<size_t>(n));
}

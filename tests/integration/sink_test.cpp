// The durable sink: deadlines when NATS goes away, dedup across restarts from the stream
// itself, and (with the spool) 2xx for webhooks while NATS is away, drained exactly once.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "gateway/ids.hpp"
#include "tests/integration/harness.hpp"

using namespace omnigate::testing;
using nlohmann::json;
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

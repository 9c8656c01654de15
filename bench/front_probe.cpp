// The Telegram webhook on the gateway's own front components, for bench/ab.sh (bench/README.md,
// "The front, assembled"): LoopServer (connections on one EventLoop per core under the guard's
// default limits: head and body caps and timeouts, strict framing, the per-IP cap) and one
// LoopPublisher per loop (the PubAck read by the loop that sent it), with the Publisher that
// verifies the stream and its SeenIndex following it (the long-horizon dedup, as in the
// gateway). Per request it runs what bench/epoll_probe.cpp runs -- verify::secret,
// telegram::parse_update, enrich, enforce_schema, the SeenIndex lookup, subject_for,
// serialize, the counters of /metrics -- and answers 200 {"ok":true} from the PubAck, 503 when
// a publish is not durable. What it still lacks against the gateway is what steps 2-5 add: the
// spool fallback, the other routes on a worker pool, the request log and per-route metrics.
//
//   bench/ab.sh build/front_probe                 # FRONT_LOOPS=1 for one loop
//   AB_CHANNEL=noop bench/ab.sh build/front_probe # POST /v1/noop: the front's floor
//
// Environment (ab.sh exports them): OMNIGATE_BENCH_PORT, OMNIGATE_BENCH_NATS,
// OMNIGATE_BENCH_TG_SECRET; FRONT_LOOPS (default 2), FRONT_DEDUP_HORIZON_S (default 7 days, 0
// turns the follower off).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "connectors/telegram/telegram_parse.hpp"
#include "gateway/config/config.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/http/loop_server.hpp"
#include "gateway/http/verify.hpp"
#include "gateway/model/interaction.hpp"
#include "gateway/model/schema_guard.hpp"
#include "gateway/nats/loop_publisher.hpp"
#include "gateway/nats/publisher.hpp"
#include "gateway/pipeline/pipeline.hpp"

namespace {

using namespace omnigate;
using Clock = std::chrono::steady_clock;

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

volatile std::sig_atomic_t g_stop = 0;

struct Webhook {
  Publisher* publisher = nullptr;
  Metrics* metrics = nullptr;
  std::string secret;
  telegram::BotSettings bot;
  IdentityConfig identity;
  std::vector<std::unique_ptr<LoopPublisher>> loop_publishers;  // one per loop, by loop index
  std::atomic<bool> started{false};

  bool ready() const {
    if (!started.load(std::memory_order_acquire)) return false;
    for (const auto& p : loop_publishers)
      if (!p->ready()) return false;
    return true;
  }

  void handle(FrontRequest& request, Responder responder) {
    const RequestHead& head = request.head;
    if (head.method == "GET" && head.path == "/readyz") {
      return responder.answer(Reply::text(ready() ? 200 : 503, ready() ? "ready" : "starting"));
    }
    if (head.method == "GET" && head.path == "/metrics") {
      return responder.answer(Reply::text(200, metrics->render()));
    }
    // The front's own floor: the same bytes read and framed, answered at once.
    if (head.method == "POST" && head.path == "/v1/noop") {
      return responder.answer(Reply::text(202, R"({"accepted":true})", "application/json"));
    }
    if (head.method != "POST" || head.path != "/v1/telegram/benchbot") {
      return responder.answer(Reply::error(make_error(ErrorCode::not_found, "http", "no route")));
    }
    if (auto auth = verify::secret(head.header("X-Telegram-Bot-Api-Secret-Token"), secret,
                                   "X-Telegram-Bot-Api-Secret-Token");
        !auth) {
      return responder.answer(Reply::error(auth.error()));
    }
    auto parsed = telegram::parse_update(request.body, bot, now_millis());
    if (!parsed) {
      metrics->rejected.inc({"telegram", "bad_request"});
      return responder.answer(Reply::error(parsed.error()));
    }
    for (const auto& type : parsed->ignored) metrics->ignored_events.inc({"telegram", type});
    std::vector<PublishMessage> messages;
    messages.reserve(parsed->submissions.size());
    for (Submission& submission : parsed->submissions) {
      Interaction in = enrich(std::move(submission), identity);
      if (auto valid = enforce_schema(in, *metrics); !valid) {
        return responder.answer(Reply::error(valid.error()));
      }
      if (publisher->seen_index().contains(in.id)) {
        metrics->duplicates.inc({"telegram"});
        continue;
      }
      // Counted when sent (ab.sh divides CPU by this); a run with non-2xx answers says so.
      metrics->interactions_published.inc({in.channel, in.kind});
      messages.push_back(PublishMessage{subject_for(in), in.id, serialize(in)});
    }
    if (messages.empty()) return responder.answer(Reply::json(200, {{"ok", true}}));
    auto answer = std::make_shared<Responder>(std::move(responder));
    loop_publishers[request.loop_index]->publish_all(
        std::move(messages), request.received + std::chrono::seconds(10),
        [answer](LoopPublisher::Outcomes outcomes, std::vector<PublishMessage>) {
          for (const auto& outcome : outcomes) {
            if (!outcome) return answer->answer(Reply::error(outcome.error()));
          }
          answer->answer(Reply::text(200, R"({"ok":true})", "application/json"));
        });
  }
};

}  // namespace

int main() {
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGINT, [](int) { g_stop = 1; });
  std::signal(SIGTERM, [](int) { g_stop = 1; });
  const int port = std::atoi(env_or("OMNIGATE_BENCH_PORT", "8080").c_str());
  const size_t loops = std::max(1, std::atoi(env_or("FRONT_LOOPS", "2").c_str()));
  const long horizon_s = std::atol(env_or("FRONT_DEDUP_HORIZON_S", "604800").c_str());

  Webhook webhook;
  webhook.secret = env_or("OMNIGATE_BENCH_TG_SECRET", "");
  webhook.bot.account = "benchbot";
  if (webhook.secret.empty()) {
    std::fprintf(stderr, "front_probe: set OMNIGATE_BENCH_TG_SECRET\n");
    return 2;
  }
  NatsConfig config;
  config.url = env_or("OMNIGATE_BENCH_NATS", "nats://127.0.0.1:4222");
  config.dedup_horizon = std::chrono::seconds(horizon_s);
  Metrics metrics;
  webhook.metrics = &metrics;
  auto publisher = Publisher::start(config, metrics);
  if (!publisher) {
    std::fprintf(stderr, "front_probe: %s\n", publisher.error().detail.c_str());
    return 1;
  }
  webhook.publisher = publisher->get();
  (*publisher)->seen_index().wait_caught_up(Clock::now() + std::chrono::seconds(10));

  LoopServer::Options options;  // the guard's defaults, as omnigate's http section has them
  options.loops = loops;
  options.body_cap = [](const RequestHead&, const void*) -> uint64_t { return 1 << 20; };
  auto server = LoopServer::start("127.0.0.1", port, std::move(options),
                                  [&webhook](FrontRequest& request, Responder responder) {
                                    webhook.handle(request, std::move(responder));
                                  });
  if (!server) {
    std::fprintf(stderr, "front_probe: %s\n", server.error().detail.c_str());
    return 1;
  }
  for (size_t i = 0; i < loops; ++i) {
    auto started = LoopPublisher::start((*server)->loop(i), **publisher, static_cast<int>(i));
    if (!started) {
      std::fprintf(stderr, "front_probe: %s\n", started.error().detail.c_str());
      return 1;
    }
    webhook.loop_publishers.push_back(std::move(*started));
  }
  webhook.started.store(true, std::memory_order_release);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));

  // Each loop's publisher is destroyed on its loop, then the loops stop.
  for (size_t i = 0; i < loops; ++i) {
    std::promise<void> gone;
    (*server)->loop(i).post([&webhook, i, &gone] {
      webhook.loop_publishers[i].reset();
      gone.set_value();
    });
    gone.get_future().wait();
  }
  (*server)->stop();
  return 0;
}

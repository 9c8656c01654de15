// The fault suite (issue 8, item 6): the real omnigate binary and real nats-servers, killed
// and stopped under concurrent provider load, and the one promise checked afterwards: every
// id answered 2xx is in the stream exactly once, nothing is in it twice, and every message
// passes the schema. Sizes grow with OMNIGATE_FAULTS_SCALE (bench/faults.sh); at scale 1 each
// case takes seconds.
//
// Tags: [faults] for all; a case that proves one feature carries its tag too: [spool] (the
// local spool: NATS away, webhooks still 2xx), [dedup] (dedup that a crash cannot break),
// [lease] (one poller per bot across instances).
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

#include "tests/faults/bot_api_tap.hpp"
#include "tests/faults/fault_load.hpp"
#include "tests/support/fake_bot_api.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

// Prints the figures (also on success: bench/faults.sh and a reader of the log want them),
// records them for bench/faults.sh, and checks the promise.
void require_exactly_once(const FaultReport& report, const std::vector<StreamMessage>& stream) {
  WARN(report.describe());
  record_report(report);
  CHECK(report.lost == 0);
  CHECK(report.duplicates == 0);
  CHECK(report.foreign == 0);
  auto problems = schema_problems(stream);
  INFO(problems);
  CHECK(problems.empty());
}

// Runs `options` against `gateway` and SIGKILLs and restarts the gateway `kills` times while
// the load runs, each time once another share of the keys has been answered 2xx.
LoadResult load_with_gateway_kills(GatewayProcess& gateway, const LoadOptions& options, int kills) {
  LoadGenerator load(options);
  load.start();
  for (int k = 1; k <= kills; ++k) {
    INFO("kill " << k);
    REQUIRE(load.wait_ok(options.count * static_cast<size_t>(k) / static_cast<size_t>(kills + 1),
                         seconds(30)));
    gateway.kill();
    gateway.start();
  }
  return load.finish();
}

// Ready (/readyz 200) within `timeout`, or the test fails with the gateway's log.
void require_ready(const GatewayProcess& gateway, std::chrono::milliseconds timeout = seconds(20)) {
  if (!gateway.wait_ready(timeout)) FAIL("omnigate is not ready; its log:\n" << gateway.log_tail());
}

std::set<int64_t> ok_keys_at(const LoadResult& result, int port) {
  std::set<int64_t> keys;
  for (const auto& a : result.attempts)
    if (a.port == port && a.status >= 200 && a.status < 300) keys.insert(a.key);
  return keys;
}

}  // namespace

TEST_CASE("kill -9 of omnigate under webhook load, restarted each time: every 2xx id once",
          "[faults][gateway-kill]") {
  NatsServer nats;
  GatewayProcess gateway(fault_config_yaml({nats.url()}), fault_env());
  require_ready(gateway);
  const int scale = fault_scale();
  auto options = webhook_load({gateway.port()}, 1500 * static_cast<size_t>(scale));
  options.threads = 12;

  LoadResult result = load_with_gateway_kills(gateway, options, 2 + scale);
  require_ready(gateway);
  auto stream = read_stream(nats.url());
  auto report =
      check_stream("gateway kill -9 x" + std::to_string(2 + scale), stream, {&result}, options);
  require_exactly_once(report, stream);
  // The load retries every refused or broken request: in the end every key got its 2xx.
  CHECK(report.ok_keys == options.count);
  CHECK(report.not_ok_attempts > 0);  // the kills did land mid-load
}

TEST_CASE(
    "kill -9 of omnigate under load, then every id resent after the stream's duplicate window: "
    "no duplicate",
    "[faults][gateway-kill][dedup]") {
  NatsServer nats;
  const auto window = seconds(2);
  FaultConfig config{nats.url()};
  config.duplicate_window = "2s";
  GatewayProcess gateway(fault_config_yaml(config), fault_env());
  require_ready(gateway);
  const int scale = fault_scale();
  auto options = webhook_load({gateway.port()}, 1500 * static_cast<size_t>(scale));
  options.threads = 12;

  LoadResult first = load_with_gateway_kills(gateway, options, 2 + scale);
  // JetStream forgets a Nats-Msg-Id `duplicate_window` after it stored the message, and
  // nothing outside the server shows when it has: the only way past the window is to let
  // that much time pass since the last store, which was before `first.finished`.
  std::this_thread::sleep_until(first.finished + window + milliseconds(500));
  // A fresh process: what it knows of published ids it must learn, not remember.
  gateway.kill();
  gateway.start();
  require_ready(gateway);

  LoadGenerator resend(options);  // the same keys, as a provider's late retries
  resend.start();
  LoadResult second = resend.finish();
  auto stream = read_stream(nats.url());
  auto report =
      check_stream("gateway kill -9, resend after the window", stream, {&first, &second}, options);
  require_exactly_once(report, stream);
  CHECK(report.ok_keys == options.count);
  CHECK(ok_keys_at(second, gateway.port()).size() == options.count);  // a retry is 2xx too
  CHECK(report.stored == options.count);
}

namespace {

// NATS goes away under webhook load (SIGTERM: a clean stop; SIGKILL: mid-flight) and comes
// back: webhooks keep their 2xx meanwhile (the spool), and the spool drains into the stream.
void nats_outage_under_load(bool sigkill) {
  NatsServer nats;
  GatewayProcess gateway(fault_config_yaml({nats.url()}), fault_env());
  require_ready(gateway);
  auto options = webhook_load({gateway.port()}, 2000 * static_cast<size_t>(fault_scale()));
  LoadGenerator load(options);
  load.start();
  REQUIRE(load.wait_ok(options.count / 4, seconds(30)));
  if (sigkill)
    nats.kill();
  else
    nats.stop();
  // While NATS is away, another quarter of the keys must be answered 2xx: at least 50 a second
  // through the fsync'd spool, so 10 s at scale 1 and proportionally longer for bench/faults.sh
  // (a fixed 10 s at scale 5 asked 250 fsync'd answers a second of this 2-core machine, and
  // failed there before and after issue 14).
  const uint64_t at_outage = load.ok();
  const bool answered_while_away =
      load.wait_ok(at_outage + options.count / 4, seconds(10) * fault_scale());
  const uint64_t failed_while_away = load.failed();
  nats.start();
  LoadResult result = load.finish();
  require_ready(gateway);
  std::set<int64_t> ok_keys = ok_keys_at(result, gateway.port());
  // The drain: the spooled interactions reach the stream once NATS is back.
  eventually([&] { return stream_size(nats.url()) >= static_cast<int64_t>(ok_keys.size()); },
             seconds(30));
  auto stream = read_stream(nats.url());
  auto report =
      check_stream(std::string("NATS ") + (sigkill ? "SIGKILL" : "SIGTERM") + " under webhook load",
                   stream, {&result}, options);
  require_exactly_once(report, stream);
  CHECK(answered_while_away);
  CHECK(failed_while_away == 0);
  CHECK(report.not_ok_attempts == 0);  // every webhook was answered 2xx, outage or not
  CHECK(report.ok_keys == options.count);
}

}  // namespace

TEST_CASE("NATS stopped (SIGTERM) under webhook load: still 2xx, every 2xx id once after the drain",
          "[faults][nats-outage][spool]") {
  nats_outage_under_load(false);
}

TEST_CASE("NATS killed (SIGKILL) under webhook load: still 2xx, every 2xx id once after the drain",
          "[faults][nats-outage][spool]") {
  nats_outage_under_load(true);
}

TEST_CASE("three-node NATS cluster, R3 stream, the stream leader killed under load: every 2xx once",
          "[faults][cluster]") {
  NatsCluster cluster(3);
  // Every node's URL, comma-separated, as an operator configures a cluster: the gateway
  // connects to whichever answers and reconnects to the others.
  FaultConfig config{cluster.urls()};
  config.replicas = 3;
  GatewayProcess gateway(fault_config_yaml(config), fault_env());
  require_ready(gateway, seconds(30));
  const int kills = fault_scale();
  // The API channel answers 503 while no leader is elected; the client retries those.
  auto options = api_load({gateway.port()}, 1500 * static_cast<size_t>(kills));
  options.threads = 12;
  LoadGenerator load(options);
  load.start();
  const size_t share = options.count / static_cast<size_t>(kills + 1);
  for (int k = 1; k <= kills; ++k) {
    INFO("leader kill " << k);
    REQUIRE(load.wait_ok(share * static_cast<size_t>(k), seconds(40)));
    int leader = -1;
    REQUIRE(eventually([&] { return (leader = cluster.stream_leader()) >= 0; }, seconds(20)));
    cluster.node(leader).kill();
    // The two nodes left elect a new leader, and the load goes on through it.
    REQUIRE(eventually([&] { return cluster.stream_leader() >= 0; }, seconds(30)));
    INFO("killed " << cluster.server_name(leader));
    const uint64_t after_kill = std::min<uint64_t>(load.ok() + share / 2, options.count);
    if (!load.wait_ok(after_kill, seconds(40)))
      FAIL("no progress after the leader kill: " << load.failed()
                                                 << " attempts failed; omnigate's log:\n"
                                                 << gateway.log_tail());
    cluster.node(leader).start();
    // R3 survives one node down at a time: the next kill waits until the node is back as a
    // current replica (killing the leader while it still catches up is a second failure).
    REQUIRE(eventually([&] { return cluster.stream_current(); }, seconds(60)));
  }
  LoadResult result = load.finish();
  REQUIRE(eventually([&] { return cluster.stream_current(); }, seconds(30)));
  // read_stream reads to the leader's last sequence: the ephemeral consumer may sit on a replica
  // that has not applied the last messages yet (seen: it stopped 2 or 3 short of the end).
  auto stream = read_stream(cluster.running_urls());
  auto report = check_stream("R3 cluster, stream leader kill x" + std::to_string(kills), stream,
                             {&result}, options);
  require_exactly_once(report, stream);
  // Everything the leader holds was read: a key missing above is missing from the stream.
  CHECK(static_cast<int64_t>(report.stored) == stream_size(cluster.running_urls()));
  CHECK(report.ok_keys == options.count);
}

TEST_CASE(
    "two gateway instances, the same updates delivered to both concurrently: one message each",
    "[faults][instances]") {
  NatsServer nats;
  GatewayProcess first(fault_config_yaml({nats.url()}), fault_env());
  GatewayProcess second(fault_config_yaml({nats.url()}), fault_env());
  require_ready(first);
  require_ready(second);
  auto options =
      webhook_load({first.port(), second.port()}, 1500 * static_cast<size_t>(fault_scale()));
  options.every_port = true;
  options.threads = 6;
  LoadGenerator load(options);
  load.start();
  LoadResult result = load.finish();
  auto stream = read_stream(nats.url());
  auto report = check_stream("two instances, every update to both", stream, {&result}, options);
  require_exactly_once(report, stream);
  // Both instances answered 2xx for every update: the one that published it and the one that
  // recognised it as a duplicate.
  CHECK(ok_keys_at(result, first.port()).size() == options.count);
  CHECK(ok_keys_at(result, second.port()).size() == options.count);
  CHECK(report.stored == options.count);
}

TEST_CASE(
    "two instances polling one bot: one poller, no duplicate, takeover after the holder is "
    "killed",
    "[faults][instances][poll][lease]") {
  NatsServer nats;
  FakeBotApi telegram;
  BotApiTap tap_first(telegram.url()), tap_second(telegram.url());
  auto config_via = [&](const BotApiTap& tap) {
    FaultConfig config{nats.url()};
    config.telegram_mode = "poll";
    config.bot_api_url = tap.url();
    return fault_config_yaml(config);
  };
  GatewayProcess first(config_via(tap_first), fault_env());
  GatewayProcess second(config_via(tap_second), fault_env());
  require_ready(first);
  require_ready(second);

  const int64_t half = 200 * fault_scale();
  std::set<int64_t> keys;
  auto queue = [&](int64_t from, int64_t to) {
    auto shape = telegram_fixture("message_text_ru_emoji_entities.json");
    for (int64_t id = from; id <= to; ++id) {
      shape["update_id"] = id;
      shape["message"]["message_id"] = id;
      telegram.queue_update(shape);
      keys.insert(id);
    }
  };
  queue(1, half);
  REQUIRE(eventually([&] { return stream_size(nats.url()) >= half; }, seconds(30)));
  // Both instances have had time for several polls each: the holder polls on (its long polls
  // end every poll_timeout, 1 s), the other must not poll at all.
  const size_t polls_so_far = tap_first.poll_count() + tap_second.poll_count();
  REQUIRE(eventually(
      [&] { return tap_first.poll_count() + tap_second.poll_count() >= polls_so_far + 3; },
      seconds(10)));
  INFO("getUpdates calls: first " << tap_first.poll_count() << ", second "
                                  << tap_second.poll_count());
  REQUIRE((tap_first.poll_count() == 0) != (tap_second.poll_count() == 0));

  const bool first_holds = tap_first.poll_count() > 0;
  GatewayProcess& holder = first_holds ? first : second;
  BotApiTap& survivor_tap = first_holds ? tap_second : tap_first;
  holder.kill();
  const auto killed_at = Clock::now();
  queue(half + 1, 2 * half);
  // Takeover within a bounded time: the lease of a crashed holder expires and the other
  // instance polls and delivers what arrived since.
  REQUIRE(eventually([&] { return stream_size(nats.url()) >= 2 * half; }, seconds(60)));
  auto survivor_polls = survivor_tap.polls();
  REQUIRE_FALSE(survivor_polls.empty());
  auto stream = read_stream(nats.url());
  auto report = check_stream("two pollers, holder killed", stream, Payload::telegram_webhook,
                             kFaultBot, keys, keys);
  report.attempts = report.ok_attempts = keys.size();  // updates handed out by the Bot API
  // The unavailability of a poller: from the holder's death to the survivor's first poll.
  report.longest_unavailable_ms =
      std::chrono::duration<double, std::milli>(survivor_polls.front() - killed_at).count();
  require_exactly_once(report, stream);
  CHECK(report.stored == keys.size());
}

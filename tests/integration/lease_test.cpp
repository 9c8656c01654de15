// One poller per account across instances (gateway/state/lease.hpp): leases in omnigate_cursors
// against a real nats-server, compare-and-set cursor writes, and two gateways in poll mode on
// one fake Bot API, where the holder is killed with SIGKILL (a real crash of the omnigate
// binary) and the other takes over from the stored offset.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <set>

#include "gateway/core/metrics.hpp"
#include "gateway/model/ids.hpp"
#include "gateway/nats/publisher.hpp"
#include "gateway/state/cursor_store.hpp"
#include "gateway/state/lease.hpp"
#include "tests/support/fake_bot_api.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using nlohmann::json;
using omnigate::CursorStore;
using omnigate::Lease;
using omnigate::LeaseSettings;
using omnigate::Metrics;
using omnigate::NatsConfig;
using omnigate::Publisher;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

namespace {

// A Publisher of its own (one "instance") and the cursor store on it.
struct Instance {
  explicit Instance(const std::string& nats_url) {
    config.url = nats_url;
    config.connect_timeout = milliseconds(500);
    config.reconnect_wait = milliseconds(100);
    config.ack_wait = milliseconds(500);
    auto started = Publisher::start(config, metrics);
    if (!started) throw std::runtime_error(started.error().detail);
    publisher = std::move(started.value());
    cursors = std::make_unique<CursorStore>(*publisher);
  }
  NatsConfig config;
  Metrics metrics;
  std::unique_ptr<Publisher> publisher;
  std::unique_ptr<CursorStore> cursors;
};

// The omnigate binary in the background, so that a test can SIGKILL it.
class ChildGateway {
 public:
  explicit ChildGateway(const std::string& config_yaml) {
    config_path_ = dir_.path() + "/omnigate.yaml";
    std::ofstream(config_path_) << config_yaml;
    const std::string log = dir_.path() + "/omnigate.log";
    pid_ = ::fork();
    if (pid_ == 0) {
      std::freopen(log.c_str(), "w", stdout);
      std::freopen(log.c_str(), "a", stderr);
      ::execl(OMNIGATE_BINARY, OMNIGATE_BINARY, "run", "--config", config_path_.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~ChildGateway() { kill(); }
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  TempDir dir_;
  std::string config_path_;
  int pid_ = -1;
};

std::string offset_key(const std::string& account) {
  return "telegram." + account + ".offset";
}

// The stored offset, read behind the gateways' backs through an instance of its own.
std::string stored_offset(Instance& reader, const std::string& account) {
  auto stored = reader.cursors->get(offset_key(account));
  if (!stored) return "<" + stored.error().detail + ">";
  return stored->has_value() ? (*stored)->value : "<no key>";
}

std::string poll_config(const std::string& nats_url, const std::string& api_url,
                        const std::string& lease_ttl) {
  return test_config_yaml(nats_url, "",
                          "  telegram:\n"
                          "    - account: pollbot\n"
                          "      token: \"" +
                              kFakeBotToken +
                              "\"\n"
                              "      mode: poll\n"
                              "      api_url: " +
                              api_url +
                              "\n"
                              "      poll_timeout: 1s\n"
                              "      lease_ttl: " +
                              lease_ttl + "\n");
}

json text_update(int64_t update_id) {
  return {{"update_id", update_id},
          {"message",
           {{"message_id", update_id},
            {"date", 1764570000},
            {"chat", {{"id", 5550001}, {"type", "private"}, {"first_name", "Анна"}}},
            {"from", {{"id", 5550001}, {"is_bot", false}, {"first_name", "Анна"}}},
            {"text", "Здравствуйте, заказ " + std::to_string(update_id)}}}};
}

std::set<std::string> hosts_polling(const FakeBotApi& fake, Clock::time_point since = {}) {
  std::set<std::string> hosts;
  for (const auto& p : fake.polls()) {
    if (p.at >= since) hosts.insert(p.host);
  }
  return hosts;
}

// How many times each update's interaction id is in the stream.
std::map<int64_t, int> copies_in_stream(const std::string& nats_url,
                                        const std::vector<int64_t>& update_ids) {
  std::map<std::string, int64_t> by_id;
  for (int64_t u : update_ids) {
    by_id[omnigate::interaction_id("telegram", "pollbot", std::to_string(u))] = u;
  }
  std::map<int64_t, int> copies;
  for (int64_t u : update_ids) copies[u] = 0;
  for (const auto& m : read_stream(nats_url)) {
    auto it = by_id.find(m.msg_id);
    if (it != by_id.end()) copies[it->second]++;
  }
  return copies;
}

uint64_t lease_held(RunningGateway& gateway) {
  return gateway.gateway().metrics().lease_held.value({"telegram", "pollbot"});
}

}  // namespace

TEST_CASE("cursor writes are compare-and-set on the revision", "[integration][lease][cas]") {
  NatsServer nats;
  Instance one(nats.url()), other(nats.url());
  auto created = one.cursors->put("telegram.casbot.offset", "100", 0);
  REQUIRE(created);
  REQUIRE_FALSE(created->conflict);
  // Create-only refuses an existing key.
  auto again = other.cursors->put("telegram.casbot.offset", "7", 0);
  REQUIRE(again);
  CHECK(again->conflict);
  // The other instance moves it on; the first one's write against the old revision is refused.
  auto moved = other.cursors->put("telegram.casbot.offset", "150", created->revision);
  REQUIRE(moved);
  REQUIRE_FALSE(moved->conflict);
  auto stale = one.cursors->put("telegram.casbot.offset", "120", created->revision);
  REQUIRE(stale);
  CHECK(stale->conflict);
  auto now = one.cursors->get("telegram.casbot.offset");
  REQUIRE(now);
  REQUIRE(now->has_value());
  CHECK((*now)->value == "150");
  CHECK((*now)->revision == moved->revision);
  // Against the current revision it is written.
  auto fresh = one.cursors->put("telegram.casbot.offset", "160", moved->revision);
  REQUIRE(fresh);
  CHECK_FALSE(fresh->conflict);
}

TEST_CASE(
    "leases: one holder of two, a crashed holder is taken over within ttl + 2 checks, a "
    "released one at once",
    "[integration][lease]") {
  NatsServer nats;
  const LeaseSettings settings{milliseconds(1500)};
  Instance a(nats.url()), b(nats.url());
  auto lease_a = std::make_unique<Lease>(*a.cursors, a.metrics, "telegram", "bot", settings);
  auto lease_b = std::make_unique<Lease>(*b.cursors, b.metrics, "telegram", "bot", settings);
  lease_a->start();
  REQUIRE(lease_a->wait_held(seconds(5)));
  lease_b->start();

  // Renewed every ttl/3 for several ttls: never both, never the second.
  bool both = false, b_held = false;
  for (auto until = Clock::now() + seconds(4); Clock::now() < until;) {
    bool ha = lease_a->held(), hb = lease_b->held();
    both = both || (ha && hb);
    b_held = b_held || hb;
    std::this_thread::sleep_for(milliseconds(10));
  }
  CHECK_FALSE(both);
  CHECK_FALSE(b_held);
  CHECK(a.metrics.lease_held.value({"telegram", "bot"}) == 1);
  CHECK(b.metrics.lease_held.value({"telegram", "bot"}) == 0);

  // A crash: the heartbeat stops, nothing is released.
  const auto crashed_at = Clock::now();
  lease_a->abandon();
  REQUIRE(eventually([&] { return lease_b->held(); }, seconds(10)));
  const auto takeover = Clock::now() - crashed_at;
  INFO("takeover after " << std::chrono::duration_cast<milliseconds>(takeover).count() << " ms");
  // Not before a whole ttl since the last renewal (at most ttl/3 before the crash) ...
  CHECK(takeover >= settings.ttl - settings.ttl / 3);
  // ... and within ttl + 2 check intervals, with 300 ms for the machine.
  CHECK(takeover <= settings.ttl + 2 * lease_b->check_every() + milliseconds(300));
  CHECK(b.metrics.lease_takeovers.value({"telegram", "bot"}) == 1);
  CHECK(b.metrics.lease_held.value({"telegram", "bot"}) == 1);

  // A clean stop releases: the other instance has it within one check interval.
  lease_a = std::make_unique<Lease>(*a.cursors, a.metrics, "telegram", "bot", settings);
  lease_a->start();
  CHECK_FALSE(lease_a->wait_held(milliseconds(800)));  // B holds and renews it
  const auto released_at = Clock::now();
  lease_b->stop();
  REQUIRE(lease_a->wait_held(seconds(5)));
  CHECK(Clock::now() - released_at < lease_a->check_every() + milliseconds(500));
  CHECK(a.metrics.lease_takeovers.value({"telegram", "bot"}) == 0);  // released, not taken
}

TEST_CASE(
    "leases: a holder that cannot renew stops before its lease could be taken over, and "
    "reclaims it once NATS answers",
    "[integration][lease]") {
  NatsServer nats;
  const LeaseSettings settings{milliseconds(3000)};
  Instance a(nats.url());
  Lease lease(*a.cursors, a.metrics, "telegram", "bot", settings);
  std::atomic<int> lost_calls{0};
  lease.on_lost([&] { lost_calls++; });
  lease.start();
  REQUIRE(lease.wait_held(seconds(5)));

  const auto paused_at = Clock::now();
  nats.pause();  // every renewal times out
  REQUIRE(eventually([&] { return !lease.held(); }, seconds(5)));
  const auto stopped_after = Clock::now() - paused_at;
  INFO("stopped " << std::chrono::duration_cast<milliseconds>(stopped_after).count()
                  << " ms after NATS stopped answering");
  // Before another instance could take over (a ttl after the last renewal, which was at most
  // a renewal interval before the pause).
  CHECK(stopped_after < settings.ttl - settings.ttl / 3 + milliseconds(200));
  REQUIRE(eventually([&] { return lost_calls.load() == 1; }, seconds(2)));
  nats.resume();
  // Its own holder id is in the key: taken back at once, not after a ttl.
  REQUIRE(lease.wait_held(seconds(10)));
  CHECK(a.metrics.lease_takeovers.value({"telegram", "bot"}) == 0);
}

TEST_CASE("leases: an unreadable lease value is taken over after a ttl, not thrown",
          "[integration][lease]") {
  NatsServer nats;
  Instance a(nats.url());
  auto written = a.cursors->put(Lease::key_for("telegram", "bot"), "\x01not a lease", 0);
  REQUIRE(written);
  REQUIRE_FALSE(written->conflict);
  const LeaseSettings settings{milliseconds(1000)};
  Lease lease(*a.cursors, a.metrics, "telegram", "bot", settings);
  const auto started = Clock::now();
  lease.start();
  REQUIRE(lease.wait_held(seconds(5)));
  CHECK(Clock::now() - started >= settings.ttl);
  CHECK(a.metrics.lease_takeovers.value({"telegram", "bot"}) == 1);
}

TEST_CASE(
    "telegram long polling: two gateways on one bot, one polls, a clean stop hands over "
    "from the stored offset",
    "[integration][lease][telegram][poll]") {
  NatsServer nats;
  Instance reader(nats.url());
  FakeBotApi fake;
  fake.set_forget_confirmed(false);  // a poller that ignored the stored offset would re-read
  // Different hosts for the same fake: its log tells the two instances apart.
  const std::string api_a = "http://127.0.0.1:" + std::to_string(fake.port());
  const std::string api_b = "http://localhost:" + std::to_string(fake.port());
  std::vector<int64_t> ids;
  for (int64_t u = 9001; u <= 9005; ++u) {
    fake.queue_update(text_update(u));
    ids.push_back(u);
  }
  auto gateway_a = std::make_unique<RunningGateway>(poll_config(nats.url(), api_a, "2s"));
  REQUIRE(eventually([&] { return lease_held(*gateway_a) == 1; }));
  RunningGateway gateway_b(poll_config(nats.url(), api_b, "2s"));
  REQUIRE(eventually([&] { return stored_offset(reader, "pollbot") == "9006"; }));
  for (int64_t u = 9006; u <= 9010; ++u) {
    fake.queue_update(text_update(u));
    ids.push_back(u);
  }
  REQUIRE(eventually([&] { return stored_offset(reader, "pollbot") == "9011"; }));
  // Several renewals later, still only A has called getUpdates.
  CHECK_FALSE(eventually([&] { return lease_held(gateway_b) == 1; }, seconds(3)));
  CHECK(hosts_polling(fake) == std::set<std::string>{"127.0.0.1:" + std::to_string(fake.port())});
  CHECK(lease_held(*gateway_a) == 1);
  CHECK(lease_held(gateway_b) == 0);

  // A stops cleanly: the lease is released, B polls from the stored offset.
  const auto stopped_at = Clock::now();
  gateway_a.reset();
  for (int64_t u = 9011; u <= 9013; ++u) {
    fake.queue_update(text_update(u));
    ids.push_back(u);
  }
  REQUIRE(eventually([&] { return stored_offset(reader, "pollbot") == "9014"; }));
  auto b_polls = fake.polls();
  std::vector<FakeBotApi::Poll> by_b;
  for (const auto& p : b_polls) {
    if (p.host == "localhost:" + std::to_string(fake.port())) by_b.push_back(p);
  }
  REQUIRE_FALSE(by_b.empty());
  CHECK(by_b.front().offset == 9011);  // continued, not from 0
  CHECK(by_b.front().at - stopped_at < seconds(2));
  CHECK(gateway_b.gateway().metrics().lease_takeovers.value({"telegram", "pollbot"}) == 0);
  for (const auto& [update, copies] : copies_in_stream(nats.url(), ids)) {
    INFO("update " << update);
    CHECK(copies == 1);
  }
  CHECK(gateway_b.gateway().metrics().duplicates.value({"telegram"}) == 0);
}

TEST_CASE(
    "telegram long polling: the holder is killed (SIGKILL), the other gateway takes over "
    "within the lease bound and continues from the stored offset",
    "[integration][lease][telegram][poll][crash]") {
  NatsServer nats;
  Instance reader(nats.url());
  FakeBotApi fake;
  fake.set_forget_confirmed(false);
  const std::string child_host = "localhost:" + std::to_string(fake.port());
  const std::string own_host = "127.0.0.1:" + std::to_string(fake.port());
  std::vector<int64_t> ids;
  for (int64_t u = 7001; u <= 7004; ++u) {
    fake.queue_update(text_update(u));
    ids.push_back(u);
  }
  const milliseconds ttl(3000);
  ChildGateway child(poll_config(nats.url(), "http://" + child_host, "3s"));
  REQUIRE(eventually([&] { return stored_offset(reader, "pollbot") == "7005"; }, seconds(15)));
  RunningGateway survivor(poll_config(nats.url(), "http://" + own_host, "3s"));
  CHECK_FALSE(eventually([&] { return lease_held(survivor) == 1; }, seconds(2)));
  CHECK(hosts_polling(fake) == std::set<std::string>{child_host});

  const auto killed_at = Clock::now();
  child.kill();
  for (int64_t u = 7005; u <= 7008; ++u) {
    fake.queue_update(text_update(u));
    ids.push_back(u);
  }
  REQUIRE(
      eventually([&] { return hosts_polling(fake, killed_at).count(own_host) == 1; }, seconds(15)));
  std::vector<FakeBotApi::Poll> own;
  for (const auto& p : fake.polls()) {
    if (p.host == own_host) own.push_back(p);
  }
  REQUIRE_FALSE(own.empty());
  const auto takeover = own.front().at - killed_at;
  INFO("first poll of the survivor " << std::chrono::duration_cast<milliseconds>(takeover).count()
                                     << " ms after the kill");
  // ttl + 2 check intervals (1 s each at ttl 3 s), with a second for the machine.
  CHECK(takeover <= ttl + seconds(2) + seconds(1));
  CHECK(own.front().offset == 7005);  // from the stored offset
  CHECK(survivor.gateway().metrics().lease_takeovers.value({"telegram", "pollbot"}) == 1);
  REQUIRE(eventually([&] { return stored_offset(reader, "pollbot") == "7009"; }));
  for (const auto& [update, copies] : copies_in_stream(nats.url(), ids)) {
    INFO("update " << update);
    CHECK(copies == 1);
  }
  auto messages = read_stream(nats.url());
  INFO(schema_problems(messages));
  CHECK(schema_problems(messages).empty());
}

TEST_CASE("telegram long polling: a corrupt stored offset is logged and polling starts from 0",
          "[integration][lease][telegram][poll]") {
  NatsServer nats;
  FakeBotApi fake;
  Instance reader(nats.url());  // creates the bucket
  auto written = reader.cursors->put(offset_key("pollbot"), "12x\xff", 0);
  REQUIRE(written);
  REQUIRE_FALSE(written->conflict);
  fake.queue_update(text_update(5001));
  RunningGateway gateway(poll_config(nats.url(), fake.url(), "2s"));
  REQUIRE(eventually([&] { return stored_offset(reader, "pollbot") == "5002"; }));
  auto polls = fake.polls();
  REQUIRE_FALSE(polls.empty());
  CHECK(polls.front().offset == 0);
  CHECK(copies_in_stream(nats.url(), {5001}) == std::map<int64_t, int>{{5001, 1}});
}

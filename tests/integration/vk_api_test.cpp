// VK beyond the Callback fixture table, against a fake VK API (tests/support/fake_vk_api.hpp)
// that speaks the documented method and long-poll JSON: Bots Long Poll (the ts stored only
// after durable, a restart mid-stream with no loss and no duplicate, every `failed` code, API
// errors with back-off), display names from users.get through the name cache (memory, then
// the KV bucket across a restart; a slow VK never holds an event), and the operator commands
// `omnigate vk setup-callback` / `info` against a running gateway that VK confirms.
#include <catch2/catch.hpp>

#include <fstream>
#include <set>
#include <string>

#include "connectors/vk/vk_longpoll.hpp"
#include "gateway/app/gateway.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/nats/nats_handles.hpp"
#include "gateway/state/poll_loop.hpp"
#include "tests/support/fake_vk_api.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using nlohmann::json;
using omnigate::GatewayContext;
using omnigate::poll_loop_settings;
using omnigate::PollLoop;
using omnigate::PollSleeper;
using omnigate::vk::CommunitySettings;
using omnigate::vk::LongPoller;
using omnigate::vk::LongPollSettings;
using omnigate::vk::make_long_poll_source;
using omnigate::vk::VkApi;
using std::chrono::milliseconds;

namespace {

constexpr int64_t kGroup = 218765432;
const std::string kSecret = "vk-callback-secret-0123456789";
const std::string kConfirmation = "a1b2c3d4";

std::string longpoll_account(const FakeVkApi& fake, const std::string& extra = "") {
  return "  vk:\n"
         "    - account: lp\n"
         "      group_id: " +
         std::to_string(kGroup) +
         "\n"
         "      mode: longpoll\n"
         "      access_token: " +
         kFakeVkToken +
         "\n"
         "      api_url: " +
         fake.api_url() + "\n" + extra;
}

// A Callback API account; `name` other than main is a second account in the same section.
std::string callback_account(const FakeVkApi& fake, const std::string& extra = "",
                             const std::string& name = "main") {
  return std::string(name == "main" ? "  vk:\n" : "") + "    - account: " + name + "\n" +
         "      group_id: " + std::to_string(kGroup) + "\n" + "      secret: " + kSecret + "\n" +
         "      confirmation: " + kConfirmation + "\n" + "      access_token: " + kFakeVkToken +
         "\n" + "      api_url: " + fake.api_url() + "\n" + extra;
}

// A message_new event from the fixtures, as one person's n-th message: its own event_id,
// message id and sender. `with_secret` for the Callback API (Long Poll updates carry none).
json message_event(int n, int64_t from_id, bool with_secret) {
  json event = json::parse(channel_fixture("vk", "message_new_text_ru_emoji.json"));
  char id[41];
  std::snprintf(id, sizeof id, "%040x", 0xab0000 + n);
  event["event_id"] = id;
  event["object"]["message"]["id"] = 50000 + n;
  event["object"]["message"]["from_id"] = from_id;
  event["object"]["message"]["peer_id"] = from_id;
  event["object"]["message"]["text"] = "Сообщение номер " + std::to_string(n) + " 🙂";
  if (with_secret) {
    event["secret"] = kSecret;
  } else {
    event.erase("secret");
  }
  return event;
}

std::multiset<std::string> texts_in(const std::vector<StreamMessage>& messages) {
  std::multiset<std::string> out;
  for (const auto& m : messages) out.insert(m.body["message"]["text"].get<std::string>());
  return out;
}

std::string stored_ts(const std::string& nats_url, const std::string& account) {
  return stored_cursor(nats_url, "vk." + account + ".ts");
}

// POSTs `event` to the Callback API account `main`, which VK must see answered "ok".
void post_callback(RunningGateway& gateway, const json& event) {
  auto answer = gateway.client().Post("/v1/vk/main", event.dump(), "application/json");
  REQUIRE(answer);
  CHECK(answer->status == 200);
  CHECK(answer->body == "ok");
}

size_t lp_server_calls(const FakeVkApi& fake) {
  return fake.calls("groups.getLongPollServer").size();
}

}  // namespace

// ------------------------------------------------------------------------------- Long Poll

TEST_CASE(
    "vk longpoll: events are published once, the ts is stored after durable, and a restart "
    "mid-stream resumes with no loss and no duplicate",
    "[integration][vk][longpoll]") {
  FakeVkApi fake(kGroup, kConfirmation);
  NatsServer nats;
  // Before the first start: VK's history is not replayed (the first ts is the server's).
  fake.queue_event(message_event(0, 512345678, false));
  std::set<std::string> expected;
  {
    RunningGateway gateway(test_config_yaml(nats.url(), "", longpoll_account(fake)));
    REQUIRE(eventually([&] { return !fake.checks().empty(); }));
    CHECK(fake.checks().front().ts == "1");
    CHECK(fake.checks().front().wait == 25);
    for (int n = 1; n <= 3; ++n) {
      fake.queue_event(message_event(n, 512345678, false));
      expected.insert("Сообщение номер " + std::to_string(n) + " 🙂");
    }
    REQUIRE(eventually([&] { return read_stream(nats.url()).size() == 3; }));
    REQUIRE(eventually([&] { return stored_ts(nats.url(), "lp") == "4"; }));
  }
  // The gateway is gone; VK keeps collecting events.
  for (int n = 4; n <= 6; ++n) {
    fake.queue_event(message_event(n, 512345678, false));
    expected.insert("Сообщение номер " + std::to_string(n) + " 🙂");
  }
  const size_t checks_before = fake.checks().size();
  RunningGateway again(test_config_yaml(nats.url(), "", longpoll_account(fake)));
  REQUIRE(eventually([&] { return read_stream(nats.url()).size() >= 6; }));
  CHECK(fake.checks().at(checks_before).ts == "4");  // resumed from the stored ts
  auto messages = read_stream(nats.url());
  CHECK(messages.size() == 6);
  std::multiset<std::string> want(expected.begin(), expected.end());
  CHECK(texts_in(messages) == want);
  CHECK(schema_problems(messages).empty());
  for (const auto& m : messages) {
    CHECK(m.subject == "omnigate.interactions.vk.lp.message");
    CHECK(m.body["contact"]["identifiers"][0]["value"] == "512345678");
  }
  REQUIRE(eventually([&] { return stored_ts(nats.url(), "lp") == "7"; }));
}

TEST_CASE("vk longpoll: an update is mapped exactly as the same event POSTed to the Callback API",
          "[integration][vk][longpoll]") {
  FakeVkApi fake(kGroup, kConfirmation);
  NatsServer nats;
  std::string channels = longpoll_account(fake);
  // A second account on the same community over the Callback API.
  channels += callback_account(fake, "", "cb");
  RunningGateway gateway(test_config_yaml(nats.url(), "", channels));
  REQUIRE(eventually([&] { return !fake.checks().empty(); }));
  json event = message_event(1, 512345678, false);
  fake.queue_event(event);
  REQUIRE(eventually([&] { return read_stream(nats.url()).size() == 1; }));
  json callback = event;
  callback["secret"] = kSecret;
  auto answer = gateway.client().Post("/v1/vk/cb", callback.dump(), "application/json");
  REQUIRE(answer);
  CHECK(answer->body == "ok");
  auto messages = read_stream(nats.url());
  REQUIRE(messages.size() == 2);
  // Accounts are part of the id (two accounts may be two CRMs); within one account the
  // event_id is the key, which is what makes a Long Poll replay a duplicate.
  CHECK(messages[0].msg_id != messages[1].msg_id);
  json polled = messages[0].body, posted = messages[1].body;
  for (json* body : {&polled, &posted}) {
    for (const char* per_request : {"id", "account", "received_at", "raw"})
      body->erase(per_request);
  }
  CHECK(polled == posted);
}

TEST_CASE(
    "vk longpoll: failed 1 continues from VK's ts, failed 2 renews the key, failed 3 "
    "renews the key and the ts",
    "[integration][vk][longpoll]") {
  FakeVkApi fake(kGroup, kConfirmation);
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url(), "", longpoll_account(fake)));
  REQUIRE(eventually([&] { return !fake.checks().empty(); }));
  REQUIRE(lp_server_calls(fake) == 1);
  auto& metrics = gateway.gateway().metrics();
  auto published = [&] { return read_stream(nats.url()).size(); };

  // failed 1: no new key; the next check asks from the ts VK gave.
  fake.queue_event(message_event(1, 512345678, false));
  REQUIRE(eventually([&] { return published() == 1; }));
  fake.fail_next_check(1);
  REQUIRE(eventually([&] {
    auto c = fake.checks();
    return c.size() >= 2 && std::any_of(c.begin(), c.end(), [](auto& x) { return x.failed == 1; });
  }));
  fake.queue_event(message_event(2, 512345678, false));
  REQUIRE(eventually([&] { return published() == 2; }));
  CHECK(lp_server_calls(fake) == 1);

  // failed 2: a new key at once (no back-off), the stored ts kept.
  const std::string ts_before = stored_ts(nats.url(), "lp");
  fake.fail_next_check(2);
  REQUIRE(eventually([&] { return lp_server_calls(fake) == 2; }));
  fake.queue_event(message_event(3, 512345678, false));
  REQUIRE(eventually([&] { return published() == 3; }));
  {
    auto checks = fake.checks();
    auto failed2 =
        std::find_if(checks.begin(), checks.end(), [](auto& x) { return x.failed == 2; });
    REQUIRE(failed2 != checks.end());
    REQUIRE(failed2 + 1 != checks.end());
    CHECK((failed2 + 1)->ts == failed2->ts);  // the same ts with the new key
    CHECK((failed2 + 1)->key != failed2->key);
  }
  CHECK(metrics.poll_failures.value({"vk", "lp", "fetch"}) == 0);

  // failed 3: a new key, and the ts of the new server (events in between are VK's loss).
  fake.fail_next_check(3);
  REQUIRE(eventually([&] { return lp_server_calls(fake) == 3; }));
  fake.queue_event(message_event(4, 512345678, false));
  REQUIRE(eventually([&] { return published() == 4; }));
  auto checks = fake.checks();
  auto failed3 = std::find_if(checks.begin(), checks.end(), [](auto& x) { return x.failed == 3; });
  REQUIRE(failed3 + 1 != checks.end());
  CHECK((failed3 + 1)->ts == std::to_string(3));  // getLongPollServer's ts after event 3
  CHECK(ts_before != "<no key>");
  auto messages = read_stream(nats.url());
  std::set<std::string> ids;
  for (const auto& m : messages) ids.insert(m.msg_id);
  CHECK(ids.size() == 4);  // nothing twice
}

TEST_CASE("vk longpoll: API errors back off with a clear reason and polling recovers",
          "[integration][vk][longpoll]") {
  FakeVkApi fake(kGroup, kConfirmation);
  NatsServer nats;
  // Rate limited twice (error 6), then fine.
  fake.fail_method("groups.getLongPollServer", 6, 2);
  RunningGateway gateway(test_config_yaml(nats.url(), "", longpoll_account(fake)));
  auto& metrics = gateway.gateway().metrics();
  REQUIRE(eventually([&] { return !fake.checks().empty(); }, std::chrono::seconds(20)));
  CHECK(metrics.poll_failures.value({"vk", "lp", "fetch"}) == 2);
  auto calls = fake.calls("groups.getLongPollServer");
  REQUIRE(calls.size() == 3);
  CHECK(calls[0].vk_error == 6);
  CHECK(calls[1].vk_error == 6);
  CHECK(calls[2].vk_error == 0);
  fake.queue_event(message_event(1, 512345678, false));
  REQUIRE(eventually([&] { return read_stream(nats.url()).size() == 1; }));
}

TEST_CASE("vk longpoll: a revoked token is reported and retried slowly, never in a busy loop",
          "[integration][vk][longpoll]") {
  FakeVkApi fake(kGroup, kConfirmation, "vk1.a.another_token_the_community_has_now_000000000000");
  NatsServer nats;
  // The gateway supplies the cursors, pipeline and metrics; the long-poll source runs on a
  // PollLoop of the test's own, whose waits are recorded and skipped instead of waited out.
  RunningGateway gateway(test_config_yaml(nats.url(), "", callback_account(fake)));
  GatewayContext& context = gateway.gateway().context();
  std::mutex mutex;
  std::vector<milliseconds> waits;
  std::vector<size_t> fetches_before_wait;  // getLongPollServer calls when each wait began
  PollSleeper sleeper = [&](milliseconds wait) {
    const size_t fetches = lp_server_calls(fake);
    std::lock_guard lock(mutex);
    waits.push_back(wait);
    fetches_before_wait.push_back(fetches);
    return true;
  };
  LongPollSettings settings;
  settings.group_id = kGroup;
  settings.wait = std::chrono::seconds(1);
  PollLoop loop(
      make_long_poll_source(CommunitySettings{"lp", {}},
                            VkApi(fake.api_url(), kFakeVkToken, "5.199"), settings),
      context.cursors, context.pipeline, context.metrics,
      poll_loop_settings(context.config, "vk", "lp", LongPoller::cursor_key("lp"), milliseconds(0)),
      sleeper);
  loop.start();
  REQUIRE(eventually([&] {
    std::lock_guard lock(mutex);
    return waits.size() >= 3;
  }));
  loop.stop();
  std::lock_guard lock(mutex);
  // The floor for a rejected token is a minute, on every attempt; each fetch after the first
  // came only after a wait.
  for (size_t i = 0; i < waits.size(); ++i) {
    CHECK(waits[i] >= milliseconds(60'000));
    CHECK(fetches_before_wait[i] == i + 1);
  }
  auto calls = fake.calls("groups.getLongPollServer");
  CHECK(calls.size() <= waits.size() + 1);
  for (const auto& call : calls) CHECK(call.vk_error == 5);
  CHECK(fake.checks().empty());  // no key, so no a_check
  // Reported: counted per failure, and the operator is told what to do.
  CHECK(context.metrics.poll_failures.value({"vk", "lp", "fetch"}) >= waits.size());
  auto state = loop.state();
  REQUIRE(state.last_error);
  CHECK(state.last_error->detail.find("VK error 5") != std::string::npos);
  CHECK(state.last_error->detail.find("create a new one") != std::string::npos);
  auto health = gateway.client().Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
}

// ----------------------------------------------------------------------------------- names

TEST_CASE(
    "vk names: users.get fills display_name once per person, from memory, then from the KV "
    "bucket after a restart",
    "[integration][vk][names]") {
  FakeVkApi fake(kGroup, kConfirmation);
  fake.add_user(512345678, "Анна", "Смирнова");
  fake.add_user(600000001, "DELETED", "", "deleted");
  NatsServer nats;
  auto ready = [](RunningGateway& gateway) {
    return eventually([&] {
      auto r = gateway.client().Get("/readyz");
      return r && r->status == 200;
    });
  };
  {
    RunningGateway gateway(test_config_yaml(nats.url(), "", callback_account(fake)));
    REQUIRE(ready(gateway));  // the KV bucket of names is open
    post_callback(gateway, message_event(1, 512345678, true));
    post_callback(gateway, message_event(2, 512345678, true));
    post_callback(gateway, message_event(3, 600000001, true));  // a deleted profile: no name
    post_callback(gateway, message_event(4, 700000002, true));  // VK does not know the id
    auto& metrics = gateway.gateway().metrics();
    CHECK(metrics.name_lookups.value({"vk", "fetched"}) == 1);
    CHECK(metrics.name_lookups.value({"vk", "cached"}) == 1);
    CHECK(metrics.name_lookups.value({"vk", "unknown"}) == 2);
  }
  CHECK(fake.calls("users.get").size() == 3);  // Анна once; the two without a name each once
  auto messages = read_stream(nats.url());
  REQUIRE(messages.size() == 4);
  CHECK(messages[0].body["contact"]["display_name"] == "Анна Смирнова");
  CHECK(messages[1].body["contact"]["display_name"] == "Анна Смирнова");
  CHECK_FALSE(messages[2].body["contact"].contains("display_name"));
  CHECK_FALSE(messages[3].body["contact"].contains("display_name"));
  CHECK(schema_problems(messages).empty());

  // A new process: the memory is empty, the KV bucket still knows Анна.
  RunningGateway restarted(test_config_yaml(nats.url(), "", callback_account(fake)));
  REQUIRE(ready(restarted));
  post_callback(restarted, message_event(5, 512345678, true));
  CHECK(fake.calls("users.get").size() == 3);
  CHECK(restarted.gateway().metrics().name_lookups.value({"vk", "cached"}) == 1);
  CHECK(read_stream(nats.url()).back().body["contact"]["display_name"] == "Анна Смирнова");
}

TEST_CASE(
    "vk names: a slow or failing users.get is skipped and counted, the event is answered "
    "ok and published without a name",
    "[integration][vk][names]") {
  FakeVkApi fake(kGroup, kConfirmation);
  fake.add_user(512345678, "Анна", "Смирнова");
  fake.set_users_delay(milliseconds(3'000));
  NatsServer nats;
  RunningGateway gateway(
      test_config_yaml(nats.url(), "", callback_account(fake, "      names_timeout: 200ms\n")));
  auto& metrics = gateway.gateway().metrics();
  const auto start = std::chrono::steady_clock::now();
  auto answer = gateway.client().Post("/v1/vk/main", message_event(1, 512345678, true).dump(),
                                      "application/json");
  const auto took = std::chrono::steady_clock::now() - start;
  REQUIRE(answer);
  CHECK(answer->body == "ok");
  // Not a timing assertion on our speed: the fake holds users.get for 3 s, and the answer must
  // not have waited for it.
  CHECK(took < std::chrono::milliseconds(2'500));
  CHECK(metrics.name_lookups.value({"vk", "timeout"}) == 1);
  auto messages = read_stream(nats.url());
  REQUIRE(messages.size() == 1);
  CHECK_FALSE(messages[0].body["contact"].contains("display_name"));

  // VK answering an error (rate limit): counted as failed, published all the same.
  fake.set_users_delay(milliseconds(0));
  fake.fail_method("users.get", 6);
  answer = gateway.client().Post("/v1/vk/main", message_event(2, 512345678, true).dump(),
                                 "application/json");
  REQUIRE(answer);
  CHECK(answer->body == "ok");
  CHECK(metrics.name_lookups.value({"vk", "failed"}) == 1);
  CHECK(read_stream(nats.url()).size() == 2);
}

TEST_CASE(
    "vk names: an id VK has no name for is asked once, after a failed users.get it is asked "
    "again",
    "[integration][vk][names]") {
  FakeVkApi fake(kGroup, kConfirmation);
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url(), "", callback_account(fake)));
  auto& metrics = gateway.gateway().metrics();
  auto post = [&](int n) { post_callback(gateway, message_event(n, 700000002, true)); };

  fake.fail_method("users.get", 6);
  post(1);  // VK's rate limit: not remembered as unknown
  CHECK(metrics.name_lookups.value({"vk", "failed"}) == 1);
  CHECK(fake.calls("users.get").size() == 1);
  post(2);  // asked again; VK does not know the id
  CHECK(fake.calls("users.get").size() == 2);
  CHECK(metrics.name_lookups.value({"vk", "unknown"}) == 1);
  post(3);  // known to be unknown: no call
  post(4);
  CHECK(fake.calls("users.get").size() == 2);
  CHECK(metrics.name_lookups.value({"vk", "unknown"}) == 3);
  auto messages = read_stream(nats.url());
  REQUIRE(messages.size() == 4);
  for (const auto& m : messages) CHECK_FALSE(m.body["contact"].contains("display_name"));
}

// -------------------------------------------------------------------------------- commands

TEST_CASE(
    "omnigate vk setup-callback registers the gateway with the community, VK confirms it, "
    "and info lists it",
    "[integration][vk][cli]") {
  FakeVkApi fake(kGroup, kConfirmation);
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url(), "", callback_account(fake)));
  TempDir dir;
  std::string yaml = test_config_yaml(nats.url(), "", callback_account(fake));
  yaml.replace(yaml.find("http:\n"), 6,
               "http:\n  public_url: http://127.0.0.1:" + std::to_string(gateway.port()) + "/\n");
  const std::string path = dir.path() + "/vk.yaml";
  std::ofstream(path) << yaml;
  const std::string cli = std::string(OMNIGATE_BINARY) + " vk ";
  const std::string config = " --config " + path;
  const std::string url = "http://127.0.0.1:" + std::to_string(gateway.port()) + "/v1/vk/main";

  auto setup = run_command(cli + "setup-callback main" + config);
  INFO(setup.output);
  CHECK(setup.exit_code == 0);
  CHECK_THAT(setup.output, Catch::Contains("added callback server #1"));
  CHECK_THAT(setup.output, Catch::Contains("status: ok"));
  auto servers = fake.callback_servers();
  REQUIRE(servers.size() == 1);
  CHECK(servers[0].url == url);
  CHECK(servers[0].secret_key == kSecret);
  CHECK(servers[0].status == "ok");  // VK's confirmation POST got the configured string
  CHECK(servers[0].settings["api_version"] == "5.199");
  for (const char* type : {"message_new", "message_edit", "message_allow", "message_deny",
                           "message_event", "wall_reply_new", "lead_forms_new"}) {
    CHECK(servers[0].settings[type] == "1");
  }
  CHECK_FALSE(servers[0].settings.contains("message_reply"));
  CHECK(setup.output.find(kFakeVkToken) == std::string::npos);

  // Again: the same server is edited, not a second one added.
  auto again = run_command(cli + "setup-callback main" + config);
  INFO(again.output);
  CHECK(again.exit_code == 0);
  CHECK_THAT(again.output, Catch::Contains("updated callback server #1"));
  CHECK(fake.callback_servers().size() == 1);

  auto info = run_command(cli + "info main" + config);
  INFO(info.output);
  CHECK(info.exit_code == 0);
  CHECK_THAT(info.output, Catch::Contains("#1 ok"));
  CHECK_THAT(info.output, Catch::Contains(url));

  auto usage = run_command(cli + "setup-callback" + config);
  CHECK(usage.exit_code == 2);
  CHECK_THAT(usage.output, Catch::Contains("omnigate vk setup-callback <account>"));
}

TEST_CASE("omnigate vk setup-callback refuses a confirmation string that is not the community's",
          "[integration][vk][cli]") {
  FakeVkApi fake(kGroup, "ffff0000");  // the community's code differs from the config's
  TempDir dir;
  const std::string path = dir.path() + "/vk.yaml";
  std::ofstream(path) << test_config_yaml("nats://127.0.0.1:1", "", callback_account(fake));
  auto setup =
      run_command(std::string(OMNIGATE_BINARY) + " vk setup-callback main --config " + path);
  INFO(setup.output);
  CHECK(setup.exit_code == 1);
  CHECK_THAT(setup.output, Catch::Contains("confirmation string is \"ffff0000\""));
  CHECK(fake.callback_servers().empty());
  CHECK(fake.calls("groups.addCallbackServer").empty());
}

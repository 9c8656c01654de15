// LoopPublisher against a real nats-server: the outcomes of Publisher::publish_all, one for one,
// from a connection on an event loop. Streams that misbehave (a lost ack, an answer that is not
// our stream's, an unconfirmed duplicate, no answer at all) are played by a core-NATS responder
// on a subject no stream captures, as tests/integration/publisher_test.cpp plays them.
#include <catch2/catch.hpp>

#include <nats/nats.h>

#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "gateway/core/metrics.hpp"
#include "gateway/loop/event_loop.hpp"
#include "gateway/model/ids.hpp"
#include "gateway/nats/loop_publisher.hpp"
#include "gateway/nats/nats_handles.hpp"
#include "gateway/nats/publisher.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using omnigate::ErrorCode;
using omnigate::EventLoop;
using omnigate::LoopPublisher;
using omnigate::PublishMessage;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {

// A nats-server, the gateway's Publisher on it, and a LoopPublisher on a running loop.
struct LoopOnServer {
  explicit LoopOnServer(milliseconds ack_wait = milliseconds(300)) {
    config.url = nats.url();
    config.connect_timeout = milliseconds(1000);
    config.reconnect_wait = milliseconds(100);
    config.ack_wait = ack_wait;
    auto started = omnigate::Publisher::start(config, metrics);
    if (!started) FAIL("Publisher::start: " << started.error().detail);
    publisher = std::move(started.value());
    auto created = EventLoop::create();
    REQUIRE(created);
    loop = std::move(created.value());
    auto on_loop = LoopPublisher::start(*loop, *publisher, 0);
    if (!on_loop) FAIL("LoopPublisher::start: " << on_loop.error().detail);
    loop_publisher = std::move(on_loop.value());
    thread = std::thread([this] { loop->run(); });
    REQUIRE(eventually([&] { return on_the_loop([&] { return loop_publisher->ready(); }); }));
  }
  ~LoopOnServer() {
    // Destroyed on its loop, as the front will: the loop's last task.
    loop->post([this] { loop_publisher.reset(); });
    loop->stop();
    thread.join();
  }

  template <typename Fn>
  std::invoke_result_t<Fn> on_the_loop(Fn fn) {
    std::promise<std::invoke_result_t<Fn>> result;
    auto future = result.get_future();
    loop->post([&] { result.set_value(fn()); });
    return future.get();
  }

  // Starts publish_all on the loop; the future holds its outcomes.
  std::future<LoopPublisher::Outcomes> publish(std::vector<PublishMessage> messages,
                                               Clock::time_point deadline) {
    auto result = std::make_shared<std::promise<LoopPublisher::Outcomes>>();
    auto future = result->get_future();
    loop->post([this, result, messages = std::move(messages), deadline]() mutable {
      loop_publisher->publish_all(
          std::move(messages), deadline,
          [result](LoopPublisher::Outcomes outcomes, std::vector<PublishMessage>) {
            result->set_value(std::move(outcomes));
          });
    });
    return future;
  }

  NatsServer nats;
  omnigate::NatsConfig config;
  omnigate::Metrics metrics;
  std::unique_ptr<omnigate::Publisher> publisher;
  std::unique_ptr<EventLoop> loop;
  std::unique_ptr<LoopPublisher> loop_publisher;
  std::thread thread;
};

std::vector<PublishMessage> messages_to(const std::string& subject, size_t count) {
  std::vector<PublishMessage> out;
  for (size_t i = 0; i < count; ++i) {
    PublishMessage message;
    message.subject = subject;
    message.id = omnigate::random_uuid();
    message.payload = R"({"schema":"interaction.v1","n":)";
    message.payload.append(std::to_string(i)).append("}");
    out.push_back(std::move(message));
  }
  return out;
}

// Answers the copies of each Nats-Msg-Id in turn with answers[copy] ("" leaves that copy
// unanswered, as a lost ack); copies past the list are unanswered too.
struct ScriptedStream {
  ScriptedStream(const std::string& url, const std::string& subject,
                 std::vector<std::string> answers)
      : answers_(std::move(answers)) {
    natsConnection* raw = nullptr;
    REQUIRE(natsConnection_ConnectTo(&raw, url.c_str()) == NATS_OK);
    connection_.reset(raw);
    natsSubscription* sub = nullptr;
    REQUIRE(natsConnection_Subscribe(&sub, raw, subject.c_str(), &ScriptedStream::on_msg, this) ==
            NATS_OK);
    sub_.reset(sub);
    REQUIRE(natsConnection_Flush(raw) == NATS_OK);
  }
  size_t copies_of(const std::string& id) {
    std::lock_guard lock(mutex_);
    return copies_[id];
  }

 private:
  static void on_msg(natsConnection* nc, natsSubscription*, natsMsg* msg, void* closure) {
    auto* self = static_cast<ScriptedStream*>(closure);
    const char* id = nullptr;
    natsMsgHeader_Get(msg, "Nats-Msg-Id", &id);
    std::string answer;
    {
      std::lock_guard lock(self->mutex_);
      const size_t copy = self->copies_[id != nullptr ? id : ""]++;
      if (copy < self->answers_.size()) answer = self->answers_[copy];
    }
    if (!answer.empty() && natsMsg_GetReply(msg) != nullptr) {
      natsConnection_PublishString(nc, natsMsg_GetReply(msg), answer.c_str());
      natsConnection_Flush(nc);
    }
    natsMsg_Destroy(msg);
  }

  std::vector<std::string> answers_;
  std::mutex mutex_;
  std::map<std::string, size_t> copies_;
  omnigate::nats::Connection connection_;
  omnigate::nats::Subscription sub_;
};

const std::string kStreamAck = R"({"stream":"OMNIGATE_INTERACTIONS","seq":)";

}  // namespace

TEST_CASE(
    "LoopPublisher stores a batch in order with the gateway's headers, and sent again it is "
    "all duplicates",
    "[integration][loop_publisher]") {
  LoopOnServer on;
  auto messages = messages_to("omnigate.interactions.api.bench.message", 5);
  auto first = on.publish(messages, Clock::now() + milliseconds(5000)).get();
  REQUIRE(first.size() == messages.size());
  for (size_t i = 0; i < first.size(); ++i) {
    INFO("message " << i);
    REQUIRE(first[i]);
    CHECK(first[i]->sequence == i + 1);
    CHECK_FALSE(first[i]->duplicate);
    CHECK(on.publisher->seen_index().contains(messages[i].id));
  }
  auto stored = read_stream(on.nats.url());
  REQUIRE(stored.size() == messages.size());
  for (size_t i = 0; i < stored.size(); ++i) {
    CHECK(stored[i].msg_id == messages[i].id);
    CHECK(stored[i].schema_header == "interaction.v1");
    CHECK(stored[i].body["n"] == static_cast<int>(i));
  }
  auto again = on.publish(messages, Clock::now() + milliseconds(5000)).get();
  for (size_t i = 0; i < again.size(); ++i) {
    REQUIRE(again[i]);
    CHECK(again[i]->duplicate);
    CHECK(again[i]->sequence == i + 1);
  }
  CHECK(read_stream(on.nats.url()).size() == messages.size());
  CHECK(on.on_the_loop([&] { return on.loop_publisher->in_flight(); }) == 0);
}

TEST_CASE("LoopPublisher sends an attempt whose ack is lost again, with the same id",
          "[integration][loop_publisher]") {
  LoopOnServer on;
  ScriptedStream stream(on.nats.url(), "test.lost", {"", kStreamAck + "77}"});
  auto messages = messages_to("test.lost", 1);
  auto outcomes = on.publish(messages, Clock::now() + milliseconds(5000)).get();
  REQUIRE(outcomes[0]);
  CHECK(outcomes[0]->sequence == 77);  // the second copy's ack
  CHECK(stream.copies_of(messages[0].id) == 2);
  CHECK(on.metrics.publish_failures.value({"ack_timeout"}) == 1);
}

TEST_CASE("LoopPublisher takes only our stream's PubAck as a confirmation",
          "[integration][loop_publisher]") {
  LoopOnServer on;
  ScriptedStream empty(on.nats.url(), "test.empty", {"{}"});
  ScriptedStream other(on.nats.url(), "test.other", {R"({"stream":"OTHER","seq":5})"});
  ScriptedStream error(on.nats.url(), "test.error",
                       {R"({"error":{"code":503,"err_code":10077,"description":"full"}})"});
  auto messages = messages_to("test.empty", 1);
  auto more = messages_to("test.other", 1);
  auto errors = messages_to("test.error", 1);
  messages.push_back(more[0]);
  messages.push_back(errors[0]);
  auto outcomes = on.publish(messages, Clock::now() + milliseconds(5000)).get();
  REQUIRE(outcomes.size() == 3);
  for (const auto& outcome : outcomes) {
    REQUIRE_FALSE(outcome);
    CHECK(outcome.error().code == ErrorCode::not_durable);
  }
  CHECK(on.metrics.publish_failures.value({"error"}) == 3);
  CHECK_FALSE(on.publisher->seen_index().contains(messages[0].id));
}

TEST_CASE("LoopPublisher sends an unconfirmed duplicate (seq 0) again after a pause",
          "[integration][loop_publisher]") {
  LoopOnServer on(milliseconds(2000));
  ScriptedStream stream(
      on.nats.url(), "test.replicating",
      {kStreamAck + R"(0,"duplicate":true})", kStreamAck + R"(9,"duplicate":true})"});
  auto messages = messages_to("test.replicating", 1);
  auto outcomes = on.publish(messages, Clock::now() + milliseconds(5000)).get();
  REQUIRE(outcomes[0]);
  CHECK(outcomes[0]->sequence == 9);
  CHECK(outcomes[0]->duplicate);
  CHECK(stream.copies_of(messages[0].id) == 2);
  CHECK(on.metrics.publish_failures.value({"duplicate_unconfirmed"}) == 1);
  CHECK(on.metrics.publish_failures.value({"ack_timeout"}) == 0);  // re-sent on the pause
}

TEST_CASE("LoopPublisher: no ack before the deadline is not durable, after re-sends of the id",
          "[integration][loop_publisher]") {
  LoopOnServer on(milliseconds(200));
  ScriptedStream silent(on.nats.url(), "test.silent", {});
  auto messages = messages_to("test.silent", 2);
  auto outcomes = on.publish(messages, Clock::now() + milliseconds(900)).get();
  for (size_t i = 0; i < outcomes.size(); ++i) {
    REQUIRE_FALSE(outcomes[i]);
    CHECK(outcomes[i].error().code == ErrorCode::not_durable);
    CHECK(silent.copies_of(messages[i].id) >= 2);  // sent again with the same id
  }
  CHECK(on.metrics.publish_failures.value({"timeout"}) == 2);
  CHECK(on.metrics.publish_failures.value({"ack_timeout"}) >= 2);
  CHECK(on.on_the_loop([&] { return on.loop_publisher->in_flight(); }) <= 2);
}

TEST_CASE("LoopPublisher answers a message above the server's max_payload 413",
          "[integration][loop_publisher]") {
  LoopOnServer on;
  auto messages = messages_to("omnigate.interactions.api.bench.message", 2);
  messages[0].payload.assign(2 * 1024 * 1024, 'x');  // nats-server's default max_payload: 1 MB
  auto outcomes = on.publish(messages, Clock::now() + milliseconds(5000)).get();
  REQUIRE_FALSE(outcomes[0]);
  CHECK(outcomes[0].error().code == ErrorCode::payload_too_large);
  REQUIRE(outcomes[1]);  // the batch's other message is not held back by it
  CHECK(on.metrics.publish_failures.value({"too_large"}) == 1);
}

TEST_CASE(
    "LoopPublisher: a deleted stream is re-created by the setup thread and the batch sent "
    "again",
    "[integration][loop_publisher]") {
  LoopOnServer on;
  auto first = on.publish(messages_to("omnigate.interactions.api.bench.message", 1),
                          Clock::now() + milliseconds(5000))
                   .get();
  REQUIRE(first[0]);
  NatsClient client(on.nats.url());
  REQUIRE(js_DeleteStream(client.jetstream(), "OMNIGATE_INTERACTIONS", nullptr, nullptr) ==
          NATS_OK);
  auto messages = messages_to("omnigate.interactions.api.bench.message", 3);
  auto outcomes = on.publish(messages, Clock::now() + milliseconds(8000)).get();
  for (auto& outcome : outcomes) {
    REQUIRE(outcome);
    CHECK_FALSE(outcome->duplicate);
  }
  auto stored = read_stream(on.nats.url());
  REQUIRE(stored.size() == 3);  // the new stream: the three, once each
  for (size_t i = 0; i < 3; ++i) CHECK(stored[i].msg_id == messages[i].id);
}

TEST_CASE(
    "LoopPublisher fails what is in flight at once when the connection drops, and "
    "publishes again after the server is back",
    "[integration][loop_publisher]") {
  LoopOnServer on(milliseconds(20'000));
  ScriptedStream silent(on.nats.url(), "test.hold", {});
  auto messages = messages_to("test.hold", 1);
  const auto started = Clock::now();
  auto pending = on.publish(messages, started + milliseconds(30'000));
  REQUIRE(eventually([&] { return silent.copies_of(messages[0].id) == 1; }));
  on.nats.stop();
  auto outcomes = pending.get();
  REQUIRE_FALSE(outcomes[0]);
  CHECK(outcomes[0].error().code == ErrorCode::not_durable);
  CHECK(on.metrics.publish_failures.value({"disconnected"}) == 1);
  // Failed by the disconnect, not by the deadline or the 20 s ack_wait.
  CHECK(Clock::now() - started < milliseconds(15'000));

  // While NATS is away, a publish is refused at once.
  auto refused = on.publish(messages_to("omnigate.interactions.api.bench.message", 1),
                            Clock::now() + milliseconds(30'000))
                     .get();
  REQUIRE_FALSE(refused[0]);
  CHECK(refused[0].error().code == ErrorCode::not_durable);

  on.nats.start();
  REQUIRE(eventually([&] { return on.on_the_loop([&] { return on.loop_publisher->ready(); }); },
                     std::chrono::seconds(20)));
  auto after = on.publish(messages_to("omnigate.interactions.api.bench.message", 1),
                          Clock::now() + milliseconds(5000))
                   .get();
  REQUIRE(after[0]);
  CHECK(after[0]->sequence >= 1);
}

TEST_CASE(
    "LoopPublisher destroyed on a running loop answers what is in flight, and its timers "
    "come due harmlessly",
    "[integration][loop_publisher]") {
  LoopOnServer on(milliseconds(200));
  ScriptedStream silent(on.nats.url(), "test.stopping", {});
  auto messages = messages_to("test.stopping", 1);
  auto pending = on.publish(messages, Clock::now() + milliseconds(1000));
  REQUIRE(eventually([&] { return silent.copies_of(messages[0].id) == 1; }));
  on.loop->post([&] { on.loop_publisher.reset(); });
  auto outcomes = pending.get();
  REQUIRE_FALSE(outcomes[0]);
  CHECK(outcomes[0].error().code == ErrorCode::not_durable);
  // Its ack_wait (200 ms) and deadline (1 s) timers are still in the loop: they come due now.
  std::promise<void> later;
  on.loop->post(
      [&] { on.loop->run_at(Clock::now() + milliseconds(1200), [&] { later.set_value(); }); });
  later.get_future().wait();
  CHECK(silent.copies_of(messages[0].id) == 1);  // nothing was sent again by a dead publisher
}

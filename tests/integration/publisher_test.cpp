// Publisher::publish_all against a real nats-server: a batch is in flight together (not one
// round trip per message), each message gets its own outcome in order, and a batch larger than
// the window is published once, in order, and recognised as duplicates when sent again.
#include <catch2/catch.hpp>

#include <nats/nats.h>

#include <mutex>
#include <string>
#include <vector>

#include "gateway/core/metrics.hpp"
#include "gateway/model/ids.hpp"
#include "gateway/nats/nats_handles.hpp"
#include "gateway/nats/publisher.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using omnigate::Metrics;
using omnigate::NatsConfig;
using omnigate::Publisher;
using omnigate::PublishItem;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {

// A nats-server of its own and a Publisher on it.
struct PublisherOnServer {
  PublisherOnServer() {
    config.url = nats.url();
    config.connect_timeout = milliseconds(1000);
    config.reconnect_wait = milliseconds(100);
    config.ack_wait = milliseconds(1000);
    auto started = Publisher::start(config, metrics);
    if (!started) FAIL("Publisher::start: " << started.error().detail);
    publisher = std::move(started.value());
  }
  NatsServer nats;
  NatsConfig config;
  Metrics metrics;
  std::unique_ptr<Publisher> publisher;
};

// `count` new ids, and the batch publishing `payload` under each of them to `subject`.
struct Batch {
  Batch(const std::string& subject, const std::string& payload, size_t count) {
    for (size_t i = 0; i < count; ++i) ids.push_back(omnigate::random_uuid());
    rebuild(subject, payload);
  }
  void rebuild(const std::string& subject, const std::string& payload) {
    items.clear();
    for (const auto& id : ids) items.push_back(PublishItem{subject, id, payload});
  }
  std::vector<std::string> ids;
  std::vector<PublishItem> items;
};

// Plays a stream that answers nothing until it holds `expected` messages, then acks them all
// (numbered from first_sequence in arrival order): a publisher that waits for each ack before
// sending the next never gets one. With `drop_first`, the first copy of that id goes unanswered
// (a lost ack); a later copy is acked at once as retry_sequence.
struct HoldingResponder {
  std::string stream;
  size_t expected = 0;
  uint64_t first_sequence = 0;
  std::string drop_first;
  uint64_t retry_sequence = 5000;
  std::mutex mutex;
  std::vector<std::string> reply_to;
  std::vector<std::string> msg_ids;  // in the order they arrived
  natsConnection* connection = nullptr;

  void ack(natsConnection* nc, const std::string& reply, uint64_t sequence) {
    const std::string body =
        R"({"stream":")" + stream + R"(","seq":)" + std::to_string(sequence) + "}";
    natsConnection_PublishString(nc, reply.c_str(), body.c_str());
  }

  static void on_msg(natsConnection* nc, natsSubscription*, natsMsg* msg, void* self) {
    auto* r = static_cast<HoldingResponder*>(self);
    const char* id = nullptr;
    natsMsgHeader_Get(msg, "Nats-Msg-Id", &id);
    std::lock_guard lock(r->mutex);
    r->msg_ids.emplace_back(id != nullptr ? id : "");
    r->reply_to.emplace_back(natsMsg_GetReply(msg) != nullptr ? natsMsg_GetReply(msg) : "");
    natsMsg_Destroy(msg);
    if (r->reply_to.size() > r->expected) {
      r->ack(nc, r->reply_to.back(), r->retry_sequence);  // a retry, after the batch
    } else if (r->reply_to.size() == r->expected) {
      for (size_t k = 0; k < r->reply_to.size(); ++k) {
        if (!r->drop_first.empty() && r->msg_ids[k] == r->drop_first) continue;
        r->ack(nc, r->reply_to[k], r->first_sequence + k);
      }
    }
    natsConnection_Flush(nc);
  }
};

// The responder on `subject` of its own connection, for the life of the value.
struct RespondingOn {
  RespondingOn(const std::string& url, const std::string& subject, HoldingResponder& responder) {
    natsConnection* raw = nullptr;
    REQUIRE(natsConnection_ConnectTo(&raw, url.c_str()) == NATS_OK);
    connection.reset(raw);
    natsSubscription* raw_sub = nullptr;
    REQUIRE(natsConnection_Subscribe(&raw_sub, raw, subject.c_str(), &HoldingResponder::on_msg,
                                     &responder) == NATS_OK);
    sub.reset(raw_sub);
    REQUIRE(natsConnection_Flush(raw) == NATS_OK);
  }
  omnigate::nats::Connection connection;
  std::unique_ptr<natsSubscription, omnigate::nats::SubscriptionDeleter> sub;
};

}  // namespace

TEST_CASE("publish_all sends a batch before it awaits the first ack, each message its own outcome",
          "[integration][publisher][batch]") {
  PublisherOnServer on;
  auto& publisher = on.publisher;

  // A subject no stream captures, answered by the responder in the stream's name.
  HoldingResponder responder;
  responder.stream = on.config.stream.name;
  responder.expected = 40;
  responder.first_sequence = 1000;
  RespondingOn responding(on.nats.url(), "test.batch", responder);

  const std::string subject = "test.batch";
  const std::string payload = R"({"n":1})";
  Batch batch(subject, payload, responder.expected);
  const auto& ids = batch.ids;

  auto outcomes = publisher->publish_all(batch.items, Clock::now() + milliseconds(2500));
  REQUIRE(outcomes.size() == ids.size());
  for (size_t i = 0; i < outcomes.size(); ++i) {
    INFO("message " << i);
    REQUIRE(outcomes[i]);
    // The ack of message i, not of another: the responder numbered them in arrival order.
    CHECK(outcomes[i]->sequence == responder.first_sequence + i);
    CHECK_FALSE(outcomes[i]->duplicate);
    CHECK(publisher->seen_index().contains(ids[i]));
  }
  std::lock_guard lock(responder.mutex);
  CHECK(responder.msg_ids == ids);  // sent in the batch's order, each once
}

TEST_CASE("publish_all: a lost ack in a batch is retried with the same id, its outcome the retry's",
          "[integration][publisher][batch]") {
  PublisherOnServer on;
  HoldingResponder responder;
  responder.stream = on.config.stream.name;
  responder.expected = 10;
  responder.first_sequence = 100;
  Batch batch("test.lost", "{}", responder.expected);
  responder.drop_first = batch.ids[3];
  RespondingOn responding(on.nats.url(), "test.lost", responder);

  // ack_wait is 1 s: the round waits that long for message 3, then sends it again.
  auto outcomes = on.publisher->publish_all(batch.items, Clock::now() + milliseconds(4000));
  REQUIRE(outcomes.size() == batch.ids.size());
  for (size_t i = 0; i < outcomes.size(); ++i) {
    INFO("message " << i);
    REQUIRE(outcomes[i]);
    const uint64_t expected = i == 3 ? responder.retry_sequence : responder.first_sequence + i;
    CHECK(outcomes[i]->sequence == expected);
  }
  CHECK(on.metrics.publish_failures.value({"ack_timeout"}) == 1);
  std::lock_guard lock(responder.mutex);
  REQUIRE(responder.msg_ids.size() == batch.ids.size() + 1);
  CHECK(responder.msg_ids.back() == batch.ids[3]);  // the retry: the same Nats-Msg-Id
}

TEST_CASE(
    "publish_all: a batch above the window is stored once, in order, and sent again it is all "
    "duplicates",
    "[integration][publisher][batch]") {
  PublisherOnServer on;
  auto& publisher = on.publisher;

  const std::string subject = "omnigate.interactions.api.bench.message";
  const std::string payload = R"({"schema":"interaction.v1"})";
  Batch batch(subject, payload, 600);
  batch.ids.push_back(batch.ids[7]);  // the same message twice in one batch: stored once
  batch.rebuild(subject, payload);
  const auto& ids = batch.ids;
  const auto& items = batch.items;

  auto first = publisher->publish_all(items, Clock::now() + milliseconds(10'000));
  REQUIRE(first.size() == ids.size());
  uint64_t previous = 0;
  for (size_t i = 0; i + 1 < first.size(); ++i) {
    INFO("message " << i);
    REQUIRE(first[i]);
    CHECK_FALSE(first[i]->duplicate);
    CHECK(first[i]->sequence > previous);  // stored in the batch's order
    previous = first[i]->sequence;
  }
  REQUIRE(first.back());
  CHECK(first.back()->duplicate);
  CHECK(first.back()->sequence == first[7]->sequence);

  auto again = publisher->publish_all(items, Clock::now() + milliseconds(10'000));
  REQUIRE(again.size() == ids.size());
  for (size_t i = 0; i < again.size(); ++i) {
    INFO("message " << i);
    REQUIRE(again[i]);
    CHECK(again[i]->duplicate);
    CHECK(again[i]->sequence == first[i]->sequence);
  }
}

TEST_CASE("publish_all with NATS gone: every message of the batch is refused not_durable, counted",
          "[integration][publisher][batch]") {
  PublisherOnServer on;
  on.nats.kill();
  REQUIRE(eventually([&] { return !on.publisher->connected(); }));

  const std::string subject = "omnigate.interactions.api.bench.message";
  const std::string payload = "{}";
  Batch batch(subject, payload, 5);
  auto outcomes = on.publisher->publish_all(batch.items, Clock::now() + milliseconds(1000));
  REQUIRE(outcomes.size() == batch.ids.size());
  for (const auto& outcome : outcomes) {
    REQUIRE_FALSE(outcome);
    CHECK(outcome.error().code == omnigate::ErrorCode::not_durable);
  }
  CHECK(on.metrics.publish_failures.value({"disconnected"}) == 5);
}

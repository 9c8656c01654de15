// The shared poll loop (gateway/state/poll_loop.hpp) with a scripted source and the real
// pipeline, lease and cursor store on a real nats-server. The sink in front of JetStream can be
// told to refuse chosen interactions, so "not durable" is exact, not a NATS outage's timing.
// Back-off is observed through an injected sleeper that records each wait and returns at once.
#include <catch2/catch.hpp>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>

#include "gateway/core/metrics.hpp"
#include "gateway/model/ids.hpp"
#include "gateway/nats/publisher.hpp"
#include "gateway/pipeline/dedup_index.hpp"
#include "gateway/pipeline/pipeline.hpp"
#include "gateway/pipeline/sink.hpp"
#include "gateway/state/poll_loop.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate;
using namespace omnigate::testing;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

constexpr const char* kChannel = "telegram";
constexpr const char* kAccount = "looptest";
constexpr const char* kCursorKey = "telegram.looptest.offset";

std::string id_of(int event) {
  return interaction_id(kChannel, kAccount, "event-" + std::to_string(event));
}

// A message event numbered `event`, resuming at `cursor_after` ("" = not a resume point).
PolledItem item(int event, std::string cursor_after) {
  PolledItem polled;
  Submission submission;
  submission.native_key = "event-" + std::to_string(event);
  Interaction& in = submission.interaction;
  in.channel = kChannel;
  in.account = kAccount;
  in.kind = "message";
  in.occurred_at = now_millis();
  in.message = Message{};
  in.message->native_id = std::to_string(event);
  in.message->text = "Событие " + std::to_string(event);
  polled.raw = std::make_shared<const std::string>("{\"event\":" + std::to_string(event) + "}");
  submission.raw_bytes = *polled.raw;
  submission.raw_content_type = "application/json";
  polled.mapped.submissions.push_back(std::move(submission));
  polled.cursor_after = std::move(cursor_after);
  return polled;
}

PollBatch batch(std::vector<PolledItem> items, std::string next_cursor = "") {
  return PollBatch{std::move(items), std::move(next_cursor)};
}

// A batch of numbered events, each with the cursor after it.
PollBatch events(const std::vector<std::pair<int, std::string>>& numbered,
                 std::string next_cursor = "") {
  std::vector<PolledItem> items;
  for (const auto& [event, cursor_after] : numbered) items.push_back(item(event, cursor_after));
  return batch(std::move(items), std::move(next_cursor));
}

PollError fetch_error(milliseconds at_least = milliseconds(0)) {
  return PollError{make_error(ErrorCode::internal, "fetch", "connection refused"), at_least, false};
}

struct SourceLog {
  std::mutex mutex;
  std::condition_variable pushed;
  std::deque<PollResult> script;     // answers, in order; none: the fetch blocks like a long poll
  std::vector<std::string> cursors;  // the cursor of every fetch
  int blocked = 0;                   // fetches waiting on an empty script right now
  int cancelled = 0;                 // fetches that returned because of the cancel flag
  int resets = 0;
  std::vector<size_t> durable;  // on_durable's count, per submit

  void push(PollResult result) {
    {
      std::lock_guard lock(mutex);
      script.push_back(std::move(result));
    }
    pushed.notify_all();
  }
  std::vector<std::string> fetched() {
    std::lock_guard lock(mutex);
    return cursors;
  }
  std::vector<size_t> durable_counts() {
    std::lock_guard lock(mutex);
    return durable;
  }
  int count(int SourceLog::*counter) {
    std::lock_guard lock(mutex);
    return this->*counter;
  }
};

// The connector side: answers from the script, records what the loop asked.
class ScriptedSource : public PollSource {
 public:
  explicit ScriptedSource(std::shared_ptr<SourceLog> log) : log_(std::move(log)) {}
  PollResult fetch(const std::string& cursor, const std::atomic<bool>& cancel) override {
    std::unique_lock lock(log_->mutex);
    log_->cursors.push_back(cursor);
    ++log_->blocked;
    // The cancel flag is an atomic nobody notifies: look at it often, as a transfer would.
    while (log_->script.empty() && !cancel) log_->pushed.wait_for(lock, milliseconds(5));
    --log_->blocked;
    if (cancel) {
      ++log_->cancelled;
      return PollBatch{};
    }
    PollResult next = std::move(log_->script.front());
    log_->script.pop_front();
    return next;
  }
  void reset() override {
    std::lock_guard lock(log_->mutex);
    ++log_->resets;
  }
  void on_durable(const PollBatch& batch, size_t durable) override {
    std::lock_guard lock(log_->mutex);
    log_->durable.push_back(durable);
  }

 private:
  std::shared_ptr<SourceLog> log_;
};

class NothingSeen : public DedupIndex {
 public:
  bool caught_up() const override { return true; }
  bool wait_caught_up(std::chrono::steady_clock::time_point) const override { return true; }
  bool contains(std::string_view) const override { return false; }
};

// JetStream, except for the interactions it is told to refuse.
class RefusingSink : public Sink {
 public:
  explicit RefusingSink(Publisher& publisher) : jetstream_(publisher) {}
  std::vector<Result<SinkOutcome>> put_all(const std::vector<SinkRecord>& records,
                                           Clock::time_point deadline) override {
    std::vector<Result<SinkOutcome>> out;
    for (const auto& record : records) {
      bool refuse;
      {
        std::lock_guard lock(mutex_);
        refuse = refuse_all_ || refused_.count(record.id) > 0;
      }
      if (refuse) {
        out.push_back(make_error(ErrorCode::not_durable, "publish", "refused by the test"));
      } else {
        out.push_back(jetstream_.put(record, deadline));
      }
    }
    return out;
  }
  bool jetstream_ready() const override { return jetstream_.jetstream_ready(); }
  void refuse(std::set<std::string> ids, bool all = false) {
    std::lock_guard lock(mutex_);
    refused_ = std::move(ids);
    refuse_all_ = all;
  }

 private:
  JetStreamSink jetstream_;
  std::mutex mutex_;
  std::set<std::string> refused_;
  bool refuse_all_ = false;
};

// One gateway's worth of state: publisher, cursors, pipeline.
struct Rig {
  explicit Rig(const std::string& nats_url) {
    config.nats.url = nats_url;
    config.nats.connect_timeout = milliseconds(500);
    config.nats.reconnect_wait = milliseconds(100);
    config.nats.ack_wait = milliseconds(500);
    auto started = Publisher::start(config.nats, metrics);
    if (!started) throw std::runtime_error(started.error().detail);
    publisher = std::move(started.value());
    cursors = std::make_unique<CursorStore>(*publisher);
    sink = std::make_unique<RefusingSink>(*publisher);
    pipeline = std::make_unique<Pipeline>(config, seen, *sink, metrics);
  }

  std::unique_ptr<PollLoop> loop(std::shared_ptr<SourceLog> log, PollSleeper sleeper,
                                 PollBackoff backoff = {}) {
    PollLoopSettings settings;
    settings.channel = kChannel;
    settings.account = kAccount;
    settings.cursor_key = kCursorKey;
    settings.lease.ttl = milliseconds(1500);
    settings.submit_timeout = milliseconds(2000);
    settings.backoff = backoff;
    settings.jitter_seed = 42;
    return std::make_unique<PollLoop>(std::make_unique<ScriptedSource>(std::move(log)), *cursors,
                                      *pipeline, metrics, settings, std::move(sleeper));
  }

  // Writes over `key` as another instance would: compare-and-set on its current revision.
  void write_behind_its_back(const std::string& key, const std::string& value) {
    auto entry = cursors->get(key);
    REQUIRE(entry);
    REQUIRE(entry->has_value());
    auto written = cursors->put(key, value, (*entry)->revision);
    REQUIRE(written);
    REQUIRE_FALSE(written->conflict);
  }

  std::string stored(const std::string& key = kCursorKey) {
    auto entry = cursors->get(key);
    if (!entry) return "<" + entry.error().detail + ">";
    return entry->has_value() ? (*entry)->value : "<no key>";
  }

  Config config;
  Metrics metrics;
  std::unique_ptr<Publisher> publisher;
  std::unique_ptr<CursorStore> cursors;
  NothingSeen seen;
  std::unique_ptr<RefusingSink> sink;
  std::unique_ptr<Pipeline> pipeline;
};

// Records every wait and returns at once: no test waits out a back-off.
struct RecordingSleeper {
  std::shared_ptr<std::mutex> mutex = std::make_shared<std::mutex>();
  std::shared_ptr<std::vector<milliseconds>> waits = std::make_shared<std::vector<milliseconds>>();
  PollSleeper sleeper() {
    return [mutex = mutex, waits = waits](milliseconds d) {
      std::lock_guard lock(*mutex);
      waits->push_back(d);
      return true;
    };
  }
  std::vector<milliseconds> recorded() const {
    std::lock_guard lock(*mutex);
    return *waits;
  }
};

// One gateway instance polling the account: its state, its scripted source, its waits
// (recorded and skipped, unless it waits for real).
struct Instance : Rig {
  explicit Instance(const std::string& nats_url) : Rig(nats_url) {}
  void start(PollBackoff backoff = {}, bool real_waits = false) {
    loop_under_test = loop(log, real_waits ? PollSleeper() : sleeper.sleeper(), backoff);
    loop_under_test->start();
  }
  void stop() { loop_under_test->stop(); }
  RecordingSleeper sleeper;
  std::shared_ptr<SourceLog> log = std::make_shared<SourceLog>();
  std::unique_ptr<PollLoop> loop_under_test;
};

std::map<std::string, int> copies_in_stream(const std::string& nats_url,
                                            const std::vector<int>& events) {
  std::map<std::string, int> copies;
  for (int e : events) copies[id_of(e)] = 0;
  for (const auto& m : read_stream(nats_url)) {
    if (copies.count(m.msg_id) > 0) copies[m.msg_id]++;
  }
  return copies;
}

std::map<std::string, int> once_each(const std::vector<int>& events) {
  std::map<std::string, int> copies;
  for (int e : events) copies[id_of(e)] = 1;
  return copies;
}

}  // namespace

TEST_CASE("poll loop: the cursor advances over the durable prefix of a batch only",
          "[integration][poll-loop][cursor]") {
  NatsServer nats;
  Instance one(nats.url());
  one.sink->refuse({id_of(2)});
  // Telegram-shaped: every item is a resume point of its own.
  one.log->push(events({{1, "2"}, {2, "3"}, {3, "4"}}));
  one.start();
  // Item 2 is not durable: the cursor confirms item 1 only, and the next fetch asks from there.
  REQUIRE(eventually([&] { return one.log->fetched().size() >= 2; }));
  CHECK(one.stored() == "2");
  CHECK(one.log->fetched() == std::vector<std::string>{"", "2"});
  CHECK(one.sleeper.recorded().size() == 1);  // the refused item is a failure: a back-off
  CHECK(one.metrics.poll_failures.value({kChannel, kAccount, "submit"}) == 1);

  // The provider hands 2 and 3 again; now durable: the cursor passes both, nothing doubled.
  one.sink->refuse({});
  one.log->push(events({{2, "3"}, {3, "4"}}));
  REQUIRE(eventually([&] { return one.log->fetched().size() >= 3; }));
  CHECK(one.stored() == "4");
  CHECK(one.log->fetched().back() == "4");
  CHECK(copies_in_stream(nats.url(), {1, 2, 3}) == once_each({1, 2, 3}));
  // What the source may now tell the provider (IMAP: mark it seen): item 1, then both of 2 and 3.
  CHECK(one.log->durable_counts() == std::vector<size_t>{1, 2});
}

TEST_CASE("poll loop: a batch-level cursor (VK ts) is stored only when the whole batch is durable",
          "[integration][poll-loop][cursor]") {
  NatsServer nats;
  Instance one(nats.url());
  auto vk_answer = [] { return events({{10, ""}, {11, ""}}, "ts-7"); };
  one.sink->refuse({id_of(11)});
  one.log->push(vk_answer());
  one.start();
  REQUIRE(eventually([&] { return one.log->fetched().size() >= 2; }));
  CHECK(one.stored() == "<no key>");  // 10 is durable, but no ts confirms 10 alone
  CHECK(one.log->fetched() == std::vector<std::string>{"", ""});

  one.sink->refuse({});
  one.log->push(vk_answer());
  // `failed: 1`: no events, a new ts to continue from.
  one.log->push(batch({}, "ts-9"));
  REQUIRE(eventually([&] { return one.log->fetched().size() >= 4; }));
  CHECK(one.stored() == "ts-9");
  CHECK(one.log->fetched() == std::vector<std::string>{"", "", "ts-7", "ts-9"});
  CHECK(copies_in_stream(nats.url(), {10, 11}) == once_each({10, 11}));
}

TEST_CASE("poll loop: a failed submit keeps the cursor, a restart resumes from the stored one",
          "[integration][poll-loop][cursor][restart]") {
  NatsServer nats;
  {
    Instance first(nats.url());
    first.sink->refuse({}, true);  // nothing durable
    first.log->push(events({{20, "21"}}));
    first.start();
    REQUIRE(eventually([&] { return first.log->fetched().size() >= 2; }));
    CHECK(first.stored() == "<no key>");
    CHECK(first.log->fetched() == std::vector<std::string>{"", ""});
    CHECK(copies_in_stream(nats.url(), {20}) == std::map<std::string, int>{{id_of(20), 0}});

    first.sink->refuse({});
    first.log->push(events({{20, "21"}, {21, "22"}}));
    REQUIRE(eventually([&] { return first.stored() == "22"; }));
    first.stop();  // a gateway shut down: the lease is released
  }
  // Another gateway: its first fetch starts at the stored cursor.
  Instance second(nats.url());
  second.log->push(events({{22, "23"}}));
  second.start();
  REQUIRE(eventually([&] { return second.stored() == "23"; }));
  CHECK(second.log->fetched().front() == "22");
  CHECK(copies_in_stream(nats.url(), {20, 21, 22}) == once_each({20, 21, 22}));
}

TEST_CASE("poll loop: back-off grows, is jittered, bounded, honours at_least, resets after success",
          "[integration][poll-loop][backoff]") {
  NatsServer nats;
  Instance one(nats.url());
  for (int i = 0; i < 6; ++i) one.log->push(fetch_error());
  one.log->push(batch({}));  // a success
  one.log->push(fetch_error());
  one.log->push(fetch_error());
  one.log->push(fetch_error(milliseconds(20'000)));  // e.g. 429 retry_after 20
  one.start(PollBackoff{milliseconds(1000), milliseconds(8000)});
  REQUIRE(eventually([&] { return one.sleeper.recorded().size() >= 9; }));
  auto waits = one.sleeper.recorded();
  INFO("waits (ms): " << [&] {
    std::string text;
    for (auto w : waits) text += std::to_string(w.count()) + " ";
    return text;
  }());
  REQUIRE(waits.size() == 9);  // the success itself waits for nothing
  const std::vector<int64_t> nominal = {1000, 2000, 4000, 8000, 8000, 8000, 1000, 2000, 4000};
  bool any_jitter = false;
  for (size_t i = 0; i < 8; ++i) {
    CHECK(waits[i].count() >= nominal[i] / 2);
    CHECK(waits[i].count() <= nominal[i]);  // bounded by max (8 s) from the fourth on
    if (waits[i].count() != nominal[i] && waits[i].count() != nominal[i] / 2) any_jitter = true;
  }
  CHECK(any_jitter);
  CHECK(waits[2] > waits[0]);  // grows: the third wait's floor (2 s) is above the first's top
  CHECK(waits[8] >= milliseconds(20'000));
  CHECK(one.metrics.poll_failures.value({kChannel, kAccount, "fetch"}) == 9);
}

TEST_CASE("poll loop: stop() aborts a fetch blocked in the source and releases the lease",
          "[integration][poll-loop][cancel]") {
  NatsServer nats;
  Instance one(nats.url());
  one.start({}, true);  // real waits
  REQUIRE(eventually([&] { return one.log->count(&SourceLog::blocked) == 1; }));
  CHECK(one.metrics.lease_held.value({kChannel, kAccount}) == 1);
  const auto stopping = std::chrono::steady_clock::now();
  one.stop();
  // Without the cancel flag this fetch would block forever; stop() returns once it has ended.
  CHECK(std::chrono::steady_clock::now() - stopping < seconds(3));
  CHECK(one.log->count(&SourceLog::cancelled) == 1);
  auto lease = decode_lease(one.stored(Lease::key_for(kChannel, kAccount)));
  REQUIRE(lease);
  CHECK(lease->holder.empty());  // released: another instance takes over at once
}

TEST_CASE(
    "poll loop: a lost cursor compare-and-set ends the term, polling resumes from the "
    "other writer's cursor",
    "[integration][poll-loop][cas][lease]") {
  NatsServer nats;
  Instance one(nats.url());
  one.log->push(events({{30, "31"}}));
  one.start();
  REQUIRE(eventually([&] { return one.log->fetched().size() == 2; }));  // blocked at "31"
  REQUIRE(one.stored() == "31");
  // Another instance advances the cursor behind this loop's back.
  one.write_behind_its_back(kCursorKey, "50");
  one.log->push(events({{31, "32"}}));
  // The loop's write of "32" loses: it ends the term, re-checks the lease (still its own), and
  // the new term reads the other writer's cursor and resets the source.
  REQUIRE(eventually([&] { return one.log->fetched().size() >= 3; }));
  CHECK(one.log->fetched() == std::vector<std::string>{"", "31", "50"});
  CHECK(one.stored() == "50");
  CHECK(one.log->count(&SourceLog::resets) == 2);
}

TEST_CASE("poll loop: a lease lost to another holder aborts the fetch in flight and stops polling",
          "[integration][poll-loop][lease]") {
  NatsServer nats;
  Instance one(nats.url());
  one.start({}, true);  // real waits
  REQUIRE(eventually([&] { return one.log->count(&SourceLog::blocked) == 1; }));
  // Another instance holds the lease now (as after a partition): the next renewal loses.
  one.write_behind_its_back(Lease::key_for(kChannel, kAccount),
                            encode_lease({"elsewhere:1:abcd", 60'000, 0}));
  REQUIRE(eventually([&] { return one.log->count(&SourceLog::cancelled) == 1; }));
  CHECK(one.metrics.lease_held.value({kChannel, kAccount}) == 0);
  const size_t fetches = one.log->fetched().size();
  CHECK_FALSE(eventually([&] { return one.log->fetched().size() > fetches; }, seconds(2)));
  one.stop();
}

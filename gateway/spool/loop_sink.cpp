#include "gateway/spool/loop_sink.hpp"

#include <algorithm>

namespace omnigate {

using std::chrono::milliseconds;

struct LoopSink::Put {
  std::vector<SinkRecord> records;
  std::vector<Result<SinkOutcome>> outcomes;
  std::vector<size_t> to_spool;  // records JetStream did not take in time, which may spool
  int open_parts = 0;            // publish batches not answered yet
  Done done;
  // What the completions need, held here rather than through the sink: a completion deferred
  // by the publisher may run after the sink is gone (the gateway stopping).
  EventLoop* loop = nullptr;
  SpoolingSink* spooling = nullptr;
  WorkPool* spoolers = nullptr;
};

namespace {

void part_done(const std::shared_ptr<LoopSink::Put>& put) {
  if (--put->open_parts > 0) return;
  if (put->to_spool.empty()) {
    put->done(std::move(put->outcomes));
    return;
  }
  // The fsync on a spooler thread; the answer back on this loop. post(), not try_post(): a
  // record that JetStream did not take is spooled even while the gateway stops.
  put->spoolers->post([put] {
    put->spooling->spool_all(put->records, put->to_spool, put->outcomes);
    put->loop->post([put] { put->done(std::move(put->outcomes)); });
  });
}

}  // namespace

LoopSink::LoopSink(EventLoop& loop, LoopPublisher& publisher, SpoolingSink& spooling,
                   WorkPool& spoolers)
    : loop_(loop), publisher_(publisher), spooling_(spooling), spoolers_(spoolers) {}

void LoopSink::put_all(std::vector<SinkRecord> records, Clock::time_point deadline, Done done) {
  auto put = std::make_shared<Put>();
  put->records = std::move(records);
  put->outcomes.assign(put->records.size(), Result<SinkOutcome>(make_error(
                                                ErrorCode::internal, "spool", "not processed")));
  put->done = std::move(done);
  put->loop = &loop_;
  put->spooling = &spooling_;
  put->spoolers = &spoolers_;
  // The spool's share of the deadline, as SpoolingSink::put_all leaves it.
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  const auto publish_deadline = deadline - std::min(milliseconds(500), left / 4);
  std::vector<size_t> spooling, direct;
  for (size_t i = 0; i < put->records.size(); ++i)
    (put->records[i].may_spool ? spooling : direct).push_back(i);
  // Both counted before either is sent: neither completion can finish the put early.
  put->open_parts = (spooling.empty() ? 0 : 1) + (direct.empty() ? 0 : 1);
  if (!spooling.empty()) publish(put, std::move(spooling), publish_deadline);
  if (!direct.empty()) publish(put, std::move(direct), deadline);
}

void LoopSink::publish(const std::shared_ptr<Put>& put, std::vector<size_t> which,
                       Clock::time_point until) {
  std::vector<PublishMessage> messages;
  messages.reserve(which.size());
  for (size_t i : which) {
    SinkRecord& record = put->records[i];
    // Moved out for the send, handed back with the outcomes (a spooled record needs them).
    messages.push_back(
        PublishMessage{std::move(record.subject), std::move(record.id), std::move(record.payload)});
  }
  publisher_.publish_all(
      std::move(messages), until,
      [put, which = std::move(which)](LoopPublisher::Outcomes outcomes,
                                      std::vector<PublishMessage> back) {
        for (size_t k = 0; k < which.size(); ++k) {
          const size_t i = which[k];
          SinkRecord& record = put->records[i];
          record.subject = std::move(back[k].subject);
          record.id = std::move(back[k].id);
          record.payload = std::move(back[k].payload);
          if (outcomes[k]) {
            put->outcomes[i] = SinkOutcome{outcomes[k]->sequence, outcomes[k]->duplicate, false};
          } else if (outcomes[k].error().code == ErrorCode::not_durable && record.may_spool) {
            put->to_spool.push_back(i);  // an unknown outcome is fine: the same Msg-Id on replay
          } else {
            put->outcomes[i] = outcomes[k].error();
          }
        }
        part_done(put);
      });
}

}  // namespace omnigate

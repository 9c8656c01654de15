#include "gateway/nats/publisher.hpp"
#include "gateway/pipeline/sink.hpp"

namespace omnigate {

Result<SinkOutcome> JetStreamSink::put(const SinkRecord& record, Clock::time_point deadline) {
  if (record.must_not_publish) {
    if (!publisher_.ready()) return publisher_.not_ready_error();
    return make_error(ErrorCode::not_durable, "publish",
                      "the dedup index is still reading the stream after start; retry shortly");
  }
  auto published = publisher_.publish(record.subject, record.id, record.payload, deadline);
  if (!published) return published.error();
  return SinkOutcome{published->sequence, published->duplicate, false};
}

bool JetStreamSink::jetstream_ready() const {
  return publisher_.ready();
}

std::vector<Result<SinkOutcome>> JetStreamSink::put_some(const std::vector<SinkRecord>& records,
                                                         std::span<const size_t> which,
                                                         Clock::time_point deadline) {
  std::vector<Result<SinkOutcome>> outcomes;
  outcomes.reserve(which.size());
  std::vector<PublishItem> items;
  std::vector<size_t> published_at;  // items[k] -> outcomes index
  items.reserve(which.size());
  for (size_t i : which) {
    const SinkRecord& record = records[i];
    if (record.must_not_publish) {
      outcomes.push_back(put(record, deadline));  // the refusal, with its reason
      continue;
    }
    outcomes.push_back(make_error(ErrorCode::internal, "publish", "not processed"));
    published_at.push_back(outcomes.size() - 1);
    items.push_back(PublishItem{record.subject, record.id, record.payload});
  }
  if (items.empty()) return outcomes;
  // All at once: a batch costs one PubAck round trip, not one per record.
  auto published = publisher_.publish_all(items, deadline);
  for (size_t k = 0; k < published.size(); ++k) {
    auto& out = outcomes[published_at[k]];
    if (published[k]) {
      out = SinkOutcome{published[k]->sequence, published[k]->duplicate, false};
    } else {
      out = published[k].error();
    }
  }
  return outcomes;
}

std::vector<Result<SinkOutcome>> JetStreamSink::put_all(const std::vector<SinkRecord>& records,
                                                        Clock::time_point deadline) {
  std::vector<size_t> all(records.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  return put_some(records, all, deadline);
}

}  // namespace omnigate

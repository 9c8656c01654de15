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

std::vector<Result<SinkOutcome>> JetStreamSink::put_all(const std::vector<SinkRecord>& records,
                                                        Clock::time_point deadline) {
  std::vector<Result<SinkOutcome>> outcomes;
  outcomes.reserve(records.size());
  for (const auto& record : records) outcomes.push_back(put(record, deadline));
  return outcomes;
}

}  // namespace omnigate

#include "gateway/nats/direct_pipeline.hpp"

#include <algorithm>
#include <thread>

#include "gateway/nats/object_store.hpp"
#include "gateway/nats/publisher.hpp"
#include "gateway/pipeline/sink.hpp"

namespace omnigate {

DirectPipeline::~DirectPipeline() {
  // The pipeline and the sink refer to the publisher: gone first.
  pipeline_.reset();
  archive_.reset();
  sink_.reset();
  publisher_.reset();
}

Result<std::unique_ptr<DirectPipeline>> DirectPipeline::open(
    const Config& config, std::chrono::steady_clock::time_point deadline,
    std::chrono::steady_clock::time_point index_deadline) {
  std::unique_ptr<DirectPipeline> direct(new DirectPipeline());
  auto publisher = Publisher::start(config.nats, direct->metrics_);
  if (!publisher) return publisher.error();
  direct->publisher_ = std::move(publisher.value());
  // The publisher connects and verifies the stream on its own threads and keeps no waiter for
  // "ready": look at its cached state until the deadline (a command waits once, not per request).
  // A server that is not there at all is known after nats.connect_timeout, not at the deadline.
  auto connect_deadline =
      std::min(deadline, std::chrono::steady_clock::now() + config.nats.connect_timeout);
  while (!direct->publisher_->ready()) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline || (now >= connect_deadline && !direct->publisher_->connected()))
      return direct->publisher_->not_ready_error();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!direct->publisher_->seen_index().wait_caught_up(index_deadline)) {
    return make_error(ErrorCode::not_durable, "publish",
                      "the dedup index did not finish reading the stream in time");
  }
  direct->sink_ = std::make_unique<JetStreamSink>(*direct->publisher_);
  direct->archive_ = std::make_unique<ObjectStoreArchive>(
      [publisher = direct->publisher_.get()] { return publisher->connection(); },
      raw_archive_settings(config.nats));
  direct->pipeline_ =
      std::make_unique<Pipeline>(config, direct->publisher_->seen_index(), *direct->sink_,
                                 direct->metrics_, direct->archive_.get());
  return direct;
}

}  // namespace omnigate

// A pipeline for one-shot commands that publish (an MTA's pipe transport runs
// `omnigate email deliver` once per mail): the gateway's Publisher and dedup index with
// JetStream alone as the sink -- no spool, because the caller's own queue is the spool: a
// command that cannot make its interactions durable exits non-zero and the caller retries.
#pragma once

#include <chrono>
#include <memory>

#include "gateway/config/config.hpp"
#include "gateway/core/error.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/pipeline/pipeline.hpp"

namespace omnigate {

class Publisher;
class JetStreamSink;
class ObjectStoreArchive;

class DirectPipeline {
 public:
  // Connects to nats: of `config` (which must outlive the pipeline) and waits until
  // `ready_deadline` for the stream to be verified (a server that is not there at all is known
  // after nats.connect_timeout), then until `index_deadline` for the dedup index to have read
  // the stream's ids within nats.dedup_horizon (headers only; it takes longer the more the
  // stream holds). not_durable when either is not done in time.
  static Result<std::unique_ptr<DirectPipeline>> open(
      const Config& config, std::chrono::steady_clock::time_point ready_deadline,
      std::chrono::steady_clock::time_point index_deadline);
  ~DirectPipeline();

  // Submissions made durable here are in JetStream (never spooled) when the result is a value;
  // raw bytes they archive are in the raw archive (nats.raw_archive).
  Pipeline& pipeline() { return *pipeline_; }

 private:
  DirectPipeline() = default;
  Metrics metrics_;
  std::unique_ptr<Publisher> publisher_;
  std::unique_ptr<JetStreamSink> sink_;
  std::unique_ptr<ObjectStoreArchive> archive_;
  std::unique_ptr<Pipeline> pipeline_;
};

}  // namespace omnigate

// The spooling sink: JetStream when it can take an interaction in time, else the local spool
// (gateway/spool/spool.hpp, fsync'd before the answer) for accounts with on_nats_down: spool. A
// replayer thread drains the spool oldest first as soon as NATS is back, with the same
// Nats-Msg-Id, and removes an item only after its PubAck: a kill -9 while spooling or draining
// loses nothing (the spool is on disk) and doubles nothing (an item published but not yet
// removed is recognised on the next pass by the dedup index, or by JetStream's Msg-Id window).
// Order: the spool drains in its own order; an interaction published directly while the spool
// drains may be stored before older spooled ones (consumers order by occurred_at).
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "gateway/config/config.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/nats/seen_index.hpp"
#include "gateway/pipeline/sink.hpp"
#include "gateway/spool/spool.hpp"

namespace omnigate {

class SpoolingSink : public Sink {
 public:
  // All referenced objects outlive the sink. Starts the replayer thread.
  SpoolingSink(JetStreamSink& jetstream, Spool& spool, SeenIndex& seen, Metrics& metrics,
               const Config& config);
  ~SpoolingSink() override;  // stops the replayer; what is left stays in the spool

  // Publishes each record; one JetStream cannot take in time (NATS away, stream not ready,
  // no PubAck before the deadline minus the spool's share) is spooled when its account allows,
  // else refused not_durable. A spool that is full or failing refuses not_durable (503).
  std::vector<Result<SinkOutcome>> put_all(const std::vector<SinkRecord>& records,
                                           Clock::time_point deadline) override;
  bool holds(std::string_view id) const override { return spool_.contains(id); }
  bool holds_nothing() const override { return spool_.empty(); }
  bool jetstream_ready() const override { return jetstream_.jetstream_ready(); }

  SpoolStats stats() const { return spool_.stats(); }
  // Whether the spool holds as many payload bytes as spool.max_bytes allows (minus 1 %).
  bool full() const;
  const Spool& spool() const { return spool_; }

  // Appends the records at `which` to the spool in one transaction and sets their outcomes
  // (spooled, or not_durable when the spool refuses); wakes the replayer. Blocks for the fsync
  // (the event loop's sink calls it from a worker).
  void spool_all(const std::vector<SinkRecord>& records, std::vector<size_t> which,
                 std::vector<Result<SinkOutcome>>& outcomes);

 private:
  void replay_loop();
  // Drains what it can of the oldest items; returns how many left the spool (0: back off).
  size_t replay_batch();

  JetStreamSink& jetstream_;
  Spool& spool_;
  SeenIndex& seen_;
  Metrics& metrics_;
  const Config& config_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool appended_ = false;  // something was spooled since the replayer last looked
  std::thread replayer_;
};

}  // namespace omnigate

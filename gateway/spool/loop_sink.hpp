// The spooling sink's publishing on an event loop (http.server: loop): a webhook's records go
// out on the loop's own LoopPublisher, their PubAcks read by the same loop, so no thread stands
// between the request and its answer. What JetStream does not take in time goes to the spool
// on a worker (an fsync'd SQLite transaction must never stall a loop) and the outcome comes back
// to the loop. The decisions are SpoolingSink::put_all's: a spooling account's records publish
// with the deadline less the spool's share, and a not_durable outcome of theirs is spooled;
// every other outcome stands (a reject account's not_durable is its 503).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "gateway/core/work_pool.hpp"
#include "gateway/loop/event_loop.hpp"
#include "gateway/nats/loop_publisher.hpp"
#include "gateway/pipeline/sink.hpp"
#include "gateway/spool/spooling_sink.hpp"

namespace omnigate {

class LoopSink : public AsyncSink {
 public:
  // All outlive the sink; `publisher` publishes on `loop`; `spoolers` write the spool (threads
  // of their own: behind the request workers, a spool write would wait for slow handlers).
  // The loop, the spooling sink and the spoolers must also outlive the completions the
  // publisher still holds: those hold nothing of the sink itself.
  LoopSink(EventLoop& loop, LoopPublisher& publisher, SpoolingSink& spooling, WorkPool& spoolers);

  bool ready() const override { return publisher_.ready(); }
  void put_all(std::vector<SinkRecord> records, Clock::time_point deadline, Done done) override;

  struct Put;  // one put_all in progress

 private:
  void publish(const std::shared_ptr<Put>& put, std::vector<size_t> which, Clock::time_point until);

  EventLoop& loop_;
  LoopPublisher& publisher_;
  SpoolingSink& spooling_;
  WorkPool& spoolers_;
};

}  // namespace omnigate

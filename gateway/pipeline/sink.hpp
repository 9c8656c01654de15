// Where the pipeline hands serialized interactions to be made durable. Two sinks:
// JetStreamSink publishes (Nats-Msg-Id = the interaction id, an answer only after the PubAck);
// SpoolingSink (gateway/spool/spooling_sink.hpp) wraps it and writes to the local spool what
// JetStream cannot take in time, then drains the spool to JetStream in order. The long-horizon
// dedup check is the pipeline's, in front of both.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/error.hpp"

namespace omnigate {

class Publisher;

struct SinkRecord {
  std::string id;          // interaction id = Nats-Msg-Id
  std::string subject;     // omnigate.interactions.<channel>.<account>.<kind>
  std::string payload;     // the serialized interaction.v1 document
  std::string channel;     // for metrics
  bool may_spool = false;  // the account's on_nats_down is `spool`
  // The dedup index is still reading the stream: a direct publish now could double a retry
  // older than JetStream's duplicate window. Spool it (the replayer waits for the index) or
  // refuse it; never publish it directly.
  bool must_not_publish = false;
};

struct SinkOutcome {
  uint64_t sequence = 0;   // the stream sequence when published (0 when spooled or unknown)
  bool duplicate = false;  // already durable (JetStream's duplicate window, or in the spool)
  bool spooled = false;    // durable in the local spool, not yet in JetStream
};

class Sink {
 public:
  using Clock = std::chrono::steady_clock;
  virtual ~Sink() = default;
  // Makes each record durable or says why not: one outcome per record, in order, all by
  // `deadline`. Errors: not_durable (503) when it is not durable anywhere, payload_too_large.
  virtual std::vector<Result<SinkOutcome>> put_all(const std::vector<SinkRecord>& records,
                                                   Clock::time_point deadline) = 0;
  // Whether the id is durable in this sink outside the stream (spooled, not yet drained).
  virtual bool holds(std::string_view id) const { return false; }
  // Whether holds() is false for every id, known without a lock (an empty spool).
  virtual bool holds_nothing() const { return true; }
  // Whether JetStream can take records now (connected, stream verified): when it cannot,
  // there is no point waiting for the dedup index either.
  virtual bool jetstream_ready() const = 0;
};

// A sink that answers later, on the event loop it belongs to (gateway/spool/loop_sink.hpp): the
// pipeline's non-blocking half (Pipeline::submit_mapped_async) hands it records there.
class AsyncSink {
 public:
  using Clock = std::chrono::steady_clock;
  using Done = std::function<void(std::vector<Result<SinkOutcome>>)>;
  virtual ~AsyncSink() = default;
  // Whether put_all can start now without waiting for anything (its connection up, the stream
  // verified, nothing of its spool to look up): when not, the caller takes the blocking path.
  virtual bool ready() const = 0;
  // As Sink::put_all, on the loop's thread: `done` runs there once, never inside this call.
  virtual void put_all(std::vector<SinkRecord> records, Clock::time_point deadline, Done done) = 0;
};

// JetStream alone: what a 2xx meant before the spool.
class JetStreamSink : public Sink {
 public:
  explicit JetStreamSink(Publisher& publisher) : publisher_(publisher) {}
  std::vector<Result<SinkOutcome>> put_all(const std::vector<SinkRecord>& records,
                                           Clock::time_point deadline) override;
  // One record.
  Result<SinkOutcome> put(const SinkRecord& record, Clock::time_point deadline);
  // The records at `which` (an outcome each, in that order), published together: up to the
  // publisher's window in flight at once, so a batch costs a round trip, not one per record.
  std::vector<Result<SinkOutcome>> put_some(const std::vector<SinkRecord>& records,
                                            std::span<const size_t> which,
                                            Clock::time_point deadline);
  bool jetstream_ready() const override;
  Publisher& publisher() { return publisher_; }

 private:
  Publisher& publisher_;
};

}  // namespace omnigate

#include "gateway/spool/spooling_sink.hpp"

#include <algorithm>

#include "gateway/core/log.hpp"
#include "gateway/nats/publisher.hpp"

namespace omnigate {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// omnigate.interactions.<channel>.<account>.<kind> -> channel, kind (for the metrics).
std::pair<std::string, std::string> channel_and_kind(const std::string& subject) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (parts.size() < 5) {
    size_t dot = subject.find('.', start);
    parts.push_back(subject.substr(start, dot == std::string::npos ? dot : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (parts.size() < 5) return {"unknown", "unknown"};
  return {parts[2], parts[4]};
}

}  // namespace

SpoolingSink::SpoolingSink(JetStreamSink& jetstream, Spool& spool, SeenIndex& seen,
                           Metrics& metrics, const Config& config)
    : jetstream_(jetstream), spool_(spool), seen_(seen), metrics_(metrics), config_(config) {
  replayer_ = std::thread([this] { replay_loop(); });
}

SpoolingSink::~SpoolingSink() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (replayer_.joinable()) replayer_.join();
}

bool SpoolingSink::full() const {
  return spool_.stats().bytes >= config_.spool.max_bytes - config_.spool.max_bytes / 100;
}

std::vector<Result<SinkOutcome>> SpoolingSink::put_all(const std::vector<SinkRecord>& records,
                                                       Clock::time_point deadline) {
  std::vector<Result<SinkOutcome>> outcomes(
      records.size(), Result<SinkOutcome>(make_error(ErrorCode::internal, "spool", "unset")));
  // The spool's share of the deadline: one fsync'd transaction, with room to spare.
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  const auto publish_deadline = deadline - std::min(milliseconds(500), left / 4);
  Publisher& publisher = jetstream_.publisher();
  std::vector<size_t> to_spool;
  // Published together, by deadline: a spooling record leaves the spool its share.
  std::vector<size_t> publish_spooling, publish_direct;
  const bool ready = publisher.ready();
  for (size_t i = 0; i < records.size(); ++i) {
    const SinkRecord& record = records[i];
    // Not ready: do not even try (a publish would fail at once or wait for nothing).
    if (record.must_not_publish || !ready) {
      if (record.may_spool) {
        to_spool.push_back(i);
      } else {
        outcomes[i] =
            record.must_not_publish
                ? jetstream_.put(record, deadline)  // the refusal, with its reason
                : Result<SinkOutcome>(make_error(ErrorCode::not_durable, "publish",
                                                 publisher.readiness().problem + "; retry later"));
      }
      continue;
    }
    (record.may_spool ? publish_spooling : publish_direct).push_back(i);
  }
  auto publish = [&](const std::vector<size_t>& which, Clock::time_point until) {
    if (which.empty()) return;
    auto published = jetstream_.put_some(records, which, until);
    for (size_t k = 0; k < which.size(); ++k) {
      const size_t i = which[k];
      if (!published[k] && published[k].error().code == ErrorCode::not_durable &&
          records[i].may_spool) {
        to_spool.push_back(i);  // an unknown outcome is fine: the same Msg-Id on replay
        continue;
      }
      outcomes[i] = std::move(published[k]);
    }
  };
  publish(publish_spooling, publish_deadline);
  // What may be spooled is spooled before the other records publish: they must not use up
  // the spool's share of the deadline.
  spool_all(records, to_spool, outcomes);
  publish(publish_direct, deadline);
  return outcomes;
}

void SpoolingSink::spool_all(const std::vector<SinkRecord>& records, std::vector<size_t> which,
                             std::vector<Result<SinkOutcome>>& outcomes) {
  if (which.empty()) return;
  std::sort(which.begin(), which.end());  // spooled in the request's order
  std::vector<SpoolRecord> spooled;
  spooled.reserve(which.size());
  for (size_t i : which) spooled.push_back({records[i].id, records[i].subject, records[i].payload});
  auto appended = spool_.append_all(spooled);
  if (!appended) {
    log::error("spool", "cannot spool " + std::to_string(spooled.size()) +
                            " interaction(s): " + appended.error().detail);
    Error refused = appended.error();
    refused.code = ErrorCode::not_durable;  // 503 with Retry-After: the provider retries
    for (size_t i : which) outcomes[i] = refused;
    return;
  }
  for (size_t j = 0; j < which.size(); ++j) {
    outcomes[which[j]] = SinkOutcome{0, !(*appended)[j], true};
  }
  {
    std::lock_guard lock(mutex_);
    appended_ = true;
  }
  wake_.notify_all();
}

size_t SpoolingSink::replay_batch() {
  auto items = spool_.peek(128);
  if (!items) {
    log::error("spool", "cannot read the spool: " + items.error().detail);
    return 0;
  }
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return 0;
  }
  // Published before a crash but not removed, or published by a retry meanwhile: the stream
  // has it already. The rest are published together, oldest first (one round trip for the
  // batch, not one each).
  std::vector<bool> in_stream(items->size());
  std::vector<SinkRecord> records;
  std::vector<size_t> to_publish;
  for (size_t k = 0; k < items->size(); ++k) {
    const SpooledItem& item = (*items)[k];
    in_stream[k] = seen_.contains(item.id);
    if (in_stream[k]) continue;
    to_publish.push_back(records.size());
    records.push_back(SinkRecord{item.id, item.subject, item.payload, "", false, false});
  }
  auto published =
      jetstream_.put_some(records, to_publish, Clock::now() + config_.nats.publish_timeout);
  // Removed in the spool's order up to the first item NATS did not take: the items after it
  // stay, and the next pass finds those already published in the stream.
  std::vector<int64_t> drained;
  size_t next_published = 0;
  for (size_t k = 0; k < items->size(); ++k) {
    const SpooledItem& item = (*items)[k];
    bool duplicate = in_stream[k];
    if (!in_stream[k]) {
      auto& outcome = published[next_published++];
      if (!outcome) {
        if (outcome.error().code == ErrorCode::not_durable) break;  // NATS away
        // JetStream refuses it for good (e.g. above a lowered max_payload): it stays in the
        // spool, /readyz stays degraded, and the log says which one.
        log::error("spool", "spooled interaction " + item.id + " cannot be published: " +
                                outcome.error().detail + "; it stays in " + spool_.path());
        metrics_.publish_failures.inc({"replay_refused"});
        continue;
      }
      duplicate = outcome->duplicate;
      if (!duplicate) {
        auto [channel, kind] = channel_and_kind(item.subject);
        metrics_.interactions_published.inc({channel, kind});
      }
    }
    metrics_.spool_replayed.inc({duplicate ? "duplicate" : "published"});
    drained.push_back(item.seq);
  }
  if (auto removed = spool_.remove_all(drained); !removed) {
    // They stay in the spool; the next pass finds them in the stream and removes them then.
    log::warn("spool", "cannot remove drained items: " + removed.error().detail);
    return 0;
  }
  return drained.size();
}

void SpoolingSink::replay_loop() {
  Publisher& publisher = jetstream_.publisher();
  bool logged_start = false;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, milliseconds(250), [&] { return stopping_ || appended_; });
      if (stopping_) return;
      appended_ = false;
    }
    // Drain only into a verified stream, and only once the index can tell what is there.
    if (!publisher.ready() || !seen_.caught_up()) {
      logged_start = false;
      continue;
    }
    SpoolStats stats = spool_.stats();
    if (stats.depth == 0) continue;
    if (!logged_start) {
      log::info("spool", "NATS is back: draining " + std::to_string(stats.depth) +
                             " spooled interaction(s)");
      logged_start = true;
    }
    while (spool_.stats().depth > 0 && publisher.ready()) {
      if (replay_batch() == 0) break;  // NATS refused, or only refused items are left
      std::lock_guard lock(mutex_);
      if (stopping_) return;
    }
    if (spool_.stats().depth == 0) log::info("spool", "spool drained");
  }
}

}  // namespace omnigate

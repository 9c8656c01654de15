// enrich → dedup → sink: what every connector hands its normalized interactions to.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/model/interaction.hpp"
#include "gateway/model/submission.hpp"

namespace omnigate {

class AsyncSink;
class DedupIndex;
class RawArchive;
class Sink;
struct SinkOutcome;

// Canonical identifiers in place: phones to E.164 with the default region, e-mails trimmed
// with a lower-case domain; text that cannot be normalized stays in `raw` with no `value`.
// Duplicate identifiers are merged (verified wins).
void normalize_identifiers(Contact& contact, const std::string& default_region);

// What the pipeline publishes for a submission (pure but for the clock): id, received_at,
// raw hash, canonical identifiers, sorted unique tags.
Interaction enrich(Submission submission, const IdentityConfig& identity);

// The NATS subject of an interaction: omnigate.interactions.<channel>.<account>.<kind>.
std::string subject_for(const Interaction& interaction);

class Pipeline {
 public:
  // `seen` is the long-horizon dedup index (the interactions stream, followed); `sink` makes
  // interactions durable; `archive` keeps the raw bytes of submissions with archive_raw (null:
  // such a submission is refused as internal). All outlive the pipeline.
  Pipeline(const Config& config, DedupIndex& seen, Sink& sink, Metrics& metrics,
           RawArchive* archive = nullptr);

  // The interactions of one provider request (a Telegram poll batch, a WhatsApp callback of
  // many events): fills id, received_at and raw; normalizes; drops what the dedup index, the
  // spool or the batch itself already holds; hands the rest to the sink. One outcome per
  // submission, in order; the request may be answered 2xx only when every one is a value.
  // Until the dedup index has caught up with the stream after start, it waits for it (until
  // shortly before `deadline`); then an account with on_nats_down: spool is spooled and
  // another one is refused not_durable -- never published from an incomplete index.
  std::vector<Result<Accepted>> submit_all(std::vector<Submission> submissions,
                                           std::chrono::steady_clock::time_point deadline);
  // Everything a mapping made of one provider request: its ignored events are counted for
  // `channel`, its submissions go through submit_all. The outcomes when every one is durable
  // (answer 2xx), else the first error (answer it; the provider's retry then publishes only what
  // is missing, the rest being duplicates by id).
  Result<std::vector<Accepted>> submit_mapped(Mapped mapped, std::string_view channel,
                                              std::chrono::steady_clock::time_point deadline);
  // One submission (webhooks of one event, API calls, web forms).
  Result<Accepted> submit(Submission submission, std::chrono::steady_clock::time_point deadline);

  // submit_mapped without blocking, on an event loop whose `sink` publishes for it: the same
  // enrich, dedup and checks here, the sink's answer later. false, with `mapped` untouched, when
  // the request needs what a loop must not wait for -- the dedup index still catching up, a raw
  // archive write, a spool holding interactions (its lookups take its lock), `sink` not ready --
  // then submit_mapped on a worker. Else `done` runs once on the sink's loop (inside this call
  // when nothing needed the sink) with what submit_mapped would have returned, and the ids it
  // made durable for the request log line (log::request_interaction: the caller's record is
  // suspended meanwhile, so the pipeline cannot note them itself).
  using MappedDone =
      std::function<void(Result<std::vector<Accepted>>, std::vector<std::string> durable_ids)>;
  bool submit_mapped_async(Mapped& mapped, std::string_view channel,
                           std::chrono::steady_clock::time_point deadline, AsyncSink& sink,
                           MappedDone done);

 private:
  struct Batch;
  // submit_all's two halves around the sink: everything before it (the records to store), and
  // everything after (outcomes, metrics, activity; the ids for the request log in the batch).
  void prepare(std::vector<Submission> submissions, bool index_complete, bool look_in_spool,
               std::chrono::steady_clock::time_point deadline, Batch& batch);
  std::vector<Result<Accepted>> finish(Batch& batch, std::vector<Result<SinkOutcome>>& stored);

  const Config& config_;
  DedupIndex& seen_;
  Sink& sink_;
  Metrics& metrics_;
  RawArchive* archive_;
};

}  // namespace omnigate

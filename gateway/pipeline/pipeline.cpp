#include "gateway/pipeline/pipeline.hpp"

#include <algorithm>
#include <unordered_map>

#include "gateway/core/log.hpp"
#include "gateway/model/identifiers.hpp"
#include "gateway/model/schema_guard.hpp"
#include "gateway/pipeline/dedup_index.hpp"
#include "gateway/pipeline/raw_archive.hpp"
#include "gateway/pipeline/sink.hpp"

namespace omnigate {

void normalize_identifiers(Contact& contact, const std::string& default_region) {
  std::vector<Identifier> out;
  for (auto& id : contact.identifiers) {
    if (id.type == "phone" || id.type == "email") {
      // What the source sent: a raw text wins over a value it claims is canonical.
      std::string input = id.raw ? *id.raw : id.value.value_or("");
      auto canonical =
          id.type == "phone" ? normalize_phone(input, default_region) : normalize_email(input);
      id.value = canonical;
      if (!canonical || *canonical != input) {
        id.raw = input;
      } else {
        id.raw.reset();
      }
    }
    auto same = std::find_if(out.begin(), out.end(), [&](const Identifier& o) {
      return o.type == id.type && o.value && id.value && *o.value == *id.value;
    });
    if (same != out.end()) {
      same->verified = same->verified || id.verified;
      continue;
    }
    out.push_back(std::move(id));
  }
  contact.identifiers = std::move(out);
}

std::string subject_for(const Interaction& interaction) {
  std::string subject = "omnigate.interactions.";
  subject.append(interaction.channel).append(".").append(interaction.account).append(".");
  subject.append(interaction.kind);
  return subject;
}

Pipeline::Pipeline(const Config& config, DedupIndex& seen, Sink& sink, Metrics& metrics,
                   RawArchive* archive)
    : config_(config), seen_(seen), sink_(sink), metrics_(metrics), archive_(archive) {}

Interaction enrich(Submission submission, const IdentityConfig& identity) {
  Interaction in = std::move(submission.interaction);
  in.id = interaction_id(in.channel, in.account, submission.native_key);
  in.received_at = now_millis();
  if (in.occurred_at == SysMillis{}) in.occurred_at = in.received_at;
  if (in.contact) normalize_identifiers(*in.contact, identity.default_region);
  if (!submission.raw_bytes.empty()) {
    in.raw = RawInfo{sha256_hex(submission.raw_bytes),
                     submission.raw_content_type.empty() ? "application/octet-stream"
                                                         : submission.raw_content_type,
                     std::nullopt};
  }
  std::sort(in.tags.begin(), in.tags.end());
  in.tags.erase(std::unique(in.tags.begin(), in.tags.end()), in.tags.end());
  return in;
}

struct Pipeline::Batch {
  size_t n = 0;
  std::vector<Result<Accepted>> outcomes;
  std::vector<Interaction> enriched;
  std::vector<size_t> record_of;      // submission -> index into records, or SIZE_MAX
  std::vector<size_t> first_with_id;  // a repeat within the batch -> its first, else n
  std::vector<SinkRecord> records;
  std::chrono::steady_clock::time_point stored_from;  // when the records went to the sink
  std::vector<std::string> durable_ids;  // for the request log line: ids, never contents
};

void Pipeline::prepare(std::vector<Submission> submissions, bool index_complete, bool look_in_spool,
                       std::chrono::steady_clock::time_point deadline, Batch& batch) {
  const size_t n = submissions.size();
  batch.n = n;
  batch.outcomes.assign(
      n, Result<Accepted>(make_error(ErrorCode::internal, "publish", "not processed")));
  batch.record_of.assign(n, SIZE_MAX);
  batch.first_with_id.assign(n, n);
  batch.enriched.reserve(n);
  auto& outcomes = batch.outcomes;
  auto& records = batch.records;
  std::unordered_map<std::string, size_t> first_index_of;
  first_index_of.reserve(n);
  // The events of one provider request usually share its bytes (a WhatsApp POST of 1000
  // changes): hash those once, not once per event (3 GB of SHA-256 for a 3 MB body).
  std::string_view hashed_bytes;
  std::string hashed_sha256;
  for (size_t i = 0; i < n; ++i) {
    std::string_view raw = submissions[i].raw_bytes;
    const bool same_bytes =
        !raw.empty() && raw.data() == hashed_bytes.data() && raw.size() == hashed_bytes.size();
    if (same_bytes) submissions[i].raw_bytes = {};
    std::string raw_type = submissions[i].raw_content_type;
    const bool archive_raw = submissions[i].archive_raw && !raw.empty();
    batch.enriched.push_back(enrich(std::move(submissions[i]), config_.identity));
    Interaction& in = batch.enriched.back();
    if (same_bytes) {
      in.raw = RawInfo{hashed_sha256, raw_type.empty() ? "application/octet-stream" : raw_type,
                       std::nullopt};
    } else if (in.raw) {
      hashed_bytes = raw;
      hashed_sha256 = in.raw->sha256;
    }
    // A repeat within the batch (a hash lookup: a 4 MiB POST can hold thousands of events).
    if (auto [it, inserted] = first_index_of.try_emplace(in.id, i); !inserted) {
      batch.first_with_id[i] = it->second;
      continue;
    }
    // The last check before anything is stored: invalid optional values are dropped and
    // counted; a value nothing can replace refuses this interaction (400), never publishes it.
    if (auto valid = enforce_schema(in, metrics_); !valid) {
      outcomes[i] = valid.error();
      continue;
    }
    // Long-horizon dedup in front of every sink: a provider retry days later, or of an event
    // still in the spool, is a duplicate, not a second message.
    if (seen_.contains(in.id) || (look_in_spool && sink_.holds(in.id))) {
      metrics_.duplicates.inc({in.channel});
      outcomes[i] = Accepted{in.id, 0, true, false};
      continue;
    }
    if (archive_raw) {
      // Before the interaction exists anywhere: a reader never finds raw.object missing. The
      // archive is in JetStream only, so a spooling account refuses too when NATS is away.
      in.raw->object = RawObject{archive_ ? archive_->bucket() : "",
                                 raw_object_name(in.channel, in.account, in.id)};
      Status archived =
          archive_ ? archive_->put(in.raw->object->name, raw, deadline)
                   : Status(make_error(ErrorCode::internal, "archive",
                                       "this process has no raw archive for " + in.channel));
      if (!archived) {
        log::warn("archive", "interaction " + in.id + " (" + in.channel + "/" + in.account +
                                 "): raw bytes not archived: " + archived.error().detail);
        outcomes[i] = archived.error();
        continue;
      }
    }
    bool may_spool = config_.spools_when_nats_down(in.channel, in.account);
    batch.record_of[i] = records.size();
    records.push_back(
        SinkRecord{in.id, subject_for(in), serialize(in), in.channel, may_spool, !index_complete});
  }
  batch.stored_from = std::chrono::steady_clock::now();
}

std::vector<Result<Accepted>> Pipeline::finish(Batch& batch,
                                               std::vector<Result<SinkOutcome>>& stored) {
  const size_t n = batch.n;
  auto& outcomes = batch.outcomes;
  if (!stored.empty())
    metrics_.publish_latency.observe(std::chrono::steady_clock::now() - batch.stored_from);
  ActivityRecorder& activity = metrics_.activity;
  for (size_t i = 0; i < n; ++i) {
    const Interaction& in = batch.enriched[i];
    if (batch.first_with_id[i] != n) {
      // The same event twice in one request: durable exactly when its first copy is.
      auto first = outcomes[batch.first_with_id[i]];
      if (first) first->duplicate = true;
      if (first) metrics_.duplicates.inc({in.channel});
      if (first) activity.durable(in.channel, in.account, "duplicates");
      outcomes[i] = first;
      continue;
    }
    if (batch.record_of[i] == SIZE_MAX) {
      // Settled before the sink: a duplicate by the index, or refused (schema, raw archive).
      if (outcomes[i]) {
        activity.durable(in.channel, in.account, "duplicates");
      } else {
        const Error& refused = outcomes[i].error();
        activity.failed(in.channel, in.account, refused.name(), refused.stage, refused.detail);
      }
      continue;
    }
    auto& outcome = stored[batch.record_of[i]];
    if (!outcome) {
      log::warn("publish", "interaction " + in.id + " (" + in.channel + "/" + in.account +
                               ") not durable: " + outcome.error().detail);
      activity.failed(in.channel, in.account, outcome.error().name(), outcome.error().stage,
                      outcome.error().detail);
      outcomes[i] = outcome.error();
      continue;
    }
    if (outcome->duplicate) {
      metrics_.duplicates.inc({in.channel});
      activity.durable(in.channel, in.account, "duplicates");
    } else if (outcome->spooled) {
      metrics_.spooled.inc({in.channel});
      activity.durable(in.channel, in.account, "spooled");
    } else {
      metrics_.interactions_published.inc({in.channel, in.kind});
      activity.durable(in.channel, in.account, "published");
    }
    outcomes[i] = Accepted{in.id, outcome->sequence, outcome->duplicate, outcome->spooled};
    batch.durable_ids.push_back(in.id);
  }
  return std::move(outcomes);
}

std::vector<Result<Accepted>> Pipeline::submit_all(std::vector<Submission> submissions,
                                                   std::chrono::steady_clock::time_point deadline) {
  using Clock = std::chrono::steady_clock;
  // Leave the spool time to take what the index wait used up.
  const auto index_wait_until = deadline - (deadline - Clock::now()) / 4;
  // Waiting makes sense only while JetStream is there to finish the catch-up.
  const bool index_complete =
      seen_.caught_up() || (sink_.jetstream_ready() && seen_.wait_caught_up(index_wait_until));
  Batch batch;
  prepare(std::move(submissions), index_complete, true, deadline, batch);
  auto stored = batch.records.empty() ? std::vector<Result<SinkOutcome>>{}
                                      : sink_.put_all(batch.records, deadline);
  auto outcomes = finish(batch, stored);
  for (const auto& id : batch.durable_ids) log::request_interaction(id);
  return outcomes;
}

namespace {
// A provider request's answer: every outcome when all are durable, else the first error.
Result<std::vector<Accepted>> all_or_first_error(std::vector<Result<Accepted>> outcomes) {
  std::vector<Accepted> accepted;
  accepted.reserve(outcomes.size());
  for (auto& outcome : outcomes) {
    if (!outcome) return outcome.error();
    accepted.push_back(std::move(outcome.value()));
  }
  return accepted;
}
}  // namespace

bool Pipeline::submit_mapped_async(Mapped& mapped, std::string_view channel,
                                   std::chrono::steady_clock::time_point deadline, AsyncSink& sink,
                                   MappedDone done) {
  const bool archives = std::any_of(mapped.submissions.begin(), mapped.submissions.end(),
                                    [](const Submission& s) { return s.archive_raw; });
  if (archives || !seen_.caught_up() || !sink_.holds_nothing() || !sink.ready()) return false;
  for (const auto& type : mapped.ignored) metrics_.ignored_events.inc({std::string(channel), type});
  if (mapped.submissions.empty()) {
    done(std::vector<Accepted>{}, {});
    return true;
  }
  auto batch = std::make_shared<Batch>();
  // The spool was empty just now, and a lookup would take its lock on the loop. Should another
  // request spool the same id meanwhile, the replayer finds the copy published here in the
  // dedup index and drops its own.
  prepare(std::move(mapped.submissions), true, false, deadline, *batch);
  if (batch->records.empty()) {
    std::vector<Result<SinkOutcome>> none;
    auto outcomes = finish(*batch, none);
    done(all_or_first_error(std::move(outcomes)), std::move(batch->durable_ids));
    return true;
  }
  std::vector<SinkRecord> records = std::move(batch->records);
  sink.put_all(std::move(records), deadline,
               [this, batch, done = std::move(done)](std::vector<Result<SinkOutcome>> stored) {
                 auto outcomes = finish(*batch, stored);
                 done(all_or_first_error(std::move(outcomes)), std::move(batch->durable_ids));
               });
  return true;
}

Result<std::vector<Accepted>> Pipeline::submit_mapped(
    Mapped mapped, std::string_view channel, std::chrono::steady_clock::time_point deadline) {
  for (const auto& type : mapped.ignored) metrics_.ignored_events.inc({std::string(channel), type});
  if (mapped.submissions.empty()) return std::vector<Accepted>{};
  return all_or_first_error(submit_all(std::move(mapped.submissions), deadline));
}

Result<Accepted> Pipeline::submit(Submission submission,
                                  std::chrono::steady_clock::time_point deadline) {
  std::vector<Submission> one;
  one.push_back(std::move(submission));
  return std::move(submit_all(std::move(one), deadline).front());
}

}  // namespace omnigate

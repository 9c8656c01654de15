// What a connector's mapping produces for one provider event, and what the pipeline answers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/model/interaction.hpp"

namespace omnigate {

struct Submission {
  Interaction interaction;     // channel, account, kind and content filled by the connector
  std::string native_key;      // the provider's event key; the id derives from it
  std::string_view raw_bytes;  // the provider's bytes, for raw.sha256 (may be empty)
  std::string raw_content_type;
  // Keep raw_bytes themselves in the raw archive (gateway/pipeline/raw_archive.hpp) before the
  // interaction is published, named in its raw.object: for bytes too large for the bus (an
  // e-mail with its attachments). Not durable when the archive cannot take them.
  bool archive_raw = false;
};

// A durable outcome: published now (duplicate false), already durable (duplicate true: in
// the stream, in the spool, or earlier in the same batch), or spooled (durable on local disk,
// drained to JetStream when NATS is back).
struct Accepted {
  std::string id;
  uint64_t sequence = 0;  // 0 when spooled or recognised by the dedup index
  bool duplicate = false;
  bool spooled = false;
};

// What a connector's mapping makes of one provider request (a webhook POST, a poll batch, one
// update): the interactions to publish, in order, and the events acknowledged without
// publishing, by type (counted in omnigate_ignored_events_total{channel,type}). A request of
// many events is answered 2xx only when every submission is durable.
struct Mapped {
  std::vector<Submission> submissions;
  std::vector<std::string> ignored;

  // Appends one interaction to publish, keyed by the provider's `native_key`; `raw` (the
  // provider's bytes, for raw.sha256) must outlive the submission.
  void add(Interaction in, std::string native_key, std::string_view raw,
           std::string raw_content_type) {
    Submission& s = submissions.emplace_back();
    s.interaction = std::move(in);
    s.native_key = std::move(native_key);
    s.raw_bytes = raw;
    s.raw_content_type = std::move(raw_content_type);
  }
};

}  // namespace omnigate

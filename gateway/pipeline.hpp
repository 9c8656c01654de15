// enrich → publish: what every connector hands its normalized interaction to.
#pragma once

#include <chrono>
#include <string>

#include "gateway/config.hpp"
#include "gateway/interaction.hpp"
#include "gateway/metrics.hpp"

namespace omnigate {

class Publisher;

struct Submission {
  Interaction interaction;     // channel, account, kind and content filled by the connector
  std::string native_key;      // the provider's event key; the id derives from it
  std::string_view raw_bytes;  // the provider's bytes, for raw.sha256 (may be empty)
  std::string raw_content_type;
};

struct Accepted {
  std::string id;
  uint64_t sequence = 0;
  bool duplicate = false;
};

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
  Pipeline(const Config& config, Publisher& publisher, Metrics& metrics);

  // Fills id, received_at and raw; normalizes; publishes; waits for the PubAck.
  Result<Accepted> submit(Submission submission, std::chrono::steady_clock::time_point deadline);

 private:
  const Config& config_;
  Publisher& publisher_;
  Metrics& metrics_;
};

}  // namespace omnigate

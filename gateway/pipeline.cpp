#include "gateway/pipeline.hpp"

#include <algorithm>

#include "gateway/identifiers.hpp"
#include "gateway/log.hpp"
#include "gateway/publisher.hpp"
#include "gateway/schema_guard.hpp"

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

Pipeline::Pipeline(const Config& config, Publisher& publisher, Metrics& metrics)
    : config_(config), publisher_(publisher), metrics_(metrics) {}

Interaction enrich(Submission submission, const IdentityConfig& identity) {
  Interaction in = std::move(submission.interaction);
  in.id = interaction_id(in.channel, in.account, submission.native_key);
  in.received_at = now_millis();
  if (in.occurred_at == SysMillis{}) in.occurred_at = in.received_at;
  if (in.contact) normalize_identifiers(*in.contact, identity.default_region);
  if (!submission.raw_bytes.empty()) {
    in.raw = RawInfo{sha256_hex(submission.raw_bytes), submission.raw_content_type.empty()
                                                           ? "application/octet-stream"
                                                           : submission.raw_content_type};
  }
  std::sort(in.tags.begin(), in.tags.end());
  in.tags.erase(std::unique(in.tags.begin(), in.tags.end()), in.tags.end());
  return in;
}

Result<Accepted> Pipeline::submit(Submission submission,
                                  std::chrono::steady_clock::time_point deadline) {
  Interaction in = enrich(std::move(submission), config_.identity);
  if (auto valid = enforce_schema(in, metrics_); !valid) return valid.error();
  std::string payload = serialize(in);
  auto started = std::chrono::steady_clock::now();
  auto outcome = publisher_.publish(subject_for(in), in.id, payload, deadline);
  if (!outcome) {
    log::warn("publish", "interaction " + in.id + " (" + in.channel + "/" + in.account +
                             ") not durable: " + outcome.error().detail);
    return outcome.error();
  }
  metrics_.publish_latency.observe(std::chrono::steady_clock::now() - started);
  if (outcome->duplicate) {
    metrics_.duplicates.inc({in.channel});
  } else {
    metrics_.interactions_published.inc({in.channel, in.kind});
  }
  return Accepted{in.id, outcome->sequence, outcome->duplicate};
}

}  // namespace omnigate

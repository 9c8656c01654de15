// The raw archive: provider bytes too large for an interaction (an e-mail with its
// attachments, up to max_message) kept beside the stream, so the interaction carries metadata
// only and a CRM -- or the gateway's media route -- reads the bytes when it needs them. The
// pipeline stores a submission's bytes here (Submission::archive_raw) before it publishes the
// interaction, so an interaction that names an object never exists without it.
// Implemented over JetStream in the NATS Object Store layout (gateway/nats/object_store.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/core/error.hpp"

namespace omnigate {

class RawArchive {
 public:
  virtual ~RawArchive() = default;
  // The bucket objects are stored in (what raw.object.bucket says).
  virtual std::string bucket() const = 0;
  // Stores `bytes` as `name` before `deadline`; storing a name again with the same bytes (a
  // provider's retry) is a no-op. Errors: not_durable (NATS cannot take it now).
  virtual Status put(const std::string& name, std::string_view bytes,
                     std::chrono::steady_clock::time_point deadline) = 0;
  // The bytes stored as `name`; nullopt when there is none (never stored, or past the
  // retention). payload_too_large when the object is larger than `max_bytes` (nothing is read);
  // not_durable when NATS does not answer; internal when the object is damaged.
  virtual Result<std::optional<std::string>> get(const std::string& name, uint64_t max_bytes) = 0;
};

// The object name of an interaction's raw bytes: "<channel>/<account>/<interaction id>", so
// names never collide across channels or accounts and a reader can check whose object it is.
inline std::string raw_object_name(std::string_view channel, std::string_view account,
                                   std::string_view interaction_id) {
  std::string name(channel);
  name.append("/").append(account).append("/").append(interaction_id);
  return name;
}

}  // namespace omnigate

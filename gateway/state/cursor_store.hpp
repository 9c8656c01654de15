// Durable small state of pollers (offsets, UIDs, leases) in the JetStream KV bucket
// omnigate_cursors, shared by every gateway instance. Every write is compare-and-set on the
// key's revision: two instances can never silently overwrite each other's cursor.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "gateway/core/error.hpp"

namespace omnigate {

class Publisher;

struct CursorEntry {
  std::string value;
  uint64_t revision = 0;  // the KV revision; what the next put must name
};

struct CursorWrite {
  // true: the key had moved on (another instance wrote it, or it exists where absence was
  // expected); nothing was written.
  bool conflict = false;
  uint64_t revision = 0;  // the new revision when written
};

class CursorStore {
 public:
  explicit CursorStore(Publisher& publisher) : publisher_(publisher) {}
  // nullopt when the key was never written (or was deleted); not_durable when NATS is not
  // reachable.
  Result<std::optional<CursorEntry>> get(const std::string& key);
  // Writes `value` only if the key is still at `expected_revision` (0: only if the key does not
  // exist). Returns after the KV stream has stored it. A lost race is {conflict = true}, not an
  // error; not_durable when NATS did not answer (the outcome is then unknown: the next put with
  // the same expected revision reports a conflict if this one landed).
  Result<CursorWrite> put(const std::string& key, const std::string& value,
                          uint64_t expected_revision);

 private:
  Publisher& publisher_;
};

}  // namespace omnigate

// Durable small state of pollers (offsets, UIDs) in the JetStream KV bucket omnigate_cursors,
// shared by every gateway instance.
#pragma once

#include <optional>
#include <string>

#include "gateway/error.hpp"

namespace omnigate {

class Publisher;

class CursorStore {
 public:
  explicit CursorStore(Publisher& publisher) : publisher_(publisher) {}
  // nullopt when the key was never written; not_durable when NATS is not reachable.
  Result<std::optional<std::string>> get(const std::string& key);
  // Returns only after the KV stream has stored the value.
  Status put(const std::string& key, const std::string& value);

 private:
  Publisher& publisher_;
};

}  // namespace omnigate

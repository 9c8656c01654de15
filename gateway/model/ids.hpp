// Deterministic interaction ids and content hashes of interaction.v1.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/core/clock.hpp"

namespace omnigate {

// UUIDv5 (RFC 4122, SHA-1, omnigate's own namespace) over "<channel>:<account>:<native key>":
// every retry of the same provider event gets the same id, so JetStream and the seen-bucket
// can recognise it.
std::string interaction_id(std::string_view channel, std::string_view account,
                           std::string_view native_key);

// A random UUIDv4, for events that carry no key of their own.
std::string random_uuid();

// Lower-case hex SHA-256 of bytes.
std::string sha256_hex(std::string_view bytes);

}  // namespace omnigate

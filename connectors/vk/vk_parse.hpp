// VK Callback API event → interaction.v1: a pure function of (bytes, community settings, clock).
// Facts about the payloads: ../../../shared/design/CHANNELS.md (VK) and fixtures/FIXTURES.md
// (the mapping decisions cases.json pins).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/core/clock.hpp"
#include "gateway/model/keyword_consent.hpp"
#include "gateway/model/submission.hpp"

namespace omnigate::vk {

struct CommunitySettings {
  std::string account;
  // A text message whose whole text is one of these withdraws marketing consent for VK.
  StopWords stop_words;
};

// What every Callback API body carries around its object: the connector checks the secret and
// the group before anything is published, and answers `confirmation` itself.
struct Envelope {
  std::string type;                 // message_new, confirmation, ...
  std::optional<int64_t> group_id;  // the community the event is for
  std::string secret;               // the Callback API secret key ("" when absent)
  std::string event_id;             // unique per event: the dedup key
};

struct Callback {
  Envelope envelope;
  Mapped mapped;  // empty for confirmation
};

// One Callback API POST (one event). Its native key is the envelope's event_id (a VK retry,
// X-Retry-Counter, resends the same one), or the body's SHA-256 when VK sent none. Types that
// are acknowledged but not published (message_reply, group_join/leave, typing states, types this
// code does not map, events missing the id they need) are listed in `ignored` -- never an error,
// since VK pauses a server that does not answer `ok`. bad_request only when the body is not a
// JSON object or has no `type`. `now` is the time of events VK does not date (lead forms,
// allow/deny, callback buttons).
Result<Callback> parse_callback(std::string_view body, const CommunitySettings& community,
                                SysMillis now);

}  // namespace omnigate::vk

// WhatsApp Business Cloud API webhook → interaction.v1: a pure function of (bytes, account
// settings). Facts about the payloads: ../../../shared/design/CHANNELS.md (WhatsApp) and
// fixtures/FIXTURES.md (the mapping decisions cases.json pins).
#pragma once

#include <string>
#include <string_view>

#include "gateway/model/keyword_consent.hpp"
#include "gateway/model/submission.hpp"

namespace omnigate::whatsapp {

struct AccountSettings {
  std::string account;
  // The business number's id: a change whose metadata.phone_number_id is another number of the
  // same app is acknowledged and counted (ignored "other_phone_number_id"), never published.
  std::string phone_number_id;
  // A text message whose whole text is one of these withdraws marketing consent for WhatsApp.
  StopWords stop_words;
};

// One webhook POST: every message, status and user preference of every change of every entry
// becomes its own submission, in body order, with its native key (message: the wamid; status:
// wamid|state|timestamp; preference: user|value|timestamp). Everything acknowledged but not
// published (unsupported, system and order messages, other fields, other numbers, events
// without the key they need) is listed in `ignored` by type -- never an error, since Meta would
// retry the whole POST for 7 days. bad_request only when the body is not a WhatsApp webhook
// (not JSON, not an object, no entry[] array).
Result<Mapped> parse_webhook(std::string_view body, const AccountSettings& account);

// The native key of a status event: the same state of the same message reported again is a
// duplicate, a new state is a new event.
std::string status_key(std::string_view wamid, std::string_view state, std::string_view timestamp);

}  // namespace omnigate::whatsapp

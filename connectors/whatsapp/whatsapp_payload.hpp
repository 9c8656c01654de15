// The parts of a WhatsApp Cloud API webhook POST the mapping uses, read in one pass over the
// bytes (gateway/model/json_scan.hpp); what they become is whatsapp_parse.cpp. Each change is
// read whole before it is mapped: Meta sends `value` before `field`, and a message's sender is
// found in the change's contacts[], wherever in `value` that comes. A member that is missing,
// null or of another type is simply not set; only bytes that are not JSON fail. Field names are
// Meta's (https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components).
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/error.hpp"
#include "gateway/model/interaction.hpp"  // OptString, OptInt

namespace omnigate::whatsapp::payload {

// A unix time as Meta writes it: a string in messages and statuses, an integer in
// user_preferences. `text` as it goes into a native key, `seconds` when it is an integer.
struct Timestamp {
  OptString text;
  OptInt seconds;
};

struct ContactEntry {  // value.contacts[]
  OptString wa_id, user_id, profile_name;
};

struct Media {  // image | video | document | sticker | audio
  OptString id, sha256, mime_type, filename, caption;
  bool voice = false;  // audio recorded in WhatsApp
};
// The message types whose member is a Media, in the order of Message::media.
inline constexpr std::array<std::string_view, 5> kMediaTypes = {"image", "video", "document",
                                                                "sticker", "audio"};

struct Card {  // a contacts message's contacts[]
  OptString formatted_name, first_name, last_name, first_phone, vcard;
};

struct Location {
  std::optional<double> latitude, longitude;
  OptString name, address;
};

struct Reply {  // interactive.button_reply / interactive.list_reply
  OptString id, title;
};

struct Message {
  OptString id, type, from, from_user_id;
  Timestamp timestamp;
  OptString context_id;
  bool forwarded = false, frequently_forwarded = false;
  OptString button_payload, button_text;
  OptString interactive_type;
  Reply button_reply, list_reply;
  OptString reaction_message_id, reaction_emoji;
  OptString text_body;
  std::array<Media, kMediaTypes.size()> media;
  Location location;
  std::vector<Card> contacts;
  nlohmann::json referral;  // as sent when it is an object, else null
};

struct StatusError {  // statuses[].errors[0]
  OptInt code;
  OptString title, message, href, details;
};

struct StatusEvent {  // value.statuses[]
  OptString id, status, recipient_id, recipient_user_id;
  Timestamp timestamp;
  std::optional<StatusError> error;
};

struct Preference {  // value.user_preferences[]
  OptString category, value, wa_id, user_id;
  Timestamp timestamp;
};

struct Change {
  OptString field;
  OptString phone_number_id;  // value.metadata.phone_number_id
  std::vector<ContactEntry> contacts;
  std::vector<Message> messages;
  std::vector<StatusEvent> statuses;
  std::vector<Preference> preferences;
  bool has_errors = false;  // value.errors is present
};

struct Webhook {
  bool entry_is_array = false;
  std::vector<Change> changes;  // of every entry, in body order
};

// bad_request for bytes that are not a JSON object ("... (a WhatsApp webhook)").
Result<Webhook> read_webhook(std::string_view body);

}  // namespace omnigate::whatsapp::payload

// interaction.v1 in C++: one type, one serializer (RapidJSON's streaming Writer into one string;
// nlohmann::json for to_json() and stray invalid UTF-8; no hand-written escaping),
// one strict reader. schemas/interaction.v1.schema.json is the authority on the JSON form;
// absent sections are std::nullopt / empty and are left out of the JSON, never "".
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/core/error.hpp"
#include "gateway/model/ids.hpp"

namespace omnigate {

using OptString = std::optional<std::string>;
using OptInt = std::optional<int64_t>;
// Keeps the order it was built in (connectors); read back from JSON it is sorted by key.
using StringPairs = std::vector<std::pair<std::string, std::string>>;

inline constexpr std::string_view kSchemaName = "interaction.v1";

struct Identifier {
  std::string type;  // phone | email | telegram_user_id | ... (kIdentifierTypes)
  OptString value;   // canonical form; absent when the raw text could not be normalized
  bool verified = false;
  OptString raw;  // the text as received, when it differs from value
};

struct Contact {
  OptString display_name;
  std::vector<Identifier> identifiers;
  OptString language;
};

struct Conversation {
  OptString id, type, reply_to, thread_id;
};

struct Attachment {
  std::string type;
  OptString mime_type, file_name;
  std::optional<int64_t> size;
  OptString caption, url;
  nlohmann::json location;      // {latitude, longitude, title?, address?} or null
  nlohmann::json contact;       // {name?, phone?, vcard?, user_id?} or null
  nlohmann::json provider_ref;  // what is needed to fetch it, or null
};

struct Message {
  std::string native_id;
  OptString text, subject;
  nlohmann::json entities;  // array or null
  std::vector<Attachment> attachments;
  OptString group_id;
  nlohmann::json forwarded;  // object or null
  OptString edit_of;
};

struct Lead {
  std::string form;
  StringPairs fields;
};

struct StatusUpdate {
  std::string of, state;
  OptString recipient;
  nlohmann::json error;  // object or null
};

struct Reaction {
  std::string of;
  std::string emoji;
  bool removed = false;
};

struct Action {
  std::string type;
  OptString data, title, of;
};

struct Utm {
  OptString source, medium, campaign, content, term;
  bool empty() const { return !source && !medium && !campaign && !content && !term; }
};

struct Source {
  Utm utm;
  OptString page_url, referrer, deep_link;
  StringPairs params;
  nlohmann::json ad;  // object or null
  bool empty() const {
    return utm.empty() && !page_url && !referrer && !deep_link && params.empty() && ad.is_null();
  }
};

struct ConsentEvidence {
  OptString ip, user_agent, page_url, text_id, text_version, text_sha256, policy_url, native_event,
      submission_id, linked_interaction_id;
};

struct Consent {
  std::string purpose, status;
  std::vector<std::string> channels;
  std::string method;
  SysMillis captured_at{};
  ConsentEvidence evidence;
};

// Where archived raw bytes are: an object of the NATS Object Store layout (the e-mail channel).
struct RawObject {
  std::string bucket, name;
};

struct RawInfo {
  std::string sha256, content_type;
  std::optional<RawObject> object;
};

struct Interaction {
  std::string id;
  std::string channel, account, kind;
  SysMillis occurred_at{}, received_at{};
  std::optional<Contact> contact;
  std::optional<Conversation> conversation;
  std::optional<Message> message;
  std::optional<Lead> lead;
  std::optional<StatusUpdate> status;
  std::optional<Reaction> reaction;
  std::optional<Action> action;
  std::optional<Source> source;
  std::vector<Consent> consent;
  std::vector<std::string> tags;
  std::optional<RawInfo> raw;
};

// The enumerations of the schema, shared by the reader and the tests.
extern const std::vector<std::string_view> kChannels;
extern const std::vector<std::string_view> kKinds;
extern const std::vector<std::string_view> kIdentifierTypes;
extern const std::vector<std::string_view> kAttachmentTypes;
extern const std::vector<std::string_view> kConversationTypes;
extern const std::vector<std::string_view> kStatusStates;
extern const std::vector<std::string_view> kActionTypes;
extern const std::vector<std::string_view> kConsentStatuses;
extern const std::vector<std::string_view> kConsentMethods;

nlohmann::ordered_json to_json(const Interaction& interaction);
std::string serialize(const Interaction& interaction);

enum class ReadMode {
  full,            // a whole interaction.v1 document (tests, tail)
  api_submission,  // what the API channel accepts: no schema, id, received_at, channel, account
};

// Reads a parsed JSON document strictly: unknown keys, wrong types and values outside the
// enumerations are errors whose detail names the field ("contact.identifiers[1].type: ...").
Result<Interaction> interaction_from_json(const nlohmann::json& document, ReadMode mode);

// The sections a kind requires (message for message, lead for lead, ...); an error naming
// the missing section otherwise.
Status check_kind_sections(const Interaction& interaction);

}  // namespace omnigate

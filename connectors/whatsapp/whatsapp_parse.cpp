#include "connectors/whatsapp/whatsapp_parse.hpp"

#include "connectors/whatsapp/whatsapp_payload.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <optional>
#include <utility>

#include "gateway/model/formats.hpp"
#include "gateway/model/keyword_consent.hpp"
#include "gateway/model/tracking.hpp"

namespace omnigate::whatsapp {
namespace {

namespace wa = payload;
constexpr std::string_view kChannel = "whatsapp";

// A WhatsApp timestamp (unix seconds). Absent or out of range: SysMillis{} -- the pipeline then
// uses received_at.
SysMillis time_of(const wa::Timestamp& timestamp) {
  if (!timestamp.seconds) return SysMillis{};
  return formats::from_unix_seconds(*timestamp.seconds).value_or(SysMillis::min());
}

// The person a message, status or preference is about. `contacts` is the change's contacts[]
// (matched by wa_id or user_id, never by position: Meta does not promise the order).
// wa_id is WhatsApp's id for the number and the number itself, so both are verified.
Contact contact_of(const std::vector<wa::ContactEntry>& contacts,
                   const std::optional<std::string>& wa_id,
                   const std::optional<std::string>& user_id) {
  static const wa::ContactEntry kNone;
  const wa::ContactEntry* entry = &kNone;
  for (const auto& c : contacts) {
    if ((wa_id && c.wa_id == wa_id) || (user_id && c.user_id == user_id)) {
      entry = &c;
      break;
    }
  }
  const auto& id = wa_id ? wa_id : entry->wa_id;
  const auto& bsuid = user_id ? user_id : entry->user_id;
  Contact contact;
  if (entry->profile_name && !entry->profile_name->empty())
    contact.display_name = *entry->profile_name;
  if (id && !id->empty()) {
    contact.identifiers.push_back({"whatsapp_wa_id", *id, true, std::nullopt});
    contact.identifiers.push_back({"phone", "+" + *id, true, std::nullopt});
  }
  if (bsuid && !bsuid->empty())
    contact.identifiers.push_back({"whatsapp_user_id", *bsuid, true, std::nullopt});
  return contact;
}

// A one-to-one chat with the customer: its id is the wa_id, or the BSUID when the number is
// not shared.
Conversation conversation_with(const Contact& contact) {
  Conversation c;
  c.type = "private";
  for (const auto& id : contact.identifiers) {
    if (id.type == "whatsapp_wa_id") {
      c.id = id.value;
      break;
    }
    if (id.type == "whatsapp_user_id" && !c.id) c.id = id.value;
  }
  return c;
}

Interaction base(const AccountSettings& account, std::string kind, SysMillis at, Contact contact) {
  Interaction in;
  in.channel = std::string(kChannel);
  in.account = account.account;
  in.kind = std::move(kind);
  in.occurred_at = at;
  in.conversation = conversation_with(contact);
  if (contact.display_name || !contact.identifiers.empty()) in.contact = std::move(contact);
  return in;
}

// image|video|audio|document|sticker: the media id and sha256 are what the Graph API needs.
Attachment media_attachment(wa::Media& media, std::string type) {
  Attachment a;
  a.type = std::move(type);
  a.mime_type = std::move(media.mime_type);
  a.file_name = std::move(media.filename);
  a.caption = std::move(media.caption);
  a.provider_ref = nlohmann::json::object();
  if (media.id) a.provider_ref["id"] = std::move(*media.id);
  if (media.sha256) a.provider_ref["sha256"] = std::move(*media.sha256);
  return a;
}

Attachment contact_card(const wa::Card& card) {
  Attachment a;
  a.type = "contact";
  a.contact = nlohmann::json::object();
  auto name = card.formatted_name;
  if (!name) {
    std::string joined = card.first_name.value_or("");
    if (card.last_name) joined += (joined.empty() ? "" : " ") + *card.last_name;
    if (!joined.empty()) name = joined;
  }
  if (name) a.contact["name"] = *name;
  if (card.first_phone) a.contact["phone"] = *card.first_phone;
  if (card.vcard) a.contact["vcard"] = *card.vcard;
  return a;
}

// context.forwarded / context.frequently_forwarded, as given.
nlohmann::json forwarding_of(const wa::Message& msg) {
  nlohmann::json flags = nlohmann::json::object();
  if (msg.forwarded) flags["forwarded"] = true;
  if (msg.frequently_forwarded) flags["frequently_forwarded"] = true;
  return flags.empty() ? nlohmann::json() : flags;
}

// A click-to-WhatsApp ad: the referral is the lead's source, its click id a tracking parameter.
std::optional<Source> source_of(nlohmann::json& referral) {
  if (!referral.is_object()) return std::nullopt;
  Source source;
  auto clid = referral.find("ctwa_clid");
  if (clid != referral.end() && clid->is_string())
    route_tracking_params(source, {{"ctwa_clid", clid->get<std::string>()}}, OtherParams::keep);
  source.ad = std::move(referral);
  return source;
}

struct Batch {
  const AccountSettings& account;
  std::string_view body;
  Mapped out;

  void publish(Interaction in, std::string native_key) {
    // The POST's bytes: what Meta signed (one hash for the whole batch, see Pipeline).
    out.add(std::move(in), std::move(native_key), body, "application/json");
  }
  void ignore(std::string type) { out.ignored.push_back(std::move(type)); }

  void message(wa::Message& msg, const std::vector<wa::ContactEntry>& contacts) {
    const auto& wamid = msg.id;
    if (!wamid || wamid->empty()) return ignore("message_without_id");
    std::string type = msg.type.value_or("unknown");
    Contact contact = contact_of(contacts, msg.from, msg.from_user_id);
    SysMillis at = time_of(msg.timestamp);
    const auto& replied_to = msg.context_id;

    if (type == "interactive" || type == "button") {
      Action action;
      if (type == "button") {
        action.type = "button";
        action.data = std::move(msg.button_payload);
        action.title = std::move(msg.button_text);
      } else {
        std::string which = msg.interactive_type.value_or("unknown");
        wa::Reply* reply = nullptr;
        if (which == "button_reply") {
          action.type = "button";
          reply = &msg.button_reply;
        } else if (which == "list_reply") {
          action.type = "list";
          reply = &msg.list_reply;
        } else {
          return ignore("interactive_" + which);  // nfm_reply (Flows) and newer kinds
        }
        action.data = std::move(reply->id);
        action.title = std::move(reply->title);
      }
      action.of = replied_to;
      Interaction in = base(account, "action", at, std::move(contact));
      in.action = std::move(action);
      return publish(std::move(in), *wamid);
    }
    if (type == "reaction") {
      const auto& of = msg.reaction_message_id;
      if (!of || of->empty()) return ignore("reaction_without_message_id");
      Reaction reaction;
      reaction.of = *of;
      // Meta documents a removal as no emoji field; older payloads send "".
      reaction.emoji = msg.reaction_emoji.value_or("");
      reaction.removed = reaction.emoji.empty();
      Interaction in = base(account, "reaction", at, std::move(contact));
      in.reaction = std::move(reaction);
      return publish(std::move(in), *wamid);
    }

    Message message;
    message.native_id = *wamid;
    const auto media_type = std::find(wa::kMediaTypes.begin(), wa::kMediaTypes.end(), type);
    if (type == "text") {
      message.text = std::move(msg.text_body);
    } else if (media_type != wa::kMediaTypes.end()) {
      wa::Media& media = msg.media[media_type - wa::kMediaTypes.begin()];
      std::string kind = type == "audio" && media.voice ? "voice" : type;
      message.attachments.push_back(media_attachment(media, kind));
      // As for Telegram: the caption is the message's text too, so a CRM shows it as one.
      message.text = message.attachments.back().caption;
    } else if (type == "location") {
      const wa::Location& place = msg.location;
      Attachment a;
      a.type = "location";
      a.location = nlohmann::json::object();
      if (place.latitude) a.location["latitude"] = *place.latitude;
      if (place.longitude) a.location["longitude"] = *place.longitude;
      if (place.name) a.location["title"] = *place.name;
      if (place.address) a.location["address"] = *place.address;
      message.attachments.push_back(std::move(a));
    } else if (type == "contacts") {
      for (const auto& card : msg.contacts) message.attachments.push_back(contact_card(card));
    } else {
      // unsupported (edits, polls, ...), system (number changes), order (catalog carts: not a
      // lead in v1, its items do not fit lead.fields without inventing a flattening), and
      // types newer than this code.
      return ignore(type);
    }
    message.forwarded = forwarding_of(msg);
    Interaction in = base(account, "message", at, std::move(contact));
    if (replied_to && message.forwarded.is_null()) in.conversation->reply_to = replied_to;
    if (type == "text" && message.text && account.stop_words.matches(*message.text))
      in.consent.push_back(stop_word_withdrawal(std::string(kChannel), at));
    in.source = source_of(msg.referral);
    in.message = std::move(message);
    publish(std::move(in), *wamid);
  }

  void status(wa::StatusEvent& st, const std::vector<wa::ContactEntry>& contacts) {
    const auto& wamid = st.id;
    const auto& state = st.status;
    if (!wamid || wamid->empty() || !state) return ignore("status_without_id");
    if (*state != "sent" && *state != "delivered" && *state != "read" && *state != "failed" &&
        *state != "played")
      return ignore("status_" + *state);  // e.g. "deleted" of old API versions
    std::string timestamp = st.timestamp.text.value_or("");
    StatusUpdate update;
    update.of = *wamid;
    update.state = *state;
    update.recipient = st.recipient_id ? st.recipient_id : st.recipient_user_id;
    if (st.error) {
      const wa::StatusError& e = *st.error;
      update.error = nlohmann::json::object();
      if (e.code) update.error["code"] = *e.code;
      if (e.title) update.error["title"] = *e.title;
      if (e.message) update.error["message"] = *e.message;
      if (e.href) update.error["href"] = *e.href;
      if (e.details) update.error["details"] = *e.details;
    }
    Interaction in = base(account, "status", time_of(st.timestamp),
                          contact_of(contacts, st.recipient_id, st.recipient_user_id));
    in.status = std::move(update);
    publish(std::move(in), status_key(*wamid, *state, timestamp));
  }

  // marketing_messages stop / resume: the customer's own decision in WhatsApp's UI.
  void preference(const wa::Preference& pref, const std::vector<wa::ContactEntry>& contacts) {
    std::string category = pref.category.value_or("");
    std::string value = pref.value.value_or("");
    if (category != "marketing_messages" || (value != "stop" && value != "resume"))
      return ignore("user_preferences_" + (value.empty() ? std::string("unknown") : value));
    if (!pref.wa_id && !pref.user_id) return ignore("user_preferences_without_user");
    SysMillis at = time_of(pref.timestamp);
    Interaction in = base(account, "consent", at, contact_of(contacts, pref.wa_id, pref.user_id));
    in.consent.push_back(channel_consent(std::string(kChannel), "marketing",
                                         value == "stop" ? "withdrawn" : "granted",
                                         "platform_event", at, "user_preferences"));
    std::string who = pref.user_id ? *pref.user_id : *pref.wa_id;
    publish(std::move(in),
            "user_preferences|" + who + "|" + value + "|" + pref.timestamp.text.value_or(""));
  }

  void change(wa::Change& change) {
    std::string field = change.field.value_or("unknown");
    if (field != "messages" && field != "user_preferences") return ignore(field);
    if (change.phone_number_id != account.phone_number_id) return ignore("other_phone_number_id");
    if (field == "user_preferences") {
      for (const auto& pref : change.preferences) preference(pref, change.contacts);
      return;
    }
    for (auto& msg : change.messages) message(msg, change.contacts);
    for (auto& st : change.statuses) status(st, change.contacts);
    // A change of only value.errors[]: a problem on Meta's side with nothing to publish.
    if (change.messages.empty() && change.statuses.empty())
      ignore(change.has_errors ? "errors" : "empty");
  }
};

}  // namespace

std::string status_key(std::string_view wamid, std::string_view state, std::string_view timestamp) {
  std::string key(wamid);
  key.append("|").append(state).append("|").append(timestamp);
  return key;
}

Result<Mapped> parse_webhook(std::string_view body, const AccountSettings& account) {
  auto read = payload::read_webhook(body);
  if (!read) return read.error();
  if (!read->entry_is_array)
    return make_error(ErrorCode::bad_request, "parse", "entry: is required and must be an array");
  Batch batch{account, body, {}};
  for (auto& change : read->changes) batch.change(change);
  return std::move(batch.out);
}

}  // namespace omnigate::whatsapp

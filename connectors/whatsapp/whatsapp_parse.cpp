#include "connectors/whatsapp/whatsapp_parse.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <utility>

#include "gateway/model/formats.hpp"
#include "gateway/model/json_reader.hpp"
#include "gateway/model/keyword_consent.hpp"
#include "gateway/model/tracking.hpp"

namespace omnigate::whatsapp {
namespace {

using Node = JsonNode;
constexpr std::string_view kChannel = "whatsapp";

// A WhatsApp timestamp (unix seconds; a string in messages and statuses, an integer in
// user_preferences). Absent or out of range: SysMillis{} -- the pipeline then uses received_at.
SysMillis time_of(const Node& timestamp) {
  auto seconds = timestamp.integer_or_numeric_string();
  if (!seconds) return SysMillis{};
  return formats::from_unix_seconds(*seconds).value_or(SysMillis::min());
}

// The person a message, status or preference is about. `contacts` is the change's contacts[]
// (matched by wa_id or user_id, never by position: Meta does not promise the order).
// wa_id is WhatsApp's id for the number and the number itself, so both are verified.
Contact contact_of(const Node& contacts, const std::optional<std::string>& wa_id,
                   const std::optional<std::string>& user_id) {
  Node entry;
  for (const Node& c : contacts.array()) {
    if ((wa_id && c["wa_id"].str() == wa_id) || (user_id && c["user_id"].str() == user_id)) {
      entry = c;
      break;
    }
  }
  auto id = wa_id ? wa_id : entry["wa_id"].str();
  auto bsuid = user_id ? user_id : entry["user_id"].str();
  Contact contact;
  if (auto name = entry["profile"]["name"].str(); name && !name->empty())
    contact.display_name = *name;
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
Attachment media_attachment(const Node& media, std::string type) {
  Attachment a;
  a.type = std::move(type);
  a.mime_type = media["mime_type"].str();
  a.file_name = media["filename"].str();
  a.caption = media["caption"].str();
  a.provider_ref = nlohmann::json::object();
  if (auto id = media["id"].id_text()) a.provider_ref["id"] = *id;
  if (auto sha = media["sha256"].str()) a.provider_ref["sha256"] = *sha;
  return a;
}

Attachment contact_card(const Node& card) {
  Attachment a;
  a.type = "contact";
  a.contact = nlohmann::json::object();
  auto name = card["name"]["formatted_name"].str();
  if (!name) {
    std::string joined = card["name"]["first_name"].str().value_or("");
    if (auto last = card["name"]["last_name"].str()) joined += (joined.empty() ? "" : " ") + *last;
    if (!joined.empty()) name = joined;
  }
  if (name) a.contact["name"] = *name;
  auto phones = card["phones"].array();
  if (!phones.empty()) {
    if (auto phone = phones.front()["phone"].str()) a.contact["phone"] = *phone;
  }
  if (auto vcard = card["vcard"].str()) a.contact["vcard"] = *vcard;
  return a;
}

// context.forwarded / context.frequently_forwarded, as given.
nlohmann::json forwarding_of(const Node& context) {
  nlohmann::json flags = nlohmann::json::object();
  for (const char* flag : {"forwarded", "frequently_forwarded"}) {
    if (context[flag].boolean() == true) flags[flag] = true;
  }
  return flags.empty() ? nlohmann::json() : flags;
}

// A click-to-WhatsApp ad: the referral is the lead's source, its click id a tracking parameter.
std::optional<Source> source_of(const Node& referral) {
  if (!referral.is_object()) return std::nullopt;
  Source source;
  source.ad = referral.to_json();
  if (auto clid = referral["ctwa_clid"].str())
    route_tracking_params(source, {{"ctwa_clid", *clid}}, OtherParams::keep);
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

  void message(const Node& msg, const Node& contacts) {
    auto wamid = msg["id"].str();
    if (!wamid || wamid->empty()) return ignore("message_without_id");
    std::string type = msg["type"].str().value_or("unknown");
    Contact contact = contact_of(contacts, msg["from"].str(), msg["from_user_id"].str());
    SysMillis at = time_of(msg["timestamp"]);
    Node context = msg["context"];
    auto replied_to = context["id"].str();

    if (type == "interactive" || type == "button") {
      Action action;
      if (type == "button") {
        action.type = "button";
        action.data = msg["button"]["payload"].str();
        action.title = msg["button"]["text"].str();
      } else {
        std::string which = msg["interactive"]["type"].str().value_or("unknown");
        Node reply = msg["interactive"][which];
        if (which == "button_reply")
          action.type = "button";
        else if (which == "list_reply")
          action.type = "list";
        else
          return ignore("interactive_" + which);  // nfm_reply (Flows) and newer kinds
        action.data = reply["id"].str();
        action.title = reply["title"].str();
      }
      action.of = replied_to;
      Interaction in = base(account, "action", at, std::move(contact));
      in.action = std::move(action);
      return publish(std::move(in), *wamid);
    }
    if (type == "reaction") {
      auto of = msg["reaction"]["message_id"].str();
      if (!of || of->empty()) return ignore("reaction_without_message_id");
      Reaction reaction;
      reaction.of = *of;
      // Meta documents a removal as no emoji field; older payloads send "".
      reaction.emoji = msg["reaction"]["emoji"].str().value_or("");
      reaction.removed = reaction.emoji.empty();
      Interaction in = base(account, "reaction", at, std::move(contact));
      in.reaction = std::move(reaction);
      return publish(std::move(in), *wamid);
    }

    Message message;
    message.native_id = *wamid;
    if (type == "text") {
      message.text = msg["text"]["body"].str();
    } else if (type == "image" || type == "video" || type == "document" || type == "sticker" ||
               type == "audio") {
      Node media = msg[type];
      std::string kind = type == "audio" && media["voice"].boolean() == true ? "voice" : type;
      message.attachments.push_back(media_attachment(media, kind));
      // As for Telegram: the caption is the message's text too, so a CRM shows it as one.
      message.text = message.attachments.back().caption;
    } else if (type == "location") {
      Node place = msg["location"];
      Attachment a;
      a.type = "location";
      a.location = nlohmann::json::object();
      if (auto v = place["latitude"].num()) a.location["latitude"] = *v;
      if (auto v = place["longitude"].num()) a.location["longitude"] = *v;
      if (auto v = place["name"].str()) a.location["title"] = *v;
      if (auto v = place["address"].str()) a.location["address"] = *v;
      message.attachments.push_back(std::move(a));
    } else if (type == "contacts") {
      for (const Node& card : msg["contacts"].array())
        message.attachments.push_back(contact_card(card));
    } else {
      // unsupported (edits, polls, ...), system (number changes), order (catalog carts: not a
      // lead in v1, its items do not fit lead.fields without inventing a flattening), and
      // types newer than this code.
      return ignore(type);
    }
    message.forwarded = forwarding_of(context);
    Interaction in = base(account, "message", at, std::move(contact));
    if (replied_to && message.forwarded.is_null()) in.conversation->reply_to = replied_to;
    if (type == "text" && message.text && account.stop_words.matches(*message.text))
      in.consent.push_back(stop_word_withdrawal(std::string(kChannel), at));
    in.source = source_of(msg["referral"]);
    in.message = std::move(message);
    publish(std::move(in), *wamid);
  }

  void status(const Node& st, const Node& contacts) {
    auto wamid = st["id"].str();
    auto state = st["status"].str();
    if (!wamid || wamid->empty() || !state) return ignore("status_without_id");
    if (*state != "sent" && *state != "delivered" && *state != "read" && *state != "failed" &&
        *state != "played")
      return ignore("status_" + *state);  // e.g. "deleted" of old API versions
    std::string timestamp = st["timestamp"].id_text().value_or("");
    StatusUpdate update;
    update.of = *wamid;
    update.state = *state;
    auto recipient = st["recipient_id"].str();
    auto recipient_user = st["recipient_user_id"].str();
    update.recipient = recipient ? recipient : recipient_user;
    auto errors = st["errors"].array();
    if (!errors.empty()) {
      const Node& e = errors.front();
      update.error = nlohmann::json::object();
      if (auto code = e["code"].i64()) update.error["code"] = *code;
      for (const char* key : {"title", "message", "href"}) {
        if (auto v = e[key].str()) update.error[key] = *v;
      }
      if (auto details = e["error_data"]["details"].str()) update.error["details"] = *details;
    }
    Interaction in = base(account, "status", time_of(st["timestamp"]),
                          contact_of(contacts, recipient, recipient_user));
    in.status = std::move(update);
    publish(std::move(in), status_key(*wamid, *state, timestamp));
  }

  // marketing_messages stop / resume: the customer's own decision in WhatsApp's UI.
  void preference(const Node& pref, const Node& contacts) {
    std::string category = pref["category"].str().value_or("");
    std::string value = pref["value"].str().value_or("");
    if (category != "marketing_messages" || (value != "stop" && value != "resume"))
      return ignore("user_preferences_" + (value.empty() ? std::string("unknown") : value));
    auto wa_id = pref["wa_id"].str();
    auto user_id = pref["user_id"].str();
    if (!wa_id && !user_id) return ignore("user_preferences_without_user");
    SysMillis at = time_of(pref["timestamp"]);
    Interaction in = base(account, "consent", at, contact_of(contacts, wa_id, user_id));
    in.consent.push_back(channel_consent(std::string(kChannel), "marketing",
                                         value == "stop" ? "withdrawn" : "granted",
                                         "platform_event", at, "user_preferences"));
    std::string who = user_id ? *user_id : *wa_id;
    publish(std::move(in), "user_preferences|" + who + "|" + value + "|" +
                               pref["timestamp"].id_text().value_or(""));
  }

  void change(const Node& change) {
    std::string field = change["field"].str().value_or("unknown");
    Node value = change["value"];
    if (field != "messages" && field != "user_preferences") return ignore(field);
    if (value["metadata"]["phone_number_id"].id_text() != account.phone_number_id)
      return ignore("other_phone_number_id");
    Node contacts = value["contacts"];
    if (field == "user_preferences") {
      for (const Node& pref : value["user_preferences"].array()) preference(pref, contacts);
      return;
    }
    auto messages = value["messages"].array();
    auto statuses = value["statuses"].array();
    for (const Node& msg : messages) message(msg, contacts);
    for (const Node& st : statuses) status(st, contacts);
    // A change of only value.errors[]: a problem on Meta's side with nothing to publish.
    if (messages.empty() && statuses.empty())
      ignore(value["errors"].present() ? "errors" : "empty");
  }
};

}  // namespace

std::string status_key(std::string_view wamid, std::string_view state, std::string_view timestamp) {
  std::string key(wamid);
  key.append("|").append(state).append("|").append(timestamp);
  return key;
}

Result<Mapped> parse_webhook(std::string_view body, const AccountSettings& account) {
  thread_local JsonReader reader;
  auto root = reader.object(body, "a WhatsApp webhook");
  if (!root) return root.error();
  Node entries = root.value()["entry"];
  if (!entries.is_array())
    return make_error(ErrorCode::bad_request, "parse", "entry: is required and must be an array");
  Batch batch{account, body, {}};
  for (const Node& entry : entries.array()) {
    for (const Node& change : entry["changes"].array()) batch.change(change);
  }
  return std::move(batch.out);
}

}  // namespace omnigate::whatsapp

#include "connectors/vk/vk_parse.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <utility>

#include "gateway/core/strings.hpp"
#include "gateway/model/formats.hpp"
#include "gateway/model/ids.hpp"
#include "gateway/model/json_reader.hpp"
#include "gateway/model/keyword_consent.hpp"
#include "gateway/model/tracking.hpp"

namespace omnigate::vk {
namespace {

using Node = JsonNode;
constexpr std::string_view kChannel = "vk";
// VK numbers group chats from here: a peer_id at or above it is a chat, below it a person.
constexpr int64_t kChatPeerBase = 2'000'000'000;

// A VK date (unix seconds); absent or out of range: `fallback`.
SysMillis time_of(const Node& date, SysMillis fallback) {
  auto seconds = date.i64();
  if (!seconds || *seconds <= 0) return fallback;
  return formats::from_unix_seconds(*seconds).value_or(fallback);
}

// A person: VK user ids are positive (negative ids are communities, e.g. our own replies).
std::optional<Contact> person(const Node& id) {
  auto value = id.i64();
  if (!value || *value <= 0) return std::nullopt;
  Contact contact;
  contact.identifiers.push_back({"vk_user_id", std::to_string(*value), true, std::nullopt});
  return contact;
}

Conversation dialog(int64_t peer_id) {
  Conversation c;
  c.id = std::to_string(peer_id);
  c.type = peer_id >= kChatPeerBase ? "group" : "private";
  return c;
}

// The MIME type of a document from its extension (VK gives only `ext`).
OptString mime_of_ext(std::string_view ext) {
  static const std::pair<std::string_view, std::string_view> kTypes[] = {
      {"pdf", "application/pdf"},
      {"doc", "application/msword"},
      {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
      {"xls", "application/vnd.ms-excel"},
      {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
      {"ppt", "application/vnd.ms-powerpoint"},
      {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
      {"odt", "application/vnd.oasis.opendocument.text"},
      {"rtf", "application/rtf"},
      {"txt", "text/plain"},
      {"csv", "text/csv"},
      {"zip", "application/zip"},
      {"rar", "application/vnd.rar"},
      {"7z", "application/x-7z-compressed"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"png", "image/png"},
      {"gif", "image/gif"},
      {"webp", "image/webp"},
      {"mp3", "audio/mpeg"},
      {"ogg", "audio/ogg"},
      {"mp4", "video/mp4"},
  };
  std::string lower = ascii_lower(ext);
  for (const auto& [e, mime] : kTypes) {
    if (lower == e) return std::string(mime);
  }
  return std::nullopt;
}

// VK's fetch fields of a media object, with VK's JSON types (numbers stay numbers).
nlohmann::json fetch_ref(std::string_view vk_type, const Node& media) {
  nlohmann::json ref = {{"type", vk_type}};
  for (const char* key : {"owner_id", "id", "access_key"}) {
    if (media[key].present()) ref[key] = media[key].to_json();
  }
  return ref;
}

// The largest of a photo's sizes by area: VK lists them by type letter, not by size.
Attachment photo(const Node& p) {
  Attachment a;
  a.type = "image";
  a.provider_ref = fetch_ref("photo", p);
  Node best;
  int64_t best_area = -1;
  for (const Node& size : p["sizes"].array()) {
    int64_t area = size["width"].i64().value_or(0) * size["height"].i64().value_or(0);
    if (area > best_area) {
      best_area = area;
      best = size;
    }
  }
  if (best.present()) {
    if (auto url = best["url"].str()) a.provider_ref["url"] = *url;
    if (auto w = best["width"].i64()) a.provider_ref["width"] = *w;
    if (auto h = best["height"].i64()) a.provider_ref["height"] = *h;
  }
  return a;
}

// One element of attachments[]: {type, <type>: object}. VK's media URLs expire (and audio's is a
// placeholder), so only a link carries `url`; everything else names what to fetch.
Attachment attachment_of(const Node& item) {
  std::string type = item["type"].str().value_or("unknown");
  Node obj = item[type];
  Attachment a;
  if (type == "photo") return photo(obj);
  if (type == "video" || type == "audio") {
    a.type = type;
    a.provider_ref = fetch_ref(type, obj);
  } else if (type == "doc") {
    a.type = "document";
    a.file_name = obj["title"].str();
    a.size = obj["size"].i64();
    if (auto ext = obj["ext"].str()) a.mime_type = mime_of_ext(*ext);
    a.provider_ref = fetch_ref(type, obj);
  } else if (type == "audio_message") {
    a.type = "voice";
    a.mime_type = "audio/ogg";  // link_ogg; link_mp3 is the same recording
    a.provider_ref = fetch_ref(type, obj);
  } else if (type == "sticker") {
    a.type = "sticker";
    a.provider_ref = {{"type", "sticker"}};
    for (const char* key : {"product_id", "sticker_id"}) {
      if (obj[key].present()) a.provider_ref[key] = obj[key].to_json();
    }
  } else if (type == "graffiti") {
    a.type = "image";
    a.provider_ref = fetch_ref(type, obj);
  } else if (type == "link") {
    a.type = "link";
    a.url = obj["url"].str();
  } else {
    // wall, market, poll and types newer than this code: named, for a CRM that fetches them.
    a.type = "other";
    a.provider_ref = fetch_ref(type, obj);
  }
  return a;
}

Attachment location_of(const Node& geo) {
  Attachment a;
  a.type = "location";
  a.location = nlohmann::json::object();
  if (auto v = geo["coordinates"]["latitude"].num()) a.location["latitude"] = *v;
  if (auto v = geo["coordinates"]["longitude"].num()) a.location["longitude"] = *v;
  if (auto v = geo["place"]["title"].str(); v && !v->empty()) a.location["title"] = *v;
  return a;
}

void add_attachments(Message& message, const Node& object) {
  for (const Node& item : object["attachments"].array())
    message.attachments.push_back(attachment_of(item));
  if (Node geo = object["geo"]; geo.is_object()) message.attachments.push_back(location_of(geo));
}

// A payload as text: a JSON string as is, anything else minified in VK's key order.
OptString payload_text(const Node& payload) {
  if (!payload.present()) return std::nullopt;
  if (auto s = payload.str()) return s;
  return payload.minified();
}

struct Event {
  const CommunitySettings& community;
  std::string_view body;
  std::string native_key;
  SysMillis now;
  Mapped out;

  Interaction base(std::string kind, SysMillis at) const {
    Interaction in;
    in.channel = std::string(kChannel);
    in.account = community.account;
    in.kind = std::move(kind);
    in.occurred_at = at;
    return in;
  }
  void publish(Interaction in) { out.add(std::move(in), native_key, body, "application/json"); }
  void ignore(std::string type) { out.ignored.push_back(std::move(type)); }

  // message_new (wrapped in {message, client_info}) and message_edit (the bare message).
  void message(const Node& msg, bool edit) {
    auto peer = msg["peer_id"].i64();
    auto contact = person(msg["from_id"]);
    if (!peer || !contact)
      return ignore(edit ? "message_edit_without_sender" : "message_without_sender");
    const bool chat = *peer >= kChatPeerBase;
    // In a chat a bot gets id 0: conversation_message_id (unique per peer) names the message.
    auto native_id = chat ? msg["conversation_message_id"].id_text() : msg["id"].id_text();
    if (!native_id || *native_id == "0") return ignore("message_without_id");
    SysMillis at = time_of(edit ? msg["update_time"] : msg["date"], time_of(msg["date"], now));
    auto text = msg["text"].str();
    if (text && text->empty()) text.reset();

    // A keyboard button press: its payload (a JSON string) is the button, its text the title.
    if (auto payload = payload_text(msg["payload"]); payload && !edit) {
      Interaction in = base("action", at);
      in.contact = std::move(contact);
      in.conversation = dialog(*peer);
      Action action;
      action.type = "button";
      action.data = std::move(payload);
      action.title = text;
      in.action = std::move(action);
      return publish(std::move(in));
    }

    Message message;
    message.native_id = *native_id;
    message.text = text;
    add_attachments(message, msg);
    if (auto fwd = msg["fwd_messages"].array(); !fwd.empty())
      message.forwarded = {{"fwd_messages", msg["fwd_messages"].to_json()}};
    if (edit) message.edit_of = *native_id;

    Interaction in = base(edit ? "message_edit" : "message", at);
    in.contact = std::move(contact);
    in.conversation = dialog(*peer);
    Node reply = msg["reply_message"];
    if (reply.is_object()) {
      auto of = chat ? reply["conversation_message_id"].id_text() : reply["id"].id_text();
      if (of && *of != "0") in.conversation->reply_to = of;
    }
    if (!edit) {
      if (text && community.stop_words.matches(*text))
        in.consent.push_back(stop_word_withdrawal(std::string(kChannel), at));
      if (auto ref = msg["ref"].str(); ref && !ref->empty()) {
        Source source;
        route_deep_link(source, *ref);
        if (auto from = msg["ref_source"].str(); from && !from->empty())
          route_tracking_params(source, {{"ref_source", *from}}, OtherParams::keep);
        in.source = std::move(source);
      }
    }
    in.message = std::move(message);
    publish(std::move(in));
  }

  // A callback button: VK sends the payload as an object (the docs say a string; both work).
  void message_event(const Node& obj) {
    auto contact = person(obj["user_id"]);
    auto peer = obj["peer_id"].i64();
    if (!contact || !peer) return ignore("message_event_without_user");
    Interaction in = base("action", now);
    in.contact = std::move(contact);
    in.conversation = dialog(*peer);
    Action action;
    action.type = "postback";
    action.data = payload_text(obj["payload"]);
    in.action = std::move(action);
    publish(std::move(in));
  }

  // message_allow / message_deny: the person's own decision to receive the community's messages.
  void allow_deny(const Node& obj, bool allow) {
    auto contact = person(obj["user_id"]);
    std::string type = allow ? "message_allow" : "message_deny";
    if (!contact) return ignore(type + "_without_user");
    Interaction in = base("consent", now);
    in.contact = std::move(contact);
    Consent consent = channel_consent(std::string(kChannel), "service",
                                      allow ? "granted" : "withdrawn", "platform_event", now, type);
    // The key given to messages.allowMessagesFromGroup (which widget or page asked).
    if (auto key = obj["key"].str(); key && !key->empty()) consent.evidence.submission_id = key;
    in.consent.push_back(std::move(consent));
    publish(std::move(in));
  }

  // A comment: its conversation is the post, "<owner_id>_<post_id>" (VK's wall-1_2 notation).
  void wall_reply(const Node& obj) {
    auto contact = person(obj["from_id"]);
    auto id = obj["id"].id_text();
    auto owner = obj["owner_id"].id_text();
    auto post = obj["post_id"].id_text();
    // The community's own replies under its posts (negative from_id) are not a customer's.
    if (obj["from_id"].i64().value_or(0) < 0) return ignore("wall_reply_new_from_community");
    if (!contact || !id || !owner || !post) return ignore("wall_reply_new_without_ids");
    Message message;
    message.native_id = *id;
    if (auto text = obj["text"].str(); text && !text->empty()) message.text = text;
    add_attachments(message, obj);
    Interaction in = base("message", time_of(obj["date"], now));
    in.contact = std::move(contact);
    Conversation c;
    c.id = *owner + "_" + *post;
    c.type = "channel";
    c.reply_to = obj["reply_to_comment"].id_text();
    in.conversation = std::move(c);
    in.message = std::move(message);
    publish(std::move(in));
  }

  // A lead form: every answer in lead.fields; the standard ones also name the person.
  void lead(const Node& obj) {
    Interaction in = base("lead", now);
    Contact contact = person(obj["user_id"]).value_or(Contact{});
    Lead lead;
    lead.form = obj["form_name"].str().value_or("");
    if (lead.form.empty()) lead.form = obj["form_id"].id_text().value_or("vk_lead_form");
    std::string first, last;
    for (const Node& answer : obj["answers"].array()) {
      auto key = answer["key"].str();
      auto value = answer["answer"].str();
      if (!key || key->empty() || !value) continue;
      lead.fields.emplace_back(*key, *value);
      if (*key == "first_name") first = *value;
      if (*key == "last_name") last = *value;
      // Unverified: typed into the form. The pipeline normalizes them (E.164, lower-case domain).
      if (*key == "phone_number" && !value->empty())
        contact.identifiers.push_back({"phone", std::nullopt, false, *value});
      if (*key == "email" && !value->empty())
        contact.identifiers.push_back({"email", std::nullopt, false, *value});
    }
    std::string name = first;
    if (!last.empty()) name += (name.empty() ? "" : " ") + last;
    if (!name.empty()) contact.display_name = name;
    if (contact.display_name || !contact.identifiers.empty()) in.contact = std::move(contact);
    in.lead = std::move(lead);
    if (auto ad = obj["ad_id"]; ad.present() && ad.i64().value_or(1) != 0) {
      Source source;
      source.ad = {{"ad_id", ad.to_json()}};
      in.source = std::move(source);
    }
    publish(std::move(in));
  }

  void dispatch(const std::string& type, const Node& obj) {
    if (type == "message_new")
      return message(obj["message"].is_object() ? obj["message"] : obj, false);
    if (type == "message_edit") return message(obj, true);
    if (type == "message_event") return message_event(obj);
    if (type == "message_allow") return allow_deny(obj, true);
    if (type == "message_deny") return allow_deny(obj, false);
    if (type == "wall_reply_new") return wall_reply(obj);
    if (type == "lead_forms_new") return lead(obj);
    // message_reply (our own outgoing message), group_join/leave, typing states, and every
    // type this code does not map.
    ignore(type);
  }
};

}  // namespace

Result<Callback> parse_callback(std::string_view body, const CommunitySettings& community,
                                SysMillis now) {
  thread_local JsonReader reader;
  auto root = reader.object(body, "a VK Callback API event");
  if (!root) return root.error();
  const Node& event = root.value();
  Callback callback;
  auto type = event["type"].str();
  if (!type || type->empty())
    return make_error(ErrorCode::bad_request, "parse", "type: is required and must be a string");
  callback.envelope.type = *type;
  callback.envelope.group_id = event["group_id"].i64();
  callback.envelope.secret = event["secret"].str().value_or("");
  callback.envelope.event_id = event["event_id"].str().value_or("");
  if (*type == "confirmation") return callback;
  std::string key = callback.envelope.event_id.empty() ? "sha256:" + sha256_hex(body)
                                                       : callback.envelope.event_id;
  Event mapping{community, body, std::move(key), now, {}};
  mapping.dispatch(*type, event["object"]);
  callback.mapped = std::move(mapping.out);
  return callback;
}

}  // namespace omnigate::vk

#include "connectors/vk/vk_parse.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <utility>

#include "connectors/vk/vk_payload.hpp"
#include "gateway/core/strings.hpp"
#include "gateway/model/formats.hpp"
#include "gateway/model/ids.hpp"
#include "gateway/model/keyword_consent.hpp"
#include "gateway/model/tracking.hpp"

namespace omnigate::vk {
namespace {

namespace p = payload;
constexpr std::string_view kChannel = "vk";
// VK numbers group chats from here: a peer_id at or above it is a chat, below it a person.
constexpr int64_t kChatPeerBase = 2'000'000'000;

// A VK date (unix seconds); absent or out of range: `fallback`.
SysMillis time_of(OptInt seconds, SysMillis fallback) {
  if (!seconds || *seconds <= 0) return fallback;
  return formats::from_unix_seconds(*seconds).value_or(fallback);
}

// A person: VK user ids are positive (negative ids are communities, e.g. our own replies).
std::optional<Contact> person(OptInt id) {
  if (!id || *id <= 0) return std::nullopt;
  Contact contact;
  contact.identifiers.push_back({"vk_user_id", std::to_string(*id), true, std::nullopt});
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
nlohmann::json fetch_ref(std::string_view vk_type, const p::Media& media) {
  nlohmann::json ref = {{"type", vk_type}};
  if (!media.owner_id.is_null()) ref["owner_id"] = media.owner_id;
  if (!media.id.is_null()) ref["id"] = media.id;
  if (!media.access_key.is_null()) ref["access_key"] = media.access_key;
  return ref;
}

Attachment photo(const p::Media& media) {
  Attachment a;
  a.type = "image";
  a.provider_ref = fetch_ref("photo", media);
  if (media.has_best_size) {
    if (media.best_url) a.provider_ref["url"] = *media.best_url;
    if (media.best_width) a.provider_ref["width"] = *media.best_width;
    if (media.best_height) a.provider_ref["height"] = *media.best_height;
  }
  return a;
}

// One element of attachments[]: {type, <type>: object}. VK's media URLs expire (and audio's is a
// placeholder), so only a link carries `url`; everything else names what to fetch.
Attachment attachment_of(const p::Attachment& item) {
  const std::string& type = item.type;
  const p::Media& obj = item.media;
  Attachment a;
  if (type == "photo") return photo(obj);
  if (type == "video" || type == "audio") {
    a.type = type;
    a.provider_ref = fetch_ref(type, obj);
  } else if (type == "doc") {
    a.type = "document";
    a.file_name = obj.title;
    a.size = obj.size;
    if (obj.ext) a.mime_type = mime_of_ext(*obj.ext);
    a.provider_ref = fetch_ref(type, obj);
  } else if (type == "audio_message") {
    a.type = "voice";
    a.mime_type = "audio/ogg";  // link_ogg; link_mp3 is the same recording
    a.provider_ref = fetch_ref(type, obj);
  } else if (type == "sticker") {
    a.type = "sticker";
    a.provider_ref = {{"type", "sticker"}};
    if (!obj.product_id.is_null()) a.provider_ref["product_id"] = obj.product_id;
    if (!obj.sticker_id.is_null()) a.provider_ref["sticker_id"] = obj.sticker_id;
  } else if (type == "graffiti") {
    a.type = "image";
    a.provider_ref = fetch_ref(type, obj);
  } else if (type == "link") {
    a.type = "link";
    a.url = obj.url;
  } else {
    // wall, market, poll and types newer than this code: named, for a CRM that fetches them.
    a.type = "other";
    a.provider_ref = fetch_ref(type, obj);
  }
  return a;
}

Attachment location_of(const p::Geo& geo) {
  Attachment a;
  a.type = "location";
  a.location = nlohmann::json::object();
  if (geo.latitude) a.location["latitude"] = *geo.latitude;
  if (geo.longitude) a.location["longitude"] = *geo.longitude;
  if (geo.place_title && !geo.place_title->empty()) a.location["title"] = *geo.place_title;
  return a;
}

void add_attachments(Message& message, const p::Fields& object) {
  for (const p::Attachment& item : object.attachments)
    message.attachments.push_back(attachment_of(item));
  if (object.geo) message.attachments.push_back(location_of(*object.geo));
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
  void message(p::Fields& msg, bool edit) {
    auto contact = person(msg.from_id);
    if (!msg.peer_id || !contact)
      return ignore(edit ? "message_edit_without_sender" : "message_without_sender");
    const int64_t peer = *msg.peer_id;
    const bool chat = peer >= kChatPeerBase;
    // In a chat a bot gets id 0: conversation_message_id (unique per peer) names the message.
    const OptString& native_id = chat ? msg.conversation_message_id : msg.id;
    if (!native_id || *native_id == "0") return ignore("message_without_id");
    SysMillis at = time_of(edit ? msg.update_time : msg.date, time_of(msg.date, now));
    OptString text = std::move(msg.text);
    if (text && text->empty()) text.reset();

    // A keyboard button press: its payload (a JSON string) is the button, its text the title.
    if (msg.payload && !edit) {
      Interaction in = base("action", at);
      in.contact = std::move(contact);
      in.conversation = dialog(peer);
      Action action;
      action.type = "button";
      action.data = std::move(msg.payload);
      action.title = text;
      in.action = std::move(action);
      return publish(std::move(in));
    }

    Message message;
    message.native_id = *native_id;
    message.text = text;
    add_attachments(message, msg);
    if (!msg.fwd_messages.is_null())
      message.forwarded = {{"fwd_messages", std::move(msg.fwd_messages)}};
    if (edit) message.edit_of = *native_id;

    Interaction in = base(edit ? "message_edit" : "message", at);
    in.contact = std::move(contact);
    in.conversation = dialog(peer);
    if (msg.reply_message) {
      const OptString& of =
          chat ? msg.reply_message->conversation_message_id : msg.reply_message->id;
      if (of && *of != "0") in.conversation->reply_to = of;
    }
    if (!edit) {
      if (text && community.stop_words.matches(*text))
        in.consent.push_back(stop_word_withdrawal(std::string(kChannel), at));
      if (msg.ref && !msg.ref->empty()) {
        Source source;
        route_deep_link(source, *msg.ref);
        if (msg.ref_source && !msg.ref_source->empty())
          route_tracking_params(source, {{"ref_source", *msg.ref_source}}, OtherParams::keep);
        in.source = std::move(source);
      }
    }
    in.message = std::move(message);
    publish(std::move(in));
  }

  // A callback button: VK sends the payload as an object (the docs say a string; both work).
  void message_event(p::Fields& obj) {
    auto contact = person(obj.user_id);
    if (!contact || !obj.peer_id) return ignore("message_event_without_user");
    Interaction in = base("action", now);
    in.contact = std::move(contact);
    in.conversation = dialog(*obj.peer_id);
    Action action;
    action.type = "postback";
    action.data = std::move(obj.payload);
    in.action = std::move(action);
    publish(std::move(in));
  }

  // message_allow / message_deny: the person's own decision to receive the community's messages.
  void allow_deny(const p::Fields& obj, bool allow) {
    auto contact = person(obj.user_id);
    std::string type = allow ? "message_allow" : "message_deny";
    if (!contact) return ignore(type + "_without_user");
    Interaction in = base("consent", now);
    in.contact = std::move(contact);
    Consent consent = channel_consent(std::string(kChannel), "service",
                                      allow ? "granted" : "withdrawn", "platform_event", now, type);
    // The key given to messages.allowMessagesFromGroup (which widget or page asked).
    if (obj.key && !obj.key->empty()) consent.evidence.submission_id = obj.key;
    in.consent.push_back(std::move(consent));
    publish(std::move(in));
  }

  // A comment: its conversation is the post, "<owner_id>_<post_id>" (VK's wall-1_2 notation).
  void wall_reply(const p::Fields& obj) {
    // The community's own replies under its posts (negative from_id) are not a customer's.
    if (obj.from_id.value_or(0) < 0) return ignore("wall_reply_new_from_community");
    auto contact = person(obj.from_id);
    if (!contact || !obj.id || !obj.owner_id || !obj.post_id)
      return ignore("wall_reply_new_without_ids");
    Message message;
    message.native_id = *obj.id;
    if (obj.text && !obj.text->empty()) message.text = obj.text;
    add_attachments(message, obj);
    Interaction in = base("message", time_of(obj.date, now));
    in.contact = std::move(contact);
    Conversation c;
    c.id = *obj.owner_id + "_" + *obj.post_id;
    c.type = "channel";
    c.reply_to = obj.reply_to_comment;
    in.conversation = std::move(c);
    in.message = std::move(message);
    publish(std::move(in));
  }

  // A lead form: every answer in lead.fields; the standard ones also name the person.
  void lead(const p::Fields& obj) {
    Interaction in = base("lead", now);
    Contact contact = person(obj.user_id).value_or(Contact{});
    Lead lead;
    lead.form = obj.form_name.value_or("");
    if (lead.form.empty()) lead.form = obj.form_id.value_or("vk_lead_form");
    std::string first, last;
    for (const p::Answer& answer : obj.answers) {
      if (!answer.key || answer.key->empty() || !answer.answer) continue;
      const std::string& key = *answer.key;
      const std::string& value = *answer.answer;
      lead.fields.emplace_back(key, value);
      if (key == "first_name") first = value;
      if (key == "last_name") last = value;
      // Unverified: typed into the form. The pipeline normalizes them (E.164, lower-case domain).
      if (key == "phone_number" && !value.empty())
        contact.identifiers.push_back({"phone", std::nullopt, false, value});
      if (key == "email" && !value.empty())
        contact.identifiers.push_back({"email", std::nullopt, false, value});
    }
    std::string name = first;
    if (!last.empty()) name += (name.empty() ? "" : " ") + last;
    if (!name.empty()) contact.display_name = name;
    if (contact.display_name || !contact.identifiers.empty()) in.contact = std::move(contact);
    in.lead = std::move(lead);
    // ad_id 0: the form was opened without an ad.
    const nlohmann::json& ad = obj.ad_id;
    const bool no_ad = ad.is_number_integer() && ad.get<int64_t>() == 0;
    if (!ad.is_null() && !no_ad) {
      Source source;
      source.ad = {{"ad_id", ad}};
      in.source = std::move(source);
    }
    publish(std::move(in));
  }

  void dispatch(const std::string& type, p::Object& obj) {
    if (type == "message_new") return message(obj.message ? *obj.message : obj.fields, false);
    if (type == "message_edit") return message(obj.fields, true);
    if (type == "message_event") return message_event(obj.fields);
    if (type == "message_allow") return allow_deny(obj.fields, true);
    if (type == "message_deny") return allow_deny(obj.fields, false);
    if (type == "wall_reply_new") return wall_reply(obj.fields);
    if (type == "lead_forms_new") return lead(obj.fields);
    // message_reply (our own outgoing message), group_join/leave, typing states, and every
    // type this code does not map.
    ignore(type);
  }
};

}  // namespace

Result<Callback> parse_callback(std::string_view body, const CommunitySettings& community,
                                SysMillis now) {
  p::Event event;
  if (Status read = p::read_event(body, event); !read) return read.error();
  Callback callback;
  if (!event.type || event.type->empty())
    return make_error(ErrorCode::bad_request, "parse", "type: is required and must be a string");
  callback.envelope.type = *event.type;
  callback.envelope.group_id = event.group_id;
  callback.envelope.secret = event.secret.value_or("");
  callback.envelope.event_id = event.event_id.value_or("");
  if (callback.envelope.type == "confirmation") return callback;
  std::string key = callback.envelope.event_id.empty() ? "sha256:" + sha256_hex(body)
                                                       : callback.envelope.event_id;
  Event mapping{community, body, std::move(key), now, {}};
  mapping.dispatch(callback.envelope.type, event.object);
  callback.mapped = std::move(mapping.out);
  return callback;
}

}  // namespace omnigate::vk

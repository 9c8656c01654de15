#include "connectors/telegram/telegram_parse.hpp"

#include <nlohmann/json.hpp>

#include "gateway/core/secrets.hpp"
#include "gateway/core/strings.hpp"
#include "gateway/http/request.hpp"
#include "gateway/model/formats.hpp"
#include "gateway/model/identifiers.hpp"
#include "gateway/model/json_reader.hpp"
#include "gateway/model/keyword_consent.hpp"
#include "gateway/model/tracking.hpp"

namespace omnigate::telegram {
namespace {

using Node = JsonNode;

// A Telegram date. One outside 1970..9999 (a forged 10^15) becomes a time the pipeline's
// schema guard replaces by received_at (and counts) -- never a signed overflow to year -32224.
SysMillis from_unix(int64_t seconds) {
  return formats::from_unix_seconds(seconds).value_or(SysMillis::min());
}

// The sender as a contact: the user id is Telegram's own, so it is verified.
Contact contact_of(const Node& user) {
  Contact contact;
  std::string name = user["first_name"].str().value_or("");
  if (auto last = user["last_name"].str()) name += (name.empty() ? "" : " ") + *last;
  if (!name.empty()) contact.display_name = name;
  if (auto id = user["id"].id_text())
    contact.identifiers.push_back({"telegram_user_id", *id, true, std::nullopt});
  if (auto username = user["username"].str()) {
    contact.identifiers.push_back({"telegram_username", *username, true, std::nullopt});
  }
  if (auto language = user["language_code"].str()) contact.language = *language;
  return contact;
}

Conversation conversation_of(const Node& chat) {
  Conversation c;
  c.id = chat["id"].id_text();
  std::string type = chat["type"].str().value_or("");
  if (type == "private")
    c.type = "private";
  else if (type == "group" || type == "supergroup")
    c.type = "group";
  else if (type == "channel")
    c.type = "channel";
  return c;
}

nlohmann::json file_ref(const Node& file) {
  nlohmann::json ref = nlohmann::json::object();
  if (auto id = file["file_id"].str()) ref["file_id"] = *id;
  if (auto unique = file["file_unique_id"].str()) ref["file_unique_id"] = *unique;
  return ref;
}

Attachment file_attachment(const Node& file, std::string type, OptString default_mime) {
  Attachment a;
  a.type = std::move(type);
  a.mime_type = file["mime_type"].str();
  if (!a.mime_type) a.mime_type = default_mime;
  a.file_name = file["file_name"].str();
  if (auto size = file["file_size"].i64(); size && *size >= 0) a.size = *size;
  a.provider_ref = file_ref(file);
  return a;
}

void add_attachments(const Node& msg, Message& message) {
  // photo[] holds the sizes of one picture; the largest is the last, but do not rely on order.
  auto sizes = msg["photo"].array();
  if (!sizes.empty()) {
    const Node* best = &sizes.front();
    for (const auto& s : sizes) {
      auto area = [](const Node& n) {
        return n["width"].i64().value_or(0) * n["height"].i64().value_or(0);
      };
      if (area(s) > area(*best)) best = &s;
    }
    Attachment a = file_attachment(*best, "image", "image/jpeg");
    if (auto w = (*best)["width"].i64()) a.provider_ref["width"] = *w;
    if (auto h = (*best)["height"].i64()) a.provider_ref["height"] = *h;
    message.attachments.push_back(std::move(a));
  }
  if (auto d = msg["document"]; d.present())
    message.attachments.push_back(file_attachment(d, "document", std::nullopt));
  if (auto v = msg["voice"]; v.present())
    message.attachments.push_back(file_attachment(v, "voice", "audio/ogg"));
  if (auto v = msg["audio"]; v.present())
    message.attachments.push_back(file_attachment(v, "audio", "audio/mpeg"));
  if (auto v = msg["video"]; v.present())
    message.attachments.push_back(file_attachment(v, "video", "video/mp4"));
  if (auto v = msg["video_note"]; v.present())
    message.attachments.push_back(file_attachment(v, "video_note", "video/mp4"));
  // An animation message also carries `document`: keep only the animation.
  if (auto v = msg["animation"]; v.present()) {
    std::erase_if(message.attachments, [](const Attachment& a) { return a.type == "document"; });
    message.attachments.push_back(file_attachment(v, "animation", "video/mp4"));
  }
  if (auto s = msg["sticker"]; s.present()) {
    const char* mime = s["is_video"].present() && s["is_video"].to_json() == true ? "video/webm"
                       : s["is_animated"].present() && s["is_animated"].to_json() == true
                           ? "application/x-tgsticker"
                           : "image/webp";
    Attachment a = file_attachment(s, "sticker", std::string(mime));
    if (auto emoji = s["emoji"].str()) a.caption = *emoji;
    message.attachments.push_back(std::move(a));
  }
  Node venue = msg["venue"];
  Node location = venue.present() ? venue["location"] : msg["location"];
  if (location.present()) {
    Attachment a;
    a.type = venue.present() ? "venue" : "location";
    // Only the coordinates Telegram sent; the schema guard drops a location outside WGS 84.
    a.location = nlohmann::json::object();
    if (auto v = location["latitude"].num()) a.location["latitude"] = *v;
    if (auto v = location["longitude"].num()) a.location["longitude"] = *v;
    if (venue.present()) {
      if (auto t = venue["title"].str()) a.location["title"] = *t;
      if (auto ad = venue["address"].str()) a.location["address"] = *ad;
    }
    message.attachments.push_back(std::move(a));
  }
  if (auto c = msg["contact"]; c.present()) {
    Attachment a;
    a.type = "contact";
    std::string name = c["first_name"].str().value_or("");
    if (auto last = c["last_name"].str()) name += (name.empty() ? "" : " ") + *last;
    a.contact = nlohmann::json::object();
    if (!name.empty()) a.contact["name"] = name;
    if (auto phone = c["phone_number"].str()) a.contact["phone"] = *phone;
    if (auto vcard = c["vcard"].str()) a.contact["vcard"] = *vcard;
    if (auto uid = c["user_id"].id_text()) a.contact["user_id"] = *uid;
    message.attachments.push_back(std::move(a));
  }
}

Consent telegram_consent(std::string purpose, std::string status, std::string method, SysMillis at,
                         std::string native_event) {
  return channel_consent("telegram", std::move(purpose), std::move(status), std::move(method), at,
                         std::move(native_event));
}

Result<Interaction> message_interaction(const Node& msg, bool edited, const BotSettings& bot) {
  auto message_id = msg["message_id"].i64();
  Node chat = msg["chat"];
  auto date = msg["date"].i64();
  std::string which = edited ? "edited_message" : "message";
  if (!message_id)
    return make_error(ErrorCode::invalid_field, "parse", which + ".message_id: is required");
  if (!chat.present() || !chat["id"].i64())
    return make_error(ErrorCode::invalid_field, "parse", which + ".chat.id: is required");
  if (!date) return make_error(ErrorCode::invalid_field, "parse", which + ".date: is required");

  Interaction in;
  in.channel = "telegram";
  in.account = bot.account;
  in.kind = edited ? "message_edit" : "message";
  in.occurred_at = from_unix(edited ? msg["edit_date"].i64().value_or(*date) : *date);
  Node from = msg["from"];
  if (from.present()) in.contact = contact_of(from);
  Conversation conversation = conversation_of(chat);
  // In a forum, every topic message "replies" to the topic's first message: that is the
  // thread, not a reply. Outside forums message_thread_id marks reply chains, not topics.
  bool topic_message =
      msg["is_topic_message"].present() && msg["is_topic_message"].to_json() == true;
  auto thread = msg["message_thread_id"].i64();
  if (auto reply = msg["reply_to_message"]["message_id"].i64()) {
    bool topic_root = msg["reply_to_message"]["forum_topic_created"].present() ||
                      (topic_message && thread && *reply == *thread);
    if (!topic_root) conversation.reply_to = std::to_string(*reply);
  }
  if (topic_message && thread) conversation.thread_id = std::to_string(*thread);
  in.conversation = std::move(conversation);

  Message message;
  message.native_id = std::to_string(*message_id);
  Node entities = msg["entities"];
  message.text = msg["text"].str();
  if (!message.text) {
    message.text = msg["caption"].str();
    entities = msg["caption_entities"];
  }
  if (entities.present())
    message.entities = entities.to_json();  // offsets in UTF-16 units, as sent
  message.group_id = msg["media_group_id"].str();
  if (edited) message.edit_of = message.native_id;  // Telegram edits keep the message id
  Node origin = msg["forward_origin"];
  if (origin.present()) {
    message.forwarded = origin.to_json();
  } else if (msg["forward_date"].present()) {  // Bot API before 7.0
    message.forwarded = nlohmann::json::object();
    message.forwarded["date"] = msg["forward_date"].i64().value_or(0);
    if (auto name = msg["forward_sender_name"].str()) message.forwarded["sender_name"] = *name;
    if (auto id = msg["forward_from"]["id"].id_text()) message.forwarded["from_user_id"] = *id;
    if (auto id = msg["forward_from_chat"]["id"].id_text()) message.forwarded["from_chat_id"] = *id;
  }
  add_attachments(msg, message);

  // The user shared their own contact: Telegram vouches for that phone number.
  Node shared = msg["contact"];
  if (shared.present() && from.present() && shared["user_id"].i64() &&
      shared["user_id"].i64() == from["id"].i64()) {
    if (auto phone = shared["phone_number"].str()) {
      std::string raw = *phone;
      if (!raw.empty() && raw.front() != '+') raw = "+" + raw;  // the API sends it without '+'
      if (!in.contact) in.contact = Contact{};
      in.contact->identifiers.push_back({"phone", std::nullopt, true, raw});
    }
  }

  if (!edited && message.text &&
      conversation_of(chat).type == std::optional<std::string>("private")) {
    if (auto payload = start_payload(*message.text)) {
      Source source;
      route_deep_link(source, *payload);
      in.source = std::move(source);
      in.consent.push_back(
          telegram_consent("service", "granted", "platform_event", in.occurred_at, "start"));
    } else {
      if (bot.stop_words.matches(*message.text))
        in.consent.push_back(stop_word_withdrawal("telegram", in.occurred_at));
    }
  }
  in.message = std::move(message);
  return in;
}

}  // namespace

std::optional<std::string> start_payload(std::string_view text) {
  if (text == "/start") return std::string();
  if (text.rfind("/start ", 0) != 0) return std::nullopt;
  return std::string(trim(text.substr(7)));
}

Result<ParsedUpdate> parse_update(std::string_view body, const BotSettings& bot, SysMillis now) {
  thread_local JsonReader reader;
  auto root = reader.object(body, "a Telegram Update");
  if (!root) return root.error();
  Node update = root.value();
  auto update_id = update["update_id"].i64();
  if (!update_id)
    return make_error(ErrorCode::bad_request, "parse",
                      "update_id: is required and must be an integer");
  ParsedUpdate out;
  out.update_id = *update_id;

  auto publish = [&](Interaction in) {
    out.add(std::move(in), std::to_string(*update_id), body, "application/json");
  };

  for (const char* key : {"message", "edited_message"}) {
    if (Node msg = update[key]; msg.present()) {
      auto in = message_interaction(msg, std::string_view(key) == "edited_message", bot);
      if (!in) return in.error();
      publish(std::move(in.value()));
      return out;
    }
  }
  if (Node q = update["callback_query"]; q.present()) {
    Interaction in;
    in.channel = "telegram";
    in.account = bot.account;
    in.kind = "action";
    in.occurred_at = now;  // a callback query carries no time of its own
    if (q["from"].present()) in.contact = contact_of(q["from"]);
    if (q["message"]["chat"].present()) in.conversation = conversation_of(q["message"]["chat"]);
    Action action;
    action.type = "button";
    action.data = q["data"].str();
    if (auto of = q["message"]["message_id"].i64()) action.of = std::to_string(*of);
    in.action = std::move(action);
    publish(std::move(in));
    return out;
  }
  if (Node m = update["my_chat_member"]; m.present()) {
    if (m["chat"]["type"].str() != std::optional<std::string>("private")) {
      out.ignored.push_back("my_chat_member_group");
      return out;
    }
    std::string status = m["new_chat_member"]["status"].str().value_or("");
    if (status != "kicked" && status != "member") {
      out.ignored.push_back("my_chat_member_" + (status.empty() ? std::string("unknown") : status));
      return out;
    }
    Interaction in;
    in.channel = "telegram";
    in.account = bot.account;
    in.kind = "consent";
    in.occurred_at = from_unix(m["date"].i64().value_or(
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count()));
    if (m["from"].present()) in.contact = contact_of(m["from"]);
    in.conversation = conversation_of(m["chat"]);
    // Blocking the bot stops every message: service consent for Telegram is withdrawn.
    in.consent.push_back(telegram_consent("service", status == "kicked" ? "withdrawn" : "granted",
                                          "platform_event", in.occurred_at,
                                          status == "kicked" ? "bot_blocked" : "bot_unblocked"));
    publish(std::move(in));
    return out;
  }
  for (const char* key :
       {"channel_post", "edited_channel_post", "message_reaction", "message_reaction_count",
        "inline_query", "chosen_inline_result", "shipping_query", "pre_checkout_query", "poll",
        "poll_answer", "chat_member", "chat_join_request"}) {
    if (update[key].present()) {
      out.ignored.push_back(key);
      return out;
    }
  }
  out.ignored.push_back("unknown");
  return out;
}

}  // namespace omnigate::telegram

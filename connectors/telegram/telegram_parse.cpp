#include "connectors/telegram/telegram_parse.hpp"

#include "connectors/telegram/telegram_payload.hpp"

#include <nlohmann/json.hpp>

#include "gateway/core/secrets.hpp"
#include "gateway/core/strings.hpp"
#include "gateway/http/request.hpp"
#include "gateway/model/formats.hpp"
#include "gateway/model/identifiers.hpp"
#include "gateway/model/keyword_consent.hpp"
#include "gateway/model/tracking.hpp"

namespace omnigate::telegram {
namespace {

namespace tg = payload;

// A Telegram date. One outside 1970..9999 (a forged 10^15) becomes a time the pipeline's
// schema guard replaces by received_at (and counts) -- never a signed overflow to year -32224.
SysMillis from_unix(int64_t seconds) {
  return formats::from_unix_seconds(seconds).value_or(SysMillis::min());
}

// The sender as a contact: the user id is Telegram's own, so it is verified.
Contact contact_of(tg::User& user) {
  Contact contact;
  std::string name = user.first_name.value_or("");
  if (user.last_name) name += (name.empty() ? "" : " ") + *user.last_name;
  if (!name.empty()) contact.display_name = std::move(name);
  if (user.id_text)
    contact.identifiers.push_back(
        {"telegram_user_id", std::move(*user.id_text), true, std::nullopt});
  if (user.username) {
    contact.identifiers.push_back(
        {"telegram_username", std::move(*user.username), true, std::nullopt});
  }
  if (user.language_code) contact.language = std::move(*user.language_code);
  return contact;
}

Conversation conversation_of(const tg::Chat& chat) {
  Conversation c;
  c.id = chat.id_text;
  const std::string type = chat.type.value_or("");
  if (type == "private")
    c.type = "private";
  else if (type == "group" || type == "supergroup")
    c.type = "group";
  else if (type == "channel")
    c.type = "channel";
  return c;
}

Attachment file_attachment(tg::File& file, std::string type, OptString default_mime) {
  Attachment a;
  a.type = std::move(type);
  a.mime_type = file.mime_type ? std::move(file.mime_type) : std::move(default_mime);
  a.file_name = std::move(file.file_name);
  if (file.file_size && *file.file_size >= 0) a.size = *file.file_size;
  a.provider_ref = nlohmann::json::object();
  if (file.file_id) a.provider_ref["file_id"] = std::move(*file.file_id);
  if (file.file_unique_id) a.provider_ref["file_unique_id"] = std::move(*file.file_unique_id);
  return a;
}

void add_attachments(tg::Message& msg, Message& message) {
  // photo[] holds the sizes of one picture; the largest is the last, but do not rely on order.
  if (!msg.photo.empty()) {
    auto area = [](const tg::File& f) { return f.width.value_or(0) * f.height.value_or(0); };
    tg::File* best = &msg.photo.front();
    for (auto& size : msg.photo)
      if (area(size) > area(*best)) best = &size;
    const OptInt width = best->width, height = best->height;
    Attachment a = file_attachment(*best, "image", "image/jpeg");
    if (width) a.provider_ref["width"] = *width;
    if (height) a.provider_ref["height"] = *height;
    message.attachments.push_back(std::move(a));
  }
  if (msg.document) message.attachments.push_back(file_attachment(*msg.document, "document", {}));
  if (msg.voice) message.attachments.push_back(file_attachment(*msg.voice, "voice", "audio/ogg"));
  if (msg.audio) message.attachments.push_back(file_attachment(*msg.audio, "audio", "audio/mpeg"));
  if (msg.video) message.attachments.push_back(file_attachment(*msg.video, "video", "video/mp4"));
  if (msg.video_note) {
    message.attachments.push_back(file_attachment(*msg.video_note, "video_note", "video/mp4"));
  }
  // An animation message also carries `document`: keep only the animation.
  if (msg.animation) {
    std::erase_if(message.attachments, [](const Attachment& a) { return a.type == "document"; });
    message.attachments.push_back(file_attachment(*msg.animation, "animation", "video/mp4"));
  }
  if (msg.sticker) {
    tg::File& s = *msg.sticker;
    const char* mime = s.is_video      ? "video/webm"
                       : s.is_animated ? "application/x-tgsticker"
                                       : "image/webp";
    OptString emoji = std::move(s.emoji);
    Attachment a = file_attachment(s, "sticker", std::string(mime));
    if (emoji) a.caption = std::move(*emoji);
    message.attachments.push_back(std::move(a));
  }
  const std::optional<tg::Location>& location = msg.venue ? msg.venue->location : msg.location;
  if (location) {
    Attachment a;
    a.type = msg.venue ? "venue" : "location";
    // Only the coordinates Telegram sent; the schema guard drops a location outside WGS 84.
    a.location = nlohmann::json::object();
    if (location->latitude) a.location["latitude"] = *location->latitude;
    if (location->longitude) a.location["longitude"] = *location->longitude;
    if (msg.venue) {
      if (msg.venue->title) a.location["title"] = *msg.venue->title;
      if (msg.venue->address) a.location["address"] = *msg.venue->address;
    }
    message.attachments.push_back(std::move(a));
  }
  if (msg.contact) {
    const tg::SharedContact& c = *msg.contact;
    Attachment a;
    a.type = "contact";
    std::string name = c.first_name.value_or("");
    if (c.last_name) name += (name.empty() ? "" : " ") + *c.last_name;
    a.contact = nlohmann::json::object();
    if (!name.empty()) a.contact["name"] = name;
    if (c.phone_number) a.contact["phone"] = *c.phone_number;
    if (c.vcard) a.contact["vcard"] = *c.vcard;
    if (c.user_id_text) a.contact["user_id"] = *c.user_id_text;
    message.attachments.push_back(std::move(a));
  }
}

Consent telegram_consent(std::string purpose, std::string status, std::string method, SysMillis at,
                         std::string native_event) {
  return channel_consent("telegram", std::move(purpose), std::move(status), std::move(method), at,
                         std::move(native_event));
}

Result<Interaction> message_interaction(tg::Message& msg, bool edited, const BotSettings& bot) {
  std::string which = edited ? "edited_message" : "message";
  if (!msg.message_id)
    return make_error(ErrorCode::invalid_field, "parse", which + ".message_id: is required");
  if (!msg.chat || !msg.chat->id)
    return make_error(ErrorCode::invalid_field, "parse", which + ".chat.id: is required");
  if (!msg.date) return make_error(ErrorCode::invalid_field, "parse", which + ".date: is required");

  Interaction in;
  in.channel = "telegram";
  in.account = bot.account;
  in.kind = edited ? "message_edit" : "message";
  in.occurred_at = from_unix(edited ? msg.edit_date.value_or(*msg.date) : *msg.date);
  // Read before contact_of moves the sender's strings out.
  const OptInt from_id = msg.from ? msg.from->id : std::nullopt;
  if (msg.from) in.contact = contact_of(*msg.from);
  Conversation conversation = conversation_of(*msg.chat);
  const bool private_chat = conversation.type == std::optional<std::string>("private");
  // In a forum, every topic message "replies" to the topic's first message: that is the
  // thread, not a reply. Outside forums message_thread_id marks reply chains, not topics.
  const OptInt thread = msg.message_thread_id;
  if (msg.reply_to_message && msg.reply_to_message->message_id) {
    const int64_t reply = *msg.reply_to_message->message_id;
    bool topic_root = msg.reply_to_message->forum_topic_created ||
                      (msg.is_topic_message && thread && reply == *thread);
    if (!topic_root) conversation.reply_to = std::to_string(reply);
  }
  if (msg.is_topic_message && thread) conversation.thread_id = std::to_string(*thread);
  in.conversation = std::move(conversation);

  Message message;
  message.native_id = std::to_string(*msg.message_id);
  nlohmann::json* entities = &msg.entities;
  message.text = std::move(msg.text);
  if (!message.text) {
    message.text = std::move(msg.caption);
    entities = &msg.caption_entities;
  }
  if (!entities->is_null()) message.entities = std::move(*entities);  // UTF-16 offsets, as sent
  message.group_id = std::move(msg.media_group_id);
  if (edited) message.edit_of = message.native_id;  // Telegram edits keep the message id
  if (!msg.forward_origin.is_null()) {
    message.forwarded = std::move(msg.forward_origin);
  } else if (msg.has_forward_date) {  // Bot API before 7.0
    message.forwarded = nlohmann::json::object();
    message.forwarded["date"] = msg.forward_date.value_or(0);
    if (msg.forward_sender_name) message.forwarded["sender_name"] = *msg.forward_sender_name;
    if (msg.forward_from_id) message.forwarded["from_user_id"] = *msg.forward_from_id;
    if (msg.forward_from_chat_id) message.forwarded["from_chat_id"] = *msg.forward_from_chat_id;
  }
  add_attachments(msg, message);

  // The user shared their own contact: Telegram vouches for that phone number.
  if (msg.contact && from_id && msg.contact->user_id == from_id) {
    if (msg.contact->phone_number) {
      std::string raw = *msg.contact->phone_number;
      if (!raw.empty() && raw.front() != '+') raw = "+" + raw;  // the API sends it without '+'
      if (!in.contact) in.contact = Contact{};
      in.contact->identifiers.push_back({"phone", std::nullopt, true, raw});
    }
  }

  if (!edited && message.text && private_chat) {
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
  auto read = payload::read_update(body);
  if (!read) return read.error();
  tg::Update& update = read.value();
  if (!update.update_id)
    return make_error(ErrorCode::bad_request, "parse",
                      "update_id: is required and must be an integer");
  ParsedUpdate out;
  out.update_id = *update.update_id;

  auto publish = [&](Interaction in) {
    out.add(std::move(in), std::to_string(*update.update_id), body, "application/json");
  };

  if (update.message) {
    auto in = message_interaction(*update.message, update.edited, bot);
    if (!in) return in.error();
    publish(std::move(in.value()));
    return out;
  }
  if (update.callback_query) {
    tg::CallbackQuery& q = *update.callback_query;
    Interaction in;
    in.channel = "telegram";
    in.account = bot.account;
    in.kind = "action";
    in.occurred_at = now;  // a callback query carries no time of its own
    if (q.from) in.contact = contact_of(*q.from);
    if (q.message_chat) in.conversation = conversation_of(*q.message_chat);
    Action action;
    action.type = "button";
    action.data = std::move(q.data);
    if (q.message_id) action.of = std::to_string(*q.message_id);
    in.action = std::move(action);
    publish(std::move(in));
    return out;
  }
  if (update.my_chat_member) {
    tg::ChatMemberUpdated& m = *update.my_chat_member;
    if (!m.chat || m.chat->type != std::optional<std::string>("private")) {
      out.ignored.push_back("my_chat_member_group");
      return out;
    }
    std::string status = m.new_status.value_or("");
    if (status != "kicked" && status != "member") {
      out.ignored.push_back("my_chat_member_" + (status.empty() ? std::string("unknown") : status));
      return out;
    }
    Interaction in;
    in.channel = "telegram";
    in.account = bot.account;
    in.kind = "consent";
    in.occurred_at = from_unix(m.date.value_or(
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count()));
    if (m.from) in.contact = contact_of(*m.from);
    in.conversation = conversation_of(*m.chat);
    // Blocking the bot stops every message: service consent for Telegram is withdrawn.
    in.consent.push_back(telegram_consent("service", status == "kicked" ? "withdrawn" : "granted",
                                          "platform_event", in.occurred_at,
                                          status == "kicked" ? "bot_blocked" : "bot_unblocked"));
    publish(std::move(in));
    return out;
  }
  out.ignored.push_back(update.other_type.empty() ? std::string("unknown")
                                                  : std::string(update.other_type));
  return out;
}

}  // namespace omnigate::telegram

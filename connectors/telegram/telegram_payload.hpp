// The parts of a Telegram Bot API Update the mapping uses, read in one pass over the bytes
// (gateway/model/json_scan.hpp): the reading is here, what they become is telegram_parse.cpp.
// A member that is missing, null or of another type is simply not set; only bytes that are
// not JSON fail. Field names are the Bot API's (https://core.telegram.org/bots/api#update).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/error.hpp"
#include "gateway/model/interaction.hpp"  // OptString, OptInt

namespace omnigate::telegram::payload {

struct User {
  OptInt id;
  OptString id_text;  // id as interaction.v1 keeps it
  OptString first_name, last_name, username, language_code;
};

struct Chat {
  OptInt id;
  OptString id_text;
  OptString type;
};

// PhotoSize, Document, Voice, Audio, Video, VideoNote, Animation, Sticker: what they share.
struct File {
  OptString file_id, file_unique_id, mime_type, file_name;
  OptInt file_size, width, height;
  // Sticker only.
  bool is_video = false, is_animated = false;
  OptString emoji;
};

struct Location {
  std::optional<double> latitude, longitude;
};

struct Venue {
  std::optional<Location> location;
  OptString title, address;
};

struct SharedContact {
  OptString first_name, last_name, phone_number, vcard;
  OptInt user_id;
  OptString user_id_text;
};

struct ReplyTo {
  OptInt message_id;
  bool forum_topic_created = false;  // present (the topic's first message)
};

struct Message {
  OptInt message_id, date, edit_date, message_thread_id;
  std::optional<Chat> chat;
  std::optional<User> from;
  bool is_topic_message = false;
  std::optional<ReplyTo> reply_to_message;
  OptString text, caption, media_group_id;
  // Kept as sent (offsets in UTF-16 units); null when absent.
  nlohmann::json entities, caption_entities, forward_origin;
  // Bot API before 7.0: forward_date and its companions instead of forward_origin.
  bool has_forward_date = false;
  OptInt forward_date;
  OptString forward_sender_name, forward_from_id, forward_from_chat_id;
  std::vector<File> photo;  // the sizes of one picture
  std::optional<File> document, voice, audio, video, video_note, animation, sticker;
  std::optional<Location> location;
  std::optional<Venue> venue;
  std::optional<SharedContact> contact;
};

struct CallbackQuery {
  std::optional<User> from;
  std::optional<Chat> message_chat;
  OptInt message_id;  // of the message with the button
  OptString data;
};

struct ChatMemberUpdated {
  std::optional<Chat> chat;
  std::optional<User> from;
  OptInt date;
  OptString new_status;  // new_chat_member.status
};

struct Update {
  OptInt update_id;
  std::optional<Message> message;  // `message` or `edited_message`
  bool edited = false;             // it was `edited_message`
  std::optional<CallbackQuery> callback_query;
  std::optional<ChatMemberUpdated> my_chat_member;
  // The first of the update types we acknowledge without publishing, in the order the mapping
  // checks them ("" when there is none).
  std::string_view other_type;
};

// bad_request for bytes that are not a JSON object ("... (a Telegram Update)").
Result<Update> read_update(std::string_view body);

}  // namespace omnigate::telegram::payload

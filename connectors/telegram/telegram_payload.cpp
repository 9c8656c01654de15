#include "connectors/telegram/telegram_payload.hpp"

#include <array>

#include "gateway/model/json_scan.hpp"

namespace omnigate::telegram::payload {
namespace {

using Value = JsonScan::Value;

// Update types acknowledged and not published, in the order the mapping names the first one.
constexpr std::array<std::string_view, 12> kOtherTypes = {
    "channel_post", "edited_channel_post",  "message_reaction", "message_reaction_count",
    "inline_query", "chosen_inline_result", "shipping_query",   "pre_checkout_query",
    "poll",         "poll_answer",          "chat_member",      "chat_join_request"};

// Each read_* takes a value that is present (not null); for one of another type than the Bot
// API's it returns the empty struct, which the mapping treats as a member without its fields.
class UpdateReader {
 public:
  explicit UpdateReader(JsonScan& scan) : scan_(scan) {}

  void field(std::string_view key, Value value, Update& update) {
    if (key == "update_id") {
      update.update_id = scan_.i64(value);
      return;
    }
    if (scan_.is_null(value)) return;  // a null member reads as absent
    if (key == "message") {
      // `message` wins over an `edited_message` in the same update.
      update.message = read_message(value);
      update.edited = false;
    } else if (key == "edited_message") {
      if (!update.message || update.edited) {
        update.message = read_message(value);
        update.edited = true;
      }
    } else if (key == "callback_query") {
      update.callback_query = read_callback_query(value);
    } else if (key == "my_chat_member") {
      update.my_chat_member = read_chat_member(value);
    } else {
      for (size_t i = 0; i < kOtherTypes.size(); ++i) {
        if (key != kOtherTypes[i]) continue;
        if (other_index_ > i) other_index_ = i;
        break;
      }
    }
  }

  std::string_view other_type() const {
    return other_index_ < kOtherTypes.size() ? kOtherTypes[other_index_] : std::string_view();
  }

 private:
  User read_user(Value value) {
    User user;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "id") {
        user.id_text = scan_.id_text(v, &user.id);
      } else if (key == "first_name") {
        user.first_name = scan_.str(v);
      } else if (key == "last_name") {
        user.last_name = scan_.str(v);
      } else if (key == "username") {
        user.username = scan_.str(v);
      } else if (key == "language_code") {
        user.language_code = scan_.str(v);
      }
    });
    return user;
  }

  Chat read_chat(Value value) {
    Chat chat;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "id") {
        chat.id_text = scan_.id_text(v, &chat.id);
      } else if (key == "type") {
        chat.type = scan_.str(v);
      }
    });
    return chat;
  }

  File read_file(Value value) {
    File file;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "file_id")
        file.file_id = scan_.str(v);
      else if (key == "file_unique_id")
        file.file_unique_id = scan_.str(v);
      else if (key == "mime_type")
        file.mime_type = scan_.str(v);
      else if (key == "file_name")
        file.file_name = scan_.str(v);
      else if (key == "file_size")
        file.file_size = scan_.i64(v);
      else if (key == "width")
        file.width = scan_.i64(v);
      else if (key == "height")
        file.height = scan_.i64(v);
      else if (key == "is_video")
        file.is_video = scan_.boolean(v) == true;
      else if (key == "is_animated")
        file.is_animated = scan_.boolean(v) == true;
      else if (key == "emoji")
        file.emoji = scan_.str(v);
    });
    return file;
  }

  Location read_location(Value value) {
    Location location;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "latitude")
        location.latitude = scan_.num(v);
      else if (key == "longitude")
        location.longitude = scan_.num(v);
    });
    return location;
  }

  Venue read_venue(Value value) {
    Venue venue;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "location") {
        if (!scan_.is_null(v)) venue.location = read_location(v);
      } else if (key == "title") {
        venue.title = scan_.str(v);
      } else if (key == "address") {
        venue.address = scan_.str(v);
      }
    });
    return venue;
  }

  SharedContact read_contact(Value value) {
    SharedContact contact;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "first_name") {
        contact.first_name = scan_.str(v);
      } else if (key == "last_name") {
        contact.last_name = scan_.str(v);
      } else if (key == "phone_number") {
        contact.phone_number = scan_.str(v);
      } else if (key == "vcard") {
        contact.vcard = scan_.str(v);
      } else if (key == "user_id") {
        contact.user_id_text = scan_.id_text(v, &contact.user_id);
      }
    });
    return contact;
  }

  // The id of a nested object ({"id": ...} of forward_from, forward_from_chat) as text.
  OptString id_of(Value value) {
    OptString id;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "id") id = scan_.id_text(v);
    });
    return id;
  }

  Message read_message(Value value) {
    Message m;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "message_id") return void(m.message_id = scan_.i64(v));
      if (key == "date") return void(m.date = scan_.i64(v));
      if (key == "edit_date") return void(m.edit_date = scan_.i64(v));
      if (key == "message_thread_id") return void(m.message_thread_id = scan_.i64(v));
      if (key == "text") return void(m.text = scan_.str(v));
      if (key == "caption") return void(m.caption = scan_.str(v));
      if (key == "media_group_id") return void(m.media_group_id = scan_.str(v));
      if (key == "is_topic_message") return void(m.is_topic_message = scan_.boolean(v) == true);
      if (key == "forward_sender_name") return void(m.forward_sender_name = scan_.str(v));
      if (scan_.is_null(v)) return;  // the members below count only when present
      if (key == "chat") return void(m.chat = read_chat(v));
      if (key == "from") return void(m.from = read_user(v));
      if (key == "entities") return void(m.entities = scan_.to_json(v));
      if (key == "caption_entities") return void(m.caption_entities = scan_.to_json(v));
      if (key == "forward_origin") return void(m.forward_origin = scan_.to_json(v));
      if (key == "forward_date") {
        m.has_forward_date = true;
        m.forward_date = scan_.i64(v);
        return;
      }
      if (key == "forward_from") return void(m.forward_from_id = id_of(v));
      if (key == "forward_from_chat") return void(m.forward_from_chat_id = id_of(v));
      if (key == "reply_to_message") return void(m.reply_to_message = read_reply_to(v));
      if (key == "photo") {
        m.photo.clear();
        scan_.items(v, [&](Value size) { m.photo.push_back(read_file(size)); });
        return;
      }
      if (key == "document") return void(m.document = read_file(v));
      if (key == "voice") return void(m.voice = read_file(v));
      if (key == "audio") return void(m.audio = read_file(v));
      if (key == "video") return void(m.video = read_file(v));
      if (key == "video_note") return void(m.video_note = read_file(v));
      if (key == "animation") return void(m.animation = read_file(v));
      if (key == "sticker") return void(m.sticker = read_file(v));
      if (key == "location") return void(m.location = read_location(v));
      if (key == "venue") return void(m.venue = read_venue(v));
      if (key == "contact") return void(m.contact = read_contact(v));
    });
    return m;
  }

  ReplyTo read_reply_to(Value value) {
    ReplyTo reply;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "message_id")
        reply.message_id = scan_.i64(v);
      else if (key == "forum_topic_created")
        reply.forum_topic_created = !scan_.is_null(v);
    });
    return reply;
  }

  CallbackQuery read_callback_query(Value value) {
    CallbackQuery q;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "data") return void(q.data = scan_.str(v));
      if (scan_.is_null(v)) return;
      if (key == "from") return void(q.from = read_user(v));
      if (key != "message") return;
      scan_.fields(v, [&](std::string_view inner, Value w) {
        if (inner == "message_id")
          q.message_id = scan_.i64(w);
        else if (inner == "chat" && !scan_.is_null(w))
          q.message_chat = read_chat(w);
      });
    });
    return q;
  }

  ChatMemberUpdated read_chat_member(Value value) {
    ChatMemberUpdated m;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "date") return void(m.date = scan_.i64(v));
      if (scan_.is_null(v)) return;
      if (key == "chat") return void(m.chat = read_chat(v));
      if (key == "from") return void(m.from = read_user(v));
      if (key != "new_chat_member") return;
      scan_.fields(v, [&](std::string_view inner, Value w) {
        if (inner == "status") m.new_status = scan_.str(w);
      });
    });
    return m;
  }

  JsonScan& scan_;
  size_t other_index_ = kOtherTypes.size();
};

}  // namespace

Result<Update> read_update(std::string_view body) {
  thread_local JsonScan scan;
  Update update;
  UpdateReader reader(scan);
  Status scanned = scan.object(body, "a Telegram Update", [&](std::string_view key, Value value) {
    reader.field(key, value, update);
  });
  if (!scanned) return scanned.error();
  update.other_type = reader.other_type();
  return update;
}

}  // namespace omnigate::telegram::payload

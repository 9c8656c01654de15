#include "connectors/vk/vk_payload.hpp"

#include "gateway/model/json_scan.hpp"

namespace omnigate::vk::payload {
namespace {

using Value = JsonScan::Value;

class EventReader {
 public:
  explicit EventReader(JsonScan& scan) : scan_(scan) {}

  void field(std::string_view key, Value value, Event& event) {
    if (key == "type") {
      event.type = scan_.str(value);
    } else if (key == "group_id") {
      event.group_id = scan_.i64(value);
    } else if (key == "secret") {
      event.secret = scan_.str(value);
    } else if (key == "event_id") {
      event.event_id = scan_.str(value);
    } else if (key == "object") {
      if (object_seen_) event.object = Object();  // repeated: the last one counts, as everywhere
      object_seen_ = true;
      read_object(value, event.object);
    }
  }

 private:
  // A value kept as sent (fetch fields, sticker ids, ad_id): null reads as absent.
  nlohmann::json kept(Value value) { return scan_.is_null(value) ? nullptr : scan_.to_json(value); }

  // In place: Fields is large, and a returned one would be moved member by member.
  void read_object(Value value, Object& object) {
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "message") {
        // The wrapper's message; a bare message has no member of that name.
        if (!scan_.is_object(v)) return;
        Fields& message = object.message.emplace();
        scan_.fields(v, [&](std::string_view inner, Value w) { read_field(inner, w, message); });
        return;
      }
      read_field(key, v, object.fields);
    });
  }

  void read_field(std::string_view key, Value v, Fields& f) {
    if (key == "peer_id") return void(f.peer_id = scan_.i64(v));
    if (key == "from_id") return void(f.from_id = scan_.i64(v));
    if (key == "user_id") return void(f.user_id = scan_.i64(v));
    if (key == "date") return void(f.date = scan_.i64(v));
    if (key == "update_time") return void(f.update_time = scan_.i64(v));
    if (key == "id") return void(f.id = scan_.id_text(v));
    if (key == "conversation_message_id") return void(f.conversation_message_id = scan_.id_text(v));
    if (key == "text") return void(f.text = scan_.str(v));
    if (key == "ref") return void(f.ref = scan_.str(v));
    if (key == "ref_source") return void(f.ref_source = scan_.str(v));
    if (key == "key") return void(f.key = scan_.str(v));
    if (key == "owner_id") return void(f.owner_id = scan_.id_text(v));
    if (key == "post_id") return void(f.post_id = scan_.id_text(v));
    if (key == "reply_to_comment") return void(f.reply_to_comment = scan_.id_text(v));
    if (key == "form_name") return void(f.form_name = scan_.str(v));
    if (key == "form_id") return void(f.form_id = scan_.id_text(v));
    if (scan_.is_null(v)) return;  // the members below count only when present
    if (key == "payload") {
      f.payload = scan_.is_string(v) ? scan_.str(v) : scan_.minified(v);
      return;
    }
    if (key == "attachments") {
      f.attachments.clear();
      scan_.items(v, [&](Value item) { read_attachment(item, f.attachments.emplace_back()); });
      return;
    }
    if (key == "geo") {
      f.geo.reset();
      if (scan_.is_object(v)) f.geo = read_geo(v);
      return;
    }
    if (key == "fwd_messages") {
      // Item by item: an empty array (in nearly every message) builds nothing.
      f.fwd_messages = nullptr;
      scan_.items(v, [&](Value item) { f.fwd_messages.push_back(scan_.to_json(item)); });
      return;
    }
    if (key == "reply_message") {
      f.reply_message.reset();
      if (!scan_.is_object(v)) return;
      Reply reply;
      scan_.fields(v, [&](std::string_view inner, Value w) {
        if (inner == "id")
          reply.id = scan_.id_text(w);
        else if (inner == "conversation_message_id")
          reply.conversation_message_id = scan_.id_text(w);
      });
      f.reply_message = std::move(reply);
      return;
    }
    if (key == "answers") {
      f.answers.clear();
      scan_.items(v, [&](Value item) {
        Answer answer;
        scan_.fields(item, [&](std::string_view inner, Value w) {
          if (inner == "key")
            answer.key = scan_.str(w);
          else if (inner == "answer")
            answer.answer = scan_.str(w);
        });
        f.answers.push_back(std::move(answer));
      });
      return;
    }
    if (key == "ad_id") return void(f.ad_id = scan_.to_json(v));
  }

  // {type, <type>: object}: the objects are kept by name until the item's type is known.
  void read_attachment(Value value, Attachment& attachment) {
    OptString type;
    std::vector<std::pair<std::string, Media>> objects;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "type") return void(type = scan_.str(v));
      if (!scan_.is_object(v)) return;
      auto& [name, media] = objects.emplace_back();
      name = key;
      read_media(v, media);
    });
    attachment.type = type.value_or("unknown");
    // The last object of that name, as the last `type` is the one kept.
    for (auto it = objects.rbegin(); it != objects.rend(); ++it) {
      if (it->first != attachment.type) continue;
      attachment.media = std::move(it->second);
      break;
    }
  }

  void read_media(Value value, Media& media) {
    int64_t best_area = -1;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "owner_id") return void(media.owner_id = kept(v));
      if (key == "id") return void(media.id = kept(v));
      if (key == "access_key") return void(media.access_key = kept(v));
      if (key == "title") return void(media.title = scan_.str(v));
      if (key == "ext") return void(media.ext = scan_.str(v));
      if (key == "size") return void(media.size = scan_.i64(v));
      if (key == "product_id") return void(media.product_id = kept(v));
      if (key == "sticker_id") return void(media.sticker_id = kept(v));
      if (key == "url") return void(media.url = scan_.str(v));
      if (key != "sizes") return;
      // VK lists a photo's sizes by type letter, not by size.
      media.has_best_size = false;
      best_area = -1;
      scan_.items(v, [&](Value size) {
        OptString url;
        OptInt width, height;
        scan_.fields(size, [&](std::string_view inner, Value w) {
          if (inner == "url")
            url = scan_.str(w);
          else if (inner == "width")
            width = scan_.i64(w);
          else if (inner == "height")
            height = scan_.i64(w);
        });
        int64_t area = width.value_or(0) * height.value_or(0);
        if (area <= best_area) return;
        best_area = area;
        media.has_best_size = true;
        media.best_url = std::move(url);
        media.best_width = width;
        media.best_height = height;
      });
    });
  }

  Geo read_geo(Value value) {
    Geo geo;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "coordinates") {
        scan_.fields(v, [&](std::string_view inner, Value w) {
          if (inner == "latitude")
            geo.latitude = scan_.num(w);
          else if (inner == "longitude")
            geo.longitude = scan_.num(w);
        });
      } else if (key == "place") {
        scan_.fields(v, [&](std::string_view inner, Value w) {
          if (inner == "title") geo.place_title = scan_.str(w);
        });
      }
    });
    return geo;
  }

  JsonScan& scan_;
  bool object_seen_ = false;
};

}  // namespace

Status read_event(std::string_view body, Event& event) {
  thread_local JsonScan scan;
  EventReader reader(scan);
  return scan.object(body, "a VK Callback API event",
                     [&](std::string_view key, Value value) { reader.field(key, value, event); });
}

}  // namespace omnigate::vk::payload

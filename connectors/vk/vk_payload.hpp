// The parts of a VK Callback API event the mapping uses, read in one pass over the bytes
// (gateway/model/json_scan.hpp): the reading is here, what they become is vk_parse.cpp.
// A member that is missing, null or of another type is simply not set; only bytes that are
// not JSON fail. Field names are VK's (https://dev.vk.com/en/api/callback/getting-started).
//
// VK does not promise an order: `type` may follow `object`, and in attachments[] the item's
// `type` may follow the object it names. So `object` is read into one struct that holds what
// every mapped type needs, and each attachment item keeps its objects until its type is known.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/core/error.hpp"
#include "gateway/model/interaction.hpp"  // OptString, OptInt

namespace omnigate::vk::payload {

// What a media object of attachments[] can carry, whatever its type.
struct Media {
  // The fetch fields, with VK's JSON types (numbers stay numbers); null when absent.
  nlohmann::json owner_id, id, access_key;
  // photo: the largest of `sizes` by area (the first of equal ones); unset without sizes.
  bool has_best_size = false;
  OptString best_url;
  OptInt best_width, best_height;
  // doc
  OptString title, ext;
  OptInt size;
  // sticker
  nlohmann::json product_id, sticker_id;
  // link
  OptString url;
};

struct Attachment {
  std::string type;  // "unknown" when the item has no string `type`
  Media media;       // the item's member named by `type`; empty when there is none
};

struct Geo {
  std::optional<double> latitude, longitude;  // coordinates.*
  OptString place_title;                      // place.title
};

struct Reply {
  OptString id, conversation_message_id;
};

struct Answer {
  OptString key, answer;
};

// The members of a message (message_new, message_edit), a message_event, message_allow/deny,
// a wall comment (wall_reply_new) and a lead form (lead_forms_new): names they share mean the
// same thing in each, and are read the same way.
struct Fields {
  OptInt peer_id, from_id, user_id, date, update_time;
  OptString id, conversation_message_id;  // as interaction.v1 keeps ids (text)
  OptString text, ref, ref_source, key;
  // A JSON string as is, anything else minified in the sender's key order; unset for null.
  OptString payload;
  std::vector<Attachment> attachments;
  std::optional<Geo> geo;              // when `geo` is an object
  nlohmann::json fwd_messages;         // null unless a non-empty array
  std::optional<Reply> reply_message;  // when `reply_message` is an object
  OptString owner_id, post_id, reply_to_comment;
  OptString form_name, form_id;
  std::vector<Answer> answers;
  nlohmann::json ad_id;  // as sent; null when absent
};

struct Object {
  Fields fields;
  // message_new since API 5.103 wraps the message: {message, client_info}.
  std::optional<Fields> message;
};

struct Event {
  OptString type;
  OptInt group_id;
  OptString secret, event_id;
  Object object;
};

// Fills a default-constructed `event` (an out-parameter: the struct is large, and a returned
// one would be moved member by member). bad_request for bytes that are not a JSON object
// ("... (a VK Callback API event)").
Status read_event(std::string_view body, Event& event);

}  // namespace omnigate::vk::payload

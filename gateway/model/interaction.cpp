#include "gateway/model/interaction.hpp"

#include <rapidjson/writer.h>

#include <algorithm>
#include <set>

#include "gateway/core/limits.hpp"
#include "gateway/model/formats.hpp"

namespace omnigate {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

const std::vector<std::string_view> kChannels = {"telegram", "whatsapp", "vk",
                                                 "email",    "webform",  "api"};
const std::vector<std::string_view> kKinds = {"message", "message_edit", "lead",  "consent",
                                              "status",  "reaction",     "action"};
const std::vector<std::string_view> kIdentifierTypes = {"phone",
                                                        "email",
                                                        "telegram_user_id",
                                                        "telegram_username",
                                                        "whatsapp_wa_id",
                                                        "whatsapp_user_id",
                                                        "vk_user_id"};
const std::vector<std::string_view> kAttachmentTypes = {
    "image", "video",   "audio",     "voice",      "document", "sticker", "location",
    "venue", "contact", "animation", "video_note", "link",     "other"};
const std::vector<std::string_view> kConversationTypes = {"private", "group", "channel"};
const std::vector<std::string_view> kStatusStates = {"sent",   "delivered", "read",
                                                     "played", "failed",    "bounced"};
const std::vector<std::string_view> kActionTypes = {"button", "list", "command", "postback"};
const std::vector<std::string_view> kConsentStatuses = {"granted", "withdrawn", "pending"};
const std::vector<std::string_view> kConsentMethods = {
    "web_form_checkbox", "double_opt_in", "unsubscribe_link", "keyword",
    "platform_event",    "contact_share", "lead_form",        "api"};

// ---------------------------------------------------------------------------- writing

namespace {

void put(ojson& out, const char* key, const OptString& value) {
  if (value) out[key] = *value;
}

void put_json(ojson& out, const char* key, const json& value) {
  if (!value.is_null()) out[key] = value;
}

void put_pairs(ojson& out, const char* key, const StringPairs& pairs) {
  if (pairs.empty()) return;
  ojson object = ojson::object();
  for (const auto& [k, v] : pairs) object[k] = v;
  out[key] = std::move(object);
}

ojson contact_json(const Contact& contact) {
  ojson out = ojson::object();
  put(out, "display_name", contact.display_name);
  if (!contact.identifiers.empty()) {
    ojson list = ojson::array();
    for (const auto& id : contact.identifiers) {
      ojson item = {{"type", id.type}};
      put(item, "value", id.value);
      item["verified"] = id.verified;
      put(item, "raw", id.raw);
      list.push_back(std::move(item));
    }
    out["identifiers"] = std::move(list);
  }
  put(out, "language", contact.language);
  return out;
}

ojson message_json(const Message& message) {
  ojson out = {{"native_id", message.native_id}};
  put(out, "text", message.text);
  put(out, "subject", message.subject);
  put_json(out, "entities", message.entities);
  if (!message.attachments.empty()) {
    ojson list = ojson::array();
    for (const auto& a : message.attachments) {
      ojson item = {{"type", a.type}};
      put(item, "mime_type", a.mime_type);
      put(item, "file_name", a.file_name);
      if (a.size) item["size"] = *a.size;
      put(item, "caption", a.caption);
      put(item, "url", a.url);
      put_json(item, "location", a.location);
      put_json(item, "contact", a.contact);
      put_json(item, "provider_ref", a.provider_ref);
      list.push_back(std::move(item));
    }
    out["attachments"] = std::move(list);
  }
  put(out, "group_id", message.group_id);
  put_json(out, "forwarded", message.forwarded);
  put(out, "edit_of", message.edit_of);
  return out;
}

ojson source_json(const Source& source) {
  ojson out = ojson::object();
  if (!source.utm.empty()) {
    ojson utm = ojson::object();
    put(utm, "source", source.utm.source);
    put(utm, "medium", source.utm.medium);
    put(utm, "campaign", source.utm.campaign);
    put(utm, "content", source.utm.content);
    put(utm, "term", source.utm.term);
    out["utm"] = std::move(utm);
  }
  put(out, "page_url", source.page_url);
  put(out, "referrer", source.referrer);
  put(out, "deep_link", source.deep_link);
  put_pairs(out, "params", source.params);
  put_json(out, "ad", source.ad);
  return out;
}

ojson consent_json(const Consent& consent) {
  ojson out = {{"purpose", consent.purpose},
               {"status", consent.status},
               {"channels", consent.channels},
               {"method", consent.method},
               {"captured_at", format_rfc3339(consent.captured_at)}};
  const ConsentEvidence& e = consent.evidence;
  ojson evidence = ojson::object();
  put(evidence, "ip", e.ip);
  put(evidence, "user_agent", e.user_agent);
  put(evidence, "page_url", e.page_url);
  put(evidence, "text_id", e.text_id);
  put(evidence, "text_version", e.text_version);
  put(evidence, "text_sha256", e.text_sha256);
  put(evidence, "policy_url", e.policy_url);
  put(evidence, "native_event", e.native_event);
  put(evidence, "submission_id", e.submission_id);
  put(evidence, "linked_interaction_id", e.linked_interaction_id);
  if (!evidence.empty()) out["evidence"] = std::move(evidence);
  return out;
}

}  // namespace

ojson to_json(const Interaction& in) {
  ojson out = {{"schema", kSchemaName},
               {"id", in.id},
               {"channel", in.channel},
               {"account", in.account},
               {"kind", in.kind},
               {"occurred_at", format_rfc3339(in.occurred_at)},
               {"received_at", format_rfc3339(in.received_at)}};
  if (in.contact) out["contact"] = contact_json(*in.contact);
  if (in.conversation) {
    ojson c = ojson::object();
    put(c, "id", in.conversation->id);
    put(c, "type", in.conversation->type);
    put(c, "reply_to", in.conversation->reply_to);
    put(c, "thread_id", in.conversation->thread_id);
    out["conversation"] = std::move(c);
  }
  if (in.message) out["message"] = message_json(*in.message);
  if (in.lead) {
    ojson lead = {{"form", in.lead->form}};
    put_pairs(lead, "fields", in.lead->fields);
    out["lead"] = std::move(lead);
  }
  if (in.status) {
    ojson s = {{"of", in.status->of}, {"state", in.status->state}};
    put(s, "recipient", in.status->recipient);
    put_json(s, "error", in.status->error);
    out["status"] = std::move(s);
  }
  if (in.reaction) {
    out["reaction"] = {{"of", in.reaction->of}, {"emoji", in.reaction->emoji}};
    // Only a removal says so: a reaction that is set has no `removed` key.
    if (in.reaction->removed) out["reaction"]["removed"] = true;
  }
  if (in.action) {
    ojson a = {{"type", in.action->type}};
    put(a, "data", in.action->data);
    put(a, "title", in.action->title);
    put(a, "of", in.action->of);
    out["action"] = std::move(a);
  }
  if (in.source && !in.source->empty()) out["source"] = source_json(*in.source);
  if (!in.consent.empty()) {
    ojson list = ojson::array();
    for (const auto& c : in.consent) list.push_back(consent_json(c));
    out["consent"] = std::move(list);
  }
  if (!in.tags.empty()) out["tags"] = in.tags;
  if (in.raw) {
    out["raw"] = {{"sha256", in.raw->sha256}, {"content_type", in.raw->content_type}};
    if (in.raw->object)
      out["raw"]["object"] = {{"bucket", in.raw->object->bucket}, {"name", in.raw->object->name}};
  }
  return out;
}

namespace {

// RapidJSON's output stream over a std::string the caller owns. Characters go into storage
// already sized: the Writer announces each run (PutReserve, found by argument-dependent lookup
// before RapidJSON's generic one) and then writes it unchecked (PutUnsafe); finish() trims the
// string to what was written. A push_back per character was a fifth of serialize's
// instructions.
struct StringOutput {
  using Ch = char;
  std::string& out;
  size_t length = 0;
  void reserve(size_t count) {
    if (length + count > out.size()) [[unlikely]]
      grow(count);
  }
  // The validating string writer puts character by character: one compare and a store.
  void Put(char c) {
    if (length == out.size()) [[unlikely]]
      grow(1);
    out[length++] = c;
  }
  [[gnu::noinline]] void grow(size_t count) {
    out.resize(std::max(out.size() * 2, length + count));
  }
  void Flush() {}
  void finish() { out.resize(length); }
};
inline void PutReserve(StringOutput& stream, size_t count) {
  stream.reserve(count);
}
inline void PutUnsafe(StringOutput& stream, char c) {
  stream.out[stream.length++] = c;
}

// interaction.v1 written straight into one string with RapidJSON's Writer (its escaping, its
// UTF-8 check), in to_json()'s key order: no DOM, no ordered map, one buffer. The free-form
// provider values (entities, location, ...) are nlohmann values already and are written as
// they dump. write() is false when a string is not valid UTF-8 (serialize() then falls back to
// to_json(), which replaces the bad bytes).
class DocumentWriter {
 public:
  explicit DocumentWriter(std::string& out) : output_{out}, writer_(output_) {}

  bool write(const Interaction& in) {
    writer_.StartObject();
    string("schema", kSchemaName);
    string("id", in.id);
    string("channel", in.channel);
    string("account", in.account);
    string("kind", in.kind);
    string("occurred_at", format_rfc3339(in.occurred_at));
    string("received_at", format_rfc3339(in.received_at));
    if (in.contact) contact(*in.contact);
    if (in.conversation) {
      key("conversation");
      writer_.StartObject();
      optional("id", in.conversation->id);
      optional("type", in.conversation->type);
      optional("reply_to", in.conversation->reply_to);
      optional("thread_id", in.conversation->thread_id);
      writer_.EndObject();
    }
    if (in.message) message(*in.message);
    if (in.lead) {
      key("lead");
      writer_.StartObject();
      string("form", in.lead->form);
      pairs("fields", in.lead->fields);
      writer_.EndObject();
    }
    if (in.status) {
      key("status");
      writer_.StartObject();
      string("of", in.status->of);
      string("state", in.status->state);
      optional("recipient", in.status->recipient);
      free_value("error", in.status->error);
      writer_.EndObject();
    }
    if (in.reaction) {
      key("reaction");
      writer_.StartObject();
      string("of", in.reaction->of);
      string("emoji", in.reaction->emoji);
      if (in.reaction->removed) {  // only a removal says so
        key("removed");
        writer_.Bool(true);
      }
      writer_.EndObject();
    }
    if (in.action) {
      key("action");
      writer_.StartObject();
      string("type", in.action->type);
      optional("data", in.action->data);
      optional("title", in.action->title);
      optional("of", in.action->of);
      writer_.EndObject();
    }
    if (in.source && !in.source->empty()) source(*in.source);
    if (!in.consent.empty()) {
      key("consent");
      writer_.StartArray();
      for (const auto& c : in.consent) consent(c);
      writer_.EndArray();
    }
    if (!in.tags.empty()) strings("tags", in.tags);
    if (in.raw) {
      key("raw");
      writer_.StartObject();
      string("sha256", in.raw->sha256);
      string("content_type", in.raw->content_type);
      if (in.raw->object) {
        key("object");
        writer_.StartObject();
        string("bucket", in.raw->object->bucket);
        string("name", in.raw->object->name);
        writer_.EndObject();
      }
      writer_.EndObject();
    }
    writer_.EndObject();
    output_.finish();
    return valid_ && writer_.IsComplete();
  }

 private:
  void key(std::string_view name) { valid_ = writer_.Key(name.data(), size(name)) && valid_; }
  void value(std::string_view text) { valid_ = writer_.String(text.data(), size(text)) && valid_; }
  void string(std::string_view name, std::string_view text) {
    key(name);
    value(text);
  }
  void optional(std::string_view name, const OptString& text) {
    if (text) string(name, *text);
  }
  void strings(std::string_view name, const std::vector<std::string>& items) {
    key(name);
    writer_.StartArray();
    for (const auto& item : items) value(item);
    writer_.EndArray();
  }
  void free_value(std::string_view name, const json& free) {
    if (free.is_null()) return;
    key(name);
    const std::string dumped = free.dump(-1, ' ', false, json::error_handler_t::replace);
    writer_.RawValue(dumped.data(), dumped.size(),
                     free.is_array() ? rapidjson::kArrayType : rapidjson::kObjectType);
  }
  // An object from pairs; a repeated key keeps its first place and its last value, as an
  // ordered map assigned in turn would.
  void pairs(std::string_view name, const StringPairs& items) {
    if (items.empty()) return;
    key(name);
    writer_.StartObject();
    for (size_t i = 0; i < items.size(); ++i) {
      const auto& [k, v] = items[i];
      bool seen_before = false;
      for (size_t j = 0; j < i && !seen_before; ++j) seen_before = items[j].first == k;
      if (seen_before) continue;
      const std::string* last = &v;
      for (size_t j = i + 1; j < items.size(); ++j)
        if (items[j].first == k) last = &items[j].second;
      string(k, *last);
    }
    writer_.EndObject();
  }
  void contact(const Contact& c) {
    key("contact");
    writer_.StartObject();
    optional("display_name", c.display_name);
    if (!c.identifiers.empty()) {
      key("identifiers");
      writer_.StartArray();
      for (const auto& id : c.identifiers) {
        writer_.StartObject();
        string("type", id.type);
        optional("value", id.value);
        key("verified");
        writer_.Bool(id.verified);
        optional("raw", id.raw);
        writer_.EndObject();
      }
      writer_.EndArray();
    }
    optional("language", c.language);
    writer_.EndObject();
  }
  void message(const Message& m) {
    key("message");
    writer_.StartObject();
    string("native_id", m.native_id);
    optional("text", m.text);
    optional("subject", m.subject);
    free_value("entities", m.entities);
    if (!m.attachments.empty()) {
      key("attachments");
      writer_.StartArray();
      for (const auto& a : m.attachments) {
        writer_.StartObject();
        string("type", a.type);
        optional("mime_type", a.mime_type);
        optional("file_name", a.file_name);
        if (a.size) {
          key("size");
          writer_.Int64(*a.size);
        }
        optional("caption", a.caption);
        optional("url", a.url);
        free_value("location", a.location);
        free_value("contact", a.contact);
        free_value("provider_ref", a.provider_ref);
        writer_.EndObject();
      }
      writer_.EndArray();
    }
    optional("group_id", m.group_id);
    free_value("forwarded", m.forwarded);
    optional("edit_of", m.edit_of);
    writer_.EndObject();
  }
  void source(const Source& s) {
    key("source");
    writer_.StartObject();
    if (!s.utm.empty()) {
      key("utm");
      writer_.StartObject();
      optional("source", s.utm.source);
      optional("medium", s.utm.medium);
      optional("campaign", s.utm.campaign);
      optional("content", s.utm.content);
      optional("term", s.utm.term);
      writer_.EndObject();
    }
    optional("page_url", s.page_url);
    optional("referrer", s.referrer);
    optional("deep_link", s.deep_link);
    pairs("params", s.params);
    free_value("ad", s.ad);
    writer_.EndObject();
  }
  void consent(const Consent& c) {
    writer_.StartObject();
    string("purpose", c.purpose);
    string("status", c.status);
    strings("channels", c.channels);
    string("method", c.method);
    string("captured_at", format_rfc3339(c.captured_at));
    const ConsentEvidence& e = c.evidence;
    const OptString* fields[] = {
        &e.ip,          &e.user_agent, &e.page_url,     &e.text_id,       &e.text_version,
        &e.text_sha256, &e.policy_url, &e.native_event, &e.submission_id, &e.linked_interaction_id};
    static constexpr const char* kNames[] = {
        "ip",          "user_agent", "page_url",     "text_id",       "text_version",
        "text_sha256", "policy_url", "native_event", "submission_id", "linked_interaction_id"};
    bool any = false;
    for (const OptString* f : fields) any = any || f->has_value();
    if (any) {
      key("evidence");
      writer_.StartObject();
      for (size_t i = 0; i < std::size(fields); ++i) optional(kNames[i], *fields[i]);
      writer_.EndObject();
    }
    writer_.EndObject();
  }
  static rapidjson::SizeType size(std::string_view text) {
    return static_cast<rapidjson::SizeType>(text.size());  // every text is capped far below 4 GiB
  }

  StringOutput output_;
  rapidjson::Writer<StringOutput, rapidjson::UTF8<>, rapidjson::UTF8<>, rapidjson::CrtAllocator,
                    rapidjson::kWriteValidateEncodingFlag>
      writer_;
  bool valid_ = true;
};

}  // namespace

std::string serialize(const Interaction& interaction) {
  std::string out(1024, '\0');  // sized, not reserved: StringOutput writes into it
  if (DocumentWriter(out).write(interaction)) return out;
  // A stray invalid UTF-8 byte (connectors convert charsets before this point) must not turn
  // the publish into an error: the DOM path replaces it with U+FFFD.
  return to_json(interaction).dump(-1, ' ', false, json::error_handler_t::replace);
}

// ---------------------------------------------------------------------------- reading

namespace {

std::string join_enum(const std::vector<std::string_view>& values) {
  std::string out;
  for (auto v : values) {
    if (!out.empty()) out += ", ";
    out += v;
  }
  return out;
}

// Walks one JSON object, remembering which keys were read, so that what is left over can be
// reported as unknown. The first problem found wins; later reads become no-ops.
class ObjectReader {
 public:
  ObjectReader(const json& node, std::string path, std::optional<Error>& error)
      : node_(node), path_(std::move(path)), error_(error) {
    if (!node_.is_object()) fail(path_.empty() ? "the document" : path_, "must be an object");
  }

  std::string at(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  bool failed() const { return error_.has_value(); }

  void fail(const std::string& where, const std::string& what) {
    if (!error_) error_ = make_error(ErrorCode::invalid_field, "parse", where + ": " + what);
  }

  const json* field(const std::string& key) {
    read_.insert(key);
    if (failed() || !node_.is_object()) return nullptr;
    auto it = node_.find(key);
    if (it == node_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  // A string of at most max_bytes; "" only when allow_empty.
  OptString string(const std::string& key, bool allow_empty = false,
                   size_t max_bytes = limits::kMaxShortStringBytes) {
    const json* value = field(key);
    if (!value) return std::nullopt;
    if (!value->is_string()) {
      fail(at(key), "must be a string");
      return std::nullopt;
    }
    const auto& text = value->get_ref<const std::string&>();
    if (text.empty() && !allow_empty) {
      fail(at(key), "must not be empty (leave the field out instead)");
      return std::nullopt;
    }
    if (text.size() > max_bytes) {
      fail(at(key), "is longer than " + std::to_string(max_bytes) + " bytes");
      return std::nullopt;
    }
    return text;
  }

  OptString text(const std::string& key, bool allow_empty = false) {
    return string(key, allow_empty, limits::kMaxTextBytes);
  }

  // A string that passes `valid`, else the error "<key>: must be <what>".
  OptString formatted(const std::string& key, bool (*valid)(std::string_view), const char* what,
                      size_t max_bytes = limits::kMaxShortStringBytes) {
    OptString value = string(key, false, max_bytes);
    if (value && !valid(*value)) {
      fail(at(key), std::string("must be ") + what);
      return std::nullopt;
    }
    return value;
  }

  OptString uri(const std::string& key) {
    return formatted(key, formats::is_uri, "an absolute URI (RFC 3986, non-ASCII percent-encoded)",
                     limits::kMaxUrlBytes);
  }

  std::string required_string(const std::string& key, bool allow_empty = false) {
    bool present = node_.is_object() && node_.contains(key) && !node_[key].is_null();
    auto value = string(key, allow_empty);
    if (!present) fail(at(key), "is required");
    return value.value_or("");
  }

  // A number within [min, max].
  std::optional<double> number(const std::string& key, double min, double max) {
    const json* value = field(key);
    if (!value) return std::nullopt;
    if (!value->is_number() || value->get<double>() < min || value->get<double>() > max) {
      fail(at(key), "must be a number from " + json(min).dump() + " to " + json(max).dump());
      return std::nullopt;
    }
    return value->get<double>();
  }

  std::string required_enum(const std::string& key, const std::vector<std::string_view>& values) {
    std::string value = required_string(key);
    check_enum(key, value, values);
    return value;
  }

  OptString optional_enum(const std::string& key, const std::vector<std::string_view>& values) {
    OptString value = string(key);
    if (value) check_enum(key, *value, values);
    return value;
  }

  void check_enum(const std::string& key, const std::string& value,
                  const std::vector<std::string_view>& values) {
    if (failed() || value.empty()) return;
    if (std::find(values.begin(), values.end(), value) == values.end()) {
      fail(at(key), "'" + value + "' is not one of " + join_enum(values));
    }
  }

  std::optional<bool> boolean(const std::string& key) {
    const json* value = field(key);
    if (!value) return std::nullopt;
    if (!value->is_boolean()) {
      fail(at(key), "must be true or false");
      return std::nullopt;
    }
    return value->get<bool>();
  }

  std::optional<int64_t> non_negative_integer(const std::string& key) {
    const json* value = field(key);
    if (!value) return std::nullopt;
    if (!value->is_number_integer() || value->get<int64_t>() < 0) {
      fail(at(key), "must be a non-negative integer");
      return std::nullopt;
    }
    return value->get<int64_t>();
  }

  std::optional<SysMillis> time(const std::string& key) {
    OptString text = string(key);
    if (!text) return std::nullopt;
    auto parsed = parse_rfc3339(*text);
    if (!parsed || !formats::in_timestamp_range(*parsed)) {
      fail(at(key), "must be an RFC 3339 time from 1970 to 9999 such as 2026-11-22T09:30:00Z");
      return std::nullopt;
    }
    return parsed;
  }

  json free_object(const std::string& key) {
    const json* value = field(key);
    if (!value) return nullptr;
    if (!value->is_object()) {
      fail(at(key), "must be an object");
      return nullptr;
    }
    return *value;
  }

  json free_array_of_objects(const std::string& key) {
    const json* value = field(key);
    if (!value) return nullptr;
    if (!value->is_array() ||
        !std::all_of(value->begin(), value->end(), [](const json& v) { return v.is_object(); })) {
      fail(at(key), "must be an array of objects");
      return nullptr;
    }
    if (value->size() > limits::kMaxListItems) {
      fail(at(key), "has more than " + std::to_string(limits::kMaxListItems) + " items");
      return nullptr;
    }
    return *value;
  }

  StringPairs string_map(const std::string& key) {
    StringPairs out;
    const json* value = field(key);
    if (!value) return out;
    if (!value->is_object()) {
      fail(at(key), "must be an object of strings");
      return out;
    }
    if (value->size() > limits::kMaxMapEntries) {
      fail(at(key), "has more than " + std::to_string(limits::kMaxMapEntries) + " entries");
      return out;
    }
    for (auto it = value->begin(); it != value->end(); ++it) {
      if (it.key().size() > limits::kMaxShortStringBytes) {
        fail(at(key),
             "has a key longer than " + std::to_string(limits::kMaxShortStringBytes) + " bytes");
        return out;
      }
      if (!it.value().is_string() ||
          it.value().get_ref<const std::string&>().size() > limits::kMaxTextBytes) {
        fail(at(key) + "." + it.key(),
             "must be a string of at most " + std::to_string(limits::kMaxTextBytes) + " bytes");
        return out;
      }
      out.emplace_back(it.key(), it.value().get<std::string>());
    }
    return out;
  }

  std::vector<std::string> string_array(const std::string& key) {
    std::vector<std::string> out;
    const json* value = field(key);
    if (!value) return out;
    if (!value->is_array() || value->size() > limits::kMaxListItems) {
      fail(at(key),
           "must be an array of at most " + std::to_string(limits::kMaxListItems) + " strings");
      return out;
    }
    for (size_t i = 0; i < value->size(); ++i) {
      const json& item = (*value)[i];
      if (!item.is_string() || item.get_ref<const std::string&>().empty() ||
          item.get_ref<const std::string&>().size() > limits::kMaxShortStringBytes) {
        fail(at(key) + "[" + std::to_string(i) + "]",
             "must be a non-empty string of at most " +
                 std::to_string(limits::kMaxShortStringBytes) + " bytes");
        return out;
      }
      out.push_back(item.get<std::string>());
    }
    return out;
  }

  // Calls `each(reader)` for every element of an array of objects.
  template <class Fn>
  void objects(const std::string& key, Fn each) {
    const json* value = field(key);
    if (!value) return;
    if (!value->is_array()) {
      fail(at(key), "must be an array");
      return;
    }
    if (value->size() > limits::kMaxListItems) {
      fail(at(key), "has more than " + std::to_string(limits::kMaxListItems) + " items");
      return;
    }
    for (size_t i = 0; i < value->size() && !failed(); ++i) {
      ObjectReader item((*value)[i], at(key) + "[" + std::to_string(i) + "]", error_);
      each(item);
      item.finish();
    }
  }

  // A nested object section, or nullopt when absent.
  std::optional<ObjectReader> section(const std::string& key) {
    const json* value = field(key);
    if (!value) return std::nullopt;
    return ObjectReader(*value, at(key), error_);
  }

  void finish() {
    if (failed() || !node_.is_object()) return;
    for (auto it = node_.begin(); it != node_.end(); ++it) {
      if (!read_.count(it.key())) fail(at(it.key()), "unknown field");
    }
  }

 private:
  const json& node_;
  std::string path_;
  std::optional<Error>& error_;
  std::set<std::string> read_;
};

Contact read_contact(ObjectReader& r) {
  Contact c;
  c.display_name = r.string("display_name");
  r.objects("identifiers", [&](ObjectReader& item) {
    Identifier id;
    id.type = item.required_enum("type", kIdentifierTypes);
    id.value = item.string("value");
    id.verified = item.boolean("verified").value_or(false);
    id.raw = item.string("raw");
    if (!id.value && !id.raw && !item.failed())
      item.fail(item.at("value"), "value or raw is required");
    c.identifiers.push_back(std::move(id));
  });
  c.language =
      r.formatted("language", formats::is_language_tag, "a language tag such as ru or en-US");
  return c;
}

Message read_message(ObjectReader& r) {
  Message m;
  m.native_id = r.required_string("native_id");
  m.text = r.text("text", /*allow_empty=*/true);
  m.subject = r.string("subject");
  m.entities = r.free_array_of_objects("entities");
  r.objects("attachments", [&](ObjectReader& item) {
    Attachment a;
    a.type = item.required_enum("type", kAttachmentTypes);
    a.mime_type = item.string("mime_type");
    a.file_name = item.string("file_name");
    a.size = item.non_negative_integer("size");
    a.caption = item.text("caption");
    a.url = item.uri("url");
    if (auto location = item.section("location")) {
      a.location = json::object();
      if (auto v = location->number("latitude", -90, 90)) a.location["latitude"] = *v;
      if (auto v = location->number("longitude", -180, 180)) a.location["longitude"] = *v;
      if (auto v = location->string("title")) a.location["title"] = *v;
      if (auto v = location->string("address")) a.location["address"] = *v;
      location->finish();
    }
    if (auto contact = item.section("contact")) {
      a.contact = json::object();
      for (const char* key : {"name", "phone", "user_id"}) {
        if (auto v = contact->string(key)) a.contact[key] = *v;
      }
      if (auto v = contact->text("vcard")) a.contact["vcard"] = *v;
      contact->finish();
    }
    a.provider_ref = item.free_object("provider_ref");
    m.attachments.push_back(std::move(a));
  });
  m.group_id = r.string("group_id");
  m.forwarded = r.free_object("forwarded");
  m.edit_of = r.string("edit_of");
  return m;
}

Source read_source(ObjectReader& r) {
  Source s;
  if (auto utm = r.section("utm")) {
    s.utm.source = utm->string("source");
    s.utm.medium = utm->string("medium");
    s.utm.campaign = utm->string("campaign");
    s.utm.content = utm->string("content");
    s.utm.term = utm->string("term");
    utm->finish();
  }
  s.page_url = r.uri("page_url");
  s.referrer = r.string("referrer", false, limits::kMaxUrlBytes);
  s.deep_link = r.string("deep_link");
  s.params = r.string_map("params");
  s.ad = r.free_object("ad");
  return s;
}

Consent read_consent(ObjectReader& r, SysMillis fallback_time) {
  Consent c;
  c.purpose = r.required_string("purpose");
  if (!r.failed() && !formats::is_snake_key(c.purpose, 64)) {
    r.fail(r.at("purpose"), "must match [a-z][a-z0-9_]{0,63}, e.g. marketing or service");
  }
  c.status = r.required_enum("status", kConsentStatuses);
  c.channels = r.string_array("channels");
  if (!r.failed() && c.channels.empty()) r.fail(r.at("channels"), "must list at least one channel");
  for (const auto& channel : c.channels) {
    if (!r.failed() && !formats::is_snake_key(channel, limits::kMaxShortStringBytes)) {
      r.fail(r.at("channels"), "each must match [a-z][a-z0-9_]*, e.g. email, sms");
    }
  }
  c.method = r.required_enum("method", kConsentMethods);
  c.captured_at = r.time("captured_at").value_or(fallback_time);
  if (auto e = r.section("evidence")) {
    auto& ev = c.evidence;
    ev.ip = e->string("ip");
    ev.user_agent = e->string("user_agent", false, limits::kMaxUrlBytes);
    ev.page_url = e->uri("page_url");
    ev.text_id = e->string("text_id");
    ev.text_version = e->string("text_version");
    ev.text_sha256 = e->string("text_sha256");
    if (ev.text_sha256 && !formats::is_sha256_hex(*ev.text_sha256)) {
      e->fail(e->at("text_sha256"), "must be 64 lower-case hex digits");
    }
    ev.policy_url = e->uri("policy_url");
    ev.native_event = e->string("native_event");
    ev.submission_id = e->string("submission_id");
    ev.linked_interaction_id =
        e->formatted("linked_interaction_id", formats::is_uuid, "a UUID (an interaction id)");
    e->finish();
  }
  return c;
}

}  // namespace

Status check_kind_sections(const Interaction& in) {
  auto missing = [&](const char* section) {
    return make_error(ErrorCode::invalid_field, "parse",
                      std::string(section) + ": is required when kind is " + in.kind);
  };
  if ((in.kind == "message" || in.kind == "message_edit") && !in.message) return missing("message");
  if (in.kind == "message_edit" && in.message && !in.message->edit_of)
    return missing("message.edit_of");
  if (in.kind == "lead" && !in.lead) return missing("lead");
  if (in.kind == "consent" && in.consent.empty()) return missing("consent");
  if (in.kind == "status" && !in.status) return missing("status");
  if (in.kind == "reaction" && !in.reaction) return missing("reaction");
  if (in.kind == "action" && !in.action) return missing("action");
  return ok_status();
}

Result<Interaction> interaction_from_json(const json& document, ReadMode mode) {
  std::optional<Error> error;
  ObjectReader r(document, "", error);
  Interaction in;
  if (mode == ReadMode::full) {
    std::string schema = r.required_string("schema");
    if (!r.failed() && schema != kSchemaName) r.fail("schema", "must be interaction.v1");
    in.id = r.required_string("id");
    in.channel = r.required_enum("channel", kChannels);
    in.account = r.required_string("account");
    if (auto received = r.time("received_at"))
      in.received_at = *received;
    else
      r.fail("received_at", "is required");
  } else {
    // A submission may name its channel and account; the caller checks them against the route.
    in.channel = r.optional_enum("channel", kChannels).value_or("");
    in.account = r.string("account").value_or("");
  }
  in.kind = r.required_enum("kind", kKinds);
  if (auto occurred = r.time("occurred_at")) {
    in.occurred_at = *occurred;
  } else if (mode == ReadMode::api_submission) {
    in.occurred_at = now_millis();  // optional for a submission: absent means "now"
  } else {
    r.fail("occurred_at", "is required");
  }
  if (auto s = r.section("contact")) {
    in.contact = read_contact(*s);
    s->finish();
  }
  if (auto s = r.section("conversation")) {
    Conversation c;
    c.id = s->string("id");
    c.type = s->optional_enum("type", kConversationTypes);
    c.reply_to = s->string("reply_to");
    c.thread_id = s->string("thread_id");
    s->finish();
    in.conversation = std::move(c);
  }
  if (auto s = r.section("message")) {
    in.message = read_message(*s);
    s->finish();
  }
  if (auto s = r.section("lead")) {
    Lead lead;
    lead.form = s->required_string("form");
    lead.fields = s->string_map("fields");
    s->finish();
    in.lead = std::move(lead);
  }
  if (auto s = r.section("status")) {
    StatusUpdate st;
    st.of = s->required_string("of");
    st.state = s->required_enum("state", kStatusStates);
    st.recipient = s->string("recipient");
    st.error = s->free_object("error");
    s->finish();
    in.status = std::move(st);
  }
  if (auto s = r.section("reaction")) {
    Reaction re;
    re.of = s->required_string("of");
    re.emoji = s->string("emoji", /*allow_empty=*/true).value_or("");
    re.removed = s->boolean("removed").value_or(re.emoji.empty());
    s->finish();
    in.reaction = std::move(re);
  }
  if (auto s = r.section("action")) {
    Action a;
    a.type = s->required_enum("type", kActionTypes);
    a.data = s->string("data");
    a.title = s->string("title");
    a.of = s->string("of");
    s->finish();
    in.action = std::move(a);
  }
  if (auto s = r.section("source")) {
    in.source = read_source(*s);
    s->finish();
  }
  r.objects("consent",
            [&](ObjectReader& item) { in.consent.push_back(read_consent(item, in.occurred_at)); });
  in.tags = r.string_array("tags");
  if (auto s = r.section("raw")) {
    RawInfo raw;
    raw.sha256 = s->required_string("sha256");
    raw.content_type = s->string("content_type").value_or("");
    if (auto o = s->section("object")) {
      raw.object = RawObject{o->required_string("bucket"), o->required_string("name")};
      o->finish();
    }
    s->finish();
    in.raw = std::move(raw);
  }
  r.finish();
  if (error) return *error;
  if (auto status = check_kind_sections(in); !status) return status.error();
  return in;
}

}  // namespace omnigate

#include "gateway/model/schema_guard.hpp"

#include <algorithm>
#include <utility>

#include "gateway/core/limits.hpp"
#include "gateway/model/formats.hpp"

namespace omnigate {

using json = nlohmann::json;

bool json_value_depth_within(const json& value, size_t max_depth) {
  std::vector<std::pair<const json*, size_t>> stack{{&value, 1}};
  while (!stack.empty()) {
    auto [node, depth] = stack.back();
    stack.pop_back();
    if (!node->is_structured()) continue;
    if (depth > max_depth) return false;
    for (const auto& child : *node) stack.emplace_back(&child, depth + 1);
  }
  return true;
}

namespace {

bool one_of(const std::vector<std::string_view>& values, std::string_view value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

class Guard {
 public:
  std::vector<std::string> dropped;

  void drop(std::string field) { dropped.push_back(std::move(field)); }

  // minLength 1 and the caps of limits.hpp.
  void string(OptString& value, const char* field, size_t max = limits::kMaxShortStringBytes,
              bool allow_empty = false) {
    if (value && ((value->empty() && !allow_empty) || value->size() > max)) {
      value.reset();
      drop(field);
    }
  }

  void formatted(OptString& value, const char* field, bool (*valid)(std::string_view),
                 size_t max = limits::kMaxShortStringBytes) {
    if (value && (value->size() > max || !valid(*value))) {
      value.reset();
      drop(field);
    }
  }

  void uri(OptString& value, const char* field) {
    formatted(value, field, formats::is_uri, limits::kMaxUrlBytes);
  }

  // A free-form object of the schema: an object, nested no deeper than requests may be.
  void free_object(json& value, const char* field) {
    if (value.is_null()) return;
    if (!value.is_object() || !json_value_depth_within(value, limits::kMaxJsonDepth)) {
      value = nullptr;
      drop(field);
    }
  }

  void string_pairs(StringPairs& pairs, const char* field) {
    size_t before = pairs.size();
    std::erase_if(pairs, [](const auto& p) {
      return p.first.size() > limits::kMaxShortStringBytes ||
             p.second.size() > limits::kMaxTextBytes;
    });
    if (pairs.size() > limits::kMaxMapEntries) pairs.resize(limits::kMaxMapEntries);
    if (pairs.size() != before) drop(field);
  }

  template <class T>
  void cap_list(std::vector<T>& list, const char* field) {
    if (list.size() > limits::kMaxListItems) {
      list.resize(limits::kMaxListItems);
      drop(field);
    }
  }

  void contact(Contact& c) {
    string(c.display_name, "contact.display_name");
    formatted(c.language, "contact.language", formats::is_language_tag);
    std::erase_if(c.identifiers, [&](Identifier& id) {
      string(id.value, "contact.identifiers.value");
      string(id.raw, "contact.identifiers.raw");
      bool keep = one_of(kIdentifierTypes, id.type) && (id.value || id.raw);
      if (!keep) drop("contact.identifiers");
      return !keep;
    });
    cap_list(c.identifiers, "contact.identifiers");
  }

  void location(json& value) {
    if (value.is_null()) return;
    bool ok = value.is_object();
    auto in_range = [&](const char* key, double limit) {
      auto it = value.find(key);
      return it == value.end() ||
             (it->is_number() && it->get<double>() >= -limit && it->get<double>() <= limit);
    };
    auto text = [&](const char* key) {
      auto it = value.find(key);
      return it == value.end() ||
             (it->is_string() && !it->get_ref<const std::string&>().empty() &&
              it->get_ref<const std::string&>().size() <= limits::kMaxShortStringBytes);
    };
    if (ok) {
      for (auto it = value.begin(); it != value.end() && ok; ++it) {
        ok = it.key() == "latitude" || it.key() == "longitude" || it.key() == "title" ||
             it.key() == "address";
      }
      ok = ok && in_range("latitude", 90) && in_range("longitude", 180) && text("title") &&
           text("address");
    }
    if (!ok) {
      value = nullptr;
      drop("message.attachments.location");
    }
  }

  void card(json& value) {
    if (value.is_null()) return;
    bool ok = value.is_object();
    for (auto it = ok ? value.begin() : value.end(); ok && it != value.end(); ++it) {
      size_t max = it.key() == "vcard" ? limits::kMaxTextBytes : limits::kMaxShortStringBytes;
      ok = (it.key() == "name" || it.key() == "phone" || it.key() == "vcard" ||
            it.key() == "user_id") &&
           it->is_string() && !it->get_ref<const std::string&>().empty() &&
           it->get_ref<const std::string&>().size() <= max;
    }
    if (!ok) {
      value = nullptr;
      drop("message.attachments.contact");
    }
  }

  void message(Message& m) {
    string(m.text, "message.text", limits::kMaxTextBytes, /*allow_empty=*/true);
    string(m.subject, "message.subject");
    if (!m.entities.is_null()) {
      bool ok = m.entities.is_array() && m.entities.size() <= limits::kMaxListItems &&
                json_value_depth_within(m.entities, limits::kMaxJsonDepth) &&
                std::all_of(m.entities.begin(), m.entities.end(),
                            [](const json& e) { return e.is_object(); });
      if (!ok) {
        m.entities = nullptr;
        drop("message.entities");
      }
    }
    std::erase_if(m.attachments, [&](Attachment& a) {
      if (!one_of(kAttachmentTypes, a.type)) {
        drop("message.attachments");
        return true;
      }
      string(a.mime_type, "message.attachments.mime_type");
      string(a.file_name, "message.attachments.file_name");
      string(a.caption, "message.attachments.caption", limits::kMaxTextBytes);
      if (a.size && *a.size < 0) {
        a.size.reset();
        drop("message.attachments.size");
      }
      uri(a.url, "message.attachments.url");
      location(a.location);
      card(a.contact);
      free_object(a.provider_ref, "message.attachments.provider_ref");
      return false;
    });
    cap_list(m.attachments, "message.attachments");
    string(m.group_id, "message.group_id");
    free_object(m.forwarded, "message.forwarded");
    string(m.edit_of, "message.edit_of");
  }

  void source(Source& s) {
    string(s.utm.source, "source.utm.source");
    string(s.utm.medium, "source.utm.medium");
    string(s.utm.campaign, "source.utm.campaign");
    string(s.utm.content, "source.utm.content");
    string(s.utm.term, "source.utm.term");
    uri(s.page_url, "source.page_url");
    string(s.referrer, "source.referrer", limits::kMaxUrlBytes);
    string(s.deep_link, "source.deep_link");
    string_pairs(s.params, "source.params");
    free_object(s.ad, "source.ad");
  }

  // false when the record cannot stand (its required parts are invalid).
  bool consent(Consent& c, SysMillis occurred_at) {
    std::erase_if(c.channels, [&](const std::string& channel) {
      bool bad = !formats::is_snake_key(channel, limits::kMaxShortStringBytes);
      if (bad) drop("consent.channels");
      return bad;
    });
    cap_list(c.channels, "consent.channels");
    if (!formats::is_snake_key(c.purpose, 64) || !one_of(kConsentStatuses, c.status) ||
        !one_of(kConsentMethods, c.method) || c.channels.empty()) {
      drop("consent");
      return false;
    }
    if (!formats::in_timestamp_range(c.captured_at)) {
      c.captured_at = occurred_at;
      drop("consent.captured_at");
    }
    ConsentEvidence& e = c.evidence;
    string(e.ip, "consent.evidence.ip");
    string(e.user_agent, "consent.evidence.user_agent", limits::kMaxUrlBytes);
    uri(e.page_url, "consent.evidence.page_url");
    string(e.text_id, "consent.evidence.text_id");
    string(e.text_version, "consent.evidence.text_version");
    formatted(e.text_sha256, "consent.evidence.text_sha256", formats::is_sha256_hex);
    uri(e.policy_url, "consent.evidence.policy_url");
    string(e.native_event, "consent.evidence.native_event");
    string(e.submission_id, "consent.evidence.submission_id");
    formatted(e.linked_interaction_id, "consent.evidence.linked_interaction_id", formats::is_uuid);
    return true;
  }
};

Error invalid(const std::string& what) {
  return make_error(ErrorCode::invalid_field, "normalize", what);
}

}  // namespace

Result<std::vector<std::string>> make_schema_valid(Interaction& in) {
  Guard g;
  if (!one_of(kChannels, in.channel) || !one_of(kKinds, in.kind) || in.account.empty() ||
      !formats::is_uuid(in.id)) {
    return invalid("channel, account, kind or id: outside interaction.v1");
  }
  if (!formats::in_timestamp_range(in.received_at)) return invalid("received_at: out of range");
  if (!formats::in_timestamp_range(in.occurred_at)) {
    in.occurred_at = in.received_at;  // the schema's fallback when the provider gives no time
    g.drop("occurred_at");
  }
  if (in.contact) g.contact(*in.contact);
  if (in.conversation) {
    Conversation& c = *in.conversation;
    g.string(c.id, "conversation.id");
    if (c.type && !one_of(kConversationTypes, *c.type)) {
      c.type.reset();
      g.drop("conversation.type");
    }
    g.string(c.reply_to, "conversation.reply_to");
    g.string(c.thread_id, "conversation.thread_id");
  }
  if (in.message) {
    g.message(*in.message);
    if (in.message->native_id.empty() ||
        in.message->native_id.size() > limits::kMaxShortStringBytes)
      return invalid("message.native_id: must be 1 to 1024 bytes");
  }
  if (in.lead) {
    if (in.lead->form.empty()) return invalid("lead.form: must not be empty");
    g.string_pairs(in.lead->fields, "lead.fields");
  }
  if (in.status) {
    if (in.status->of.empty() || !one_of(kStatusStates, in.status->state))
      return invalid("status: of and state are required");
    g.string(in.status->recipient, "status.recipient");
    g.free_object(in.status->error, "status.error");
  }
  if (in.reaction && in.reaction->of.empty()) return invalid("reaction.of: must not be empty");
  if (in.action) {
    if (!one_of(kActionTypes, in.action->type)) return invalid("action.type: outside the enum");
    g.string(in.action->data, "action.data");
    g.string(in.action->title, "action.title");
    g.string(in.action->of, "action.of");
  }
  if (in.source) g.source(*in.source);
  std::erase_if(in.consent, [&](Consent& c) { return !g.consent(c, in.occurred_at); });
  g.cap_list(in.consent, "consent");
  std::erase_if(in.tags, [&](const std::string& tag) {
    bool bad = tag.empty() || tag.size() > limits::kMaxShortStringBytes;
    if (bad) g.drop("tags");
    return bad;
  });
  if (in.raw && (!formats::is_sha256_hex(in.raw->sha256) || in.raw->content_type.empty())) {
    in.raw.reset();
    g.drop("raw");
  }
  if (auto status = check_kind_sections(in); !status) return status.error();
  return std::move(g.dropped);
}

Status enforce_schema(Interaction& interaction, Metrics& metrics) {
  auto dropped = make_schema_valid(interaction);
  if (!dropped) return dropped.error();
  for (const auto& field : *dropped) metrics.dropped_values.inc({interaction.channel, field});
  return ok_status();
}

}  // namespace omnigate

#include "connectors/whatsapp/whatsapp_payload.hpp"

#include "gateway/model/json_scan.hpp"

namespace omnigate::whatsapp::payload {
namespace {

using Value = JsonScan::Value;

class WebhookReader {
 public:
  explicit WebhookReader(JsonScan& scan) : scan_(scan) {}

  void entry(Value value, Webhook& out) {
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "changes") scan_.items(v, [&](Value c) { out.changes.push_back(change(c)); });
    });
  }

 private:
  Timestamp timestamp(Value value) {
    Timestamp t;
    t.text = scan_.id_text(value, &t.seconds);
    if (t.text && !t.seconds) t.seconds = integer_of_text(*t.text);
    return t;
  }

  Change change(Value value) {
    Change c;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "field")
        c.field = scan_.str(v);
      else if (key == "value")
        change_value(v, c);
    });
    return c;
  }

  void change_value(Value value, Change& c) {
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "metadata") {
        scan_.fields(v, [&](std::string_view inner, Value w) {
          if (inner == "phone_number_id") c.phone_number_id = scan_.id_text(w);
        });
      } else if (key == "contacts") {
        scan_.items(v, [&](Value item) { c.contacts.push_back(contact_entry(item)); });
      } else if (key == "messages") {
        scan_.items(v, [&](Value item) { c.messages.push_back(message(item)); });
      } else if (key == "statuses") {
        scan_.items(v, [&](Value item) { c.statuses.push_back(status(item)); });
      } else if (key == "user_preferences") {
        scan_.items(v, [&](Value item) { c.preferences.push_back(preference(item)); });
      } else if (key == "errors") {
        c.has_errors = !scan_.is_null(v);
      }
    });
  }

  ContactEntry contact_entry(Value value) {
    ContactEntry e;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "wa_id") {
        e.wa_id = scan_.str(v);
      } else if (key == "user_id") {
        e.user_id = scan_.str(v);
      } else if (key == "profile") {
        scan_.fields(v, [&](std::string_view inner, Value w) {
          if (inner == "name") e.profile_name = scan_.str(w);
        });
      }
    });
    return e;
  }

  Media media(Value value) {
    Media m;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "id")
        m.id = scan_.id_text(v);
      else if (key == "sha256")
        m.sha256 = scan_.str(v);
      else if (key == "mime_type")
        m.mime_type = scan_.str(v);
      else if (key == "filename")
        m.filename = scan_.str(v);
      else if (key == "caption")
        m.caption = scan_.str(v);
      else if (key == "voice")
        m.voice = scan_.boolean(v) == true;
    });
    return m;
  }

  Card card(Value value) {
    Card card;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "vcard") {
        card.vcard = scan_.str(v);
      } else if (key == "name") {
        scan_.fields(v, [&](std::string_view inner, Value w) {
          if (inner == "formatted_name")
            card.formatted_name = scan_.str(w);
          else if (inner == "first_name")
            card.first_name = scan_.str(w);
          else if (inner == "last_name")
            card.last_name = scan_.str(w);
        });
      } else if (key == "phones") {
        bool first = true;
        scan_.items(v, [&](Value phone) {
          if (!first) return;
          first = false;
          scan_.fields(phone, [&](std::string_view inner, Value w) {
            if (inner == "phone") card.first_phone = scan_.str(w);
          });
        });
      }
    });
    return card;
  }

  Reply reply(Value value) {
    Reply r;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "id")
        r.id = scan_.str(v);
      else if (key == "title")
        r.title = scan_.str(v);
    });
    return r;
  }

  Message message(Value value) {
    Message m;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "id") return void(m.id = scan_.str(v));
      if (key == "type") return void(m.type = scan_.str(v));
      if (key == "from") return void(m.from = scan_.str(v));
      if (key == "from_user_id") return void(m.from_user_id = scan_.str(v));
      if (key == "timestamp") return void(m.timestamp = timestamp(v));
      if (key == "context") {
        scan_.fields(v, [&](std::string_view inner, Value w) {
          if (inner == "id")
            m.context_id = scan_.str(w);
          else if (inner == "forwarded")
            m.forwarded = scan_.boolean(w) == true;
          else if (inner == "frequently_forwarded")
            m.frequently_forwarded = scan_.boolean(w) == true;
        });
        return;
      }
      if (key == "text") {
        scan_.fields(v, [&](std::string_view inner, Value w) {
          if (inner == "body") m.text_body = scan_.str(w);
        });
        return;
      }
      if (key == "button") {
        scan_.fields(v, [&](std::string_view inner, Value w) {
          if (inner == "payload")
            m.button_payload = scan_.str(w);
          else if (inner == "text")
            m.button_text = scan_.str(w);
        });
        return;
      }
      if (key == "interactive") {
        scan_.fields(v, [&](std::string_view inner, Value w) {
          if (inner == "type")
            m.interactive_type = scan_.str(w);
          else if (inner == "button_reply")
            m.button_reply = reply(w);
          else if (inner == "list_reply")
            m.list_reply = reply(w);
        });
        return;
      }
      if (key == "reaction") {
        scan_.fields(v, [&](std::string_view inner, Value w) {
          if (inner == "message_id")
            m.reaction_message_id = scan_.str(w);
          else if (inner == "emoji")
            m.reaction_emoji = scan_.str(w);
        });
        return;
      }
      if (key == "location") {
        scan_.fields(v, [&](std::string_view inner, Value w) {
          if (inner == "latitude")
            m.location.latitude = scan_.num(w);
          else if (inner == "longitude")
            m.location.longitude = scan_.num(w);
          else if (inner == "name")
            m.location.name = scan_.str(w);
          else if (inner == "address")
            m.location.address = scan_.str(w);
        });
        return;
      }
      if (key == "contacts") {
        m.contacts.clear();
        scan_.items(v, [&](Value item) { m.contacts.push_back(card(item)); });
        return;
      }
      if (key == "referral") {
        nlohmann::json referral = scan_.to_json(v);
        m.referral = referral.is_object() ? std::move(referral) : nlohmann::json();
        return;
      }
      for (size_t i = 0; i < kMediaTypes.size(); ++i) {
        if (key == kMediaTypes[i]) return void(m.media[i] = media(v));
      }
    });
    return m;
  }

  StatusEvent status(Value value) {
    StatusEvent s;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "id") {
        s.id = scan_.str(v);
      } else if (key == "status") {
        s.status = scan_.str(v);
      } else if (key == "recipient_id") {
        s.recipient_id = scan_.str(v);
      } else if (key == "recipient_user_id") {
        s.recipient_user_id = scan_.str(v);
      } else if (key == "timestamp") {
        s.timestamp = timestamp(v);
      } else if (key == "errors") {
        s.error.reset();
        scan_.items(v, [&](Value e) {
          if (!s.error) s.error = status_error(e);
        });
      }
    });
    return s;
  }

  StatusError status_error(Value value) {
    StatusError e;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "code") {
        e.code = scan_.i64(v);
      } else if (key == "title") {
        e.title = scan_.str(v);
      } else if (key == "message") {
        e.message = scan_.str(v);
      } else if (key == "href") {
        e.href = scan_.str(v);
      } else if (key == "error_data") {
        scan_.fields(v, [&](std::string_view inner, Value w) {
          if (inner == "details") e.details = scan_.str(w);
        });
      }
    });
    return e;
  }

  Preference preference(Value value) {
    Preference p;
    scan_.fields(value, [&](std::string_view key, Value v) {
      if (key == "category")
        p.category = scan_.str(v);
      else if (key == "value")
        p.value = scan_.str(v);
      else if (key == "wa_id")
        p.wa_id = scan_.str(v);
      else if (key == "user_id")
        p.user_id = scan_.str(v);
      else if (key == "timestamp")
        p.timestamp = timestamp(v);
    });
    return p;
  }

  JsonScan& scan_;
};

}  // namespace

Result<Webhook> read_webhook(std::string_view body) {
  thread_local JsonScan scan;
  Webhook out;
  WebhookReader reader(scan);
  omnigate::Status scanned =
      scan.object(body, "a WhatsApp webhook", [&](std::string_view key, Value value) {
        if (key != "entry") return;
        out.entry_is_array = scan.is_array(value);
        out.changes.clear();
        scan.items(value, [&](Value entry) { reader.entry(entry, out); });
      });
  if (!scanned) return scanned.error();
  return out;
}

}  // namespace omnigate::whatsapp::payload

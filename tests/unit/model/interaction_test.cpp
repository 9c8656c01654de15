// interaction.v1 in C++ (gateway/model/interaction.hpp): the serializer, the strict reader and the
// kind → section rule.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "gateway/model/interaction.hpp"

using nlohmann::json;
using omnigate::ErrorCode;
using omnigate::Interaction;
using omnigate::interaction_from_json;
using omnigate::ReadMode;
using omnigate::SysMillis;

namespace {

SysMillis at(int y, unsigned mo, unsigned d, int h, int mi, int s, int ms = 0) {
  using namespace std::chrono;
  return sys_days{year{y} / month{mo} / day{d}} + hours(h) + minutes(mi) + seconds(s) +
         milliseconds(ms);
}

omnigate::Message message_with_id(std::string native_id) {
  omnigate::Message m;
  m.native_id = std::move(native_id);
  return m;
}

omnigate::StatusUpdate status_of(std::string of, std::string state) {
  omnigate::StatusUpdate s;
  s.of = std::move(of);
  s.state = std::move(state);
  return s;
}

omnigate::Action action_of(std::string type) {
  omnigate::Action a;
  a.type = std::move(type);
  return a;
}

Interaction minimal(const std::string& kind = "message") {
  Interaction in;
  in.id = "98934dfa-a212-5186-9ce6-f319db7b390d";
  in.channel = "api";
  in.account = "crm-import";
  in.kind = kind;
  in.occurred_at = at(2026, 11, 22, 9, 30, 0, 123);
  in.received_at = at(2026, 11, 22, 9, 30, 1, 456);
  return in;
}

// Every section filled, every optional field present (milliseconds-exact times, string pairs
// in key order because the reader's JSON object is key-ordered).
Interaction full_interaction() {
  Interaction in = minimal("lead");
  omnigate::Contact contact;
  contact.display_name = "Ольга Смирнова";
  omnigate::Identifier phone;
  phone.type = "phone";
  phone.value = "+79031234567";
  phone.raw = "8 (903) 123-45-67";
  omnigate::Identifier tg;
  tg.type = "telegram_user_id";
  tg.value = "123456789";
  tg.verified = true;
  omnigate::Identifier unparsed;
  unparsed.type = "email";
  unparsed.raw = "not an address";
  contact.identifiers = {phone, tg, unparsed};
  contact.language = "ru-RU";
  in.contact = contact;
  in.conversation = omnigate::Conversation{"chat-1", "private", "m-0", "t-9"};
  omnigate::Message message;
  message.native_id = "4711";
  message.text = "Здравствуйте! \"Цитата\" \\ 🙂";
  message.subject = "Тема";
  message.entities = json::array({{{"type", "bold"}, {"offset", 0}, {"length", 5}}});
  omnigate::Attachment image;
  image.type = "image";
  image.mime_type = "image/jpeg";
  image.file_name = "photo.jpg";
  image.size = 187346;
  image.caption = "фото";
  image.url = "https://example.ru/p.jpg";
  image.provider_ref = {{"file_id", "AgAC"}, {"width", 1280}};
  omnigate::Attachment place;
  place.type = "location";
  place.location = {{"latitude", 55.75}, {"longitude", 37.62}, {"title", "Кремль"}};
  omnigate::Attachment card;
  card.type = "contact";
  card.contact = {{"name", "Иван"}, {"phone", "+79123456789"}};
  message.attachments = {image, place, card};
  message.group_id = "album-1";
  message.forwarded = {{"from", "someone"}};
  in.message = message;
  in.lead = omnigate::Lead{"callback",
                           {{"comment", "после 17:00"}, {"email", "a@b.ru"}, {"name", "Ольга"}}};
  in.status = omnigate::StatusUpdate{"out-1", "failed", "+79123456789", {{"code", 131026}}};
  in.reaction = omnigate::Reaction{"4710", "👍", false};
  in.action = omnigate::Action{"button", "buy:42", "Купить", "4709"};
  omnigate::Source source;
  source.utm = omnigate::Utm{"yandex", "cpc", "spring", "banner", "пуховик"};
  source.page_url = "https://shop.example.ru/?utm_source=yandex";
  source.referrer = "https://yandex.ru/";
  source.deep_link = "start=promo";
  source.params = {{"gclid", "g-1"}, {"yclid", "841"}};
  source.ad = {{"campaign_id", 7}};
  in.source = source;
  omnigate::Consent consent;
  consent.purpose = "marketing";
  consent.status = "granted";
  consent.channels = {"email", "sms"};
  consent.method = "web_form_checkbox";
  consent.captured_at = at(2026, 11, 22, 9, 29, 59, 1);
  consent.evidence.ip = "203.0.113.57";
  consent.evidence.user_agent = "Mozilla/5.0";
  consent.evidence.page_url = "https://shop.example.ru/";
  consent.evidence.text_id = "marketing";
  consent.evidence.text_version = "3";
  consent.evidence.text_sha256 = std::string(64, 'a');
  consent.evidence.policy_url = "https://shop.example.ru/privacy";
  consent.evidence.native_event = "checkbox";
  consent.evidence.submission_id = "s-1";
  consent.evidence.linked_interaction_id = "c497985b-3ba9-58a1-8e77-08a19f1c51bc";
  omnigate::Consent bare = consent;
  bare.purpose = "service";
  bare.status = "withdrawn";
  bare.method = "unsubscribe_link";
  bare.evidence = {};
  in.consent = {consent, bare};
  in.tags = {"auto_submitted", "spam_suspect"};
  in.raw = omnigate::RawInfo{std::string(64, 'b'), "application/json"};
  return in;
}

// Fails on any string "" anywhere in the document.
void require_no_empty_strings(const json& node, const std::string& path) {
  if (node.is_string()) {
    INFO("at " << path);
    CHECK_FALSE(node.get<std::string>().empty());
  } else if (node.is_object()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      require_no_empty_strings(it.value(), path + "." + it.key());
    }
  } else if (node.is_array()) {
    for (size_t i = 0; i < node.size(); ++i) {
      require_no_empty_strings(node[i], path + "[" + std::to_string(i) + "]");
    }
  }
}

// A valid full-mode document of kind message, as a starting point for broken variants.
json base_document() {
  return json::parse(R"({
    "schema": "interaction.v1",
    "id": "98934dfa-a212-5186-9ce6-f319db7b390d",
    "channel": "api",
    "account": "crm-import",
    "kind": "message",
    "occurred_at": "2026-11-22T09:30:00Z",
    "received_at": "2026-11-22T09:30:01.5Z",
    "contact": {"identifiers": [
      {"type": "phone", "value": "+79123456789", "verified": false},
      {"type": "email", "value": "a@b.ru", "verified": false}]},
    "message": {"native_id": "1", "text": "hi"}
  })");
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

TEST_CASE("serialize leaves out absent sections instead of writing empty values", "[model]") {
  Interaction in = minimal("message");
  in.message = omnigate::Message{};
  in.message->native_id = "1";
  in.source = omnigate::Source{};  // present but empty: still left out
  json out = json::parse(omnigate::serialize(in));
  std::vector<std::string> keys;
  for (auto it = out.begin(); it != out.end(); ++it) keys.push_back(it.key());
  std::sort(keys.begin(), keys.end());
  CHECK(keys == std::vector<std::string>{"account", "channel", "id", "kind", "message",
                                         "occurred_at", "received_at", "schema"});
  CHECK(out["message"] == json{{"native_id", "1"}});
  CHECK(out["schema"] == "interaction.v1");
  CHECK(out["occurred_at"] == "2026-11-22T09:30:00.123Z");
  require_no_empty_strings(out, "");
}

TEST_CASE("serialize writes no empty strings for an interaction with every section", "[model]") {
  json out = json::parse(omnigate::serialize(full_interaction()));
  require_no_empty_strings(out, "");
  // The consent without evidence has no "evidence" key rather than an empty object.
  REQUIRE(out["consent"].size() == 2);
  CHECK(out["consent"][0].contains("evidence"));
  CHECK_FALSE(out["consent"][1].contains("evidence"));
  // An identifier without a canonical value has no "value" key.
  CHECK_FALSE(out["contact"]["identifiers"][2].contains("value"));
  CHECK(out["contact"]["identifiers"][2]["raw"] == "not an address");
}

TEST_CASE(
    "message text with quotes, backslash, control characters, Cyrillic and emoji "
    "round-trips through the serializer exactly",
    "[model]") {
  auto text = GENERATE(as<std::string>{}, "say \"hi\"", "C:\\path\\to", "line1\nline2\r\n\ttab",
                       std::string("ctl\x01\x1f end"), "Привет, мир",
                       "👍🏽 🇷🇺 family: 👨‍👩‍👧",
                       std::string("nul\0inside", 10), "</script><!-- -->", "");
  CAPTURE(text);
  Interaction in = minimal("message");
  in.message = omnigate::Message{};
  in.message->native_id = "1";
  in.message->text = text;
  std::string serialized = omnigate::serialize(in);
  json parsed = json::parse(serialized);
  CHECK(parsed["message"]["text"].get<std::string>() == text);
  // One line: NATS messages and logs must not be split by a raw newline.
  CHECK(serialized.find('\n') == std::string::npos);
}

TEST_CASE("a full interaction round-trips: to_json, read in full mode, to_json again", "[model]") {
  Interaction original = full_interaction();
  auto first = omnigate::to_json(original);
  auto read = interaction_from_json(json::parse(first.dump()), ReadMode::full);
  INFO((read ? std::string() : read.error().detail));
  REQUIRE(read.ok());
  auto second = omnigate::to_json(read.value());
  CHECK(second.dump() == first.dump());
  CHECK(read->occurred_at == original.occurred_at);
  CHECK(read->received_at == original.received_at);
  CHECK(read->consent[0].captured_at == original.consent[0].captured_at);
}

TEST_CASE(
    "every example in schemas/examples reads in full mode and serializes to the same "
    "document",
    "[model][schema]") {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(OMNIGATE_SOURCE_DIR) / "schemas" / "examples";
  int seen = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    ++seen;
    CAPTURE(entry.path().filename().string());
    json document = json::parse(read_text(entry.path()));
    auto read = interaction_from_json(document, ReadMode::full);
    INFO((read ? std::string() : read.error().detail));
    REQUIRE(read.ok());
    json again = json::parse(omnigate::serialize(read.value()));
    // Times are rewritten with exactly three fractional digits; compare them as instants.
    for (const char* key : {"occurred_at", "received_at"}) {
      // The reader keeps milliseconds, so compare at that precision.
      auto written = omnigate::parse_rfc3339(again[key].get<std::string>());
      auto given = omnigate::parse_rfc3339(document[key].get<std::string>());
      REQUIRE(written.has_value());
      REQUIRE(given.has_value());
      CHECK(*written == *given);
      again.erase(key);
      document.erase(key);
    }
    if (document.contains("consent")) {
      for (size_t i = 0; i < document["consent"].size(); ++i) {
        CHECK(omnigate::parse_rfc3339(again["consent"][i]["captured_at"].get<std::string>()) ==
              omnigate::parse_rfc3339(document["consent"][i]["captured_at"].get<std::string>()));
        again["consent"][i].erase("captured_at");
        document["consent"][i].erase("captured_at");
      }
    }
    // The serializer writes reaction.removed only when true (the reader defaults it from the
    // emoji), so compare what it means.
    if (document.contains("reaction")) {
      bool removed = document["reaction"].value(
          "removed", document["reaction"].value("emoji", std::string()).empty());
      CHECK(again["reaction"].value("removed", false) == removed);
      again["reaction"].erase("removed");
      document["reaction"].erase("removed");
    }
    CHECK(again == document);
  }
  CHECK(seen >= 7);
}

TEST_CASE("the reader rejects the schema's invalid examples that it is meant to catch",
          "[model][schema]") {
  // The strict reader checks keys, types, enumerations and the kind → section rule; the
  // schema also checks formats (uuid, language tags, account pattern, unique tags, UTC-only
  // timestamps), which the reader leaves to the schema.
  namespace fs = std::filesystem;
  struct Row {
    std::string file, detail_prefix;
  };
  const std::vector<Row> rows = {
      {"action-unknown-type.json", "action.type:"},
      {"bad-channel.json", "channel:"},
      {"bad-kind.json", "kind:"},
      {"consent-channel-not-snake-case.json", "consent[1].channels:"},
      {"consent-kind-with-empty-consent.json", "consent"},
      {"consent-without-method.json", "consent[0].method:"},
      {"empty-display-name.json", "contact.display_name:"},
      {"identifier-type-ip.json", "contact.identifiers[2].type:"},
      {"lead-field-not-string.json", "lead.fields."},
      {"lead-without-lead.json", "lead:"},
      {"message-edit-without-edit-of.json", "message.edit_of:"},
      {"message-without-message.json", "message:"},
      {"negative-attachment-size.json", "message.attachments[0].size:"},
      {"phone-identifier-without-value-or-raw.json", "contact.identifiers[0].value:"},
      {"reaction-without-of.json", "reaction.of:"},
      {"status-unknown-state.json", "status.state:"},
      {"timestamp-without-zone.json", ""},
      {"unknown-nested-key.json", ""},
      {"unknown-top-level-key.json", ""},
      {"uppercase-text-sha256.json", "consent[0].evidence.text_sha256:"},
      {"wrong-schema-name.json", "schema:"},
  };
  fs::path dir = fs::path(OMNIGATE_SOURCE_DIR) / "schemas" / "examples" / "invalid";
  for (const auto& row : rows) {
    CAPTURE(row.file);
    json document = json::parse(read_text(dir / row.file));
    auto read = interaction_from_json(document, ReadMode::full);
    REQUIRE_FALSE(read.ok());
    CAPTURE(read.error().detail);
    CHECK(read.error().code == ErrorCode::invalid_field);
    CHECK(read.error().detail.rfind(row.detail_prefix, 0) == 0);
  }
}

TEST_CASE("reader errors name the path of the offending field", "[model][reader]") {
  struct Row {
    std::string what;
    std::function<void(json&)> edit;
    std::string detail_prefix;
  };
  const std::vector<Row> rows = {
      {"unknown nested field", [](json& d) { d["message"]["colour"] = "red"; },
       "message.colour: unknown field"},
      {"unknown top-level field", [](json& d) { d["priority"] = 1; }, "priority: unknown field"},
      {"kind outside the enumeration", [](json& d) { d["kind"] = "chat"; },
       "kind: 'chat' is not one of message, message_edit, lead"},
      {"identifier type outside the enumeration",
       [](json& d) { d["contact"]["identifiers"][1]["type"] = "ip"; },
       "contact.identifiers[1].type: 'ip' is not one of"},
      {"unknown field inside an identifier",
       [](json& d) { d["contact"]["identifiers"][1]["label"] = "work"; },
       "contact.identifiers[1].label: unknown field"},
      {"consent without channels",
       [](json& d) {
         d["consent"] = json::array({{{"purpose", "marketing"},
                                      {"status", "granted"},
                                      {"channels", json::array()},
                                      {"method", "api"}}});
       },
       "consent[0].channels: must list at least one channel"},
      {"text as a number", [](json& d) { d["message"]["text"] = 42; },
       "message.text: must be a string"},
      {"verified as a string", [](json& d) { d["contact"]["identifiers"][0]["verified"] = "yes"; },
       "contact.identifiers[0].verified: must be true or false"},
      {"a section that is not an object", [](json& d) { d["message"] = "hi"; },
       "message: must be an object"},
      {"an empty optional string", [](json& d) { d["message"]["subject"] = ""; },
       "message.subject: must not be empty"},
      {"a bad time", [](json& d) { d["received_at"] = "yesterday"; },
       "received_at: must be an RFC 3339 time"},
      {"kind lead without lead", [](json& d) { d["kind"] = "lead"; },
       "lead: is required when kind is lead"},
      {"message_edit without edit_of", [](json& d) { d["kind"] = "message_edit"; },
       "message.edit_of: is required when kind is message_edit"},
      {"missing id", [](json& d) { d.erase("id"); }, "id: is required"},
      {"missing occurred_at", [](json& d) { d.erase("occurred_at"); }, "occurred_at: is required"},
      {"tags with an empty string",
       [](json& d) {
         d["tags"] = json::array({"a", ""});
       },
       "tags[1]: must be a non-empty string"},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    json document = base_document();
    row.edit(document);
    auto read = interaction_from_json(document, ReadMode::full);
    REQUIRE_FALSE(read.ok());
    CAPTURE(read.error().detail);
    CHECK(read.error().code == ErrorCode::invalid_field);
    CHECK(read.error().stage == "parse");
    CHECK(read.error().detail.rfind(row.detail_prefix, 0) == 0);
  }
}

TEST_CASE("the base reader document is itself valid", "[model][reader]") {
  auto read = interaction_from_json(base_document(), ReadMode::full);
  INFO((read ? std::string() : read.error().detail));
  REQUIRE(read.ok());
  CHECK(read->received_at == at(2026, 11, 22, 9, 30, 1, 500));
  CHECK(read->message->text == std::optional<std::string>("hi"));
}

TEST_CASE("a full-mode document with a non-string occurred_at is an error, not an exception",
          "[model][reader]") {
  // Regression (fixed): interaction_from_json(full) re-reads occurred_at with
  // document.value("occurred_at", ""), which throws nlohmann::json::type_error when the field is
  // not a string (or when the document is not an object) instead of returning the reader's error.
  auto bad = GENERATE(json(5), json(true), json::array());
  CAPTURE(bad.dump());
  json document = base_document();
  document["occurred_at"] = bad;
  omnigate::Result<Interaction> read = omnigate::make_error(ErrorCode::internal, "", "not run");
  REQUIRE_NOTHROW(read = interaction_from_json(document, ReadMode::full));
  REQUIRE_FALSE(read.ok());
  CHECK(read.error().detail.rfind("occurred_at: must be a string", 0) == 0);
}

TEST_CASE("a full-mode document that is not an object is an error, not an exception",
          "[model][reader]") {
  // Regression (fixed): same document.value(...) call; json::value() on an array throws type_error
  // 306.
  auto document = GENERATE(json::array(), json("text"), json(1));
  CAPTURE(document.dump());
  omnigate::Result<Interaction> read = omnigate::make_error(ErrorCode::internal, "", "not run");
  REQUIRE_NOTHROW(read = interaction_from_json(document, ReadMode::full));
  REQUIRE_FALSE(read.ok());
  CHECK(read.error().detail.rfind("the document: must be an object", 0) == 0);
}

TEST_CASE("a full-mode document without received_at is rejected like the schema does",
          "[model][reader]") {
  // Regression (fixed): the schema requires received_at, the full-mode reader defaults it to the
  // epoch.
  json document = base_document();
  document.erase("received_at");
  auto read = interaction_from_json(document, ReadMode::full);
  REQUIRE_FALSE(read.ok());
  CHECK(read.error().detail.rfind("received_at: is required", 0) == 0);
}

TEST_CASE("a reaction without emoji counts as removed", "[model][reader]") {
  json document = base_document();
  document["kind"] = "reaction";
  document["reaction"] = {{"of", "4711"}};
  auto read = interaction_from_json(document, ReadMode::full);
  REQUIRE(read.ok());
  CHECK(read->reaction->removed);
  CHECK(read->reaction->emoji.empty());
}

TEST_CASE("check_kind_sections requires the section named after each kind", "[model][kinds]") {
  struct Row {
    std::string kind;
    std::string missing;  // the section the error names
    std::function<void(Interaction&)> fill;
  };
  const std::vector<Row> rows = {
      {"message", "message", [](Interaction& in) { in.message = message_with_id("1"); }},
      {"message_edit", "message",
       [](Interaction& in) {
         in.message = message_with_id("2");
         in.message->edit_of = "1";
       }},
      {"lead", "lead",
       [](Interaction& in) {
         in.lead = omnigate::Lead{"callback", {}};
       }},
      {"consent", "consent",
       [](Interaction& in) {
         omnigate::Consent c;
         c.purpose = "marketing";
         c.status = "granted";
         c.channels = {"email"};
         c.method = "api";
         in.consent.push_back(c);
       }},
      {"status", "status", [](Interaction& in) { in.status = status_of("o", "read"); }},
      {"reaction", "reaction",
       [](Interaction& in) {
         in.reaction = omnigate::Reaction{"1", "👍"};
       }},
      {"action", "action", [](Interaction& in) { in.action = action_of("button"); }},
  };
  REQUIRE(rows.size() == omnigate::kKinds.size());
  for (const auto& row : rows) {
    CAPTURE(row.kind);
    Interaction empty = minimal(row.kind);
    auto missing = omnigate::check_kind_sections(empty);
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().code == ErrorCode::invalid_field);
    CHECK(missing.error().detail == row.missing + ": is required when kind is " + row.kind);

    Interaction filled = minimal(row.kind);
    row.fill(filled);
    CHECK(omnigate::check_kind_sections(filled).ok());
  }
}

TEST_CASE(
    "check_kind_sections: message_edit needs message.edit_of, other kinds allow extra "
    "sections",
    "[model][kinds]") {
  Interaction edit = minimal("message_edit");
  edit.message = message_with_id("2");
  auto status = omnigate::check_kind_sections(edit);
  REQUIRE_FALSE(status.ok());
  CHECK(status.error().detail == "message.edit_of: is required when kind is message_edit");

  // A status may carry a message (e.g. a bounce's text).
  Interaction bounce = minimal("status");
  bounce.status = status_of("o", "bounced");
  bounce.message = message_with_id("b-1");
  CHECK(omnigate::check_kind_sections(bounce).ok());
}

// ------------------------------------------------------------- the streaming writer (issue 14)

TEST_CASE("serialize writes, without a DOM, the very bytes of the DOM serializer for every section",
          "[model][serialize]") {
  Interaction full = full_interaction();
  full.tags = {"vip", "повтор"};
  full.raw = omnigate::RawInfo{std::string(64, 'b'), "message/rfc822",
                               omnigate::RawObject{"omnigate_raw", "email/support/x"}};
  Interaction removed = minimal("reaction");
  removed.reaction = omnigate::Reaction{"4710", "👍", true};
  Interaction plain = minimal();
  plain.message = message_with_id("m-1");
  plain.message->text = "Привет, \"мир\" \\ / 📞 \u2028";
  for (const Interaction* in : {&full, &removed, &plain}) {
    CHECK(omnigate::serialize(*in) == omnigate::to_json(*in).dump());
  }
}

TEST_CASE("serialize: a document many times its first buffer grows and is written whole",
          "[model][serialize]") {
  // serialize writes into a 1 KiB string it grows as it goes; every growth path (one character,
  // a run the writer announces, escapes that double a run) must end with exactly the document.
  Interaction in = minimal();
  in.message = message_with_id("m-big");
  std::string text;
  while (text.size() < 70'000) text += "Привет \"мир\" \\ \n\t📞 abc ";
  in.message->text = text;
  for (int i = 0; i < 300; ++i) in.tags.push_back("tag-" + std::to_string(i));
  const std::string written = omnigate::serialize(in);
  CHECK(written.size() > 70'000);
  CHECK(written == omnigate::to_json(in).dump());  // a lost trim would leave NULs behind
}

TEST_CASE(
    "serialize: control characters are escaped, a repeated pair key keeps its first place and "
    "last value, and invalid UTF-8 is replaced as before",
    "[model][serialize]") {
  Interaction in = minimal("lead");
  in.lead = omnigate::Lead{"callback", {{"a", "1"}, {"b", "2"}, {"a", "3"}}};
  in.contact = omnigate::Contact{};
  in.contact->display_name = std::string("tab\there\x01\x1f end\r\n");
  // The escapes' hex case may differ from the DOM's; the document is the same.
  CHECK(json::parse(omnigate::serialize(in)) == json::parse(omnigate::to_json(in).dump()));
  CHECK_THAT(omnigate::serialize(in), Catch::Contains(R"("fields":{"a":"3","b":"2"})"));

  in.contact->display_name = std::string("bad \xff byte");
  const std::string written = omnigate::serialize(in);
  CHECK(written == omnigate::to_json(in).dump(-1, ' ', false, json::error_handler_t::replace));
  CHECK_THAT(written, Catch::Contains("bad \xEF\xBF\xBD byte"));
}

// The VK Callback mapping alone (no NATS, no server): what the fixture table cannot show -- bodies
// that are not quite events, events missing the id they need, the keys chosen for dedup, and
// the payload and attachment edges.
#include <catch2/catch.hpp>

#include <string>

#include "connectors/vk/vk_parse.hpp"
#include "gateway/model/ids.hpp"

using namespace omnigate;
using namespace omnigate::vk;

namespace {

const CommunitySettings kCommunity{"main", StopWords()};
const SysMillis kNow = SysMillis(std::chrono::milliseconds(1'796'030'000'000));

std::string event(const std::string& type, const std::string& object,
                  const std::string& event_id = "0123456789abcdef0123456789abcdef01234567") {
  std::string id = event_id.empty() ? "" : R"("event_id":")" + event_id + R"(",)";
  return R"({"group_id":218765432,"type":")" + type + "\"," + id + R"("v":"5.199","object":)" +
         object + R"(,"secret":"s"})";
}

std::string message_new(const std::string& message_members) {
  return event("message_new", R"({"message":{"date":1796018400,)" + message_members +
                                  R"(},"client_info":{"keyboard":true}})");
}

Callback parsed(const std::string& body) {
  auto result = parse_callback(body, kCommunity, kNow);
  REQUIRE(result);
  for (const auto& s : result->mapped.submissions) {
    INFO(s.interaction.kind);
    CHECK(check_kind_sections(s.interaction));
  }
  return std::move(result.value());
}

}  // namespace

TEST_CASE("a body that is not a VK event is bad_request", "[vk][mapping]") {
  for (std::string body : {"", "[]", "\"ok\"", "{\"group_id\":1}", "{\"type\":\"\"}",
                           "{\"type\":5}", "{\"type\":\"message_new\",\"object\":{\"a\":\"x"}) {
    CAPTURE(body);
    auto result = parse_callback(body, kCommunity, kNow);
    REQUIRE_FALSE(result);
    CHECK(result.error().code == ErrorCode::bad_request);
  }
}

TEST_CASE("the envelope is read for the connector's checks, confirmation maps nothing",
          "[vk][mapping]") {
  Callback c = parsed(
      R"({"group_id":218765432,"type":"confirmation","event_id":"e1","v":"5.199","secret":"k"})");
  CHECK(c.envelope.type == "confirmation");
  CHECK(c.envelope.group_id == 218765432);
  CHECK(c.envelope.secret == "k");
  CHECK(c.mapped.submissions.empty());
  CHECK(c.mapped.ignored.empty());
  // No secret, no group: read as empty, and the connector refuses them.
  Callback bare = parsed(R"({"type":"group_join","object":{"user_id":1}})");
  CHECK(bare.envelope.secret.empty());
  CHECK_FALSE(bare.envelope.group_id);
  CHECK(bare.mapped.ignored == std::vector<std::string>{"group_join"});
}

TEST_CASE("the native key is the envelope's event_id, or the body's hash when VK sent none",
          "[vk][mapping]") {
  // message_event carries its own 12-hex event_id (for sendMessageEventAnswer): not the key.
  Callback button = parsed(event(
      "message_event", R"({"user_id":5,"peer_id":5,"event_id":"3a9f2c1d7b4e","payload":{"a":1}})",
      "envelope-id"));
  REQUIRE(button.mapped.submissions.size() == 1);
  CHECK(button.mapped.submissions[0].native_key == "envelope-id");

  const std::string body = message_new(R"("from_id":5,"id":7,"peer_id":5,"text":"hi")");
  const std::string no_id =
      event("message_new", R"({"message":{"date":1,"from_id":5,"id":7,"peer_id":5}})", "");
  Callback keyed = parsed(no_id);
  REQUIRE(keyed.mapped.submissions.size() == 1);
  CHECK(keyed.mapped.submissions[0].native_key == "sha256:" + sha256_hex(no_id));
  CHECK(parsed(no_id).mapped.submissions[0].native_key == keyed.mapped.submissions[0].native_key);
  CHECK(parsed(body).mapped.submissions[0].raw_bytes == body);
}

TEST_CASE("messages without the id or sender they need are acknowledged and counted",
          "[vk][mapping]") {
  // A chat message (peer >= 2e9) with id 0 and no conversation_message_id; a message from a
  // community (negative from_id); an edit with no peer; a comment without its post.
  CHECK(
      parsed(message_new(R"("from_id":5,"id":0,"peer_id":2000000004,"text":"x")")).mapped.ignored ==
      std::vector<std::string>{"message_without_id"});
  CHECK(
      parsed(message_new(R"("from_id":-218765432,"id":9,"peer_id":5,"text":"x")")).mapped.ignored ==
      std::vector<std::string>{"message_without_sender"});
  CHECK(parsed(event("message_edit", R"({"from_id":5,"id":9})")).mapped.ignored ==
        std::vector<std::string>{"message_edit_without_sender"});
  CHECK(parsed(event("wall_reply_new", R"({"id":1,"from_id":5,"owner_id":-1})")).mapped.ignored ==
        std::vector<std::string>{"wall_reply_new_without_ids"});
  CHECK(
      parsed(
          event(
              "wall_reply_new",
              R"({"id":2,"from_id":-218765432,"owner_id":-218765432,"post_id":1,"text":"Спасибо!"})"))
          .mapped.ignored == std::vector<std::string>{"wall_reply_new_from_community"});
  CHECK(parsed(event("message_allow", R"({"key":"x"})")).mapped.ignored ==
        std::vector<std::string>{"message_allow_without_user"});
  CHECK(parsed(event("message_reply", R"({"from_id":-218765432,"id":3,"peer_id":5,"out":1})"))
            .mapped.ignored == std::vector<std::string>{"message_reply"});
  // Object missing altogether: still an acknowledgement, never a 400 that VK would retry.
  CHECK(parsed(R"({"type":"message_new","event_id":"x"})").mapped.ignored ==
        std::vector<std::string>{"message_without_sender"});
}

TEST_CASE("in a chat, the reply names the replied message by conversation_message_id",
          "[vk][mapping]") {
  Callback c = parsed(message_new(
      R"("from_id":5,"id":0,"conversation_message_id":40,"peer_id":2000000001,"text":"да","reply_message":{"id":0,"conversation_message_id":39,"from_id":6})"));
  REQUIRE(c.mapped.submissions.size() == 1);
  const Interaction& in = c.mapped.submissions[0].interaction;
  CHECK(in.message->native_id == "40");
  CHECK(in.conversation->type == "group");
  CHECK(in.conversation->reply_to == "39");
}

TEST_CASE("a callback payload object keeps VK's key order, a string is kept as is",
          "[vk][mapping]") {
  Callback object = parsed(event(
      "message_event", R"({"user_id":5,"peer_id":5,"payload":{"z":1,"a":{"y":[1,2],"b":"щ"}}})"));
  REQUIRE(object.mapped.submissions.size() == 1);
  CHECK(object.mapped.submissions[0].interaction.action->data ==
        std::string(R"({"z":1,"a":{"y":[1,2],"b":"щ"}})"));
  CHECK(object.mapped.submissions[0].interaction.occurred_at == kNow);
  Callback text = parsed(event("message_event", R"({"user_id":5,"peer_id":5,"payload":"go"})"));
  CHECK(text.mapped.submissions[0].interaction.action->data == std::string("go"));
}

TEST_CASE("attachments: the largest photo by area, unknown types named, docs without a known ext",
          "[vk][mapping]") {
  Callback c = parsed(message_new(
      R"("from_id":5,"id":7,"peer_id":5,"text":"","attachments":[{"type":"photo","photo":{"id":1,"owner_id":5,"sizes":[{"type":"w","width":100,"height":900,"url":"https://a/w"},{"type":"z","width":400,"height":300,"url":"https://a/z"}]}},{"type":"doc","doc":{"id":2,"owner_id":5,"title":"x.heic","ext":"heic","size":10}},{"type":"story","story":{"id":3,"owner_id":5}},{"type":"audio_message","audio_message":{"id":4,"owner_id":5,"link_ogg":"https://a/o"}}])"));
  REQUIRE(c.mapped.submissions.size() == 1);
  const Message& m = *c.mapped.submissions[0].interaction.message;
  CHECK_FALSE(m.text);
  REQUIRE(m.attachments.size() == 4);
  CHECK(m.attachments[0].provider_ref["url"] == "https://a/z");  // 120000 beats 90000
  CHECK(m.attachments[0].provider_ref["height"] == 300);
  CHECK_FALSE(m.attachments[1].mime_type);
  CHECK(m.attachments[1].file_name == std::string("x.heic"));
  CHECK(m.attachments[2].type == "other");
  CHECK(m.attachments[2].provider_ref ==
        nlohmann::json{{"type", "story"}, {"id", 3}, {"owner_id", 5}});
  CHECK(m.attachments[3].type == "voice");
  CHECK_FALSE(m.attachments[3].url);  // VK's links expire: the CRM fetches by provider_ref
}

TEST_CASE("stop words: any case withdraws marketing, an edit to a stop word does not",
          "[vk][mapping]") {
  Callback stop = parsed(message_new(R"("from_id":5,"id":7,"peer_id":5,"text":"  СТОП ")"));
  REQUIRE(stop.mapped.submissions[0].interaction.consent.size() == 1);
  CHECK(stop.mapped.submissions[0].interaction.consent[0].method == "keyword");
  Callback edit = parsed(event(
      "message_edit",
      R"({"date":1796018400,"update_time":1796018500,"from_id":5,"id":7,"peer_id":5,"text":"стоп"})"));
  REQUIRE(edit.mapped.submissions.size() == 1);
  CHECK(edit.mapped.submissions[0].interaction.consent.empty());
  CHECK(edit.mapped.submissions[0].interaction.message->edit_of == std::string("7"));
}

TEST_CASE("a lead without names, ad or form name still keeps every answer", "[vk][mapping]") {
  Callback c = parsed(event(
      "lead_forms_new",
      R"({"lead_id":1,"user_id":7,"form_id":4,"ad_id":0,"answers":[{"key":"custom_0","answer":"да"},{"key":"phone_number","answer":"не скажу"},{"answer":"no key"}]})"));
  REQUIRE(c.mapped.submissions.size() == 1);
  const Interaction& in = c.mapped.submissions[0].interaction;
  CHECK(in.lead->form == "4");
  CHECK(in.lead->fields == StringPairs{{"custom_0", "да"}, {"phone_number", "не скажу"}});
  CHECK_FALSE(in.contact->display_name);
  REQUIRE(in.contact->identifiers.size() == 2);  // vk_user_id, and the phone as typed (raw)
  CHECK(in.contact->identifiers[1].raw == std::string("не скажу"));
  CHECK_FALSE(in.source);  // ad_id 0: not from an ad
}

TEST_CASE("member order is VK's to choose: type after object, an attachment's type after its media",
          "[vk][mapping]") {
  const std::string message =
      R"({"message":{"date":1796018400,"from_id":5,"id":7,"peer_id":5,"text":"фото","attachments":[)"
      R"({"type":"photo","photo":{"id":1,"owner_id":5,"access_key":"k","sizes":[{"width":4,"height":3,"url":"https://a/z"}]}},)"
      R"({"type":"sticker","sticker":{"product_id":9,"sticker_id":90}}],)"
      R"("geo":{"coordinates":{"latitude":55.75,"longitude":37.61},"place":{"title":"Москва"}},)"
      R"("reply_message":{"id":6}}})";
  const std::string reordered =
      R"({"message":{"attachments":[)"
      R"({"photo":{"sizes":[{"url":"https://a/z","height":3,"width":4}],"access_key":"k","owner_id":5,"id":1},"type":"photo"},)"
      R"({"sticker":{"sticker_id":90,"product_id":9},"type":"sticker"}],)"
      R"("reply_message":{"id":6},"geo":{"place":{"title":"Москва"},"coordinates":{"longitude":37.61,"latitude":55.75}},)"
      R"("text":"фото","peer_id":5,"id":7,"from_id":5,"date":1796018400}})";
  Callback in_order = parsed(event("message_new", message));
  Callback type_last = parsed(
      R"({"object":)" + reordered +
      R"(,"secret":"s","event_id":"0123456789abcdef0123456789abcdef01234567","group_id":218765432,"type":"message_new"})");
  REQUIRE(in_order.mapped.submissions.size() == 1);
  REQUIRE(type_last.mapped.submissions.size() == 1);
  CHECK(type_last.envelope.type == "message_new");
  CHECK(type_last.envelope.secret == "s");
  const Interaction& a = in_order.mapped.submissions[0].interaction;
  const Interaction& b = type_last.mapped.submissions[0].interaction;
  REQUIRE(a.message->attachments.size() == 3);  // photo, sticker, location
  CHECK(a.message->attachments[0].provider_ref["url"] == "https://a/z");
  CHECK(a.message->attachments[1].provider_ref ==
        nlohmann::json{{"type", "sticker"}, {"product_id", 9}, {"sticker_id", 90}});
  CHECK(a.message->attachments[2].location["title"] == "Москва");
  CHECK(a.conversation->reply_to == std::string("6"));
  CHECK(serialize(b) == serialize(a));
}

TEST_CASE(
    "a keyboard payload that is not a string is minified in VK's key order, escapes rewritten",
    "[vk][mapping]") {
  Callback c = parsed(message_new(
      R"("from_id":5,"id":7,"peer_id":5,"text":"Да","payload": { "b" : "\u0416 https:\/\/x", "a" : [ 1 , 2.50, true, null ] } )"));
  REQUIRE(c.mapped.submissions.size() == 1);
  const Interaction& in = c.mapped.submissions[0].interaction;
  CHECK(in.kind == "action");
  CHECK(in.action->title == std::string("Да"));
  // VK writes '/' as "\/": the CRM's own {"b":"Ж https://x"} is what it compares with.
  CHECK(in.action->data == std::string(R"({"b":"Ж https://x","a":[1,2.5,true,null]})"));
  Callback number = parsed(message_new(R"("from_id":5,"id":7,"peer_id":5,"payload": 12 )"));
  CHECK(number.mapped.submissions[0].interaction.action->data == std::string("12"));
  Callback null = parsed(message_new(R"("from_id":5,"id":7,"peer_id":5,"payload":null)"));
  CHECK(null.mapped.submissions[0].interaction.kind == "message");
}

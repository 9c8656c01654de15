// The Telegram fixture table: every file in connectors/telegram/fixtures/ is a real-shaped Bot API
// Update (see shared/design/CHANNELS.md, "Telegram Bot API"), and one row here says what
// parse_update + enrichment must make of it. Adding a provider quirk = adding a fixture and a row.
//
// The fixtures are written the way the Bot API server writes them: every non-ASCII character
// \u-escaped, emoji as surrogate pairs, so each row also checks that text reaches the
// interaction as intact UTF-8.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "connectors/telegram/telegram_parse.hpp"
#include "gateway/model/identifiers.hpp"
#include "gateway/model/ids.hpp"
#include "gateway/model/interaction.hpp"
#include "gateway/pipeline/pipeline.hpp"

namespace {

using nlohmann::json;
using omnigate::ErrorCode;
using omnigate::Interaction;
using omnigate::SysMillis;

// -------------------------------------------------------------------------- the harness

const std::string kAccount = "shopbot";
// 2026-03-06T12:00:00Z, after every fixture's date: the clock parse_update is given.
const SysMillis kNow{std::chrono::seconds(1772798400)};
const std::string kNowText = "2026-03-06T12:00:00.000Z";

std::string fixture_dir() {
  return std::string(OMNIGATE_SOURCE_DIR) + "/connectors/telegram/fixtures";
}

std::string read_fixture(const std::string& name) {
  std::ifstream in(fixture_dir() + "/" + name, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

omnigate::telegram::BotSettings bot() {
  omnigate::telegram::BotSettings settings;
  settings.account = kAccount;
  return settings;
}

// What the pipeline publishes for a submission (the real enrich, region RU).
Interaction enrich(omnigate::Submission submission) {
  omnigate::IdentityConfig identity;
  identity.default_region = "RU";
  return omnigate::enrich(std::move(submission), identity);
}

// The published document exactly as it goes on the wire, read back as JSON.
json published_json(const Interaction& in) {
  return json::parse(omnigate::serialize(in));
}

enum class Outcome { published, ignored, error };

struct Expected {
  Outcome outcome;
  std::string kind_or_type;  // interaction kind | ignored_type | error detail prefix
  ErrorCode code = ErrorCode::internal;
};

Expected published(std::string kind) {
  return {Outcome::published, std::move(kind)};
}
Expected ignored(std::string type) {
  return {Outcome::ignored, std::move(type)};
}
Expected fails(ErrorCode code, std::string detail_prefix) {
  return {Outcome::error, std::move(detail_prefix), code};
}

struct Field {
  std::string pointer;  // RFC 6901 JSON pointer into the published document
  json value;
};
using Fields = std::vector<Field>;

struct Row {
  Row(std::string fixture_, Expected expected_, Fields fields_, std::vector<std::string> absent_)
      : fixture(std::move(fixture_)),
        expected(std::move(expected_)),
        fields(std::move(fields_)),
        absent(std::move(absent_)) {}
  std::string fixture;
  Expected expected;
  Fields fields;
  std::vector<std::string> absent;  // pointers that must not exist
};

json J(const char* text) {
  return json::parse(text);
}

Fields operator+(Fields a, const Fields& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

struct Person {
  std::string user_id, username, display_name, language;
};
const Person kAnna{"5512345678", "anna_smirnova", "Анна Смирнова", "ru"};
const Person kDmitry{"6087654321", "dvolkov", "Дмитрий Волков", "ru"};
const Person kKatya{"7034561298", "", "Екатерина", "ru"};  // no last name, no username
const Person kSergey{"5839201746", "s_ivanov", "Сергей Иванов", "en"};
const Person kOlga{"6423918570", "olga_kuz", "Ольга Кузнецова", "ru"};
const Person kMaria{"6198765432", "maria_petrova", "Мария Петрова", "ru"};

json identifiers_of(const Person& p) {
  json ids = json::array();
  ids.push_back({{"type", "telegram_user_id"}, {"value", p.user_id}, {"verified", true}});
  if (!p.username.empty()) {
    ids.push_back({{"type", "telegram_username"}, {"value", p.username}, {"verified", true}});
  }
  return ids;
}

// The sender as the contact: name, the Telegram ids (verified: Telegram says so), language.
Fields sender(const Person& p) {
  return {{"/contact/display_name", p.display_name},
          {"/contact/identifiers", identifiers_of(p)},
          {"/contact/language", p.language}};
}

Fields private_chat(const Person& p) {
  return {{"/conversation", {{"id", p.user_id}, {"type", "private"}}}};
}

json consent(const char* purpose, const char* status, const char* method, const std::string& at,
             const char* native_event) {
  return {{"purpose", purpose},       {"status", status},
          {"channels", {"telegram"}}, {"method", method},
          {"captured_at", at},        {"evidence", {{"native_event", native_event}}}};
}

// What a plain message must not carry.
const std::vector<std::string> kNoExtras = {
    "/source",          "/consent",           "/action",
    "/message/edit_of", "/message/forwarded", "/message/group_id"};

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const std::string kStartPayload = "dXRtX3NvdXJjZT12ayZ1dG1fY2FtcGFpZ249c3ByaW5nJnJlZj00Mg";
const char* kVcard =
    "BEGIN:VCARD\nVERSION:3.0\nN:Петрова;Мария;;;\nFN:Мария Петрова\nTEL;TYPE=CELL:+7 985 "
    "765-43-21\nEND:VCARD";

// -------------------------------------------------------------------------- the table

const std::vector<Row>& rows() {
  static const std::vector<Row> table = {
      {"message_text_ru_emoji_entities.json", published("message"),
       sender(kAnna) + private_chat(kAnna) +
           Fields{{"/occurred_at", "2026-03-06T07:00:00.000Z"},
                  {"/message/native_id", "2301"},
                  // 🌷 is one code point but two UTF-16 units: "букет" starts at 31, not 30.
                  {"/message/text",
                   "Здравствуйте! 🌷 Хочу заказать букет тюльпанов к 8 Марта, вот пример: "
                   "https://lavka.example.ru/catalog/tulips-25"},
                  {"/message/entities", J(R"([{"offset":31,"length":15,"type":"bold"},
                                              {"offset":70,"length":42,"type":"url"}])")}},
       kNoExtras + std::vector<std::string>{"/message/attachments"}},

      {"message_photo_caption_largest_not_last.json", published("message"),
       sender(kAnna) + private_chat(kAnna) +
           Fields{{"/occurred_at", "2026-03-06T07:04:00.000Z"},
                  {"/message/native_id", "2302"},
                  {"/message/text", "Вот такой букет хочу, но в розовой упаковке 🎀"},
                  {"/message/entities", J(R"([{"offset":27,"length":16,"type":"italic"}])")},
                  // 4 sizes, the 1280x960 one second: the largest is chosen, not the last.
                  {"/message/attachments",
                   J(R"([{"type":"image","mime_type":"image/jpeg","size":148213,
                     "provider_ref":{"file_id":"AgACAgIAAxkBAAIJB2XpQ0m7aXN4X1Qd3sZ0kqg1bVnWAAJ41TEbf3xBS8p6Jm2ZbKQUAQADAgADeQADNAQ",
                                     "file_unique_id":"AQADeNUxG398QUt-","width":1280,"height":960}}])")}},
       kNoExtras},

      {"message_album_photo_first.json",
       published("message"),
       sender(kAnna) + private_chat(kAnna) +
           Fields{{"/occurred_at", "2026-03-06T07:05:00.000Z"},
                  {"/message/native_id", "2303"},
                  {"/message/group_id", "13918273645091827"},
                  {"/message/text", "Два варианта, какой лучше?"},
                  {"/message/attachments/0/type", "image"},
                  {"/message/attachments/0/size", 90311},
                  {"/message/attachments/0/provider_ref/file_id",
                   "AgACAgIAAxkBAAIJCGXpQ5Kf1c0AAV2xQmTz1Yb9R0kSAAJ51TEbf3xBS0aQ2T8xwM6wAQADAgADeAA"
                   "DNAQ"},
                  {"/message/attachments/0/provider_ref/file_unique_id", "AQADedUxG398QUt9"}},
       {"/message/attachments/1", "/message/entities", "/source", "/consent"}},

      {"message_album_photo_second.json",
       published("message"),
       sender(kAnna) + private_chat(kAnna) +
           Fields{{"/occurred_at", "2026-03-06T07:05:00.000Z"},
                  {"/message/native_id", "2304"},
                  {"/message/group_id", "13918273645091827"},
                  {"/message/attachments/0/type", "image"},
                  {"/message/attachments/0/mime_type", "image/jpeg"},
                  {"/message/attachments/0/size", 163577},
                  {"/message/attachments/0/provider_ref/file_unique_id", "AQADetUxG398QUt-"},
                  {"/message/attachments/0/provider_ref/width", 960},
                  {"/message/attachments/0/provider_ref/height", 1280}},
       {"/message/text", "/message/attachments/1", "/source", "/consent"}},

      {"message_document_pdf_cyrillic_name.json", published("message"),
       sender(kDmitry) + private_chat(kDmitry) +
           Fields{{"/occurred_at", "2026-03-06T07:15:00.000Z"},
                  {"/message/native_id", "2305"},
                  {"/message/text", "Оплатили, проверьте пожалуйста"},
                  {"/message/attachments", J(R"([{"type":"document","mime_type":"application/pdf",
                     "file_name":"Счёт-договор №128 от 05.03.2026.pdf","size":248913,
                     "provider_ref":{"file_id":"BQACAgIAAxkBAAIJCmXpQ9cdHBpk9G-cF95fKNLyZPSiAAJ5SwACf3xBS3ifG2EN5t2WNAQ",
                                     "file_unique_id":"AgADeUsAAn98QUs"}}])")}},
       kNoExtras},

      {"message_voice.json", published("message"),
       sender(kKatya) + private_chat(kKatya) +
           Fields{
               {"/occurred_at", "2026-03-06T07:20:00.000Z"},
               {"/message/native_id", "2306"},
               {"/message/attachments", J(R"([{"type":"voice","mime_type":"audio/ogg","size":28761,
                     "provider_ref":{"file_id":"AwACAgIAAxkBAAIJC2XpRBd2W3nm2J7Kq1DqH1rV7pMqAAJ8SwACf3xBS7fO1lG3wWqFNAQ",
                                     "file_unique_id":"AgADfEsAAn98QUs"}}])")}},
       kNoExtras + std::vector<std::string>{"/message/text"}},

      {"message_audio.json", published("message"),
       sender(kSergey) + private_chat(kSergey) +
           Fields{{"/occurred_at", "2026-03-06T07:22:00.000Z"},
                  {"/message/native_id", "2307"},
                  {"/message/attachments", J(R"([{"type":"audio","mime_type":"audio/mpeg",
                     "file_name":"Кино — Группа крови.mp3","size":8590123,
                     "provider_ref":{"file_id":"CQACAgIAAxkBAAIJDGXpRDyb8PPhwbAKfGkQY3a2mMGJAAJ9SwACf3xBSy2QpeT6lLxhNAQ",
                                     "file_unique_id":"AgADfUsAAn98QUs"}}])")}},
       kNoExtras + std::vector<std::string>{"/message/text"}},

      {"message_video.json", published("message"),
       sender(kOlga) + private_chat(kOlga) +
           Fields{{"/occurred_at", "2026-03-06T07:25:00.000Z"},
                  {"/message/native_id", "2308"},
                  {"/message/text", "Так выглядит витрина сейчас"},
                  {"/message/attachments", J(R"([{"type":"video","mime_type":"video/mp4",
                     "file_name":"IMG_4821.MP4","size":5123456,
                     "provider_ref":{"file_id":"BAACAgIAAxkBAAIJDWXpRF6dhdckFumx5gAB3z9JUdnCpQACfksAAn98QUuKdUoNFJ70QjQE",
                                     "file_unique_id":"AgADfksAAn98QUs"}}])")}},
       kNoExtras},

      // A video note has no mime_type in the Bot API: the connector's default applies.
      {"message_video_note.json", published("message"),
       sender(kOlga) + private_chat(kOlga) +
           Fields{{"/occurred_at", "2026-03-06T07:26:30.000Z"},
                  {"/message/native_id", "2309"},
                  {"/message/attachments",
                   J(R"([{"type":"video_note","mime_type":"video/mp4","size":612345,
                     "provider_ref":{"file_id":"DQACAgIAAxkBAAIJDmXpRIJB59MYEKT2c_A-xR6mNMOXAAJ_SwACf3xBS6vQ6drmXPK0NAQ",
                                     "file_unique_id":"AgADf0sAAn98QUs"}}])")}},
       kNoExtras + std::vector<std::string>{"/message/text"}},

      // The Bot API repeats an animation as `document`: one attachment, not two.
      {"message_animation_with_document.json", published("message"),
       sender(kDmitry) + private_chat(kDmitry) +
           Fields{{"/occurred_at", "2026-03-06T07:27:15.000Z"},
                  {"/message/native_id", "2310"},
                  {"/message/attachments", J(R"([{"type":"animation","mime_type":"video/mp4",
                     "file_name":"spasibo.mp4","size":184220,
                     "provider_ref":{"file_id":"CgACAgQAAxkBAAIJD2XpRKUN519odZTXGfMgO3095NKPAAKABAACf3xBS8W00NG-q1KnNAQ",
                                     "file_unique_id":"AgADgAQAAn98QUs"}}])")}},
       kNoExtras + std::vector<std::string>{"/message/text"}},

      {"message_sticker_static_webp.json", published("message"),
       sender(kKatya) + private_chat(kKatya) +
           Fields{{"/occurred_at", "2026-03-06T07:27:45.000Z"},
                  {"/message/native_id", "2311"},
                  {"/message/attachments",
                   J(R"([{"type":"sticker","mime_type":"image/webp","size":23456,
                     "caption":"😍",
                     "provider_ref":{"file_id":"CAACAgIAAxkBAAIJEGXpRMEtZTtkJOI2HOZ1_MKtVuqSAAKBBAACf3xBSx8e69C-Q-pzNAQ",
                                     "file_unique_id":"AgADgQQAAn98QUs"}}])")}},
       kNoExtras + std::vector<std::string>{"/message/text"}},

      {"message_sticker_animated_tgs.json", published("message"),
       sender(kKatya) + private_chat(kKatya) +
           Fields{{"/occurred_at", "2026-03-06T07:28:05.000Z"},
                  {"/message/native_id", "2312"},
                  {"/message/attachments",
                   J(R"([{"type":"sticker","mime_type":"application/x-tgsticker",
                     "size":41872,"caption":"👍",
                     "provider_ref":{"file_id":"CAACAgIAAxkBAAIJEWXpRNR96gdZ9H-2N6zeQOotD_A9AAKCBAACf3xBS5NltFW-14dWNAQ",
                                     "file_unique_id":"AgADggQAAn98QUs"}}])")}},
       kNoExtras + std::vector<std::string>{"/message/text"}},

      {"message_location.json", published("message"),
       sender(kSergey) + private_chat(kSergey) +
           Fields{
               {"/occurred_at", "2026-03-06T07:34:45.000Z"},
               {"/message/native_id", "2313"},
               {"/message/attachments",
                J(R"([{"type":"location","location":{"latitude":55.757932,"longitude":37.608456}}])")}},
       kNoExtras + std::vector<std::string>{"/message/text"}},

      // A venue message also carries `location`: one venue attachment, not a venue + a location.
      {"message_venue.json", published("message"),
       sender(kSergey) + private_chat(kSergey) +
           Fields{{"/occurred_at", "2026-03-06T07:35:45.000Z"},
                  {"/message/native_id", "2314"},
                  {"/message/attachments", J(R"([{"type":"venue","location":{"latitude":55.754691,
                     "longitude":37.621505,"title":"ГУМ","address":"Красная площадь, 3, Москва"}}])")}},
       kNoExtras + std::vector<std::string>{"/message/text"}},

      // contact.user_id == from.id: Telegram vouches for the number; E.164 after enrichment.
      {"message_contact_own_verified.json", published("message"),
       Fields{{"/contact/display_name", "Анна Смирнова"},
              {"/contact/identifiers",
               J(R"([{"type":"telegram_user_id","value":"5512345678","verified":true},
                     {"type":"telegram_username","value":"anna_smirnova","verified":true},
                     {"type":"phone","value":"+79161234567","verified":true}])")},
              {"/contact/language", "ru"},
              {"/occurred_at", "2026-03-06T07:40:45.000Z"},
              {"/message/native_id", "2315"},
              {"/message/attachments", J(R"([{"type":"contact","contact":{"name":"Анна Смирнова",
                 "phone":"79161234567","user_id":"5512345678"}}])")}} +
           private_chat(kAnna),
       kNoExtras + std::vector<std::string>{"/message/text", "/contact/identifiers/2/raw"}},

      // Someone else's card: kept as an attachment, never an identifier of the sender.
      {"message_contact_someone_else.json", published("message"),
       sender(kAnna) + private_chat(kAnna) +
           Fields{{"/occurred_at", "2026-03-06T07:42:45.000Z"},
                  {"/message/native_id", "2316"},
                  {"/message/attachments", json::array({{{"type", "contact"},
                                                         {"contact",
                                                          {{"name", "Мария Петрова"},
                                                           {"phone", "+79857654321"},
                                                           {"vcard", kVcard},
                                                           {"user_id", "6198765432"}}}}})}},
       kNoExtras + std::vector<std::string>{"/message/text", "/contact/identifiers/2"}},

      {"message_reply.json", published("message"),
       sender(kAnna) +
           Fields{{"/occurred_at", "2026-03-06T07:51:05.000Z"},
                  {"/conversation", J(R"({"id":"5512345678","type":"private","reply_to":"2317"})")},
                  {"/message/native_id", "2318"},
                  {"/message/text", "Да, после 18:00, пожалуйста"}},
       kNoExtras + std::vector<std::string>{"/message/attachments"}},

      {"message_forward_origin_user.json",
       published("message"),
       sender(kAnna) + private_chat(kAnna) +
           Fields{{"/occurred_at", "2026-03-06T07:52:35.000Z"},
                  {"/message/native_id", "2319"},
                  {"/message/text", "Маша тоже хочет такой букет, можно два?"},
                  {"/message/forwarded", J(R"({"type":"user","date":1772521200,
                     "sender_user":{"id":6198765432,"is_bot":false,"first_name":"Мария",
                                    "last_name":"Петрова","username":"maria_petrova","language_code":"ru"}})")}},
       {"/source", "/consent", "/message/edit_of", "/message/attachments",
        "/contact/identifiers/2"}},

      // An edit happened at edit_date; Telegram keeps the message id, so edit_of == native_id.
      {"edited_message_text.json",
       published("message_edit"),
       sender(kAnna) + private_chat(kAnna) +
           Fields{{"/occurred_at", "2026-03-06T07:54:40.000Z"},
                  {"/message/native_id", "2301"},
                  {"/message/edit_of", "2301"},
                  {"/message/text",
                   "Здравствуйте! 🌷 Хочу заказать букет тюльпанов к 8 Марта, 25 штук"}},
       {"/source", "/consent", "/message/entities", "/message/forwarded"}},

      {"message_group.json", published("message"),
       sender(kDmitry) +
           Fields{{"/occurred_at", "2026-03-06T08:04:45.000Z"},
                  {"/conversation", J(R"({"id":"-4087654321","type":"group"})")},
                  {"/message/native_id", "5120"},
                  {"/message/text", "Коллеги, кто заказывал цветы на 8 Марта? Курьер уже внизу"}},
       kNoExtras},

      // In a forum topic the Bot API sets reply_to_message to the topic's creation message
      // (forum_topic_created, message_id == message_thread_id) on every message: that is the
      // thread, not a reply.
      {"message_supergroup_forum_topic.json", published("message"),
       sender(kOlga) + Fields{{"/occurred_at", "2026-03-06T08:05:45.000Z"},
                              {"/conversation",
                               J(R"({"id":"-1001987654321","type":"group","thread_id":"8790"})")},
                              {"/message/native_id", "8841"},
                              {"/message/text", "Подскажите, доставляете ли в Химки?"}},
       // Regression (fixed): every forum topic message came out as a reply to the topic's
       // creation message.
       kNoExtras + std::vector<std::string>{"/conversation/reply_to"}},

      // A real reply inside a topic: reply_to names the replied message, thread_id the topic.
      {"message_supergroup_topic_reply.json", published("message"),
       sender(kDmitry) +
           Fields{{"/occurred_at", "2026-03-06T08:06:25.000Z"},
                  {"/conversation", J(R"({"id":"-1001987654321","type":"group","reply_to":"8841",
                                          "thread_id":"8790"})")},
                  {"/message/native_id", "8843"},
                  {"/message/text", "Да, доставляем, до МКАД+10 км бесплатно"}},
       kNoExtras},

      // A callback query carries no time of its own: occurred_at is the gateway's clock.
      {"callback_query_button.json",
       published("action"),
       sender(kAnna) + private_chat(kAnna) +
           Fields{{"/occurred_at", kNowText},
                  {"/action", J(R"({"type":"button","data":"order:1042:confirm","of":"2320"})")}},
       {"/message", "/consent", "/source"}},

      {"my_chat_member_private_kicked.json",
       published("consent"),
       sender(kSergey) + private_chat(kSergey) +
           Fields{{"/occurred_at", "2026-03-06T09:11:25.000Z"},
                  {"/consent", json::array({consent("service", "withdrawn", "platform_event",
                                                    "2026-03-06T09:11:25.000Z", "bot_blocked")})}},
       {"/message", "/action", "/source"}},

      {"my_chat_member_private_member.json",
       published("consent"),
       sender(kSergey) + private_chat(kSergey) +
           Fields{
               {"/occurred_at", "2026-03-06T11:11:25.000Z"},
               {"/consent", json::array({consent("service", "granted", "platform_event",
                                                 "2026-03-06T11:11:25.000Z", "bot_unblocked")})}},
       {"/message", "/action", "/source"}},

      {"my_chat_member_group_added.json", ignored("my_chat_member_group"), {}, {}},

      // base64url (no padding) of "utm_source=vk&utm_campaign=spring&ref=42".
      {"message_start_base64url_utm.json",
       published("message"),
       sender(kMaria) + private_chat(kMaria) +
           Fields{{"/occurred_at", "2026-03-06T11:27:25.000Z"},
                  {"/message/native_id", "31877"},
                  {"/message/text", "/start " + kStartPayload},
                  {"/message/entities", J(R"([{"offset":0,"length":6,"type":"bot_command"}])")},
                  {"/source",
                   {{"utm", {{"source", "vk"}, {"campaign", "spring"}}},
                    {"deep_link", kStartPayload},
                    {"params", {{"ref", "42"}}}}},
                  {"/consent", json::array({consent("service", "granted", "platform_event",
                                                    "2026-03-06T11:27:25.000Z", "start")})}},
       {"/source/utm/medium", "/action"}},

      {"message_start_plain_payload.json",
       published("message"),
       sender(kOlga) + private_chat(kOlga) +
           Fields{{"/occurred_at", "2026-03-06T11:28:10.000Z"},
                  {"/message/native_id", "1452"},
                  {"/message/text", "/start promo_2025"},
                  {"/source", {{"deep_link", "promo_2025"}}},
                  {"/consent", json::array({consent("service", "granted", "platform_event",
                                                    "2026-03-06T11:28:10.000Z", "start")})}},
       {"/source/utm", "/source/params"}},

      {"message_start_bare.json",
       published("message"),
       sender(kKatya) + private_chat(kKatya) +
           Fields{{"/occurred_at", "2026-03-06T11:28:55.000Z"},
                  {"/message/native_id", "9920"},
                  {"/message/text", "/start"},
                  {"/consent", json::array({consent("service", "granted", "platform_event",
                                                    "2026-03-06T11:28:55.000Z", "start")})}},
       {"/source"}},

      // Upper-case Cyrillic folds to the configured "стоп".
      {"message_stop_word_uppercase_cyrillic.json",
       published("message"),
       sender(kDmitry) + private_chat(kDmitry) +
           Fields{{"/occurred_at", "2026-03-06T11:48:55.000Z"},
                  {"/message/native_id", "2321"},
                  {"/message/text", "СТОП"},
                  {"/consent", json::array({consent("marketing", "withdrawn", "keyword",
                                                    "2026-03-06T11:48:55.000Z", "stop_word")})}},
       {"/source", "/consent/1"}},

      {"channel_post.json", ignored("channel_post"), {}, {}},
      {"message_reaction.json", ignored("message_reaction"), {}, {}},
      {"unknown_update_type_chat_boost.json", ignored("unknown"), {}, {}},

      {"malformed_json.json", fails(ErrorCode::bad_request, "the body is not valid JSON"), {}, {}},
      {"update_without_update_id.json", fails(ErrorCode::bad_request, "update_id:"), {}, {}},
      {"message_without_chat.json", fails(ErrorCode::invalid_field, "message.chat.id:"), {}, {}},
  };
  return table;
}

// Every published document of a run, validated once against the schema at the end.
struct Published {
  std::vector<std::string> fixtures;
  std::vector<json> documents;
};

void check_row(const Row& row, Published& out) {
  INFO("fixture: " << row.fixture);
  const std::string body = read_fixture(row.fixture);
  REQUIRE_FALSE(body.empty());
  auto parsed = omnigate::telegram::parse_update(body, bot(), kNow);

  if (row.expected.outcome == Outcome::error) {
    REQUIRE_FALSE(parsed.ok());
    INFO("detail: " << parsed.error().detail);
    CHECK(parsed.error().code == row.expected.code);
    CHECK(parsed.error().detail.rfind(row.expected.kind_or_type, 0) == 0);
    return;
  }

  INFO((parsed.ok() ? std::string() : "error: " + parsed.error().detail));
  REQUIRE(parsed.ok());
  // An independent reading of the fixture: the update_id the result must carry.
  const int64_t update_id = json::parse(body).at("update_id").get<int64_t>();
  CHECK(parsed->update_id == update_id);

  if (row.expected.outcome == Outcome::ignored) {
    CHECK(parsed->submissions.empty());
    CHECK(parsed->ignored == std::vector<std::string>{row.expected.kind_or_type});
    return;
  }

  REQUIRE(parsed->submissions.size() == 1);
  CHECK(parsed->ignored.empty());
  CHECK(parsed->submissions.front().native_key == std::to_string(update_id));
  const json doc = published_json(enrich(std::move(parsed->submissions.front())));
  INFO("published: " << doc.dump());

  // What every published Telegram interaction is.
  CHECK(doc.at("schema") == "interaction.v1");
  CHECK(doc.at("id") == omnigate::interaction_id("telegram", kAccount, std::to_string(update_id)));
  CHECK(doc.at("channel") == "telegram");
  CHECK(doc.at("account") == kAccount);
  CHECK(doc.at("kind") == row.expected.kind_or_type);
  CHECK(doc.at("raw") ==
        json({{"sha256", omnigate::sha256_hex(body)}, {"content_type", "application/json"}}));

  for (const auto& field : row.fields) {
    INFO("pointer: " << field.pointer);
    const json::json_pointer pointer(field.pointer);
    REQUIRE(doc.contains(pointer));
    CHECK(doc.at(pointer) == field.value);
  }
  for (const auto& pointer : row.absent) {
    INFO("must be absent: " << pointer);
    CHECK_FALSE(doc.contains(json::json_pointer(pointer)));
  }
  out.fixtures.push_back(row.fixture);
  out.documents.push_back(doc);
}

// Runs tests/schema/validate.mjs (Ajv, strict) over the documents; "" when all are valid.
std::string schema_problems(const Published& published) {
  if (published.documents.empty()) return "nothing to validate";
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / ("omnigate-telegram-fixtures-" + omnigate::random_uuid());
  fs::create_directories(dir);
  const fs::path ndjson = dir / "published.ndjson", report = dir / "report.txt";
  {
    std::ofstream out(ndjson);
    for (const auto& doc : published.documents) out << doc.dump() << "\n";
  }
  const std::string source = OMNIGATE_SOURCE_DIR;
  const std::string command = "node " + source + "/tests/schema/validate.mjs " + source +
                              "/schemas/interaction.v1.schema.json " + ndjson.string() + " > " +
                              report.string() + " 2>&1";
  const int status = std::system(command.c_str());
  std::string problems;
  if (status != 0) {
    std::ifstream in(report);
    std::ostringstream text;
    text << in.rdbuf() << "\n(line N of published.ndjson is the N-th fixture:";
    for (size_t i = 0; i < published.fixtures.size(); ++i) {
      text << " " << i + 1 << "=" << published.fixtures[i];
    }
    text << ")";
    problems = text.str();
  }
  fs::remove_all(dir);
  return problems;
}

void run_rows() {
  Published published;
  size_t run = 0;
  for (const auto& row : rows()) {
    check_row(row, published);
    ++run;
  }
  CHECK(run > 0);
  const std::string problems = schema_problems(published);
  INFO(problems);
  CHECK(problems.empty());
}

}  // namespace

TEST_CASE("every Telegram fixture gives what its row expects", "[telegram][fixtures]") {
  run_rows();
}

TEST_CASE("every Telegram fixture file has exactly one row", "[telegram][fixtures]") {
  std::set<std::string> files, named;
  for (const auto& entry : std::filesystem::directory_iterator(fixture_dir())) {
    if (entry.path().extension() == ".json") files.insert(entry.path().filename().string());
  }
  for (const auto& row : rows()) {
    INFO(row.fixture);
    CHECK(named.insert(row.fixture).second);  // no fixture listed twice
  }
  CHECK(files == named);
  CHECK(files.size() >= 28);
}

TEST_CASE("the same Telegram update parsed twice gives the same id and the same document",
          "[telegram][fixtures][dedup]") {
  for (const auto& row : rows()) {
    if (row.expected.outcome != Outcome::published) continue;
    INFO("fixture: " << row.fixture);
    const std::string body = read_fixture(row.fixture);
    auto first = omnigate::telegram::parse_update(body, bot(), kNow);
    auto second = omnigate::telegram::parse_update(body, bot(), kNow);
    REQUIRE(first.ok());
    REQUIRE(second.ok());
    REQUIRE(first->submissions.size() == 1);
    REQUIRE(second->submissions.size() == 1);
    const Interaction a = enrich(std::move(first->submissions.front()));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a retry arrives later
    const Interaction b = enrich(std::move(second->submissions.front()));
    CHECK(a.id == b.id);
    json ja = published_json(a), jb = published_json(b);
    CHECK(ja.at("received_at") != jb.at("received_at"));
    ja.erase("received_at");
    jb.erase("received_at");
    CHECK(ja == jb);
  }
}

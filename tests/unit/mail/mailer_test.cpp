// Outgoing mail (gateway/mail/mailer.hpp): the message is parsed back with GMime, sending goes to a
// minimal SMTP server on 127.0.0.1 (tests/support/fake_smtp.hpp). Queuing and retries are the
// outbox's (tests/integration/outbox_test.cpp).
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <gmime/gmime.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gateway/mail/mailer.hpp"
#include "tests/support/fake_smtp.hpp"

using namespace std::chrono_literals;
using omnigate::OutgoingMail;
using omnigate::SmtpConfig;

using omnigate::testing::Behaviour;
using omnigate::testing::ClosedPort;
using omnigate::testing::Delivery;
using omnigate::testing::FakeSmtpServer;

namespace {

// ---- Parsing a message back with GMime -------------------------------------------------------

struct GObjectUnref {
  void operator()(void* object) const {
    if (object != nullptr) g_object_unref(object);
  }
};
template <class T>
using GPtr = std::unique_ptr<T, GObjectUnref>;

struct Parsed {
  bool ok = false;
  std::string subject, text, from_name, from_address, to, message_id, charset, encoding,
      mime_version, date, list_unsubscribe;
};

std::string or_empty(const char* s) {
  return s != nullptr ? s : "";
}

// An unstructured header decoded one encoded-word at a time, as RFC 2047 has it ("each
// encoded-word must be self-contained") and as mail clients do. g_mime_message_get_subject cannot
// be used: GMime 3.2's decoder runs adjacent base64 words of one charset together as a single
// base64 stream, so the "=" padding ending the first word stops it and the rest of the subject
// is lost. GMime's own encoder folds "Подтвердите подписку" into two such words.
std::string decode_header_words(const std::string& raw) {
  std::string out;
  bool previous_encoded = false;
  size_t pos = 0;
  while (true) {
    size_t start = raw.find_first_not_of(" \t\r\n", pos);
    if (start == std::string::npos) break;
    size_t end = raw.find_first_of(" \t\r\n", start);
    std::string word = raw.substr(start, end == std::string::npos ? end : end - start);
    bool encoded = word.starts_with("=?") && word.ends_with("?=");
    if (!out.empty() && !(encoded && previous_encoded)) out += ' ';
    if (encoded) {
      char* decoded = g_mime_utils_header_decode_text(nullptr, word.c_str());
      out += or_empty(decoded);
      g_free(decoded);
    } else {
      out += word;
    }
    previous_encoded = encoded;
    if (end == std::string::npos) break;
    pos = end;
  }
  return out;
}

Parsed parse_message(const std::string& bytes) {
  g_mime_init();  // reference-counted in GMime 3; the mailer has called it already anyway
  Parsed out;
  GPtr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(bytes.data(), bytes.size()));
  GPtr<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
  GPtr<GMimeMessage> message(g_mime_parser_construct_message(parser.get(), nullptr));
  if (!message) return out;
  GMimeHeaderList* headers = g_mime_object_get_header_list(GMIME_OBJECT(message.get()));
  if (GMimeHeader* subject = g_mime_header_list_get_header(headers, "Subject")) {
    out.subject = decode_header_words(or_empty(g_mime_header_get_raw_value(subject)));
  }
  out.message_id = or_empty(g_mime_message_get_message_id(message.get()));
  out.mime_version =
      or_empty(g_mime_object_get_header(GMIME_OBJECT(message.get()), "MIME-Version"));
  out.date = or_empty(g_mime_object_get_header(GMIME_OBJECT(message.get()), "Date"));
  out.list_unsubscribe =
      or_empty(g_mime_object_get_header(GMIME_OBJECT(message.get()), "List-Unsubscribe"));
  InternetAddressList* from = g_mime_message_get_from(message.get());
  if (internet_address_list_length(from) == 1) {
    InternetAddress* address = internet_address_list_get_address(from, 0);
    out.from_name = or_empty(internet_address_get_name(address));
    out.from_address =
        or_empty(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(address)));
  }
  InternetAddressList* to = g_mime_message_get_addresses(message.get(), GMIME_ADDRESS_TYPE_TO);
  if (internet_address_list_length(to) == 1) {
    InternetAddress* address = internet_address_list_get_address(to, 0);
    out.to = or_empty(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(address)));
  }
  GMimeObject* body = g_mime_message_get_mime_part(message.get());
  if (body == nullptr || !GMIME_IS_TEXT_PART(body)) return out;
  out.charset = or_empty(g_mime_object_get_content_type_parameter(body, "charset"));
  out.encoding = or_empty(
      g_mime_content_encoding_to_string(g_mime_part_get_content_encoding(GMIME_PART(body))));
  char* text = g_mime_text_part_get_text(GMIME_TEXT_PART(body));
  out.text = or_empty(text);
  g_free(text);
  out.ok = true;
  return out;
}

std::string without_cr(std::string text) {
  std::erase(text, '\r');
  return text;
}

bool only_crlf_line_ends(const std::string& bytes) {
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] == '\n' && (i == 0 || bytes[i - 1] != '\r')) return false;
    if (bytes[i] == '\r' && (i + 1 == bytes.size() || bytes[i + 1] != '\n')) return false;
  }
  return true;
}

bool seven_bit(std::string_view text) {
  for (unsigned char c : text) {
    if (c >= 0x80 || c == 0) return false;
  }
  return true;
}

const std::string kRecipient = "ivan.petrov@example.com";

SmtpConfig config_for(const std::string& url) {
  SmtpConfig config;
  config.url = url;
  config.from = "Магазин «Ромашка» <noreply@romashka.example.ru>";
  config.timeout = 5s;
  return config;
}

OutgoingMail cyrillic_mail() {
  OutgoingMail mail;
  mail.to = kRecipient;
  mail.subject = "Подтвердите подписку на новости магазина «Ромашка»";
  mail.text =
      "Здравствуйте!\n\nЧтобы подтвердить подписку, перейдите по ссылке:\n"
      "https://romashka.example.ru/confirm?t=abc\n.точка в начале строки\n";
  mail.headers = {{"List-Unsubscribe", "<https://romashka.example.ru/unsubscribe?t=abc>"}};
  return mail;
}

}  // namespace

TEST_CASE("build_message: Cyrillic subject, body and sender survive a GMime round trip", "[mail]") {
  SmtpConfig config = config_for("smtp://127.0.0.1:25");
  OutgoingMail mail = cyrillic_mail();
  std::string bytes = omnigate::build_message(config, mail);
  REQUIRE_FALSE(bytes.empty());

  Parsed parsed = parse_message(bytes);
  REQUIRE(parsed.ok);
  CHECK(parsed.subject == mail.subject);
  CHECK(without_cr(parsed.text) == mail.text);
  CHECK(parsed.from_name == "Магазин «Ромашка»");
  CHECK(parsed.from_address == "noreply@romashka.example.ru");
  CHECK(parsed.to == kRecipient);
  CHECK(parsed.message_id.ends_with("@romashka.example.ru"));
  CHECK(parsed.message_id.size() > std::string("@romashka.example.ru").size());
  CHECK(parsed.mime_version == "1.0");
  CHECK_FALSE(parsed.date.empty());
  CHECK(parsed.charset == "utf-8");
  CHECK((parsed.encoding == "base64" || parsed.encoding == "quoted-printable"));
  CHECK(parsed.list_unsubscribe == "<https://romashka.example.ru/unsubscribe?t=abc>");

  CHECK(only_crlf_line_ends(bytes));
  size_t end_of_headers = bytes.find("\r\n\r\n");
  REQUIRE(end_of_headers != std::string::npos);
  std::string headers = bytes.substr(0, end_of_headers);
  CHECK(seven_bit(headers));  // RFC 2047 encoded-words, no raw UTF-8
  CHECK(seven_bit(bytes));    // and a 7-bit transfer encoding for the body
  CHECK(headers.find("=?") != std::string::npos);
  CHECK(headers.find("UTF-8") != std::string::npos);  // not windows-1251 or koi8-r
}

TEST_CASE("build_message: ASCII and Latin text is still labelled utf-8", "[mail]") {
  SmtpConfig config = config_for("smtp://127.0.0.1:25");
  config.from = "noreply@example.com";
  OutgoingMail mail{"someone@example.com", "Plain subject", "Café\r\nline two", {}};
  std::string bytes = omnigate::build_message(config, mail);
  Parsed parsed = parse_message(bytes);
  REQUIRE(parsed.ok);
  CHECK(parsed.charset == "utf-8");
  CHECK(without_cr(parsed.text) == "Café\nline two\n");
  CHECK(parsed.from_name.empty());
  CHECK(only_crlf_line_ends(bytes));
  CHECK(seven_bit(bytes));
}

TEST_CASE("build_message refuses what would inject headers or SMTP commands", "[mail]") {
  SmtpConfig config = config_for("smtp://127.0.0.1:25");
  OutgoingMail mail = cyrillic_mail();

  SECTION("a recipient with CRLF") {
    mail.to = "a@example.com\r\nRCPT TO:<b@example.com>";
    CHECK(omnigate::build_message(config, mail).empty());
  }
  SECTION("a recipient with a display name") {
    mail.to = "Ivan <ivan@example.com>";
    CHECK(omnigate::build_message(config, mail).empty());
  }
  SECTION("a header value with a line break") {
    mail.headers = {{"List-Unsubscribe", "<x>\r\nBcc: victim@example.com"}};
    CHECK(omnigate::build_message(config, mail).empty());
  }
  SECTION("a header build_message owns") {
    mail.headers = {{"bcc", "victim@example.com"}};
    CHECK(omnigate::build_message(config, mail).empty());
  }
  SECTION("a From that is not an address") {
    config.from = "not an address";
    CHECK(omnigate::build_message(config, mail).empty());
  }
  SECTION("a subject with a line break stays one header") {
    mail.subject = "Hello\r\nBcc: victim@example.com";
    std::string bytes = omnigate::build_message(config, mail);
    REQUIRE_FALSE(bytes.empty());
    CHECK(bytes.find("\r\nBcc:") == std::string::npos);
    CHECK(parse_message(bytes).subject == "Hello Bcc: victim@example.com");  // whitespace collapsed
  }
}

TEST_CASE("render_template replaces known placeholders once and keeps unknown ones", "[mail]") {
  using omnigate::render_template;
  CHECK(render_template("Hi {{name}}, see {{link}}.", {{"name", "Аня"}, {"link", "https://x/y"}}) ==
        "Hi Аня, see https://x/y.");
  CHECK(render_template("{{ name }} and {{name}}", {{"name", "A"}}) == "A and A");
  CHECK(render_template("{{unknown}} stays", {{"name", "A"}}) == "{{unknown}} stays");
  CHECK(render_template("{{{name}}}", {{"name", "A"}}) == "{A}");
  CHECK(render_template("unterminated {{name", {{"name", "A"}}) == "unterminated {{name");
  CHECK(render_template("", {{"name", "A"}}).empty());
  // A value is never expanded again: form input cannot pull in another variable.
  CHECK(render_template("{{form}} {{link}}", {{"form", "{{link}}"}, {"link", "L"}}) ==
        "{{link}} L");
}

TEST_CASE("default confirmation templates carry every placeholder", "[mail]") {
  for (std::string language : {"ru", "en", "", "de", "EN-us"}) {
    CAPTURE(language);
    omnigate::MailTemplate t = omnigate::default_confirmation_template(language);
    CHECK_FALSE(t.subject.empty());
    for (const char* placeholder :
         {"{{link}}", "{{form}}", "{{consent_text}}", "{{expires_hours}}"}) {
      CAPTURE(placeholder);
      CHECK(t.text.find(placeholder) != std::string::npos);
    }
  }
  CHECK(omnigate::default_confirmation_template("ru").subject == "Подтвердите подписку");
  CHECK(omnigate::default_confirmation_template("").subject == "Подтвердите подписку");
  CHECK(omnigate::default_confirmation_template("en").subject ==
        "Please confirm your subscription");

  // Rendered, a Russian mail survives the same round trip as a hand-written one.
  auto t = omnigate::default_confirmation_template("ru");
  std::vector<std::pair<std::string, std::string>> vars = {
      {"link", "https://romashka.example.ru/c/123"},
      {"form", "Подписка на новости"},
      {"consent_text", "Я согласен получать новости магазина"},
      {"expires_hours", "48"}};
  OutgoingMail mail{kRecipient,
                    omnigate::render_template(t.subject, vars),
                    omnigate::render_template(t.text, vars),
                    {}};
  Parsed parsed = parse_message(omnigate::build_message(config_for("smtp://x"), mail));
  REQUIRE(parsed.ok);
  CHECK(without_cr(parsed.text).find("«Подписка на новости»") != std::string::npos);
  CHECK(without_cr(parsed.text).find("{{") == std::string::npos);
}

TEST_CASE("send_mail delivers to an SMTP server", "[mail]") {
  FakeSmtpServer server;
  OutgoingMail mail = cyrillic_mail();
  omnigate::Status status = omnigate::send_mail(config_for(server.url()), mail);
  INFO((status ? std::string() : status.error().detail));
  REQUIRE(status.ok());
  REQUIRE(server.wait_for_deliveries(1));

  Delivery delivery = server.deliveries().at(0);
  CHECK(delivery.mail_from == "noreply@romashka.example.ru");
  CHECK(delivery.rcpt_to == kRecipient);
  Parsed parsed = parse_message(delivery.data);
  REQUIRE(parsed.ok);
  CHECK(parsed.subject == mail.subject);
  CHECK(without_cr(parsed.text) == mail.text);
  CHECK(parsed.to == kRecipient);
}

TEST_CASE("send_mail errors name the stage, never the recipient", "[mail]") {
  SECTION("nobody listens") {
    ClosedPort closed;
    omnigate::Status status = omnigate::send_mail(config_for(closed.url()), cyrillic_mail());
    REQUIRE_FALSE(status.ok());
    INFO(status.error().detail);
    CHECK(status.error().code == omnigate::ErrorCode::not_durable);
    CHECK(status.error().detail.find("connect") != std::string::npos);
    CHECK(status.error().detail.find(kRecipient) == std::string::npos);
    CHECK(status.error().detail.find("ivan.petrov") == std::string::npos);
  }
  SECTION("the server rejects the recipient (and quotes it)") {
    FakeSmtpServer server(Behaviour{.rcpt_reply = "550 5.1.1"});
    omnigate::Status status = omnigate::send_mail(config_for(server.url()), cyrillic_mail());
    REQUIRE_FALSE(status.ok());
    INFO(status.error().detail);
    CHECK(status.error().code == omnigate::ErrorCode::unprocessable);
    CHECK(status.error().detail.find("RCPT TO") != std::string::npos);
    CHECK(status.error().detail.find("550") != std::string::npos);
    CHECK(status.error().detail.find("ivan.petrov") == std::string::npos);
  }
  SECTION("the server is busy") {
    FakeSmtpServer server(Behaviour{.greeting = "421 4.3.2 try later"});
    omnigate::Status status = omnigate::send_mail(config_for(server.url()), cyrillic_mail());
    REQUIRE_FALSE(status.ok());
    INFO(status.error().detail);
    CHECK(status.error().code == omnigate::ErrorCode::not_durable);
    CHECK(status.error().detail.find("greeting") != std::string::npos);
  }
  SECTION("a malformed recipient never reaches the network") {
    OutgoingMail mail = cyrillic_mail();
    mail.to = "ivan.petrov@example.com>\r\nDATA";
    omnigate::Status status = omnigate::send_mail(config_for("smtp://127.0.0.1:1"), mail);
    REQUIRE_FALSE(status.ok());
    CHECK(status.error().code == omnigate::ErrorCode::invalid_field);
    CHECK(status.error().detail.find("ivan.petrov") == std::string::npos);
  }
}

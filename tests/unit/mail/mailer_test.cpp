// Outgoing mail (gateway/mailer.hpp): the message is parsed back with GMime, sending goes to a
// minimal SMTP server on 127.0.0.1 run by this file, and the queue's retries use short backoffs.
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

#include "gateway/mailer.hpp"

using namespace std::chrono_literals;
using omnigate::MailQueue;
using omnigate::OutgoingMail;
using omnigate::SmtpConfig;

namespace {

constexpr auto kWait = 10s;  // upper bound for anything the tests wait for

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

// ---- A minimal SMTP server (RFC 5321, enough for libcurl) ------------------------------------

struct Delivery {
  std::string mail_from, rcpt_to, data;
};

struct Behaviour {
  std::string greeting = "220 fake.test ESMTP ready";  // a 4xx/5xx greeting ends the session
  std::string rcpt_reply = "250 2.1.5 ok";
  bool silent = false;  // accept, then say nothing until the client gives up
};

class FakeSmtpServer {
 public:
  FakeSmtpServer() : FakeSmtpServer(Behaviour{}) {}
  explicit FakeSmtpServer(Behaviour behaviour) : behaviour_(std::move(behaviour)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(listener_ >= 0);
    int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener_, 16) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }

  ~FakeSmtpServer() {
    stop_ = true;
    thread_.join();
    ::close(listener_);
  }

  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }

  bool wait_for_deliveries(size_t n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kWait, [&] { return deliveries_.size() >= n; });
  }
  bool wait_for_connections(size_t n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kWait, [&] { return connections_ >= n; });
  }
  std::vector<Delivery> deliveries() {
    std::lock_guard lock(mutex_);
    return deliveries_;
  }
  size_t connections() {
    std::lock_guard lock(mutex_);
    return connections_;
  }

 private:
  // One client at a time is enough: the mailer sends one message per connection.
  void serve() {
    while (!stop_) {
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) continue;
      {
        std::lock_guard lock(mutex_);
        ++connections_;
      }
      changed_.notify_all();
      session(fd);
      ::close(fd);
    }
  }

  // Reads one CRLF-terminated line (without the CRLF); false on EOF or shutdown.
  bool read_line(int fd, std::string& buffer, std::string& line) {
    while (true) {
      if (size_t end = buffer.find("\r\n"); end != std::string::npos) {
        line = buffer.substr(0, end);
        buffer.erase(0, end + 2);
        return true;
      }
      if (stop_) return false;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      char chunk[4096];
      ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) return false;
      buffer.append(chunk, static_cast<size_t>(n));
    }
  }

  static void reply(int fd, const std::string& text) {
    std::string line = text + "\r\n";
    (void)::send(fd, line.data(), line.size(), MSG_NOSIGNAL);
  }

  static std::string between_brackets(const std::string& line) {
    size_t open = line.find('<');
    size_t close = line.find('>', open);
    if (open == std::string::npos || close == std::string::npos) return "";
    return line.substr(open + 1, close - open - 1);
  }

  void session(int fd) {
    std::string buffer, line;
    if (behaviour_.silent) {
      while (read_line(fd, buffer, line)) {
      }
      return;
    }
    reply(fd, behaviour_.greeting);
    if (behaviour_.greeting[0] != '2') return;
    Delivery current;
    while (read_line(fd, buffer, line)) {
      std::string verb = line.substr(0, 4);
      for (char& c : verb) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (verb == "EHLO") {
        reply(fd, "250-fake.test\r\n250-SIZE 10485760\r\n250 8BITMIME");
      } else if (verb == "HELO" || verb == "NOOP" || verb == "RSET") {
        reply(fd, "250 ok");
      } else if (verb == "MAIL") {
        current = Delivery{between_brackets(line), "", ""};
        reply(fd, "250 2.1.0 ok");
      } else if (verb == "RCPT") {
        current.rcpt_to = between_brackets(line);
        // A real server's rejection quotes the address: the client must not pass it on.
        std::string answer = behaviour_.rcpt_reply;
        if (answer[0] == '5') answer += " <" + current.rcpt_to + ">: recipient rejected";
        reply(fd, answer);
      } else if (verb == "DATA") {
        reply(fd, "354 end with <CRLF>.<CRLF>");
        while (read_line(fd, buffer, line) && line != ".") {
          if (!line.empty() && line[0] == '.') line.erase(0, 1);  // dot-unstuffing
          current.data += line + "\r\n";
        }
        reply(fd, "250 2.0.0 queued");
        {
          std::lock_guard lock(mutex_);
          deliveries_.push_back(current);
        }
        changed_.notify_all();
      } else if (verb == "QUIT") {
        reply(fd, "221 2.0.0 bye");
        return;
      } else {
        reply(fd, "502 5.5.2 unknown command");
      }
    }
  }

  Behaviour behaviour_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Delivery> deliveries_;
  size_t connections_ = 0;
};

// A port nobody listens on: bound but not listening, so a connection is refused at once and
// no other test can take the port meanwhile.
class ClosedPort {
 public:
  ClosedPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~ClosedPort() { ::close(fd_); }
  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Collects MailQueue results; waits with a bound instead of sleeping.
class Results {
 public:
  std::function<void(bool)> callback() {
    return [this](bool delivered) {
      {
        std::lock_guard lock(mutex_);
        (delivered ? delivered_ : failed_)++;
        last_at_ = std::chrono::steady_clock::now();
      }
      changed_.notify_all();
    };
  }
  bool wait_for(size_t total) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kWait, [&] { return delivered_ + failed_ >= total; });
  }
  size_t delivered() {
    std::lock_guard lock(mutex_);
    return delivered_;
  }
  size_t failed() {
    std::lock_guard lock(mutex_);
    return failed_;
  }
  std::chrono::steady_clock::time_point last_at() {
    std::lock_guard lock(mutex_);
    return last_at_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  size_t delivered_ = 0, failed_ = 0;
  std::chrono::steady_clock::time_point last_at_;
};

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

TEST_CASE("MailQueue delivers in the background", "[mail]") {
  FakeSmtpServer server;
  Results results;
  {
    MailQueue queue(config_for(server.url()), results.callback());
    REQUIRE(queue.enqueue(cyrillic_mail()));
    OutgoingMail second = cyrillic_mail();
    second.to = "second@example.com";
    REQUIRE(queue.enqueue(second));
    REQUIRE(results.wait_for(2));
  }
  CHECK(results.delivered() == 2);
  CHECK(results.failed() == 0);
  auto deliveries = server.deliveries();
  REQUIRE(deliveries.size() == 2);
  CHECK(deliveries[0].rcpt_to == kRecipient);
  CHECK(deliveries[1].rcpt_to == "second@example.com");
}

TEST_CASE("MailQueue reports a failure only after its retries", "[mail]") {
  const std::vector<std::chrono::milliseconds> backoff = {20ms, 40ms, 80ms};
  Results results;

  SECTION("nobody listens") {
    ClosedPort closed;
    auto start = std::chrono::steady_clock::now();
    MailQueue queue(config_for(closed.url()), results.callback(), backoff);
    REQUIRE(queue.enqueue(cyrillic_mail()));
    REQUIRE(results.wait_for(1));
    CHECK(results.failed() == 1);
    CHECK(results.last_at() - start >= 140ms);  // all three waits happened
  }
  SECTION("the server is busy every time: 1 attempt + 3 retries") {
    FakeSmtpServer server(Behaviour{.greeting = "421 4.3.2 try later"});
    MailQueue queue(config_for(server.url()), results.callback(), backoff);
    REQUIRE(queue.enqueue(cyrillic_mail()));
    REQUIRE(results.wait_for(1));
    CHECK(results.failed() == 1);
    CHECK(server.connections() == 4);
  }
  SECTION("a permanent rejection is not retried") {
    FakeSmtpServer server(Behaviour{.rcpt_reply = "550 5.1.1"});
    MailQueue queue(config_for(server.url()), results.callback(), backoff);
    REQUIRE(queue.enqueue(cyrillic_mail()));
    REQUIRE(results.wait_for(1));
    CHECK(results.failed() == 1);
    CHECK(server.connections() == 1);
  }
  CHECK(results.delivered() == 0);
}

TEST_CASE("MailQueue is bounded and its destructor does not wait out backoffs", "[mail]") {
  FakeSmtpServer server(Behaviour{.silent = true});  // holds the worker in its first attempt
  Results results;
  SmtpConfig config = config_for(server.url());
  config.timeout = 1s;
  size_t accepted = 0;
  auto destroyed_at = std::chrono::steady_clock::now();
  {
    MailQueue queue(config, results.callback(), {std::chrono::hours(1)});
    REQUIRE(queue.enqueue(cyrillic_mail()));
    ++accepted;
    REQUIRE(server.wait_for_connections(1));  // the worker has taken it off the queue
    for (size_t i = 0; i < MailQueue::capacity; ++i) {
      REQUIRE(queue.enqueue(cyrillic_mail()));
      ++accepted;
    }
    CHECK_FALSE(queue.enqueue(cyrillic_mail()));
    destroyed_at = std::chrono::steady_clock::now();
  }
  // The attempt in flight ends at its timeout; the hour-long backoff is cut short.
  CHECK(std::chrono::steady_clock::now() - destroyed_at < 5s);
  CHECK(results.failed() == accepted);
  CHECK(results.delivered() == 0);
}

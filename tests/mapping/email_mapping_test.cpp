// The e-mail mapping alone (no NATS, no server): one small inline message per rule of the
// mapping contract (charsets, bodies, attachments, threads, tags, bounces, stop words), each
// output checked against interaction.v1 the way the pipeline publishes it.
#include <catch2/catch.hpp>

#include <string>

#include "connectors/email/email_parse.hpp"
#include "gateway/model/ids.hpp"
#include "gateway/model/schema_guard.hpp"

using namespace omnigate;
using namespace omnigate::email;

namespace {

const SysMillis kNow = SysMillis(std::chrono::milliseconds(1'796'030'000'000));

MailboxSettings mailbox() {
  return {"support", {"support@example.ru"}, StopWords()};
}

// What the pipeline adds before the schema guard (id, received_at, raw); then nothing may be
// dropped and the strict reader must take the document.
void check_schema_valid(const Submission& s) {
  Interaction in = s.interaction;
  in.id = interaction_id(in.channel, in.account, s.native_key);
  in.received_at = kNow;
  in.raw = RawInfo{sha256_hex(s.raw_bytes), s.raw_content_type};
  INFO(serialize(in));
  CHECK(check_kind_sections(in));
  auto dropped = make_schema_valid(in);
  REQUIRE(dropped);
  CHECK(dropped->empty());
  CHECK(interaction_from_json(nlohmann::json::parse(serialize(in)), ReadMode::full));
}

Mapped parsed(const std::string& raw, const MailboxSettings& settings = mailbox()) {
  auto result = parse_email(raw, settings, kNow);
  REQUIRE(result);
  for (const auto& s : result->submissions) {
    check_schema_valid(s);
    CHECK(s.raw_bytes == raw);
    CHECK(s.raw_content_type == "message/rfc822");
  }
  return std::move(result.value());
}

// A copy: the Mapped is often a temporary.
Interaction only(const Mapped& m) {
  REQUIRE(m.submissions.size() == 1);
  return m.submissions[0].interaction;
}

const std::string kHeaders =
    "From: =?utf-8?B?0JjQstCw0L0g0J/QtdGC0YDQvtCy?= <Ivan.Petrov@Example.RU>\r\n"
    "To: support@example.ru\r\n"
    "Date: Tue, 01 Dec 2026 12:30:00 +0300\r\n"
    "Message-ID: <m1@mail.example.ru>\r\n"
    "MIME-Version: 1.0\r\n";

bool has_tag(const Interaction& in, const std::string& tag) {
  return std::find(in.tags.begin(), in.tags.end(), tag) != in.tags.end();
}

}  // namespace

TEST_CASE("bytes without a header block are bad_request, a header block alone is a mail",
          "[email][mapping]") {
  for (std::string raw : {"", "\r\n\r\nhello", "just text without a colon\n", "{\"json\": 1}"}) {
    CAPTURE(raw);
    auto result = parse_email(raw, mailbox(), kNow);
    REQUIRE_FALSE(result);
    CHECK(result.error().code == ErrorCode::bad_request);
  }
  const Interaction in = only(parsed("Subject: hi\n\n"));
  CHECK(in.kind == "message");
  CHECK_FALSE(in.contact);
  CHECK(in.occurred_at == kNow);  // no Date
}

TEST_CASE("From, Date, Message-ID and a koi8-r encoded-word subject", "[email][mapping]") {
  const std::string raw = kHeaders +
                          "Subject: =?koi8-r?B?+sHLwdogNDIgzsUg0NLJ26PM?=\r\n"
                          "Content-Type: text/plain; charset=utf-8\r\n\r\n"
                          "Текст письма.\r\n\r\n";
  Mapped m = parsed(raw);
  const Interaction in = only(m);
  CHECK(m.submissions[0].native_key == "m1@mail.example.ru");
  CHECK(in.channel == "email");
  CHECK(in.account == "support");
  CHECK(in.message->native_id == "m1@mail.example.ru");
  CHECK(in.message->subject == std::string("Заказ 42 не пришёл"));
  CHECK(in.message->text == std::string("Текст письма."));
  CHECK(in.contact->display_name == std::string("Иван Петров"));
  REQUIRE(in.contact->identifiers.size() == 1);
  CHECK(in.contact->identifiers[0].type == "email");
  CHECK_FALSE(in.contact->identifiers[0].verified);
  CHECK(in.contact->identifiers[0].raw == std::string("Ivan.Petrov@Example.RU"));
  // 12:30 +0300 = 09:30 UTC.
  CHECK(in.occurred_at == SysMillis(std::chrono::seconds(1796117400)));
  CHECK(in.conversation->id == std::string("m1@mail.example.ru"));
  CHECK(in.conversation->type == std::string("private"));
  CHECK_FALSE(in.conversation->reply_to);
  CHECK(in.tags.empty());
}

TEST_CASE("folded encoded words with base64 padding are all decoded (GMime 3.2 drops them)",
          "[email][mapping]") {
  const std::string raw =
      "From: =?utf-8?B?0JjQstCw?=\r\n =?utf-8?B?0L0=?= <a@b.example>\r\n"
      "Subject: =?utf-8?B?0LQ=?=\r\n =?UTF-8?B?0L7RgdGC0LDQstC60YM=?=\r\n"
      "\t=?koi8-r?B?+sHLwdo=?= =?koi8-r?B?+sHLwdo=?= plain\r\n"
      "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: text/plain\r\n\r\nx =?utf-8?B?0LQ=?= y\r\n"
      "--b\r\nContent-Type: application/pdf; name=\"=?utf-8?B?0LQ=?=\r\n"
      " =?utf-8?B?0LQ=?=.pdf\"\r\n\r\nJVBERi0=\r\n--b--\r\n";
  Mapped m = parsed(raw);
  const Interaction in = only(m);
  CHECK(in.message->subject == std::string("доставкуЗаказЗаказ plain"));
  CHECK(in.contact->display_name == std::string("Иван"));
  CHECK(in.message->text == std::string("x =?utf-8?B?0LQ=?= y"));
  REQUIRE(in.message->attachments.size() == 1);
  CHECK(in.message->attachments[0].file_name == std::string("дд.pdf"));
  // The bytes published are the sender's, not the repaired copy GMime read.
  CHECK(m.submissions[0].raw_bytes == raw);
}

TEST_CASE("windows-1251 bodies: quoted-printable and base64", "[email][mapping]") {
  const std::string qp = kHeaders +
                         "Subject: =?windows-1251?Q?=D1=F7=B8=F2?=\r\n"
                         "Content-Type: text/plain; charset=windows-1251\r\n"
                         "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                         "=C7=E4=F0=E0=E2=F1=F2=E2=F3=E9=F2=E5, =EF=F0=E8=F8=EB=E8=F2=E5 "
                         "=F1=F7=B8=F2.\r\n";
  const Interaction a = only(parsed(qp));
  CHECK(a.message->subject == std::string("Счёт"));
  CHECK(a.message->text == std::string("Здравствуйте, пришлите счёт."));

  const std::string b64 = kHeaders +
                          "Subject: b64\r\n"
                          "Content-Type: text/plain; charset=\"Windows-1251\"\r\n"
                          "Content-Transfer-Encoding: base64\r\n\r\n"
                          "xO7h8PvpIOTl7fwhIM7v6+Dy8yDu8u/w4OLo6+gu\r\n";
  CHECK(only(parsed(b64)).message->text == std::string("Добрый день! Оплату отправили."));
}

TEST_CASE("undeclared 8-bit Cyrillic falls back to windows-1251, a wrong UTF-8 claim too",
          "[email][mapping]") {
  const std::string raw = kHeaders +
                          "Subject: \xc2\xee\xef\xf0\xee\xf1\r\n"
                          "Content-Type: text/plain\r\n"
                          "Content-Transfer-Encoding: 8bit\r\n\r\n"
                          "\xc3\xe4\xe5\x20\xec\xee\xe9\x20\xe7\xe0\xea\xe0\xe7\x3f\r\n";
  const Interaction in = only(parsed(raw));
  CHECK(in.message->subject == std::string("Вопрос"));
  CHECK(in.message->text == std::string("Где мой заказ?"));

  const std::string lying = kHeaders +
                            "Subject: x\r\n"
                            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
                            "\xc3\xe4\xe5\x20\xec\xee\xe9\x20\xe7\xe0\xea\xe0\xe7\x3f\r\n";
  CHECK(only(parsed(lying)).message->text == std::string("Где мой заказ?"));
}

TEST_CASE("RFC 2231 Cyrillic file names with continuations, and RFC 2047 in name=",
          "[email][mapping]") {
  const std::string raw = kHeaders +
                          "Subject: files\r\n"
                          "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
                          "--b1\r\n"
                          "Content-Type: text/plain; charset=utf-8\r\n\r\n"
                          "См. вложения\r\n"
                          "--b1\r\n"
                          "Content-Type: application/pdf\r\n"
                          "Content-Disposition: attachment;\r\n"
                          " filename*0*=windows-1251''%D1%F7%B8%F2-%F4%E0;\r\n"
                          " filename*1*=%EA%F2%F3%F0%E0%207.pdf\r\n"
                          "Content-Transfer-Encoding: base64\r\n\r\n"
                          "JVBERi0xLjQK\r\n"
                          "--b1\r\n"
                          "Content-Type: image/png; name=\"=?utf-8?B?0YTQvtGC0L4ucG5n?=\"\r\n"
                          "Content-Transfer-Encoding: base64\r\n\r\n"
                          "iVBORw0KGgo=\r\n"
                          "--b1--\r\n";
  const Interaction in = only(parsed(raw));
  CHECK(in.message->text == std::string("См. вложения"));
  REQUIRE(in.message->attachments.size() == 2);
  const Attachment& pdf = in.message->attachments[0];
  CHECK(pdf.type == "document");
  CHECK(pdf.mime_type == std::string("application/pdf"));
  CHECK(pdf.file_name == std::string("Счёт-фактура 7.pdf"));
  CHECK(pdf.size == 9);  // "%PDF-1.4\n"
  CHECK(pdf.provider_ref == nlohmann::json{{"part", "2"}, {"disposition", "attachment"}});
  const Attachment& png = in.message->attachments[1];
  CHECK(png.type == "image");
  CHECK(png.file_name == std::string("фото.png"));
  CHECK(png.size == 8);
  CHECK(png.provider_ref["part"] == "3");
}

TEST_CASE("HTML only: text derived from the HTML, scripts and styles dropped", "[email][mapping]") {
  const std::string raw =
      kHeaders +
      "Subject: html\r\n"
      "Content-Type: text/html; charset=utf-8\r\n\r\n"
      "<html><head><title>T</title><style>p{color:red}</style></head><body>"
      "<p>Добрый&nbsp;день,</p><p>заказ &laquo;42&raquo; &amp; счёт<br>во вложении.</p>"
      "<script>alert('x<p>')</script><!-- a <b>comment</b> -->"
      "<div>Итого:   100&#8381;</div><ul><li>один</li><li>два</li></ul>"
      "<table><tr><td>a</td><td>1</td></tr><tr><td>b</td></tr></table>"
      "<div>строка</div><div>ещё одна<br><br>после пустой</div></body></html>\r\n";
  const Interaction in = only(parsed(raw));
  CHECK(in.message->text == std::string("Добрый день,\n\nзаказ «42» & счёт\nво вложении.\n\nИтого: "
                                        "100₽\n\nодин\n"
                                        "два\n\na 1\nb\n\nстрока\nещё одна\n\nпосле пустой"));
  CHECK(in.message->attachments.empty());
}

TEST_CASE(
    "multipart/alternative: the last alternative with text/plain, the HTML is no "
    "attachment",
    "[email][mapping]") {
  const std::string raw = kHeaders +
                          "Subject: alt\r\n"
                          "Content-Type: multipart/alternative; boundary=\"a\"\r\n\r\n"
                          "--a\r\n"
                          "Content-Type: text/plain; charset=utf-8\r\n\r\n"
                          "first plain\r\n"
                          "--a\r\n"
                          "Content-Type: text/plain; charset=utf-8\r\n\r\n"
                          "second plain  \r\n\r\n"
                          "--a\r\n"
                          "Content-Type: text/html; charset=utf-8\r\n\r\n"
                          "<p>html</p>\r\n"
                          "--a--\r\n";
  const Interaction in = only(parsed(raw));
  CHECK(in.message->text == std::string("second plain"));
  CHECK(in.message->attachments.empty());
}

TEST_CASE("multipart/related: the HTML body and its inline image with its content id",
          "[email][mapping]") {
  const std::string raw = kHeaders +
                          "Subject: related\r\n"
                          "Content-Type: multipart/alternative; boundary=\"a\"\r\n\r\n"
                          "--a\r\n"
                          "Content-Type: multipart/related; boundary=\"r\"\r\n\r\n"
                          "--r\r\n"
                          "Content-Type: text/html; charset=utf-8\r\n\r\n"
                          "<p>Логотип: <img src=\"cid:logo@x\"></p>\r\n"
                          "--r\r\n"
                          "Content-Type: image/gif\r\n"
                          "Content-ID: <logo@x>\r\n"
                          "Content-Disposition: inline; filename=logo.gif\r\n"
                          "Content-Transfer-Encoding: base64\r\n\r\n"
                          "R0lGODlhAQABAAAAACw=\r\n"
                          "--r--\r\n"
                          "--a--\r\n";
  const Interaction in = only(parsed(raw));
  CHECK(in.message->text == std::string("Логотип:"));
  REQUIRE(in.message->attachments.size() == 1);
  const Attachment& gif = in.message->attachments[0];
  CHECK(gif.type == "image");
  CHECK(gif.file_name == std::string("logo.gif"));
  CHECK(gif.provider_ref ==
        nlohmann::json{{"part", "1.2"}, {"content_id", "logo@x"}, {"disposition", "inline"}});
}

TEST_CASE("a forwarded message/rfc822 is an attachment and fills message.forwarded",
          "[email][mapping]") {
  const std::string inner =
      "From: Client <client@shop.example>\r\n"
      "Subject: =?utf-8?B?0JfQsNC60LDQtw==?=\r\n"
      "Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n"
      "Message-ID: <orig@shop.example>\r\n\r\n"
      "original text\r\n";
  const std::string raw = kHeaders +
                          "Subject: Fwd: Заказ\r\n"
                          "Content-Type: multipart/mixed; boundary=\"f\"\r\n\r\n"
                          "--f\r\n"
                          "Content-Type: text/plain; charset=utf-8\r\n\r\n"
                          "see below\r\n"
                          "--f\r\n"
                          "Content-Type: message/rfc822\r\n\r\n" +
                          inner + "--f--\r\n";
  const Interaction in = only(parsed(raw));
  CHECK(in.message->text == std::string("see below"));
  REQUIRE(in.message->attachments.size() == 1);
  CHECK(in.message->attachments[0].type == "other");
  CHECK(in.message->attachments[0].mime_type == std::string("message/rfc822"));
  CHECK(in.message->attachments[0].provider_ref["part"] == "2");
  CHECK(in.message->attachments[0].size > 0);
  CHECK(in.message->forwarded == nlohmann::json{{"subject", "Заказ"},
                                                {"from", "client@shop.example"},
                                                {"message_id", "orig@shop.example"},
                                                {"date", "2026-11-30T10:00:00Z"}});
}

TEST_CASE(
    "no Message-ID: the native id is the SHA-256 of the bytes, so a resend is one "
    "interaction",
    "[email][mapping]") {
  const std::string raw = "From: a@b.example\nSubject: s\n\nbody\n";
  Mapped m = parsed(raw);
  CHECK(m.submissions[0].native_key == sha256_hex(raw));
  CHECK(only(m).message->native_id == sha256_hex(raw));
  CHECK(only(m).conversation->id == sha256_hex(raw));
}

TEST_CASE("an mbox From_ line an MTA put first is not part of the message", "[email][mapping]") {
  const std::string raw = "From: a@b.example\nSubject: s\n\nbody\n";
  const std::string delivered = "From a@b.example Tue Dec  1 12:00:00 2026\n" + raw;
  auto result = parse_email(delivered, mailbox(), kNow);
  REQUIRE(result);
  REQUIRE(result->submissions.size() == 1);
  CHECK(result->submissions[0].raw_bytes == raw);
  CHECK(result->submissions[0].native_key == sha256_hex(raw));
  CHECK(result->submissions[0].interaction.message->text == std::string("body"));
}

TEST_CASE("threads: the first References id is the root, In-Reply-To the reply",
          "[email][mapping]") {
  const std::string raw = kHeaders +
                          "Subject: Re: s\r\n"
                          "In-Reply-To: <p2@x>\r\n"
                          "References: <root@x>\r\n <p1@x> (comment) <p2@x>\r\n\r\n"
                          "ok\r\n";
  const Interaction in = only(parsed(raw));
  CHECK(in.conversation->id == std::string("root@x"));
  CHECK(in.conversation->reply_to == std::string("p2@x"));
  const std::string no_refs = kHeaders + "In-Reply-To: <p2@x>\r\n\r\nok\r\n";
  CHECK(only(parsed(no_refs)).conversation->id == std::string("p2@x"));
}

TEST_CASE("a DSN becomes one bounced status per failed recipient, other actions are ignored",
          "[email][mapping]") {
  const std::string raw =
      "From: Mail Delivery System <MAILER-DAEMON@mx.example.ru>\r\n"
      "To: support@example.ru\r\n"
      "Subject: Undelivered Mail Returned to Sender\r\n"
      "Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
      "Message-ID: <dsn1@mx.example.ru>\r\n"
      "Auto-Submitted: auto-replied\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: multipart/report; report-type=delivery-status; boundary=\"d\"\r\n\r\n"
      "--d\r\n"
      "Content-Type: text/plain\r\n\r\n"
      "I'm sorry to have to inform you...\r\n"
      "--d\r\n"
      "Content-Type: message/delivery-status\r\n\r\n"
      "Reporting-MTA: dns; mx.example.ru\r\n"
      "Arrival-Date: Tue,  1 Dec 2026 09:59:58 +0000 (UTC)\r\n\r\n"
      "Final-Recipient: rfc822; gone@mail.example\r\n"
      "Original-Recipient: rfc822;gone@mail.example\r\n"
      "Action: failed\r\n"
      "Status: 5.1.1\r\n"
      "Remote-MTA: dns; mx.mail.example\r\n"
      "Diagnostic-Code: smtp; 550 5.1.1 <gone@mail.example>: Recipient address\r\n"
      "    rejected: User unknown\r\n\r\n"
      "Final-Recipient: rfc822; slow@mail.example\r\n"
      "Action: delayed\r\n"
      "Status: 4.4.1\r\n\r\n"
      "--d\r\n"
      "Content-Type: text/rfc822-headers\r\n\r\n"
      "From: support@example.ru\r\n"
      "To: gone@mail.example\r\n"
      "Message-ID: <out-77@example.ru>\r\n"
      "Subject: Your order\r\n"
      "--d--\r\n";
  Mapped m = parsed(raw);
  CHECK(m.ignored == std::vector<std::string>{"dsn_delayed"});
  const Interaction in = only(m);
  CHECK(m.submissions[0].native_key == "dsn1@mx.example.ru/gone@mail.example");
  CHECK(in.kind == "status");
  CHECK(in.status->state == "bounced");
  CHECK(in.status->of == "out-77@example.ru");
  CHECK(in.status->recipient == std::string("gone@mail.example"));
  CHECK(in.status->error ==
        nlohmann::json{{"action", "failed"},
                       {"status", "5.1.1"},
                       {"remote_mta", "mx.mail.example"},
                       {"diagnostic_code",
                        "smtp; 550 5.1.1 <gone@mail.example>: Recipient address rejected: User "
                        "unknown"}});

  // Without the returned message's id the bounce cannot name `of`: a tagged message instead.
  std::string anonymous = raw;
  anonymous.replace(anonymous.find("Message-ID: <out-77@example.ru>\r\n"),
                    std::string("Message-ID: <out-77@example.ru>\r\n").size(), "");
  Mapped a = parsed(anonymous);
  const Interaction message = only(a);
  CHECK(message.kind == "message");
  CHECK(has_tag(message, "bounce"));
  CHECK(message.message->text == std::string("I'm sorry to have to inform you..."));
}

TEST_CASE("automated mail is tagged: auto-replies, out of office, bulk, lists",
          "[email][mapping]") {
  auto tags_of = [](const std::string& extra) {
    return only(parsed(kHeaders + extra + "\r\nbody\r\n")).tags;
  };
  using Tags = std::vector<std::string>;
  CHECK(tags_of("Auto-Submitted: auto-replied\r\nSubject: x\r\n") ==
        Tags{"auto_reply", "automated"});
  CHECK(tags_of("Auto-Submitted: auto-replied (vacation)\r\n") == Tags{"auto_reply", "automated"});
  CHECK(tags_of("Auto-Submitted: auto-generated\r\n") == Tags{"automated"});
  CHECK(tags_of("Auto-Submitted: no\r\n").empty());
  CHECK(tags_of("X-Autoreply: yes\r\n") == Tags{"auto_reply", "automated"});
  CHECK(tags_of("X-Auto-Response-Suppress: All\r\nSubject: Hello\r\n").empty());
  CHECK(tags_of("Subject: Automatic reply: Order\r\n") == Tags{"auto_reply", "automated"});
  CHECK(tags_of("Subject: =?utf-8?B?0JDQstGC0L7QvtGC0LLQtdGCOiDQvtGC0L/Rg9GB0Lo=?=\r\n") ==
        Tags{"auto_reply", "automated"});  // "Автоответ: отпуск"
  CHECK(tags_of("Precedence: bulk\r\n") == Tags{"bulk"});
  CHECK(tags_of("Precedence: junk\r\n") == Tags{"bulk"});
  CHECK(tags_of("Precedence: list\r\n") == Tags{"list"});
  CHECK(tags_of("List-Id: News <news.example.ru>\r\nPrecedence: bulk\r\n") == Tags{"bulk", "list"});
}

TEST_CASE("a stop word as the subject or above the quote withdraws marketing consent",
          "[email][mapping]") {
  auto consent_of = [](const std::string& extra, const std::string& body) {
    Mapped m = parsed(kHeaders + extra + "\r\n" + body);
    return m;
  };
  // As on every channel: one message that carries the withdrawal.
  Mapped by_subject = consent_of("Subject: Re: Fwd: СТОП\r\n", "\r\n");
  REQUIRE(by_subject.submissions.size() == 1);
  const Submission& withdrawal = by_subject.submissions[0];
  CHECK(withdrawal.native_key == "m1@mail.example.ru");
  CHECK(withdrawal.interaction.kind == "message");
  REQUIRE(withdrawal.interaction.consent.size() == 1);
  const Consent& c = withdrawal.interaction.consent[0];
  CHECK(c.purpose == "marketing");
  CHECK(c.status == "withdrawn");
  CHECK(c.method == "keyword");
  CHECK(c.channels == std::vector<std::string>{"email"});
  CHECK(withdrawal.interaction.contact->identifiers[0].raw ==
        std::string("Ivan.Petrov@Example.RU"));

  Mapped by_text =
      consent_of("Subject: Re: Акция\r\nContent-Type: text/plain; charset=utf-8\r\n",
                 "  Отписаться \r\n\r\nВт, 1 дек. 2026 г. в 10:00, Магазин <shop@example.ru> "
                 "написал(а):\r\n> Скидки недели\r\n");
  REQUIRE(by_text.submissions.size() == 1);
  CHECK(by_text.submissions[0].interaction.consent.size() == 1);
  Mapped quoted_only = consent_of("Subject: Re: Акция\r\n", "Спасибо, не надо\r\n> stop\r\n");
  REQUIRE(quoted_only.submissions.size() == 1);
  CHECK(quoted_only.submissions[0].interaction.consent.empty());
  Mapped sentence = consent_of("Subject: stop sending me spam\r\n", "\r\n");
  REQUIRE(sentence.submissions.size() == 1);
  CHECK(sentence.submissions[0].interaction.consent.empty());
}

TEST_CASE("text is capped at 64 KiB on a code point boundary and tagged", "[email][mapping]") {
  std::string body;
  while (body.size() < kMaxTextBytes + 100) body += "ж";  // 2 bytes each
  body.insert(0, "x");                                    // so the cut falls inside a "ж"
  const Interaction& in =
      only(parsed(kHeaders + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n"));
  REQUIRE(in.message->text);
  CHECK(in.message->text->size() == kMaxTextBytes - 1);
  CHECK(has_tag(in, "text_truncated"));
}

TEST_CASE("deeply nested multiparts are walked to a bounded depth", "[email][mapping]") {
  std::string raw =
      kHeaders + "Subject: deep\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n";
  const int depth = 2000;
  for (int i = 0; i < depth; ++i) {
    raw += "--b" + std::to_string(i) + "\r\nContent-Type: multipart/mixed; boundary=b" +
           std::to_string(i + 1) + "\r\n\r\n";
  }
  raw += "--b" + std::to_string(depth) + "\r\nContent-Type: application/octet-stream\r\n\r\nxx\r\n";
  for (int i = depth; i >= 0; --i) raw += "--b" + std::to_string(i) + "--\r\n";
  auto result = parse_email(raw, mailbox(), kNow);
  REQUIRE(result);
  REQUIRE(result->submissions.size() == 1);
  check_schema_valid(result->submissions[0]);
  CHECK(std::find(result->ignored.begin(), result->ignored.end(), "mime_too_deep") !=
        result->ignored.end());
}

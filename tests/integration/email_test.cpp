// E-mail from an MTA against a real nats-server: POST /v1/email/<account> and the pipe command
// `omnigate email deliver`. An MTA queues and retries, so "taken" (200 / exit 0) must mean
// durable in JetStream, and everything else must make it retry (503 / exit 75) or give up on a
// message that can never be taken (413 / exit 65) -- and no retry may publish twice.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "gateway/core/secrets.hpp"
#include "gateway/model/ids.hpp"

#include "tests/support/dovecot.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using nlohmann::json;

namespace {

const std::string kEmailToken = "email-pipe-token-0123456789";
const std::string kMediaToken = "email-media-token-0123456789";

std::string email_section() {
  return "  email:\n"
         "    - account: support\n"
         "      token: " +
         kEmailToken +
         "\n"
         "      addresses: [support@example.ru]\n"
         "      media_token: " +
         kMediaToken +
         "\n"
         "      max_message: 64KiB\n";
}

// GET /v1/media/email/support/<ref> with the media bearer (or `token`).
httplib::Result get_part(const RunningGateway& gateway, const std::string& ref,
                         const std::string& token = kMediaToken) {
  return gateway.client().Get("/v1/media/email/support/" + ref,
                              {{"Authorization", "Bearer " + token}});
}

// What a CRM's nats.js reads of an archived object with examples/node/raw-email.mjs (the
// Object Store API): {name, size, sha256} from its stderr line and the bytes it wrote, or null
// with the reason in INFO when it cannot.
json read_object_with_nats_js(const std::string& nats_url, const std::string& bucket,
                              const std::string& name, std::string* bytes = nullptr) {
  TempDir dir;
  const std::string out = dir.path() + "/message.eml";
  auto result = run_command("node " + std::string(OMNIGATE_SOURCE_DIR) +
                            "/examples/node/raw-email.mjs --url " + nats_url + " --bucket " +
                            bucket + " --name '" + name + "' --out " + out);
  INFO(result.output);
  if (result.exit_code != 0) return nullptr;
  if (bytes) {
    std::ifstream file(out, std::ios::binary);
    *bytes = std::string(std::istreambuf_iterator<char>(file), {});
  }
  std::string_view output = result.output;
  while (!output.empty() && output.back() == '\n') output.remove_suffix(1);
  size_t line = output.rfind('\n');
  return json::parse(line == std::string_view::npos ? output : output.substr(line + 1), nullptr,
                     false);
}

std::string mail(const std::string& message_id, const std::string& body = "Где мой заказ?") {
  return "From: =?utf-8?B?0JjQstCw0L0=?= <ivan@example.com>\r\n"
         "To: support@example.ru\r\n"
         "Subject: =?koi8-r?B?+sHLwdo=?=\r\n"
         "Date: Tue, 01 Dec 2026 12:30:00 +0300\r\n"
         "Message-ID: <" +
         message_id +
         ">\r\n"
         "MIME-Version: 1.0\r\n"
         "Content-Type: text/plain; charset=utf-8\r\n\r\n" +
         body + "\r\n";
}

httplib::Result post_mail(const RunningGateway& gateway, const std::string& raw,
                          const std::string& token = kEmailToken) {
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  return gateway.client().Post("/v1/email/support", headers, raw, "message/rfc822");
}

std::vector<StreamMessage> email_messages(const std::string& nats_url) {
  std::vector<StreamMessage> out;
  for (auto& m : read_stream(nats_url)) {
    if (m.body.value("channel", "") == "email") out.push_back(std::move(m));
  }
  return out;
}

// A config file for the command, and files for its stdin.
struct CommandFiles {
  TempDir dir;
  std::string write(const std::string& name, const std::string& content) const {
    std::string path = dir.path() + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
};

}  // namespace

TEST_CASE(
    "email: the pipe route publishes a mail once, a repeat is a duplicate, bad bearer, "
    "oversized and non-mail bodies are refused",
    "[integration][email]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url(), "", email_section()));

  auto first = post_mail(gateway, mail("route-1@example.com"));
  REQUIRE(first);
  CHECK(first->status == 200);
  json answer = json::parse(first->body);
  CHECK(answer["duplicate"] == false);
  const std::string id = answer["id"];

  auto again = post_mail(gateway, mail("route-1@example.com"));
  REQUIRE(again);
  CHECK(again->status == 200);
  CHECK(json::parse(again->body) == json{{"id", id}, {"duplicate", true}});

  auto wrong = post_mail(gateway, mail("route-2@example.com"), "wrong-token-0123456789abc");
  REQUIRE(wrong);
  CHECK(wrong->status == 401);
  auto missing = post_mail(gateway, mail("route-3@example.com"), "");
  REQUIRE(missing);
  CHECK(missing->status == 401);
  auto large = post_mail(gateway, mail("route-4@example.com", std::string(70 * 1024, 'x')));
  REQUIRE(large);
  CHECK(large->status == 413);
  auto not_mail = post_mail(gateway, "\r\n\r\njust bytes");
  REQUIRE(not_mail);
  CHECK(not_mail->status == 400);

  auto messages = email_messages(nats.url());
  REQUIRE(messages.size() == 1);
  const json& in = messages[0].body;
  CHECK(in["id"] == id);
  CHECK(messages[0].msg_id == id);
  CHECK(messages[0].subject == "omnigate.interactions.email.support.message");
  CHECK(in["message"]["native_id"] == "route-1@example.com");
  CHECK(in["message"]["subject"] == "Заказ");
  CHECK(in["message"]["text"] == "Где мой заказ?");
  CHECK(in["contact"]["identifiers"][0]["value"] == "ivan@example.com");
  CHECK(in["raw"]["content_type"] == "message/rfc822");
  CHECK(schema_problems(messages).empty());
}

TEST_CASE(
    "email: with NATS down the route answers 503 with Retry-After, the MTA's retry is "
    "published once NATS is back",
    "[integration][email][nats-down]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url(), "", email_section()));
  nats.stop();

  const std::string raw = mail("outage-1@example.com");
  auto refused = post_mail(gateway, raw);
  REQUIRE(refused);
  CHECK(refused->status == 503);
  CHECK(refused->has_header("Retry-After"));

  nats.start();
  // The MTA retries the same message until it is taken.
  std::string id;
  CHECK(eventually(
      [&] {
        auto retry = post_mail(gateway, raw);
        if (!retry || retry->status != 200) return false;
        id = json::parse(retry->body)["id"];
        return true;
      },
      std::chrono::seconds(20)));
  auto messages = email_messages(nats.url());
  REQUIRE(messages.size() == 1);
  CHECK(messages[0].body["id"] == id);
  CHECK(schema_problems(messages).empty());
}

TEST_CASE(
    "email deliver: exit 0 once in the stream (a repeat is a duplicate), 65 too large or "
    "not a mail, 78 unknown account, 64 usage, 75 with NATS down",
    "[integration][email][cli]") {
  NatsServer nats;
  CommandFiles files;
  const std::string config =
      files.write("omnigate.yaml", test_config_yaml(nats.url(), "", email_section()));
  const std::string deliver =
      std::string(OMNIGATE_BINARY) + " email deliver support --config " + config + " < ";

  const std::string eml = files.write("one.eml", mail("pipe-1@example.com"));
  auto first = run_command(deliver + eml);
  INFO(first.output);
  CHECK(first.exit_code == 0);
  CHECK_THAT(first.output, Catch::Contains("\"duplicate\":false"));
  auto again = run_command(deliver + eml);
  CHECK(again.exit_code == 0);
  CHECK_THAT(again.output, Catch::Contains("\"duplicate\":true"));
  auto messages = email_messages(nats.url());
  REQUIRE(messages.size() == 1);
  CHECK(messages[0].body["message"]["native_id"] == "pipe-1@example.com");
  CHECK(schema_problems(messages).empty());

  auto large = run_command(
      deliver + files.write("large.eml", mail("pipe-2@example.com", std::string(70 * 1024, 'x'))));
  CHECK(large.exit_code == 65);
  CHECK_THAT(large.output, Catch::Contains("max_message"));
  auto not_mail = run_command(deliver + files.write("junk.eml", "\n\nnot a mail"));
  CHECK(not_mail.exit_code == 65);
  auto unknown = run_command(std::string(OMNIGATE_BINARY) + " email deliver sales --config " +
                             config + " < " + eml);
  CHECK(unknown.exit_code == 78);
  auto usage = run_command(std::string(OMNIGATE_BINARY) + " email deliver --config " + config);
  CHECK(usage.exit_code == 64);
  auto bad_config = run_command(std::string(OMNIGATE_BINARY) + " email deliver support --config " +
                                files.write("bad.yaml", "http:\n  treads: 8\n") + " < " + eml);
  CHECK(bad_config.exit_code == 78);

  nats.stop();
  const std::string later = files.write("later.eml", mail("pipe-3@example.com"));
  auto down = run_command(deliver + later);
  CHECK(down.exit_code == 75);
  CHECK_THAT(down.output, Catch::Contains("retry later"));
  // Nothing of the mail in the one line the MTA logs.
  CHECK_THAT(down.output, !Catch::Contains("ivan@example.com"));
  nats.start();
  // The MTA's next queue run.
  auto retried = run_command(deliver + later);
  CHECK(retried.exit_code == 0);
  CHECK(email_messages(nats.url()).size() == 2);
}

TEST_CASE(
    "email config: every key checked with a problem that says what to do, imap is read "
    "but refused until the poller is wired",
    "[integration][email][cli]") {
  CommandFiles files;
  auto check = [&](const std::string& name, const std::string& entry) {
    std::string yaml = "channels:\n  email:\n    - account: support\n" + entry;
    return run_command(std::string(OMNIGATE_BINARY) + " check-config " + files.write(name, yaml));
  };
  auto pipe = check("pipe.yaml", "      token: " + kEmailToken +
                                     "\n      max_message: 10MiB\n      stop_words: [стоп]\n");
  CHECK(pipe.exit_code == 0);
  CHECK_THAT(pipe.output, Catch::Contains("email"));

  auto imap =
      check("imap.yaml",
            "      mode: imap\n      url: imaps://imap.yandex.ru\n      username: u\n"
            "      password: app-password\n      mailbox: Support\n      poll_interval: 30s\n"
            "      tls_verify: false\n      after_durable: move:Done\n");
  INFO(imap.output);
  CHECK(imap.exit_code == 0);  // a complete imap entry is valid

  auto broken =
      check("broken.yaml",
            "      mode: imap\n      url: https://mail.example\n      password: p\n"
            "      oauth2_token: t\n      after_durable: delete\n      poll_interval: 100ms\n"
            "      addresses: [support]\n");
  CHECK(broken.exit_code == 2);
  for (const char* problem :
       {"url: must be imaps://host[:port]", "username: is required",
        "exactly one of password and oauth2_token", "after_durable: must be keep, seen or move:",
        "poll_interval: must be at least 1s", "'support' is not an e-mail address"}) {
    CHECK_THAT(broken.output, Catch::Contains(problem));
  }

  auto no_token = check("no-token.yaml", "      mode: pipe\n");
  CHECK(no_token.exit_code == 2);
  CHECK_THAT(no_token.output, Catch::Contains("token"));
  auto other_mode = check("mode.yaml", "      mode: pop3\n      token: " + kEmailToken + "\n");
  CHECK_THAT(other_mode.output, Catch::Contains("mode: must be pipe or imap"));
  // The body cap of this channel is max_message; max_body is not one of its keys.
  auto max_body =
      check("max-body.yaml", "      token: " + kEmailToken + "\n      max_body: 1MiB\n");
  CHECK(max_body.exit_code == 2);
  CHECK_THAT(max_body.output, Catch::Contains("max_body"));
}

// ----------------------------------------------------------------------- mode imap, wired

TEST_CASE(
    "email imap: a gateway with mode imap publishes the mailbox's real-shaped mail once, "
    "mapped like the pipe, and marks it seen only once durable",
    "[integration][email][imap]") {
  Dovecot dovecot;
  NatsServer nats;
  const std::vector<std::string> files = {"koi8r_q_subject_qp_body_outlook_express.eml",
                                          "cp1251_base64_body_thebat.eml",
                                          "rfc2231_filename_continuations_thunderbird.eml"};
  for (const auto& file : files) dovecot.append(channel_fixture("email", file));
  const std::string channels =
      "  email:\n"
      "    - account: box\n"
      "      mode: imap\n"
      "      url: " +
      dovecot.url() +
      "\n"
      "      username: " +
      Dovecot::kUser +
      "\n"
      "      password: " +
      Dovecot::kPassword +
      "\n"
      "      tls_verify: false\n"
      "      poll_interval: 1s\n"
      "      after_durable: seen\n";
  RunningGateway gateway(test_config_yaml(nats.url(), "", channels));
  REQUIRE(eventually([&] { return read_stream(nats.url()).size() == files.size(); },
                     std::chrono::seconds(20)));
  REQUIRE(eventually([&] {
    auto flags = dovecot.flags();
    return flags.size() == files.size() &&
           std::all_of(flags.begin(), flags.end(), [](const auto& f) { return f.seen(); });
  }));
  auto messages = read_stream(nats.url());
  CHECK(schema_problems(messages).empty());
  std::set<std::string> subjects;
  for (const auto& m : messages) {
    CHECK(m.subject == "omnigate.interactions.email.box.message");
    CHECK(m.body["raw"]["content_type"] == "message/rfc822");
    subjects.insert(m.body["message"]["subject"].get<std::string>());
  }
  CHECK(subjects.size() == files.size());
  // The cursor names the mailbox's UIDVALIDITY and the last durable UID.
  const auto status = dovecot.status();
  CHECK(stored_cursor(nats.url(), "email.box.uid") ==
        std::to_string(status.uidvalidity) + ":" + std::to_string(files.size()));

  // New mail is picked up on the next poll; nothing already published comes again.
  dovecot.append(channel_fixture("email", "gmail_alternative_base64.eml"));
  REQUIRE(eventually([&] { return read_stream(nats.url()).size() == files.size() + 1; },
                     std::chrono::seconds(20)));
  CHECK(gateway.gateway().metrics().duplicates.value({"email"}) == 0);
}

// ------------------------------------------------------------------- large mail, off the bus

TEST_CASE(
    "email: a 28 MB mail with a 20 MiB attachment is taken, and its interaction carries "
    "the attachment's metadata only",
    "[integration][email][large]") {
  NatsServer nats;
  std::string section = email_section();
  section.replace(section.find("max_message: 64KiB"), 18, "max_message: 50MiB");
  RunningGateway gateway(test_config_yaml(nats.url(), "", section));
  // 20 MiB of deterministic bytes, base64 in 76-character lines as an MUA writes them.
  std::string blob(20 * 1024 * 1024, '\0');
  uint32_t x = 12345;
  for (auto& c : blob) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  std::string encoded = omnigate::base64url_encode(blob);
  for (auto& c : encoded) c = c == '-' ? '+' : c == '_' ? '/' : c;  // standard alphabet
  while (encoded.size() % 4 != 0) encoded += '=';
  std::string lines;
  lines.reserve(encoded.size() + encoded.size() / 76 * 2 + 2);
  for (size_t i = 0; i < encoded.size(); i += 76) lines += encoded.substr(i, 76) + "\r\n";
  const std::string raw =
      "From: =?utf-8?B?0JDQvdC90LA=?= <anna@example.com>\r\n"
      "To: support@example.ru\r\n"
      "Subject: =?utf-8?B?0JDRgNGF0LjQsiDQt9CwINC90L7Rj9Cx0YDRjA==?=\r\n"
      "Date: Tue, 01 Dec 2026 12:30:00 +0300\r\n"
      "Message-ID: <large-20mib@example.com>\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
      "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nАрхив во вложении.\r\n"
      "--b1\r\nContent-Type: application/zip; name=\"archive.zip\"\r\n"
      "Content-Disposition: attachment; filename=\"archive.zip\"\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\n" +
      lines + "--b1--\r\n";
  REQUIRE(raw.size() > 28'000'000);
  auto answer = post_mail(gateway, raw);
  REQUIRE(answer);
  INFO(answer->body);
  CHECK(answer->status == 200);
  auto messages = email_messages(nats.url());
  REQUIRE(messages.size() == 1);
  const json& in = messages[0].body;
  CHECK(in["message"]["text"] == "Архив во вложении.");
  REQUIRE(in["message"]["attachments"].size() == 1);
  CHECK(in["message"]["attachments"][0]["size"] == blob.size());
  CHECK(in["message"]["attachments"][0]["file_name"] == "archive.zip");
  // Metadata only: the document is a few hundred bytes, far under NATS's 1 MiB max_payload.
  CHECK(in.dump().size() < 4096);
  CHECK(schema_problems(messages).empty());

  // The whole message is in the raw archive, and the attachment comes back byte for byte
  // through the media route -- 20 MiB that never crossed the interaction bus.
  CHECK(in["raw"]["object"]["name"] == "email/support/" + in["id"].get<std::string>());
  json object = read_object_with_nats_js(nats.url(), "omnigate_raw", in["raw"]["object"]["name"]);
  REQUIRE(object.is_object());
  CHECK(object["size"] == raw.size());
  CHECK(object["sha256"] == in["raw"]["sha256"]);
  auto part = get_part(gateway, in["id"].get<std::string>() + "/2");
  REQUIRE(part);
  CHECK(part->status == 200);
  CHECK(part->get_header_value("Content-Type") == "application/zip");
  CHECK(part->body.size() == blob.size());
  CHECK(part->body == blob);
}

TEST_CASE(
    "email: the raw message is archived in the Object Store layout before the interaction is "
    "published, nats.js reads it, and the media route serves each attachment decoded",
    "[integration][email][archive]") {
  NatsServer nats;
  RunningGateway gateway(test_config_yaml(nats.url(), "", email_section()));
  // A real-shaped Thunderbird mail: a PDF with an RFC 2231 Cyrillic file name.
  const std::string raw =
      channel_fixture("email", "rfc2231_filename_continuations_thunderbird.eml");
  auto answer = post_mail(gateway, raw);
  REQUIRE(answer);
  REQUIRE(answer->status == 200);
  const std::string id = json::parse(answer->body)["id"];
  auto messages = email_messages(nats.url());
  REQUIRE(messages.size() == 1);
  const json& in = messages[0].body;
  CHECK(in["raw"]["object"] == json{{"bucket", "omnigate_raw"}, {"name", "email/support/" + id}});
  CHECK(schema_problems(messages).empty());

  // A CRM's own client reads the archived message by the name the interaction gives.
  std::string read_back;
  json object =
      read_object_with_nats_js(nats.url(), "omnigate_raw", "email/support/" + id, &read_back);
  REQUIRE(object.is_object());
  CHECK(object["sha256"] == in["raw"]["sha256"]);
  CHECK(read_back == raw);

  // The attachment, decoded, with its decoded name; the bytes match the size the mapping gave.
  const json& attachment = in["message"]["attachments"][0];
  const std::string part_ref = attachment["provider_ref"]["part"];
  auto part = get_part(gateway, id + "/" + part_ref);
  REQUIRE(part);
  CHECK(part->status == 200);
  CHECK(part->get_header_value("Content-Type") == attachment["mime_type"]);
  CHECK(part->body.size() == attachment["size"].get<size_t>());
  const std::string disposition = part->get_header_value("Content-Disposition");
  // Sent percent-encoded (RFC 8187); cpp-httplib's client decodes header values as it reads.
  CHECK(disposition ==
        "attachment; filename*=UTF-8''" + attachment["file_name"].get<std::string>());

  // A retry of the same mail archives nothing new and is a duplicate.
  auto again = post_mail(gateway, raw);
  REQUIRE(again);
  CHECK(json::parse(again->body)["duplicate"] == true);

  // What is refused, and how.
  auto wrong = get_part(gateway, id + "/" + part_ref, "wrong-media-token-0123456789");
  REQUIRE(wrong);
  CHECK(wrong->status == 401);
  auto no_part = get_part(gateway, id + "/9");
  REQUIRE(no_part);
  CHECK(no_part->status == 404);
  auto multipart = get_part(gateway, id + "/1.1.1.1");
  REQUIRE(multipart);
  CHECK(multipart->status == 404);
  auto unknown = get_part(gateway, "00000000-0000-5000-8000-000000000000/2");
  REQUIRE(unknown);
  CHECK(unknown->status == 404);
  auto not_a_ref = get_part(gateway, "../../etc/passwd");
  REQUIRE(not_a_ref);
  CHECK(not_a_ref->status == 404);
  // Another channel's refs stay one segment: a slash never reaches a provider URL.
  auto telegram = gateway.client().Get("/v1/media/telegram/shopbot/a/b");
  REQUIRE(telegram);
  CHECK(telegram->status == 404);
}

// ------------------------------------------------------------- withdrawal by e-mail (mailto:)

TEST_CASE(
    "email: a mail to the mailto: twin of an unsubscribe link withdraws as the link would "
    "(one interaction whichever came first), a forged token is counted and the mail published",
    "[integration][email][consent]") {
  NatsServer nats;
  const std::string links_token = "links-token-0123456789abcdef";
  RunningGateway gateway(test_config_yaml(nats.url(), "", email_section()) +
                         "consent:\n"
                         "  signing_key: email-test-signing-key-0123456789abcdef\n"
                         "  links_token: " +
                         links_token +
                         "\n"
                         "  unsubscribe_mailto: Unsubscribe@Example.RU\n");
  auto minted = gateway.client().Post(
      "/v1/consent/links", {{"Authorization", "Bearer " + links_token}},
      json{{"channel", "email"}, {"account", "support"}, {"email", "ivan@example.com"}}.dump(),
      "application/json");
  REQUIRE(minted);
  REQUIRE(minted->status == 201);
  json links = json::parse(minted->body);
  const std::string url = links["unsubscribe_url"];
  const std::string mailto = links["unsubscribe_mailto"];
  // The domain is lower-cased; the local part stays as written (it may be case-sensitive).
  const std::string prefix = "mailto:Unsubscribe@example.ru?subject=unsubscribe-";
  REQUIRE(mailto.rfind(prefix, 0) == 0);
  CHECK(links["list_unsubscribe"] == "<" + url + ">, <" + mailto + ">");
  const std::string token = mailto.substr(prefix.size());
  CHECK(url.substr(url.find("token=") + 6) == token);  // one sealed token for both

  // The person's mail client sends the mailto: as written (here behind a "Re: ").
  std::string raw = mail("unsubscribe-1@example.com", "Please stop.");
  raw.replace(raw.find("Subject: =?koi8-r?B?+sHLwdo=?="), 30, "Subject: Re: unsubscribe-" + token);
  auto answer = post_mail(gateway, raw);
  REQUIRE(answer);
  REQUIRE(answer->status == 200);
  const std::string mail_id = json::parse(answer->body)["id"];

  auto consents = [&] {
    std::vector<json> out;
    for (auto& m : read_stream(nats.url()))
      if (m.body["kind"] == "consent") out.push_back(m.body);
    return out;
  };
  auto withdrawals = consents();
  REQUIRE(withdrawals.size() == 1);
  const json& w = withdrawals[0];
  CHECK(w["channel"] == "email");
  CHECK(w["account"] == "support");
  CHECK(w["contact"]["identifiers"][0]["value"] == "ivan@example.com");
  CHECK(w["consent"][0]["purpose"] == "marketing");
  CHECK(w["consent"][0]["status"] == "withdrawn");
  CHECK(w["consent"][0]["method"] == "unsubscribe_link");
  CHECK(w["consent"][0]["evidence"]["native_event"] == "list_unsubscribe_mailto");
  CHECK(w["consent"][0]["evidence"]["linked_interaction_id"] == mail_id);
  CHECK(w["raw"]["sha256"] == omnigate::sha256_hex(raw));
  CHECK(schema_problems(read_stream(nats.url())).empty());

  // The link clicked afterwards is the same withdrawal: nothing new is published.
  auto clicked =
      gateway.client().Post("/v1/consent/unsubscribe?token=" + token, "List-Unsubscribe=One-Click",
                            "application/x-www-form-urlencoded");
  REQUIRE(clicked);
  CHECK(clicked->status == 200);
  CHECK(consents().size() == 1);

  // A forged token: the mail is published as a mail, the token counted, nothing withdrawn.
  std::string forged = mail("unsubscribe-2@example.com", "stop");
  forged.replace(forged.find("Subject: =?koi8-r?B?+sHLwdo=?="), 30,
                 "Subject: unsubscribe-" + token.substr(0, token.size() - 4) + "AAAA");
  auto taken = post_mail(gateway, forged);
  REQUIRE(taken);
  CHECK(taken->status == 200);
  CHECK(email_messages(nats.url()).size() == 3);  // two mails and one withdrawal
  CHECK(consents().size() == 1);
  CHECK(gateway.gateway().metrics().rejected.value({"email", "unsubscribe_forged"}) == 1);
}

// The durable outbox (gateway/mail/outbox.hpp) against a real nats-server and a small SMTP server
// on 127.0.0.1 (tests/support/fake_smtp.hpp): an SMTP outage, a gateway restart with mail pending,
// two instances sharing it, the final failure with `omnigate outbox list` and `resend`, and the web
// form's 503 while the outbox is unavailable.
#include <catch2/catch.hpp>

#include <fstream>
#include <set>

#include "gateway/consent/consent.hpp"
#include "gateway/mail/outbox.hpp"
#include "gateway/model/ids.hpp"
#include "tests/support/harness.hpp"
#include "tests/support/fake_smtp.hpp"

using namespace omnigate::testing;
using nlohmann::json;
using omnigate::LinkClaims;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

const std::string kSigningKey = "outbox-test-signing-key-0123456789abcdef";
const std::string kOrigin = "https://shop.example";

std::string outbox_config(const std::string& nats_url, const std::string& smtp_url,
                          const std::string& outbox_keys = "  backoff: [300ms]\n",
                          const std::string& extra_nats = "") {
  return test_config_yaml(nats_url, extra_nats,
                          "  webform:\n"
                          "    - account: main\n"
                          "      allowed_origins: [\"" +
                              kOrigin +
                              "\"]\n"
                              "      consents:\n"
                              "        - field: consent_marketing\n"
                              "          text: marketing-email\n"
                              "          double_opt_in: true\n"
                              "consent:\n"
                              "  signing_key: " +
                              kSigningKey +
                              "\n"
                              "  texts:\n"
                              "    - id: marketing-email\n"
                              "      version: \"3\"\n"
                              "      purpose: marketing\n"
                              "      channels: [email]\n"
                              "      text: 'Хочу получать новости по e-mail.'\n"
                              "  smtp:\n"
                              "    url: " +
                              smtp_url +
                              "\n"
                              "    from: \"Магазин <noreply@shop.example>\"\n"
                              "    timeout: 2s\n"
                              "outbox:\n" +
                              outbox_keys);
}

LinkClaims claims_for(const std::string& submission, const std::string& email) {
  LinkClaims c;
  c.kind = "confirm";
  c.channel = "webform";
  c.account = "main";
  c.email = email;
  c.purposes = {"marketing"};
  c.channels = {"email"};
  c.text_ids = {"marketing-email"};
  c.submission_id = submission;
  c.issued_at_ms = omnigate::now_millis().time_since_epoch().count();
  return c;
}

// The id the outbox gives a submission's confirmation mail (what `outbox list` shows).
std::string mail_id(const std::string& submission) {
  return omnigate::interaction_id("outbox", "webform.main", "confirm:" + submission + ":marketing");
}

omnigate::Status queue_confirmation(RunningGateway& gateway, const std::string& submission,
                                    const std::string& email) {
  return gateway.gateway().consent().request_confirmation(
      claims_for(submission, email), "Подписка на новости", "Хочу получать новости по e-mail.",
      std::chrono::steady_clock::now() + seconds(2));
}

uint64_t emails(RunningGateway& gateway, const char* result) {
  return gateway.gateway().metrics().consent_emails.value({result});
}

// `omnigate outbox ...` with a config file naming this test's NATS.
class OutboxCli {
 public:
  explicit OutboxCli(const std::string& nats_url) {
    path_ = dir_.path() + "/omnigate.yaml";
    std::ofstream(path_) << test_config_yaml(nats_url);
  }
  CommandResult operator()(const std::string& args) const {
    return run_command(std::string(OMNIGATE_BINARY) + " outbox " + args + " --config " + path_);
  }

 private:
  TempDir dir_;
  std::string path_;
};

}  // namespace

TEST_CASE("outbox: SMTP down, the mail is retried with back-off and delivered once it is up",
          "[integration][outbox]") {
  NatsServer nats;
  ClosedPort down;
  RunningGateway gateway(outbox_config(nats.url(), down.url()));
  auto queued = queue_confirmation(gateway, "sub-outage", "ivan.petrov@example.ru");
  REQUIRE(queued);
  CHECK(emails(gateway, "queued") == 1);
  REQUIRE(eventually([&] { return emails(gateway, "retried") >= 2; }));

  OutboxCli cli(nats.url());
  auto listed = cli("list");
  INFO(listed.output);
  CHECK(listed.exit_code == 0);
  CHECK_THAT(listed.output, Catch::Contains(mail_id("sub-outage")));
  CHECK_THAT(listed.output, Catch::Contains("i***@example.ru"));
  CHECK_THAT(listed.output, Catch::Contains("SMTP connect failed"));
  CHECK_THAT(listed.output, Catch::Contains("1 pending"));
  CHECK(listed.output.find("ivan.petrov") == std::string::npos);

  down.release();
  FakeSmtpServer server(Behaviour{}, down.port());  // the relay is back, same address
  REQUIRE(server.wait_for_deliveries(1));
  CHECK(server.deliveries()[0].rcpt_to == "ivan.petrov@example.ru");
  CHECK_FALSE(eventually([&] { return server.deliveries().size() > 1; }, milliseconds(1500)));
  CHECK(emails(gateway, "sent") == 1);
  CHECK(emails(gateway, "failed") == 0);
  CHECK_THAT(cli("list").output, Catch::Contains("0 pending"));
}

TEST_CASE("outbox: a gateway restarted with mail pending, the new instance delivers it",
          "[integration][outbox][restart]") {
  NatsServer nats;
  ClosedPort down;
  {
    RunningGateway first(outbox_config(nats.url(), down.url()));
    REQUIRE(queue_confirmation(first, "sub-restart", "anna@example.ru"));
    REQUIRE(eventually([&] { return emails(first, "retried") >= 1; }));
  }  // stopped with the mail not sent: an in-memory queue would have dropped it here
  down.release();
  FakeSmtpServer server(Behaviour{}, down.port());
  RunningGateway second(outbox_config(nats.url(), server.url()));
  REQUIRE(server.wait_for_deliveries(1));
  CHECK(server.deliveries()[0].rcpt_to == "anna@example.ru");
  CHECK_FALSE(eventually([&] { return server.deliveries().size() > 1; }, milliseconds(1500)));
  CHECK(emails(second, "sent") == 1);
}

TEST_CASE("outbox: two instances share it, every mail is delivered once",
          "[integration][outbox][instances]") {
  NatsServer nats;
  FakeSmtpServer server;
  RunningGateway a(outbox_config(nats.url(), server.url()));
  RunningGateway b(outbox_config(nats.url(), server.url()));
  std::set<std::string> recipients;
  for (int i = 0; i < 12; ++i) {
    std::string email = "user" + std::to_string(i) + "@example.ru";
    recipients.insert(email);
    REQUIRE(queue_confirmation(i % 2 ? a : b, "sub-" + std::to_string(i), email));
  }
  // A retried form post of a submission already queued queues nothing new.
  REQUIRE(queue_confirmation(a, "sub-0", "user0@example.ru"));
  REQUIRE(eventually([&] { return server.deliveries().size() >= 12; }));
  CHECK_FALSE(eventually([&] { return server.deliveries().size() > 12; }, milliseconds(1500)));
  std::set<std::string> delivered;
  for (const auto& d : server.deliveries()) delivered.insert(d.rcpt_to);
  CHECK(delivered == recipients);
  CHECK(emails(a, "sent") + emails(b, "sent") == 12);
}

TEST_CASE("outbox: a mail that finally fails is counted, listed masked, and resent",
          "[integration][outbox][failed]") {
  NatsServer nats;
  FakeSmtpServer server(Behaviour{.greeting = "421 4.3.2 try later"});
  RunningGateway gateway(
      outbox_config(nats.url(), server.url(), "  max_attempts: 2\n  backoff: [100ms]\n"));
  OutboxCli cli(nats.url());
  REQUIRE(queue_confirmation(gateway, "sub-busy", "maria@example.ru"));
  REQUIRE(eventually([&] { return emails(gateway, "failed") == 1; }));
  CHECK(server.connections() == 2);  // max_attempts
  CHECK(emails(gateway, "retried") == 1);

  // A permanent refusal is not retried.
  server.set_behaviour(Behaviour{.rcpt_reply = "550 5.1.1 no such user"});
  REQUIRE(queue_confirmation(gateway, "sub-unknown", "nobody@example.ru"));
  REQUIRE(eventually([&] { return emails(gateway, "failed") == 2; }));
  CHECK(server.connections() == 3);

  auto failed = cli("list --failed");
  INFO(failed.output);
  CHECK(failed.exit_code == 0);
  CHECK_THAT(failed.output, Catch::Contains(mail_id("sub-busy")));
  CHECK_THAT(failed.output, Catch::Contains(mail_id("sub-unknown")));
  CHECK_THAT(failed.output, Catch::Contains("m***@example.ru"));
  CHECK_THAT(failed.output, Catch::Contains("n***@example.ru"));
  CHECK_THAT(failed.output, Catch::Contains("server replied 421"));
  CHECK_THAT(failed.output, Catch::Contains("server replied 550 5.1.1"));
  CHECK_THAT(failed.output, Catch::Contains("2 failed"));
  CHECK(failed.output.find("maria") == std::string::npos);
  CHECK(failed.output.find("nobody") == std::string::npos);
  CHECK_THAT(cli("list").output, Catch::Contains("0 pending"));

  server.set_behaviour(Behaviour{});
  auto resent = cli("resend " + mail_id("sub-busy"));
  INFO(resent.output);
  CHECK(resent.exit_code == 0);
  REQUIRE(server.wait_for_deliveries(1));
  CHECK(server.deliveries()[0].rcpt_to == "maria@example.ru");
  CHECK_THAT(cli("list --failed").output, Catch::Contains("1 failed"));

  auto all = cli("resend --all-failed");
  CHECK(all.exit_code == 0);
  CHECK_THAT(all.output, Catch::Contains("1 mail(s) re-queued"));
  REQUIRE(server.wait_for_deliveries(2));
  CHECK(server.deliveries()[1].rcpt_to == "nobody@example.ru");
  CHECK_THAT(cli("list --failed").output, Catch::Contains("0 failed"));
  CHECK_FALSE(eventually([&] { return server.deliveries().size() > 2; }, milliseconds(1000)));

  CHECK(cli("resend no-such-id").exit_code == 1);
  CHECK(cli("resend").exit_code == 2);
  CHECK(cli("list --all-failed").exit_code == 2);
}

TEST_CASE(
    "web form: the outbox unavailable → 503 with Retry-After (the lead is stored), the "
    "retry queues the mail once",
    "[integration][outbox][webform]") {
  NatsServer nats;
  FakeSmtpServer server;
  { RunningGateway setup(outbox_config(nats.url(), server.url())); }  // streams and buckets
  NatsClient client(nats.url());
  jsErrCode js_error{};
  REQUIRE(js_DeleteStream(client.jetstream(), omnigate::kOutboxStream, nullptr, &js_error) ==
          NATS_OK);
  RunningGateway gateway(
      outbox_config(nats.url(), server.url(), "  backoff: [300ms]\n", "  manage_streams: false\n"));
  const std::string body =
      json{{"email", "olga@example.ru"}, {"consent_marketing", true}, {"_submission_id", "f-503"}}
          .dump();
  httplib::Headers headers = {{"Origin", kOrigin}, {"Accept", "application/json"}};
  auto refused = gateway.client().Post("/v1/webform/main", headers, body, "application/json");
  REQUIRE(refused);
  INFO(refused->body);
  CHECK(refused->status == 503);
  CHECK(refused->get_header_value("Retry-After") == "7");
  CHECK(json::parse(refused->body)["error"]["code"] == "not_durable");
  CHECK(emails(gateway, "outbox_unavailable") == 1);
  CHECK(read_stream(nats.url()).size() == 1);  // the lead itself is durable

  REQUIRE(omnigate::ensure_outbox(client.jetstream(), 1, std::chrono::hours(25)));
  auto retried = gateway.client().Post("/v1/webform/main", headers, body, "application/json");
  REQUIRE(retried);
  INFO(retried->body);
  CHECK(retried->status == 202);
  CHECK(json::parse(retried->body)["confirmation"] == "sent");
  REQUIRE(server.wait_for_deliveries(1));
  CHECK(server.deliveries()[0].rcpt_to == "olga@example.ru");
  CHECK(read_stream(nats.url()).size() == 1);  // the retry's lead was a duplicate
  CHECK_FALSE(eventually([&] { return server.deliveries().size() > 1; }, milliseconds(1000)));
}

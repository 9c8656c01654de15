// E-mail throughput (bench/run.sh scenario (e)): mails per second through the pipe route
// (POST /v1/email/<account>, several clients) and through IMAP (the gateway polling a real
// dovecot), with a mix of sizes, each mail durable in JetStream and archived whole in the raw
// archive before it counts. A Catch2 program only because the test support it reuses (a real
// nats-server, dovecot and gateway) reports through Catch; its one case is hidden ([.bench]) so
// no test run picks it up. Prints one JSON line per path:
//   {"path":"pipe","mails":N,"bytes":B,"seconds":S,"mails_per_s":R,"mb_per_s":M,"clients":C}
//
//   build/tests/email_bench "[.bench]"      # EMAIL_BENCH_MAILS (default 600), _CLIENTS (8)
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "gateway/core/secrets.hpp"
#include "tests/support/dovecot.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using Clock = std::chrono::steady_clock;

namespace {

int env_int(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value && std::atoi(value) > 0 ? std::atoi(value) : fallback;
}

// base64 in 76-character lines, as a mail client writes an attachment.
std::string base64_lines(size_t bytes, uint32_t seed) {
  std::string blob(bytes, '\0');
  for (auto& c : blob) {
    seed = seed * 1664525u + 1013904223u;
    c = static_cast<char>(seed >> 24);
  }
  std::string encoded = omnigate::base64url_encode(blob);
  for (auto& c : encoded) c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (encoded.size() % 4 != 0) encoded += '=';
  std::string lines;
  for (size_t i = 0; i < encoded.size(); i += 76) lines += encoded.substr(i, 76) + "\r\n";
  return lines;
}

// The mix: of every 20 mails, 14 a short plain-text question (~1 KB), 5 with a 48 KiB
// attachment (a scan), 1 with a 1 MiB attachment (a photo album) -- ~110 KB on average.
std::string mixed_mail(int n, const std::string& tag) {
  std::string head = "From: =?utf-8?B?0JjQstCw0L0g0J/QtdGC0YDQvtCy?= <ivan" + std::to_string(n) +
                     "@example.com>\r\nTo: support@example.ru\r\n"
                     "Subject: =?koi8-r?B?+sHLwdog1A==?= " +
                     std::to_string(n) +
                     "\r\nDate: Tue, 01 Dec 2026 12:30:00 +0300\r\n"
                     "Message-ID: <bench-" +
                     tag + "-" + std::to_string(n) + "@example.com>\r\nMIME-Version: 1.0\r\n";
  const std::string text = "Здравствуйте! Где мой заказ номер " + std::to_string(n) +
                           "? Оплатил неделю назад, трек-номер так и не пришёл. Спасибо.\r\n";
  int kind = n % 20;
  if (kind < 14) {
    return head +
           "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
           text + text + text;
  }
  size_t size = kind < 19 ? 48 * 1024 : 1024 * 1024;
  return head +
         "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n"
         "Content-Type: text/plain; charset=utf-8\r\n\r\n" +
         text +
         "--b1\r\nContent-Type: application/pdf; name=\"scan.pdf\"\r\n"
         "Content-Disposition: attachment; filename=\"scan.pdf\"\r\n"
         "Content-Transfer-Encoding: base64\r\n\r\n" +
         base64_lines(size, static_cast<uint32_t>(n)) + "--b1--\r\n";
}

size_t total_bytes(const std::vector<std::string>& mails) {
  size_t bytes = 0;
  for (const auto& m : mails) bytes += m.size();
  return bytes;
}

void report(const char* path, const std::vector<std::string>& mails, double seconds, int clients) {
  const double mb = static_cast<double>(total_bytes(mails)) / (1024.0 * 1024.0);
  std::printf(
      "{\"path\":\"%s\",\"mails\":%zu,\"bytes\":%zu,\"seconds\":%.3f,\"mails_per_s\":%.1f,"
      "\"mb_per_s\":%.1f,\"clients\":%d}\n",
      path, mails.size(), total_bytes(mails), seconds, mails.size() / seconds, mb / seconds,
      clients);
  std::fflush(stdout);
}

}  // namespace

TEST_CASE("email throughput: pipe route and IMAP, mixed sizes", "[.bench]") {
  const int count = env_int("EMAIL_BENCH_MAILS", 600);
  const int clients = env_int("EMAIL_BENCH_CLIENTS", 8);
  const std::string token = "bench-email-token-0123456789";

  {  // The pipe route: `clients` MTAs posting at once.
    NatsServer nats;
    RunningGateway gateway(test_config_yaml(nats.url(), "",
                                            "  email:\n"
                                            "    - account: support\n"
                                            "      token: " +
                                                token + "\n      max_message: 50MiB\n"));
    std::vector<std::string> mails;
    for (int i = 0; i < count; ++i) mails.push_back(mixed_mail(i, "pipe"));
    std::atomic<int> next{0}, failed{0};
    auto started = Clock::now();
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&] {
        auto client = gateway.client();
        client.set_keep_alive(true);
        const httplib::Headers headers = {{"Authorization", "Bearer " + token}};
        for (int i = next++; i < count; i = next++) {
          auto r = client.Post("/v1/email/support", headers, mails[i], "message/rfc822");
          if (!r || r->status != 200) ++failed;
        }
      });
    }
    for (auto& t : threads) t.join();
    double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    REQUIRE(failed == 0);
    REQUIRE(read_stream(nats.url()).size() == static_cast<size_t>(count));
    report("pipe", mails, seconds, clients);
  }

  {  // IMAP: the mailbox filled first, then one gateway polls it (BODY.PEEK, 50 per batch).
    Dovecot dovecot;
    NatsServer nats;
    std::vector<std::string> mails;
    for (int i = 0; i < count; ++i) mails.push_back(mixed_mail(i, "imap"));
    dovecot.deliver_many(mails);
    auto started = Clock::now();
    RunningGateway gateway(test_config_yaml(
        nats.url(), "",
        "  email:\n    - account: box\n      mode: imap\n      url: " + dovecot.url() +
            "\n      username: " + Dovecot::kUser + "\n      password: " + Dovecot::kPassword +
            "\n      tls_verify: false\n      poll_interval: 1s\n      max_message: 50MiB\n"));
    REQUIRE(eventually([&] { return read_stream(nats.url()).size() == static_cast<size_t>(count); },
                       std::chrono::seconds(600)));
    double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    report("imap", mails, seconds, 1);
  }
}

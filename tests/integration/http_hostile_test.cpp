// The HTTP layer against a hostile client (issue 7, defects 2, 3, 6, 7): request desync after an
// early answer, truncated bodies, ambiguous framing, oversized and slow heads, idle connections,
// pipelining, per-IP connection caps and the throttling of failed authentications. Raw sockets
// (RawConnection), the real gateway in-process, a real nats-server; the same cases again through
// nginx with docker/nginx/omnigate.conf.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kTelegramSecret = "wh_Secret-0123456789abcdefghij";
const std::string kBotToken = "123456:ABCdefGHIjklMNOpqrSTUvwxYZ012345";

// test_config_yaml plus `http_extra` lines in http:, a web form `site` (phone required) and a
// Telegram bot `bot` in webhook mode.
std::string hostile_yaml(const std::string& nats_url, const std::string& http_extra = "") {
  std::string yaml =
      test_config_yaml(nats_url, "",
                       "  webform:\n"
                       "    - account: site\n"
                       "      required: [phone]\n"
                       "  telegram:\n"
                       "    - account: bot\n"
                       "      token: \"" +
                           kBotToken +
                           "\"\n"
                           "      mode: webhook\n"
                           "      api_url: http://127.0.0.1:1\n"
                           "      secret_token: " +
                           kTelegramSecret +
                           "\n"
                           "consent:\n"
                           "  signing_key: hostile-test-signing-key-0123456789abcdef\n");
  const std::string anchor = "  retry_after: 7s\n";
  yaml.replace(yaml.find(anchor), anchor.size(),
               anchor + "  read_timeout: 1s\n  header_timeout: 2s\n" + http_extra);
  return yaml;
}

const std::string kLead = "phone=%2B79123456789&name=Ivan&comment=call+me";

std::string webform_post(const std::string& body, const std::string& extra_headers = "") {
  return "POST /v1/webform/site HTTP/1.1\r\nHost: gateway\r\n"
         "Content-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\n"
         "Content-Length: " +
         std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" + body;
}

std::string chunked(const std::string& data, size_t chunk = 4096) {
  std::string out;
  for (size_t i = 0; i < data.size(); i += chunk) {
    std::string part = data.substr(i, chunk);
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", part.size());
    out += size + part + "\r\n";
  }
  return out + "0\r\n\r\n";
}

long rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// Sends a request on a fresh connection and checks that it is answered 202 and stored: proof
// that the stream is written to, so that "nothing stored" elsewhere is not a slow publish.
void expect_one_lead_stored(int port, const std::string& nats_url) {
  RawConnection c(port);
  REQUIRE(c.send(webform_post(kLead)));
  auto answer = c.read_response(5s);
  REQUIRE(answer);
  CHECK(response_status(*answer) == 202);
  REQUIRE(eventually([&] { return read_stream(nats_url).size() == 1; }));
}

// The cases every front (the gateway alone, nginx in front) must pass.
void desync_after_413(int port, const std::string& nats_url) {
  // A declared 300000-byte body that begins with a complete web-form POST.
  std::string smuggled = webform_post("phone=%2B79990001122&comment=smuggled");
  std::string body = smuggled + std::string(300000 - smuggled.size(), 'x');
  std::string request =
      "POST /v1/api/crm HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer " + kApiToken +
      "\r\nIdempotency-Key: desync-1\r\nContent-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n";
  RawConnection c(port);
  REQUIRE(c.send(request));
  c.send(body);  // the server may close before all of it is sent
  auto answer = c.read_response(5s);
  REQUIRE(answer);
  CHECK(response_status(*answer) == 413);
  CHECK(response_header(*answer, "Connection") == "close");
  CHECK_FALSE(c.read_response(3s));  // no second answer: the body was not parsed as a request
  CHECK(c.closed_within(3s));
}

void desync_chunked_telegram(int port) {
  std::string update =
      R"({"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":1,"type":"private"},"text":")" +
      std::string(2 * 1024 * 1024, 'a') + "\"}}";
  std::string head =
      "POST /v1/telegram/bot HTTP/1.1\r\nHost: gateway\r\n"
      "Content-Type: application/json\r\nX-Telegram-Bot-Api-Secret-Token: " +
      kTelegramSecret + "\r\nTransfer-Encoding: chunked\r\n\r\n";
  RawConnection c(port);
  REQUIRE(c.send(head));
  std::thread sender([&] { c.send(chunked(update)); });
  auto answer = c.read_response(5s);
  sender.join();
  REQUIRE(answer);
  CHECK(response_status(*answer) == 413);
  CHECK(response_header(*answer, "Connection") == "close");
  CHECK_FALSE(c.read_response(2s));
  CHECK(c.closed_within(3s));
}

void truncated_body(int port) {
  // 118 bytes declared, 78 sent: the end of the comment never arrives.
  std::string body =
      "phone=%2B79123456789&comment=%D0%BF%D0%BE%D0%B7%D0%B2%D0%BE%D0%BD%D0%B8%D1%82%D0%B5+"
      "and+cancel+the+delivery+-+do+NOT+ship";
  REQUIRE(body.size() >= 118);
  body.resize(118);
  std::string request = webform_post(body);
  {
    INFO("the client half-closes after 78 bytes");
    RawConnection c(port);
    REQUIRE(c.send(request.substr(0, request.size() - 40)));
    c.shutdown_write();
    auto answer = c.read_response(5s);
    if (answer) CHECK(response_status(*answer) == 400);  // or just closed: nothing stored
    CHECK(c.closed_within(5s));
  }
  {
    INFO("the client stalls after 78 bytes (read_timeout)");
    RawConnection c(port);
    REQUIRE(c.send(request.substr(0, request.size() - 40)));
    auto answer = c.read_response(12s);
    if (answer) CHECK(response_status(*answer) == 400);
    CHECK(c.closed_within(12s));
  }
  {
    INFO("a chunked body that stops before its last chunk");
    RawConnection c(port);
    std::string framed = chunked(body, 50);
    framed.resize(framed.size() - 5);  // no "0\r\n\r\n"
    REQUIRE(
        c.send("POST /v1/webform/site HTTP/1.1\r\nHost: gateway\r\n"
               "Content-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\n"
               "Transfer-Encoding: chunked\r\n\r\n" +
               framed));
    c.shutdown_write();
    auto answer = c.read_response(5s);
    if (answer) CHECK(response_status(*answer) == 400);
    CHECK(c.closed_within(5s));
  }
}

// 64 connections that send one header line every 500 ms (and never finish their heads).
struct SlowLoris {
  std::vector<std::unique_ptr<RawConnection>> connections;
  std::atomic<bool> stop{false};
  std::thread dripper;
  SlowLoris(int port, const std::string& source_ip, int count) {
    for (int i = 0; i < count; ++i) {
      connections.push_back(std::make_unique<RawConnection>(port, source_ip));
      connections.back()->send("GET /healthz HTTP/1.1\r\nHost: gateway\r\n");
    }
    dripper = std::thread([this] {
      while (!stop) {
        for (auto& c : connections) c->send("X-Drip: 1\r\n");
        for (int i = 0; i < 5 && !stop; ++i) std::this_thread::sleep_for(100ms);
      }
    });
  }
  ~SlowLoris() {
    stop = true;
    dripper.join();
  }
};

// `count` connections from a second client address (127.0.0.2) that send nothing.
std::vector<std::unique_ptr<RawConnection>> second_client_connections(int port, int count) {
  std::vector<std::unique_ptr<RawConnection>> connections;
  for (int i = 0; i < count; ++i)
    connections.push_back(std::make_unique<RawConnection>(port, "127.0.0.2"));
  return connections;
}

std::chrono::milliseconds healthz_latency(int port) {
  auto start = Clock::now();
  RawConnection c(port);
  c.send("GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n");
  auto answer = c.read_response(15s);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  if (!answer || response_status(*answer) != 200) return 15s;
  return took;
}

}  // namespace

TEST_CASE("desync (CWE-444): a 413 before the body is read closes the connection",
          "[integration][http][hostile]") {
  NatsServer nats;
  RunningGateway gw(hostile_yaml(nats.url()));
  desync_after_413(gw.port(), nats.url());
  desync_chunked_telegram(gw.port());
  expect_one_lead_stored(gw.port(), nats.url());  // the smuggled lead was never stored
  CHECK(gw.gateway().metrics().http_refused.value({"incomplete_body"}) >= 2);
}

TEST_CASE("truncated bodies: shorter than Content-Length or without the last chunk are refused",
          "[integration][http][hostile]") {
  NatsServer nats;
  RunningGateway gw(hostile_yaml(nats.url()));
  truncated_body(gw.port());
  expect_one_lead_stored(gw.port(), nats.url());  // none of the truncated ones
}

TEST_CASE("framing: conflicting Content-Length and other Transfer-Encodings get 400 and close",
          "[integration][http][hostile]") {
  NatsServer nats;
  RunningGateway gw(hostile_yaml(nats.url()));
  const std::string head =
      "POST /v1/webform/site HTTP/1.1\r\nHost: gateway\r\n"
      "Content-Type: application/x-www-form-urlencoded\r\n";
  const std::string body = kLead;
  const std::string size = std::to_string(body.size());
  std::vector<std::pair<std::string, std::string>> cases = {
      {"two Content-Length values", "Content-Length: " + size + "\r\nContent-Length: 5\r\n"},
      {"the same Content-Length twice",
       "Content-Length: " + size + "\r\nContent-Length: " + size + "\r\n"},
      {"a signed Content-Length", "Content-Length: +" + size + "\r\n"},
      {"Transfer-Encoding: gzip", "Transfer-Encoding: gzip\r\n"},
      {"chunked, identity", "Transfer-Encoding: chunked, identity\r\n"},
      {"Transfer-Encoding and Content-Length",
       "Transfer-Encoding: chunked\r\nContent-Length: " + size + "\r\n"},
  };
  for (const auto& [name, headers] : cases) {
    INFO(name);
    RawConnection c(gw.port());
    REQUIRE(c.send(head + headers + "\r\n" + body));
    auto answer = c.read_response(5s);
    REQUIRE(answer);
    CHECK(response_status(*answer) == 400);
    CHECK(response_header(*answer, "Connection") == "close");
    CHECK(c.closed_within(3s));
  }
  {
    INFO("a chunk not followed by CRLF");
    RawConnection c(gw.port());
    REQUIRE(c.send(head + "Transfer-Encoding: chunked\r\n\r\n5\r\nphoneXX\r\n0\r\n\r\n"));
    auto answer = c.read_response(5s);
    REQUIRE(answer);
    CHECK(response_status(*answer) == 400);
    CHECK(c.closed_within(3s));
  }
  expect_one_lead_stored(gw.port(), nats.url());
  CHECK(gw.gateway().metrics().http_refused.value({"bad_framing"}) >= cases.size());
}

TEST_CASE("headers: 1M tiny headers are cut at http.max_headers, memory stays flat",
          "[integration][http][hostile]") {
  NatsServer nats;
  RunningGateway gw(hostile_yaml(nats.url()));
  const long before = rss_kib();
  std::string lines;
  for (int i = 0; i < 10000; ++i) lines += "a: b\r\n";
  for (int attack = 0; attack < 10; ++attack) {
    RawConnection c(gw.port());
    REQUIRE(c.send("GET /healthz HTTP/1.1\r\nHost: gateway\r\n"));
    // The gateway answers after 32 KiB and reads and drops the rest for a while (so that the
    // client sees the answer): the sends may all succeed, the memory must not grow.
    for (int sent = 0; sent < 1'000'000 && c.send(lines); sent += 10000) {
    }
    auto answer = c.read_response(2s);
    if (answer) CHECK(response_status(*answer) == 431);
    CHECK(c.closed_within(3s));
  }
  const long after = rss_kib();
  WARN("RSS before " << before << " KiB, after 10 connections of up to 1M headers " << after
                     << " KiB");
  CHECK(after - before < 16 * 1024);
  CHECK(gw.gateway().metrics().http_refused.value({"header_too_large"}) == 10);
  auto status_with_headers = [&](int count) {
    std::string many = "Host: gateway\r\n";
    for (int i = 1; i < count; ++i) many += "X-H" + std::to_string(i) + ": v\r\n";
    RawConnection c(gw.port());
    c.send("GET /healthz HTTP/1.1\r\n" + many + "\r\n");
    auto answer = c.read_response(3s);
    return answer ? response_status(*answer) : 0;
  };
  CHECK(status_with_headers(100) == 200);  // http.max_headers: 100 (the default)
  CHECK(status_with_headers(101) == 431);
}

TEST_CASE("slow loris: 64 connections dripping header lines do not delay /healthz",
          "[integration][http][hostile]") {
  NatsServer nats;
  // 8 workers (the test default), no per-IP cap in the way: parking alone must do it.
  RunningGateway gw(hostile_yaml(nats.url(), "  max_connections_per_ip: 1000\n"));
  auto start = Clock::now();
  SlowLoris loris(gw.port(), "127.0.0.2", 64);
  std::this_thread::sleep_for(500ms);
  std::chrono::milliseconds worst{0};
  for (int i = 0; i < 10; ++i) worst = std::max(worst, healthz_latency(gw.port()));
  WARN("/healthz under 64 slow-loris connections: worst of 10 " << worst.count() << " ms");
  CHECK(worst < 500ms);
  // Every slow connection is closed at http.header_timeout (2s here), not kept forever.
  for (auto& c : loris.connections) CHECK(c->closed_within(4s));
  CHECK(Clock::now() - start < 6s);
  CHECK(gw.gateway().metrics().http_refused.value({"header_timeout"}) == 64);
}

TEST_CASE("idle connections: 64 idle connects hold no worker, a valid request is served at once",
          "[integration][http][hostile]") {
  NatsServer nats;
  RunningGateway gw(hostile_yaml(nats.url(), "  max_connections_per_ip: 1000\n"));
  auto idle = second_client_connections(gw.port(), 64);
  std::this_thread::sleep_for(200ms);
  auto start = Clock::now();
  auto response = gw.post_api(
      "idle-1",
      R"({"kind":"message","contact":{"identifiers":[{"type":"phone","raw":"+79123456789"}]},)"
      R"("message":{"native_id":"idle-1","text":"hi"}})");
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  REQUIRE(response);
  CHECK(response->status == 202);
  WARN("a valid API request behind 64 idle connections: " << took.count() << " ms, status "
                                                          << response->status);
  CHECK(took < 500ms);
  CHECK(healthz_latency(gw.port()) < 200ms);
  // A connection that never sends a request is closed at http.header_timeout.
  for (auto& c : idle) CHECK(c->closed_within(4s));
}

TEST_CASE("per-IP cap: connections over http.max_connections_per_ip get 429 and close",
          "[integration][http][hostile]") {
  NatsServer nats;
  RunningGateway gw(hostile_yaml(nats.url(), "  max_connections_per_ip: 4\n"));
  auto held = second_client_connections(gw.port(), 4);
  // Each held connection has been served once (keep-alive), so the server has accepted and
  // counted it before the fifth arrives: connect() alone returns before accept().
  for (auto& c : held) {
    c->send("GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n");
    auto served = c->read_response(3s);
    REQUIRE(served);
    REQUIRE(response_status(*served) == 200);
  }
  RawConnection over(gw.port(), "127.0.0.2");
  auto answer = over.read_response(3s);
  REQUIRE(answer);
  CHECK(response_status(*answer) == 429);
  CHECK(response_header(*answer, "Retry-After") == "1");
  CHECK(over.closed_within(3s));
  CHECK(healthz_latency(gw.port()) < 200ms);  // another address is served
  held.clear();
  REQUIRE(eventually([&] {
    RawConnection again(gw.port(), "127.0.0.2");
    again.send("GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n");
    auto a = again.read_response(2s);
    return a && response_status(*a) == 200;
  }));
  CHECK(gw.gateway().metrics().http_refused.value({"per_ip_cap"}) >= 1);
}

TEST_CASE(
    "per-IP cap: a client opening one connection per request is never refused while it "
    "holds fewer than the cap",
    "[integration][http][hostile]") {
  // 8 clients from one address, each closing its connection right after the answer: at most 8
  // are open at once, under a cap of 10. Closed connections whose wake-up the server has not
  // handled yet must not count (they did: 20 such clients against the default cap of 48 got
  // 72 × 429 in 10 000 requests).
  NatsServer nats;
  RunningGateway gw(hostile_yaml(nats.url(), "  max_connections_per_ip: 10\n"));
  std::atomic<int> ok{0}, refused{0}, other{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < 150; ++i) {
        RawConnection c(gw.port(), "127.0.0.2");
        c.send("GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n");
        auto a = c.read_response(3s);
        int status = a ? response_status(*a) : 0;
        (status == 200 ? ok : status == 429 ? refused : other)++;
      }
    });
  }
  for (auto& t : clients) t.join();
  CHECK(refused == 0);
  CHECK(other == 0);
  CHECK(ok == 8 * 150);
}

TEST_CASE("pipelining: three pipelined requests get three answers, in order",
          "[integration][http][hostile]") {
  NatsServer nats;
  RunningGateway gw(hostile_yaml(nats.url()));
  RawConnection c(gw.port());
  REQUIRE(
      c.send("GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"
             "GET /nowhere HTTP/1.1\r\nHost: gateway\r\n\r\n" +
             webform_post(kLead)));
  auto first = c.read_response(3s), second = c.read_response(3s), third = c.read_response(5s);
  REQUIRE(first);
  REQUIRE(second);
  REQUIRE(third);
  CHECK(response_status(*first) == 200);
  CHECK(response_status(*second) == 404);
  CHECK(response_status(*third) == 202);
  CHECK(eventually([&] { return read_stream(nats.url()).size() == 1; }));
}

TEST_CASE("Expect: 100-continue: the interim answer comes before the body is sent",
          "[integration][http][hostile]") {
  // The guard holds an answer's head until its body follows (one send per answer): an interim
  // "100 Continue" must still leave at once, or a client that waits for it never sends.
  NatsServer nats;
  RunningGateway gw(hostile_yaml(nats.url()));
  RawConnection c(gw.port());
  std::string request = webform_post(kLead, "Expect: 100-continue\r\n");
  std::string head = request.substr(0, request.size() - kLead.size());
  REQUIRE(c.send(head));
  auto interim = c.read_response(3s);
  REQUIRE(interim);
  CHECK(response_status(*interim) == 100);
  REQUIRE(c.send(kLead));
  auto answer = c.read_response(5s);
  REQUIRE(answer);
  CHECK(response_status(*answer) == 202);
  CHECK(eventually([&] { return read_stream(nats.url()).size() == 1; }));
  // The connection stays usable: the next answer's head is held and sent with its body.
  REQUIRE(c.send("GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"));
  auto next = c.read_response(3s);
  REQUIRE(next);
  CHECK(response_status(*next) == 200);
}

TEST_CASE("throttling: 3,000 wrong secrets from one IP get 429 with Retry-After",
          "[integration][http][hostile]") {
  NatsServer nats;
  RunningGateway gw(hostile_yaml(nats.url()));
  auto client = gw.client();
  int unauthorized = 0, throttled = 0;
  std::string retry_after;
  for (int i = 0; i < 3000; ++i) {
    auto r = client.Post(
        "/v1/telegram/bot",
        httplib::Headers{{"X-Telegram-Bot-Api-Secret-Token", "wrong-secret-" + std::to_string(i)}},
        R"({"update_id":1})", "application/json");
    REQUIRE(r);
    if (r->status == 401 || r->status == 403) ++unauthorized;
    if (r->status == 429) {
      ++throttled;
      retry_after = r->get_header_value("Retry-After");
    }
  }
  WARN("3000 wrong secrets: " << unauthorized << " answered 401/403, " << throttled << " 429");
  CHECK(unauthorized <= 31);  // http.auth_failures_per_minute: 30 (+1 refilled meanwhile)
  CHECK(throttled >= 2969);
  CHECK(std::stoi(retry_after) >= 1);
  // The right secret from the same address waits too; another address is not affected.
  RawConnection other(gw.port(), "127.0.0.2");
  REQUIRE(other.send(
      "POST /v1/api/crm HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer wrong\r\n"
      "Idempotency-Key: t-1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"));
  auto answer = other.read_response(3s);
  REQUIRE(answer);
  CHECK(response_status(*answer) == 401);
  CHECK(gw.gateway().metrics().http_refused.value({"auth_throttled"}) ==
        static_cast<uint64_t>(throttled));
  CHECK(gw.gateway().metrics().auth_failures.value({"POST /v1/telegram/:account"}) ==
        static_cast<uint64_t>(unauthorized));
}

TEST_CASE("behind nginx (docker/nginx/omnigate.conf): desync, truncation, slow heads, pipelining",
          "[integration][http][hostile][nginx]") {
  if (run_command("command -v nginx").exit_code != 0)
    FAIL("nginx is not installed (scripts/debian-packages.txt)");
  NatsServer nats;
  RunningGateway gw(hostile_yaml(nats.url(), "  trusted_proxies: [127.0.0.1]\n"));
  NginxProxy nginx(gw.port());
  INFO(nginx.error_log());
  desync_after_413(nginx.port(), nats.url());
  desync_chunked_telegram(nginx.port());
  truncated_body(nginx.port());
  {
    INFO("slow loris against nginx: /healthz through nginx stays fast");
    SlowLoris loris(nginx.port(), "127.0.0.2", 64);
    std::this_thread::sleep_for(500ms);
    CHECK(healthz_latency(nginx.port()) < 500ms);
    for (auto& c : loris.connections) CHECK(c->closed_within(5s));  // client_header_timeout
  }
  {
    RawConnection c(nginx.port());
    REQUIRE(
        c.send("GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"
               "GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"
               "GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"));
    int answers = 0;
    while (auto a = c.read_response(3s)) answers += response_status(*a) == 200;
    CHECK(answers == 3);
  }
  expect_one_lead_stored(nginx.port(), nats.url());
  // TLS on the other listener, as Telegram and Meta require.
  auto tls = run_command("curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1:" +
                         std::to_string(nginx.tls_port()) + "/healthz");
  CHECK(tls.output == "200");
  // The client address reaches the gateway through X-Forwarded-For, a forged one does not.
  CHECK(gw.gateway().metrics().http_refused.value({"per_ip_cap"}) == 0);
}

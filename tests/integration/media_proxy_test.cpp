// The core's media proxy, GET /v1/media/<channel>/<account>/<ref> (gateway/http/media_proxy.hpp),
// through the real route with the Telegram connector's source, against a local upstream that
// plays both the Bot API (getFile) and its file server with the failures a file server has:
// a 500 before the first byte, a hang, a large file, a client that goes away mid-stream.
#include <catch2/catch.hpp>

#include <openssl/sha.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "tests/support/fake_bot_api.hpp"
#include "tests/support/harness.hpp"

using namespace omnigate::testing;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kMediaToken = "media-token-0123456789abcdef";
const std::string kSecret = "wh_Secret-0123456789abcdefghij";
constexpr size_t kBigFile = 5 * 1024 * 1024;
constexpr size_t kEndless = 512 * 1024 * 1024;

std::string sha256_hex(const std::string& data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char byte : digest) {
    out += hex[byte >> 4];
    out += hex[byte & 15];
  }
  return out;
}

// The byte at `offset` of the large file: not a repeating pattern a cut could hide in.
char big_byte(size_t offset) {
  uint64_t x = offset * 0x9E3779B97F4A7C15ULL;
  return static_cast<char>((x >> 29) ^ (x >> 47));
}

// Bot API getFile + file server. The file_id says how its download behaves: "big", "error500",
// "hang", "endless"; "missing" is unknown to getFile.
class FakeUpstream {
 public:
  FakeUpstream() {
    server_.Post(R"(/bot([^/]+)/getFile)", [](const httplib::Request& req, httplib::Response& res) {
      json params = json::parse(req.body, nullptr, false);
      std::string file_id = params.is_object() ? params.value("file_id", "") : "";
      if (file_id == "missing") {
        res.status = 400;
        res.set_content(
            json{
                {"ok", false}, {"error_code", 400}, {"description", "Bad Request: invalid file_id"}}
                .dump(),
            "application/json");
        return;
      }
      res.set_content(json{{"ok", true},
                           {"result",
                            {{"file_id", file_id},
                             {"file_unique_id", "u_" + file_id},
                             {"file_path", "files/" + file_id + ".bin"}}}}
                          .dump(),
                      "application/json");
    });
    server_.Get(R"(/file/bot([^/]+)/files/([a-z0-9]+)\.bin)",
                [this](const httplib::Request& req, httplib::Response& res) {
                  serve(req.matches[2].str(), res);
                });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(milliseconds(1));
  }

  ~FakeUpstream() {
    release_hangs();
    server_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  void release_hangs() {
    {
      std::lock_guard lock(mutex_);
      released_ = true;
    }
    changed_.notify_all();
  }

  int hanging() const { return hanging_.load(); }
  int downloads() const { return downloads_.load(); }
  size_t endless_sent() const { return endless_sent_.load(); }
  bool endless_aborted() const { return endless_aborted_.load(); }

 private:
  void serve(const std::string& kind, httplib::Response& res) {
    ++downloads_;
    if (kind == "error500") {
      res.status = 500;
      res.set_content("internal error", "text/plain");
    } else if (kind == "hang") {
      ++hanging_;
      std::unique_lock lock(mutex_);
      changed_.wait_for(lock, seconds(30), [&] { return released_; });
      --hanging_;
      res.set_content("too late", "application/octet-stream");
    } else if (kind == "big") {
      res.set_chunked_content_provider(
          "application/octet-stream", [](size_t offset, httplib::DataSink& sink) {
            if (offset >= kBigFile) {
              sink.done();
              return true;
            }
            std::string chunk(std::min<size_t>(48 * 1024 + 7, kBigFile - offset), '\0');
            for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = big_byte(offset + i);
            return sink.write(chunk.data(), chunk.size());
          });
    } else if (kind == "endless") {
      res.set_chunked_content_provider(
          "application/octet-stream", [this](size_t offset, httplib::DataSink& sink) {
            const std::string chunk(64 * 1024, 'e');
            if (offset >= kEndless) {
              sink.done();
              return true;
            }
            if (!sink.write(chunk.data(), chunk.size())) {
              endless_aborted_ = true;  // the gateway closed the download
              return false;
            }
            endless_sent_ += chunk.size();
            return true;
          });
    } else {
      res.status = 404;
      res.set_content("not found", "text/plain");
    }
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool released_ = false;
  std::atomic<int> hanging_{0};
  std::atomic<int> downloads_{0};
  std::atomic<size_t> endless_sent_{0};
  std::atomic<bool> endless_aborted_{false};
};

// The test config with `media` lines in http: and two bots on `upstream`, one with a media
// token and one without.
std::string media_config(const std::string& nats_url, const std::string& upstream,
                         const std::string& media) {
  std::string bots = "  telegram:\n";
  for (const std::string account : {"shopbot", "plainbot"}) {
    bots += "    - account: " + account + "\n      token: \"" + kFakeBotToken +
            "\"\n      mode: webhook\n      secret_token: " + kSecret +
            "\n      api_url: " + upstream + "\n";
    if (account == "shopbot") bots += "      media_token: " + kMediaToken + "\n";
  }
  std::string yaml = test_config_yaml(nats_url, "", bots);
  yaml.replace(yaml.find("http:\n"), 6, "http:\n" + media);
  return yaml;
}

const httplib::Headers kBearer = {{"Authorization", "Bearer " + kMediaToken}};

uint64_t media_outcome(RunningGateway& gateway, const std::string& outcome,
                       const std::string& channel = "telegram") {
  return gateway.gateway().metrics().media_requests.value({channel, outcome});
}

std::string error_code(const httplib::Result& response) {
  json body = json::parse(response->body, nullptr, false);
  return body.is_object() && body.contains("error") ? body["error"].value("code", "") : "";
}

// `count` downloads of the "hang" file, each on its own client thread; join() gives their
// statuses once the upstream lets them go.
struct HangingDownloads {
  HangingDownloads(RunningGateway& gateway, size_t count) : statuses(count, 0) {
    for (size_t i = 0; i < count; ++i) {
      threads.emplace_back([this, &gateway, i] {
        auto response = gateway.client().Get("/v1/media/telegram/shopbot/hang", kBearer);
        statuses[i] = response ? response->status : -1;
      });
    }
  }
  ~HangingDownloads() { join(); }
  std::vector<int> join() {
    for (auto& thread : threads)
      if (thread.joinable()) thread.join();
    return statuses;
  }
  std::vector<int> statuses;
  std::vector<std::thread> threads;
};

// http.server: loop with 2 workers (so 8 may wait), both held by hanging downloads.
struct BusyFront {
  NatsServer nats;
  FakeUpstream upstream;
  RunningGateway gateway;
  HangingDownloads holders;
  BusyFront() : gateway(config(nats.url(), upstream.url())), holders(gateway, 2) {
    REQUIRE(eventually([&] { return upstream.hanging() == 2; }, seconds(10)));
  }
  static std::string config(const std::string& nats_url, const std::string& upstream) {
    std::string yaml = media_config(nats_url, upstream,
                                    "  server: loop\n  media_workers: 4\n  media_queue: 16\n"
                                    "  media_first_byte_timeout: 20s\n");
    yaml.replace(yaml.find("  threads: 8\n"), 13, "  threads: 2\n");
    return yaml;
  }
};

}  // namespace

TEST_CASE("media proxy: unknown accounts 404, a wrong bearer 401, before anything is fetched",
          "[integration][media]") {
  NatsServer nats;
  FakeUpstream upstream;
  RunningGateway gateway(media_config(nats.url(), upstream.url(), ""));
  auto client = gateway.client();

  struct Row {
    std::string label, path;
    httplib::Headers headers;
    int status;
    std::string code;
  };
  const std::vector<Row> rows = {
      {"unknown account", "/v1/media/telegram/nobot/big", kBearer, 404, "unknown_account"},
      {"unknown channel", "/v1/media/fax/shopbot/big", kBearer, 404, "unknown_account"},
      {"proxy off (no media_token)", "/v1/media/telegram/plainbot/big", kBearer, 404, "not_found"},
      {"malformed ref", "/v1/media/telegram/shopbot/big%2F..", kBearer, 404, "not_found"},
      {"no ref", "/v1/media/telegram/shopbot", kBearer, 404, "not_found"},
      {"wrong bearer",
       "/v1/media/telegram/shopbot/big",
       {{"Authorization", "Bearer media-token-0123456789abcdeX"}},
       401,
       "unauthorized"},
      {"no bearer", "/v1/media/telegram/shopbot/big", {}, 401, "unauthorized"},
      {"unknown file", "/v1/media/telegram/shopbot/missing", kBearer, 404, "not_found"},
  };
  for (const auto& row : rows) {
    INFO(row.label);
    auto response = client.Get(row.path.c_str(), row.headers);
    REQUIRE(response);
    CHECK(response->status == row.status);
    CHECK(error_code(response) == row.code);
  }
  CHECK(upstream.downloads() == 0);  // nothing was downloaded for any of them
  CHECK(media_outcome(gateway, "unauthorized") == 2);
  CHECK(media_outcome(gateway, "unknown_account", "unknown") == 1);  // labels stay bounded
  CHECK(gateway.gateway().metrics().rejected.value({"telegram", "unauthorized"}) == 2);
}

TEST_CASE("media proxy: an upstream failing before the first byte is 502 or 504, never a 200",
          "[integration][media]") {
  NatsServer nats;
  FakeUpstream upstream;
  RunningGateway gateway(
      media_config(nats.url(), upstream.url(), "  media_first_byte_timeout: 1s\n"));
  auto client = gateway.client();
  client.set_read_timeout(seconds(20));

  auto failed = client.Get("/v1/media/telegram/shopbot/error500", kBearer);
  INFO((failed ? "HTTP " + std::to_string(failed->status) : httplib::to_string(failed.error())));
  REQUIRE(failed);
  CHECK(failed->status == 502);
  CHECK(error_code(failed) == "bad_gateway");
  CHECK(failed->body.find(kFakeBotToken) == std::string::npos);

  auto start = Clock::now();
  auto hung = client.Get("/v1/media/telegram/shopbot/hang", kBearer);
  auto waited = Clock::now() - start;
  REQUIRE(hung);
  CHECK(hung->status == 504);
  CHECK(error_code(hung) == "upstream_timeout");
  CHECK(waited >= milliseconds(1000));
  CHECK(waited < milliseconds(4000));  // the configured 1 s, not curl's 120 s media_timeout
  CHECK(media_outcome(gateway, "bad_gateway") == 1);
  CHECK(media_outcome(gateway, "upstream_timeout") == 1);
  CHECK(media_outcome(gateway, "ok") == 0);
}

TEST_CASE("media proxy: a full pool answers 503 with Retry-After, not one more thread",
          "[integration][media]") {
  NatsServer nats;
  FakeUpstream upstream;
  RunningGateway gateway(media_config(nats.url(), upstream.url(),
                                      "  media_workers: 1\n  media_queue: 1\n"
                                      "  media_first_byte_timeout: 20s\n"));
  auto in_flight = [&] {
    std::string metrics = gateway.gateway().metrics().render();
    size_t at = metrics.find("\nomnigate_media_in_flight ");
    return at == std::string::npos ? -1 : std::atoi(metrics.c_str() + at + 26);
  };
  // One download holds the only worker, one waits in the queue of one.
  HangingDownloads holders(gateway, 2);
  REQUIRE(eventually([&] { return upstream.hanging() == 1 && in_flight() == 2; }, seconds(10)));

  auto refused = gateway.client().Get("/v1/media/telegram/shopbot/big", kBearer);
  REQUIRE(refused);
  CHECK(refused->status == 503);
  CHECK(error_code(refused) == "overloaded");
  CHECK(refused->get_header_value("Retry-After") == "7");  // the test config's http.retry_after
  CHECK(upstream.hanging() == 1);                          // the pool did not grow

  upstream.release_hangs();
  CHECK(holders.join() ==
        std::vector<int>{200, 200});  // both were served once the upstream answered
  CHECK(media_outcome(gateway, "overloaded") == 1);
  CHECK(eventually([&] { return in_flight() == 0; }));
}

TEST_CASE("media proxy: a 5 MB file arrives intact", "[integration][media]") {
  NatsServer nats;
  FakeUpstream upstream;
  RunningGateway gateway(media_config(nats.url(), upstream.url(), ""));
  std::string expected(kBigFile, '\0');
  for (size_t i = 0; i < kBigFile; ++i) expected[i] = big_byte(i);

  auto client = gateway.client();
  client.set_read_timeout(seconds(30));
  auto response = client.Get("/v1/media/telegram/shopbot/big", kBearer);
  REQUIRE(response);
  CHECK(response->status == 200);
  CHECK(response->get_header_value("Content-Type") == "application/octet-stream");
  CHECK(response->body.size() == kBigFile);
  CHECK(sha256_hex(response->body) == sha256_hex(expected));
  CHECK(eventually([&] { return media_outcome(gateway, "ok") == 1; }));
}

TEST_CASE("media proxy: a client that goes away mid-stream cancels the upstream transfer",
          "[integration][media]") {
  NatsServer nats;
  FakeUpstream upstream;
  RunningGateway gateway(media_config(nats.url(), upstream.url(), ""));
  auto client = gateway.client();
  size_t received = 0;
  int status = 0;
  auto response = client.Get(
      "/v1/media/telegram/shopbot/endless", kBearer,
      [&](const httplib::Response& r) {
        status = r.status;
        return true;
      },
      [&](const char*, size_t n) {
        received += n;
        return received < 256 * 1024;  // then the client hangs up
      });
  CHECK(status == 200);
  CHECK(received >= 256 * 1024);
  // The gateway stops reading and closes the download: the upstream sees its writes fail long
  // before it has sent its 512 MB.
  CHECK(eventually([&] { return upstream.endless_aborted(); }, seconds(15)));
  CHECK(upstream.endless_sent() < kEndless / 4);
  CHECK(eventually([&] { return media_outcome(gateway, "client_gone") == 1; }));
  INFO("sent by the upstream before the cancel: " << upstream.endless_sent());
}

TEST_CASE("event-loop front: every worker busy and the queue full is a 503 at once",
          "[integration][media][front]") {
  // http.server: loop, 2 workers (4 x 2 = 8 may wait): two hanging downloads hold both
  // workers, requests queue behind them, and once 8 wait the next is refused on its loop.
  BusyFront front;
  auto& [nats, upstream, gateway, holders] = front;
  // Each probe either waits in the queue (its client gives up after 300 ms; the request stays
  // queued) or, once 8 wait, is refused at once.
  std::optional<httplib::Response> refused;
  int probes = 0;
  for (; probes < 20 && !refused; ++probes) {
    httplib::Client client("127.0.0.1", gateway.port());
    client.set_read_timeout(0, 300'000);
    auto response = client.Get("/healthz");
    if (response) refused = *response;
  }
  REQUIRE(refused);
  CHECK(refused->status == 503);
  CHECK(refused->body.find("at capacity") != std::string::npos);
  CHECK(refused->get_header_value("Retry-After") == "7");
  // 8 wait, then one is refused (a probe that had not reached the queue within its 300 ms
  // makes it a later one).
  CHECK(probes >= 9);
  CHECK(probes <= 12);
  CHECK(gateway.gateway().metrics().http_requests.value({"GET /healthz", "503"}) == 1);
  upstream.release_hangs();
  CHECK(holders.join() == std::vector<int>{200, 200});
  // The queued probes ran once the workers were free (their clients had left).
  CHECK(eventually([&] {
    return gateway.gateway().metrics().http_requests.value({"GET /healthz", "200"}) >= 9;
  }));
}

TEST_CASE("event-loop front: a webhook is answered from its loop while every worker is busy",
          "[integration][media][front]") {
  // http.server: loop, 2 workers, both held by hanging downloads: a Telegram update is still
  // checked, mapped, published on the loop's own NATS connection and answered from its PubAck.
  // Handed to a worker it would wait behind the downloads (20 s) and its client give up.
  BusyFront front;
  auto& [nats, upstream, gateway, holders] = front;

  httplib::Client client("127.0.0.1", gateway.port());
  client.set_read_timeout(5, 0);
  const std::string update = channel_fixture("telegram", "message_text_ru_emoji_entities.json");
  const httplib::Headers secret = {{"X-Telegram-Bot-Api-Secret-Token", kSecret}};
  auto answered = client.Post("/v1/telegram/shopbot", secret, update, "application/json");
  REQUIRE(answered);
  CHECK(answered->status == 200);
  CHECK(answered->body == R"({"ok":true})");
  // A wrong secret is refused there too, counted as an auth failure like on a worker.
  const httplib::Headers wrong = {{"X-Telegram-Bot-Api-Secret-Token", "not-the-secret"}};
  auto refused = client.Post("/v1/telegram/shopbot", wrong, update, "application/json");
  REQUIRE(refused);
  CHECK(refused->status == 401);
  CHECK(gateway.gateway().metrics().auth_failures.value({"POST /v1/telegram/:account"}) == 1);
  // The retry of the same update is a duplicate: answered 200, stored once.
  auto again = client.Post("/v1/telegram/shopbot", secret, update, "application/json");
  REQUIRE(again);
  CHECK(again->status == 200);
  CHECK(gateway.gateway().metrics().http_requests.value({"POST /v1/telegram/:account", "200"}) ==
        2);
  CHECK(gateway.gateway().metrics().duplicates.value({"telegram"}) == 1);
  const auto stored = read_stream(nats.url());
  REQUIRE(stored.size() == 1);
  CHECK(stored[0].subject.rfind("omnigate.interactions.telegram.shopbot.", 0) == 0);
  CHECK(schema_problems(stored).empty());
  upstream.release_hangs();
  CHECK(holders.join() == std::vector<int>{200, 200});
}

// The outbound HTTP client (gateway/http/client.hpp) against a local cpp-httplib server: JSON
// calls, the response cap, timeouts and transport errors as Errors, streamed downloads with a
// first-byte callback, cancel and a total timeout; the media proxy without a socket.
#include <catch2/catch.hpp>

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gateway/core/metrics.hpp"
#include "gateway/http/client.hpp"
#include "gateway/http/media_proxy.hpp"

using namespace omnigate;
using nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {

// A cpp-httplib server on a free port, serving on its own thread.
class LocalServer {
 public:
  LocalServer() {
    server.Get("/json", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(json{{"ok", true}, {"x_test", req.get_header_value("X-Test")}}.dump(),
                      "application/json");
    });
    server.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.status = 201;
      res.set_content(json{{"got", json::parse(req.body, nullptr, false)},
                           {"type", req.get_header_value("Content-Type")}}
                          .dump(),
                      "application/json");
    });
    server.Get("/teapot", [](const httplib::Request&, httplib::Response& res) {
      res.status = 418;
      res.set_content("{\"error\":\"short and stout\"}", "application/json");
    });
    server.Get("/text", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("not json", "text/plain");
    });
    server.Get("/deep", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(1000, '[') + std::string(1000, ']'), "application/json");
    });
    server.Get("/big", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(100'000, 'a'), "application/octet-stream");
    });
    server.Get("/slow", [this](const httplib::Request&, httplib::Response& res) {
      std::unique_lock lock(mutex);
      released.wait_for(lock, std::chrono::seconds(10), [&] { return release; });
      res.set_content("late", "text/plain");
    });
    server.Get("/file", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("image/png", [](size_t offset, httplib::DataSink& sink) {
        if (offset >= 3 * 65536) {
          sink.done();
          return true;
        }
        std::string chunk(65536, static_cast<char>('a' + offset / 65536));
        return sink.write(chunk.data(), chunk.size());
      });
    });
    server.Get("/private", [](const httplib::Request& req, httplib::Response& res) {
      // WhatsApp's media URLs want the access token on the download itself.
      if (req.get_header_value("Authorization") != "Bearer wa-access-token") {
        res.status = 401;
        return;
      }
      res.set_content("private bytes", "image/jpeg");
    });
    server.Get("/empty", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("", "text/plain");
    });
    server.Get("/endless", [this](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider(
          "application/octet-stream", [this](size_t offset, httplib::DataSink& sink) {
            std::string chunk(16384, 'z');
            if (offset > 512 * 1024 * 1024 || !sink.write(chunk.data(), chunk.size())) {
              endless_aborted = true;
              return false;
            }
            return true;
          });
    });
    port = server.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { server.listen_after_bind(); });
    while (!server.is_running()) std::this_thread::sleep_for(milliseconds(1));
  }
  ~LocalServer() {
    {
      std::lock_guard lock(mutex);
      release = true;
    }
    released.notify_all();
    server.stop();
    thread.join();
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port) + path;
  }

  httplib::Server server;
  std::thread thread;
  int port = 0;
  std::mutex mutex;
  std::condition_variable released;
  bool release = false;
  std::atomic<bool> endless_aborted{false};
};

http::DownloadRequest download_of(const std::string& url,
                                  milliseconds timeout = milliseconds(20'000)) {
  http::DownloadRequest request;
  request.url = url;
  request.timeout = timeout;
  return request;
}

// A port nothing listens on: bound to learn a free number, then closed.
int closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

}  // namespace

TEST_CASE("http client: JSON calls answer status and parsed JSON, errors are Errors",
          "[http][client]") {
  LocalServer server;

  auto got = http::get_json(server.url("/json"), {{"X-Test", "hello"}}, milliseconds(5000));
  REQUIRE(got);
  CHECK(got->status == 200);
  CHECK(got->json["ok"] == true);
  CHECK(got->json["x_test"] == "hello");  // request headers are sent

  auto posted = http::post_json(server.url("/echo"), {{"a", 1}}, {}, milliseconds(5000));
  REQUIRE(posted);
  CHECK(posted->status == 201);
  CHECK(posted->json["got"] == json{{"a", 1}});
  CHECK(posted->json["type"] == "application/json");

  // A provider's error answer is an answer, for the caller to read.
  auto teapot = http::get_json(server.url("/teapot"), {}, milliseconds(5000));
  REQUIRE(teapot);
  CHECK(teapot->status == 418);
  CHECK(teapot->json["error"] == "short and stout");

  auto text = http::get_json(server.url("/text"), {}, milliseconds(5000));
  REQUIRE(text);
  CHECK(text->body == "not json");
  CHECK(text->json.is_discarded());

  auto deep = http::get_json(server.url("/deep"), {}, milliseconds(5000));
  REQUIRE(deep);
  CHECK(deep->json.is_discarded());  // deeper than limits::kMaxJsonDepth: not parsed

  http::CallRequest capped;
  capped.url = server.url("/big");
  capped.max_response_bytes = 10'000;
  auto big = http::call(capped);
  REQUIRE_FALSE(big);
  CHECK(big.error().code == ErrorCode::bad_gateway);
  capped.max_response_bytes = 100'000;
  REQUIRE(http::call(capped));

  auto start = Clock::now();
  auto slow = http::get_json(server.url("/slow"), {}, milliseconds(300));
  REQUIRE_FALSE(slow);
  CHECK(slow.error().code == ErrorCode::upstream_timeout);
  CHECK(slow.error().http_status() == 504);
  CHECK(Clock::now() - start < std::chrono::seconds(3));

  const std::string refused_url =
      "http://127.0.0.1:" + std::to_string(closed_port()) + "/secret-token-in-path";
  auto refused = http::get_json(refused_url, {}, milliseconds(2000));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == ErrorCode::bad_gateway);
  CHECK(refused.error().detail.find("secret-token") == std::string::npos);  // never the URL

  // A set cancel flag aborts a call that is waiting for its answer.
  std::atomic<bool> cancel{false};
  http::CallRequest waiting;
  waiting.url = server.url("/slow");
  waiting.timeout = milliseconds(20'000);
  waiting.cancel = &cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(milliseconds(200));
    cancel = true;
  });
  start = Clock::now();
  auto aborted = http::call(waiting);
  canceller.join();
  REQUIRE_FALSE(aborted);
  CHECK(aborted.error().code == ErrorCode::bad_gateway);
  CHECK(Clock::now() - start < std::chrono::seconds(5));
}

TEST_CASE("http client: a download streams its chunks after one first-byte callback",
          "[http][client][download]") {
  LocalServer server;
  std::vector<std::string> events;
  std::string body;
  http::DownloadHandlers handlers;
  handlers.on_first_byte = [&](int status, std::string_view type) {
    events.push_back("first " + std::to_string(status) + " " + std::string(type));
    return true;
  };
  handlers.on_chunk = [&](std::string_view chunk) {
    if (body.empty()) events.push_back("chunk");
    body.append(chunk);
    return true;
  };
  auto result = http::download(download_of(server.url("/file")), handlers);
  REQUIRE(result);
  CHECK(result->status == 200);
  CHECK_FALSE(result->cancelled);
  CHECK(result->bytes == 3 * 65536);
  CHECK(body == std::string(65536, 'a') + std::string(65536, 'b') + std::string(65536, 'c'));
  CHECK(events == std::vector<std::string>{"first 200 image/png", "chunk"});

  // Request headers go with the download (WhatsApp: the access token).
  std::string private_body;
  http::DownloadHandlers keep;
  keep.on_chunk = [&](std::string_view chunk) {
    private_body.append(chunk);
    return true;
  };
  auto authorised = download_of(server.url("/private"));
  authorised.headers = {{"Authorization", "Bearer wa-access-token"}};
  REQUIRE(http::download(authorised, keep));
  CHECK(private_body == "private bytes");
  auto anonymous = http::download(download_of(server.url("/private")), keep);
  REQUIRE_FALSE(anonymous);
  CHECK(anonymous.error().code == ErrorCode::bad_gateway);

  // An empty file still reports its start, once.
  events.clear();
  body.clear();
  auto empty = http::download(download_of(server.url("/empty")), handlers);
  REQUIRE(empty);
  CHECK(empty->bytes == 0);
  CHECK(events == std::vector<std::string>{"first 200 text/plain"});

  // An error answer is bad_gateway before any handler runs: its body is not the file.
  events.clear();
  auto missing = http::download(download_of(server.url("/teapot")), handlers);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == ErrorCode::bad_gateway);
  CHECK_THAT(missing.error().detail, Catch::Contains("418"));
  CHECK(events.empty());
}

TEST_CASE("http client: a download can be cancelled, and times out as a whole",
          "[http][client][download]") {
  LocalServer server;

  // The chunk callback stops it: the upstream sees its connection go.
  size_t received = 0;
  http::DownloadHandlers stop_early;
  stop_early.on_chunk = [&](std::string_view chunk) {
    received += chunk.size();
    return received < 100'000;
  };
  auto stopped = http::download(download_of(server.url("/endless")), stop_early);
  REQUIRE(stopped);
  CHECK(stopped->cancelled);
  CHECK(received < 1024 * 1024);
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!server.endless_aborted && Clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(10));
  CHECK(server.endless_aborted);

  // The cancel predicate stops a download that waits for its first byte.
  std::atomic<bool> cancel{false};
  http::DownloadHandlers waiting;
  waiting.cancelled = [&] { return cancel.load(); };
  std::thread canceller([&] {
    std::this_thread::sleep_for(milliseconds(200));
    cancel = true;
  });
  auto start = Clock::now();
  auto cancelled = http::download(download_of(server.url("/slow")), waiting);
  canceller.join();
  REQUIRE(cancelled);
  CHECK(cancelled->cancelled);
  CHECK(Clock::now() - start < std::chrono::seconds(5));

  // The total timeout.
  start = Clock::now();
  auto late = http::download(download_of(server.url("/slow"), milliseconds(300)), {});
  REQUIRE_FALSE(late);
  CHECK(late.error().code == ErrorCode::upstream_timeout);
  CHECK(Clock::now() - start < std::chrono::seconds(3));
}

TEST_CASE("media proxy paths are parsed by a character loop", "[http][media]") {
  MediaPath path;
  REQUIRE(parse_media_path("/v1/media/telegram/shop-bot_1/AgAC-x_y.z:1", path));
  CHECK(path.channel == "telegram");
  CHECK(path.account == "shop-bot_1");
  CHECK(path.ref == "AgAC-x_y.z:1");
  const std::string long_ref(512, 'a');
  CHECK(parse_media_path("/v1/media/whatsapp/a/" + long_ref, path));
  CHECK(parse_media_path("/v1/media/vk/" + std::string(64, 'b') + "/r", path));
  // A slash in the ref parses; only a source with nested_refs is handed one (the proxy checks).
  REQUIRE(parse_media_path("/v1/media/email/box/6f1c/1.2", path));
  CHECK(path.ref == "6f1c/1.2");
  const std::vector<std::string> bad_paths = {"/v1/media/telegram/shop",
                                              "/v1/media/telegram/shop/",
                                              "/v1/media/telegram//ref",
                                              "/v1/media//shop/ref",
                                              "/v1/media/telegram/sh.op/ref",
                                              "/v1/media/telegram/shop/re%2Ff",
                                              "/v1/media/telegram/shop/" + long_ref + "a",
                                              "/v1/media/vk/" + std::string(65, 'b') + "/r",
                                              "/v2/media/telegram/shop/ref",
                                              "/v1/media/Tele gram/shop/ref",
                                              "/v1/media/Telegram/shop/ref"};
  for (const auto& bad : bad_paths) {
    CAPTURE(bad);
    CHECK_FALSE(parse_media_path(bad, path));
  }
}

TEST_CASE("media types come from a file's extension", "[http][media]") {
  CHECK(media_type_for_path("photos/file_1.jpg") == "image/jpeg");
  CHECK(media_type_for_path("documents/file_3.PDF") == "application/pdf");
  CHECK(media_type_for_path("voice/file_2.oga") == "audio/ogg");
  CHECK(media_type_for_path("stickers/file_9.tgs") == "application/x-tgsticker");
  CHECK(media_type_for_path("documents/file_4") == "application/octet-stream");
  CHECK(media_type_for_path("dir.d/file") == "application/octet-stream");
  CHECK(media_type_for_path("file.exe") == "application/octet-stream");
}

TEST_CASE(
    "media proxy: with media_queue 0 a request is served while a worker is free, refused "
    "when none is",
    "[http][media]") {
  LocalServer server;
  Metrics metrics;
  MediaProxyLimits limits;
  limits.workers = 1;
  limits.queue = 0;
  limits.first_byte_timeout = milliseconds(10'000);
  MediaProxy proxy(limits, metrics);
  MediaSource source;
  source.bearer_token = [](std::string_view account) -> std::optional<std::string> {
    return account == "acc" ? std::optional<std::string>("tok") : std::nullopt;
  };
  source.resolve = [&](std::string_view, std::string_view ref) -> Result<MediaTarget> {
    std::string path = "/";
    path += ref;  // not "/" + string: GCC 12 warns falsely (-Wrestrict) on that
    MediaTarget target;
    target.url = server.url(path);
    return target;
  };
  proxy.add_source("test", source);
  auto request_for = [](const std::string& path) {
    InboundRequest request;
    request.method = "GET";
    request.path = path;
    request.headers = {{"Authorization", "Bearer tok"}};
    return request;
  };
  std::string sent;
  auto drain = [&](Reply& reply) {
    return reply.stream([&](std::string_view chunk) {
      sent.append(chunk);
      return true;
    });
  };

  // The only worker is free: served, type from the upstream.
  const std::string file_path = "/v1/media/test/acc/file";
  Reply served = proxy.handle(request_for(file_path));
  REQUIRE(served.status == 200);
  CHECK(served.content_type == "image/png");
  CHECK(drain(served));
  CHECK(sent.size() == 3 * 65536);
  served = Reply{};  // the reply is done with: its download is counted
  CHECK(metrics.media_requests.value({"test", "ok"}) == 1);

  // The worker waits for a slow upstream: the next request is refused, not queued.
  const std::string slow_path = "/v1/media/test/acc/slow";
  std::thread holder([&] {
    Reply slow = proxy.handle(request_for(slow_path));
    CHECK(slow.status == 200);
  });
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (proxy.in_flight() == 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(5));
  Reply refused = proxy.handle(request_for(file_path));
  CHECK(refused.status == 503);
  CHECK(json::parse(refused.body)["error"]["code"] == "overloaded");
  {
    std::lock_guard lock(server.mutex);
    server.release = true;
  }
  server.released.notify_all();
  holder.join();
  CHECK(metrics.media_requests.value({"test", "overloaded"}) == 1);
}

TEST_CASE(
    "media proxy: a source holding its own bytes streams them with their name, a ref with a "
    "slash reaches only a source that allows nested refs",
    "[http][media]") {
  Metrics metrics;
  MediaProxy proxy(MediaProxyLimits{}, metrics);
  std::vector<std::string> resolved;
  auto source_with = [&](bool nested) {
    MediaSource source;
    source.nested_refs = nested;
    source.bearer_token = [](std::string_view) -> std::optional<std::string> { return "tok"; };
    source.resolve = [&](std::string_view, std::string_view ref) -> Result<MediaTarget> {
      resolved.emplace_back(ref);
      MediaTarget target;
      target.content_type = "application/pdf";
      target.file_name = "Акт \"1\"\r\n.pdf";
      target.local = [](const MediaTarget::Begin& begin, const MediaTarget::Write& write) {
        if (begin("") && write("%PDF-") && write(std::string(100'000, 'x'))) return ok_status();
        return ok_status();
      };
      return target;
    };
    return source;
  };
  proxy.add_source("held", source_with(true));
  proxy.add_source("flat", source_with(false));
  auto get = [&](const std::string& path) {
    InboundRequest request;
    request.method = "GET";
    request.path = path;
    request.headers = {{"Authorization", "Bearer tok"}};
    return proxy.handle(request);
  };

  Reply served = get("/v1/media/held/acc/id-1/2");
  REQUIRE(served.status == 200);
  CHECK(served.content_type == "application/pdf");
  std::string body;
  CHECK(served.stream([&](std::string_view chunk) {
    body.append(chunk);
    return true;
  }));
  CHECK(body == "%PDF-" + std::string(100'000, 'x'));
  std::string disposition;
  for (const auto& [name, value] : served.headers)
    if (name == "Content-Disposition") disposition = value;
  // RFC 8187 only: the quote and CR LF of a hostile name cannot break the header.
  CHECK(disposition == "attachment; filename*=UTF-8''%D0%90%D0%BA%D1%82%20%221%22%0D%0A.pdf");
  CHECK(resolved == std::vector<std::string>{"id-1/2"});

  Reply refused = get("/v1/media/flat/acc/id-1/2");
  CHECK(refused.status == 404);
  CHECK(resolved.size() == 1);  // never handed to the flat source
  CHECK(get("/v1/media/flat/acc/id-1").status == 200);
}

// The event-loop front over real sockets: requests and answers (late ones, from other threads,
// pipelined ones in order), and every guard limit: header size and time, framing, body caps
// and stalls, idle and request-count limits on keep-alive, the per-IP cap.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gateway/http/loop_server.hpp"

using namespace omnigate;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// Long enough for a loaded CI machine; a passing test never waits it out.
constexpr milliseconds kWait{10'000};

class Client {
 public:
  explicit Client(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      REQUIRE(n > 0);
      bytes.remove_prefix(static_cast<size_t>(n));
    }
  }
  // One whole answer (head and Content-Length body); "" when the connection ended first.
  std::string answer() {
    for (;;) {
      size_t head_end = buffer_.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        size_t length = 0;
        size_t at = lower(buffer_.substr(0, head_end)).find("content-length: ");
        if (at != std::string::npos) length = std::stoul(buffer_.substr(at + 16));
        size_t total = head_end + 4 + length;
        if (buffer_.size() >= total) {
          std::string one = buffer_.substr(0, total);
          buffer_.erase(0, total);
          return one;
        }
      }
      if (!fill()) return "";
    }
  }
  // An answer's head alone (a HEAD answer says a length it does not send).
  std::string head_only() {
    for (;;) {
      size_t head_end = buffer_.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        std::string head = buffer_.substr(0, head_end + 4);
        buffer_.erase(0, head_end + 4);
        return head;
      }
      if (!fill()) return "";
    }
  }
  // A chunked answer: its head and its decoded body; the body is "<cut>" when the connection
  // ended before the last chunk.
  std::pair<std::string, std::string> chunked_answer() {
    std::string head = head_only();
    std::string body;
    for (;;) {
      size_t eol;
      while ((eol = buffer_.find("\r\n")) == std::string::npos) {
        if (!fill()) return {head, "<cut>"};
      }
      const size_t size = std::stoul(buffer_.substr(0, eol), nullptr, 16);
      while (buffer_.size() < eol + 2 + size + 2) {
        if (!fill()) return {head, "<cut>"};
      }
      body.append(buffer_, eol + 2, size);
      buffer_.erase(0, eol + 2 + size + 2);
      if (size == 0) return {head, body};
    }
  }
  // Whether the server closes the connection (EOF) with nothing more to read.
  bool closed_by_server() {
    while (fill()) {
    }
    return eof_ && buffer_.empty();
  }
  std::string& buffered() { return buffer_; }
  int fd() const { return fd_; }

 private:
  static std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }
  bool fill() {
    if (eof_) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(kWait.count())) <= 0) return false;
    char chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  std::string buffer_;
  bool eof_ = false;
};

std::string body_of(const std::string& answer) {
  size_t at = answer.find("\r\n\r\n");
  return at == std::string::npos ? "" : answer.substr(at + 4);
}

int status_of(const std::string& answer) {
  return answer.size() > 12 ? std::stoi(answer.substr(9, 3)) : 0;
}

struct Events {
  std::mutex mutex;
  std::vector<GuardEvent> seen;
  void add(GuardEvent e) {
    std::lock_guard lock(mutex);
    seen.push_back(e);
  }
  size_t count(GuardEvent e) {
    std::lock_guard lock(mutex);
    return static_cast<size_t>(std::count(seen.begin(), seen.end(), e));
  }
};

// Small size limits; timeouts long enough for a loaded machine (the timeout tests shorten
// theirs).
LoopServer::Options small_limits(Events& events) {
  LoopServer::Options options;
  options.loops = 1;
  options.limits.header_timeout = kWait;
  options.limits.read_timeout = kWait;
  options.limits.keep_alive_timeout = kWait;
  options.limits.write_timeout = kWait;
  options.limits.max_headers = 10;
  options.limits.max_header_bytes = 1024;
  options.limits.max_connections_per_ip = 4;
  options.linger = milliseconds(200);
  options.body_cap = [](const RequestHead& head, const void*) -> uint64_t {
    return head.path == "/small" ? 8 : 1 << 20;
  };
  options.on_event = [&events](GuardEvent e) { events.add(e); };
  return options;
}

// Answers every request at once with its method, path and body.
void echo(FrontRequest& request, Responder responder) {
  std::string text(request.head.method);
  text.append(" ").append(request.head.path).append(" ").append(request.body);
  responder.answer(Reply::text(200, text));
}

std::unique_ptr<LoopServer> start(LoopServer::Options options, LoopServer::Handler handler) {
  auto server = LoopServer::start("127.0.0.1", 0, std::move(options), std::move(handler));
  REQUIRE(server);
  return std::move(server.value());
}

// Waits for a condition another thread makes true (the server's loop).
template <typename Predicate>
bool eventually(Predicate predicate) {
  auto until = Clock::now() + kWait;
  while (!predicate()) {
    if (Clock::now() > until) return false;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return true;
}

}  // namespace

TEST_CASE("the front serves keep-alive requests on one connection", "[http][front]") {
  Events events;
  auto server = start(small_limits(events), echo);
  Client client(server->port());
  client.send("GET /a?x=1 HTTP/1.1\r\nHost: t\r\n\r\n");
  auto first = client.answer();
  CHECK(status_of(first) == 200);
  CHECK(body_of(first) == "GET /a ");
  CHECK(first.find("Connection: close") == std::string::npos);
  client.send("POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
  CHECK(body_of(client.answer()) == "POST /b hello");
  CHECK(server->open_connections() == 1);
}

TEST_CASE("pipelined requests are answered in order even when the first answers late",
          "[http][front]") {
  Events events;
  std::mutex mutex;
  std::vector<std::thread> late;
  auto server = start(small_limits(events), [&](FrontRequest& request, Responder responder) {
    if (request.head.path == "/slow") {
      std::string body(request.body);
      std::lock_guard lock(mutex);
      // Answered from another thread, after the next request's bytes are already buffered.
      late.emplace_back([responder = std::move(responder), body]() mutable {
        std::this_thread::sleep_for(milliseconds(50));
        responder.answer(Reply::text(200, std::string("slow ").append(body)));
      });
      return;
    }
    echo(request, std::move(responder));
  });
  Client client(server->port());
  client.send(
      "POST /slow HTTP/1.1\r\nContent-Length: 3\r\n\r\none"
      "POST /fast HTTP/1.1\r\nContent-Length: 3\r\n\r\ntwo"
      "\r\nGET /last HTTP/1.1\r\n\r\n");  // a stray CRLF between requests is ignored
  CHECK(body_of(client.answer()) == "slow one");
  CHECK(body_of(client.answer()) == "POST /fast two");
  CHECK(body_of(client.answer()) == "GET /last ");
  std::lock_guard lock(mutex);
  for (auto& t : late) t.join();
}

TEST_CASE("a chunked body is decoded however it is split", "[http][front]") {
  Events events;
  auto server = start(small_limits(events), echo);
  Client client(server->port());
  std::string request =
      "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n";
  for (char c : request) client.send(std::string_view(&c, 1));
  CHECK(body_of(client.answer()) == "POST /c Wikipedia");
  client.send("GET /after HTTP/1.1\r\n\r\n");
  CHECK(body_of(client.answer()) == "GET /after ");
}

TEST_CASE("refused framing is answered 400 and the connection closes", "[http][front]") {
  Events events;
  std::atomic<int> handled{0};
  auto server = start(small_limits(events), [&](FrontRequest& request, Responder responder) {
    ++handled;
    echo(request, std::move(responder));
  });
  for (std::string smuggled : {
           "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
           "0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
           "POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
           "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
           "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
           // RFC 9112 §6.1: a 1.0 proxy in front would not have read it as chunked.
           "POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
           "0\r\n\r\nGET /smuggled HTTP/1.0\r\n\r\n",
       }) {
    Client client(server->port());
    client.send(smuggled);
    auto answer = client.answer();
    CHECK(status_of(answer) == 400);
    CHECK(answer.find("Connection: close") != std::string::npos);
    CHECK(client.closed_by_server());
  }
  CHECK(handled == 0);
  CHECK(events.count(GuardEvent::bad_framing) == 5);
}

TEST_CASE("a head over the line or byte limit is answered 431", "[http][front]") {
  Events events;
  auto server = start(small_limits(events), echo);
  {
    Client client(server->port());
    std::string head = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 11; ++i) head.append("X-").append(std::to_string(i)).append(": v\r\n");
    client.send(head.append("\r\n"));
    CHECK(status_of(client.answer()) == 431);
    CHECK(client.closed_by_server());
  }
  {
    Client client(server->port());
    // Never ends: the cap applies to what has arrived, not to a head that is complete.
    client.send(std::string("GET / HTTP/1.1\r\nX-Long: ").append(2000, 'a'));
    CHECK(status_of(client.answer()) == 431);
  }
  CHECK(events.count(GuardEvent::header_too_large) == 2);
}

TEST_CASE("a body over the route's cap is answered 413 before it is read", "[http][front]") {
  Events events;
  std::atomic<int> handled{0};
  auto server = start(small_limits(events), [&](FrontRequest& request, Responder responder) {
    ++handled;
    echo(request, std::move(responder));
  });
  {
    Client client(server->port());
    client.send("POST /small HTTP/1.1\r\nContent-Length: 100000\r\n\r\n");
    auto answer = client.answer();
    CHECK(status_of(answer) == 413);
    CHECK(body_of(answer).find("8 bytes") != std::string::npos);
  }
  {
    Client client(server->port());
    client.send("POST /small HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n123456789\r\n");
    CHECK(status_of(client.answer()) == 413);
  }
  {
    Client client(server->port());
    client.send("POST /small HTTP/1.1\r\nContent-Length: 8\r\n\r\n12345678");
    CHECK(body_of(client.answer()) == "POST /small 12345678");
  }
  CHECK(handled == 1);
  // Answered before the body was read, as the guarded server counts it.
  CHECK(events.count(GuardEvent::incomplete_body) == 2);
}

TEST_CASE("a slow head is answered 408 and a stalled body 400 and both closed", "[http][front]") {
  Events events;
  auto options = small_limits(events);
  options.limits.header_timeout = milliseconds(300);
  options.limits.read_timeout = milliseconds(300);
  auto server = start(std::move(options), echo);
  {
    Client client(server->port());
    client.send("GET / HTTP/1.1\r\nHost:");  // and nothing more
    auto answer = client.answer();
    CHECK(status_of(answer) == 408);
    CHECK(client.closed_by_server());
  }
  {
    Client client(server->port());
    client.send("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345");
    CHECK(status_of(client.answer()) == 400);
  }
  CHECK(events.count(GuardEvent::header_timeout) == 1);
  CHECK(events.count(GuardEvent::incomplete_body) == 1);
  CHECK(eventually([&] { return server->open_connections() == 0; }));
}

TEST_CASE("a body the client cuts by half-closing is answered 400 and not handled",
          "[http][front]") {
  Events events;
  std::atomic<int> handled{0};
  auto server = start(small_limits(events), [&](FrontRequest&, Responder responder) {
    ++handled;
    responder.answer(Reply::text(200, "handled"));
  });
  Client client(server->port());
  client.send("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345");
  client.shutdown_write();
  const std::string answer = client.answer();
  CHECK(status_of(answer) == 400);
  CHECK(answer.find("nothing was processed") != std::string::npos);
  CHECK(client.closed_by_server());
  CHECK(handled == 0);
  CHECK(events.count(GuardEvent::incomplete_body) == 1);
}

TEST_CASE("an idle keep-alive connection is closed without an answer", "[http][front]") {
  Events events;
  auto options = small_limits(events);
  options.limits.keep_alive_timeout = milliseconds(300);
  auto server = start(std::move(options), echo);
  Client client(server->port());
  auto before = Clock::now();  // the idle time cannot start before the request is sent
  client.send("GET / HTTP/1.1\r\n\r\n");
  CHECK(status_of(client.answer()) == 200);
  CHECK(client.closed_by_server());  // after http.keep_alive_timeout, not at once
  CHECK(Clock::now() - before >= milliseconds(300));
  CHECK(events.count(GuardEvent::header_timeout) == 0);
}

TEST_CASE("the last of keep_alive_max_requests says Connection close", "[http][front]") {
  Events events;
  auto options = small_limits(events);
  options.limits.keep_alive_max_requests = 2;
  auto server = start(std::move(options), echo);
  Client client(server->port());
  client.send("GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n");
  CHECK(client.answer().find("Connection: close") == std::string::npos);
  auto second = client.answer();
  CHECK(body_of(second) == "GET /2 ");
  CHECK(second.find("Connection: close") != std::string::npos);
  CHECK(client.closed_by_server());  // /3 is not served
}

TEST_CASE("HTTP 1.0 closes unless it asks for keep-alive", "[http][front]") {
  Events events;
  auto server = start(small_limits(events), echo);
  {
    Client client(server->port());
    client.send("GET /old HTTP/1.0\r\n\r\n");
    CHECK(client.answer().find("Connection: close") != std::string::npos);
    CHECK(client.closed_by_server());
  }
  Client client(server->port());
  client.send("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  CHECK(client.answer().find("Connection: keep-alive") != std::string::npos);
  client.send("GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  CHECK(body_of(client.answer()) == "GET /again ");
}

TEST_CASE("more connections from one address than the cap are refused 429", "[http][front]") {
  Events events;
  auto server = start(small_limits(events), echo);
  std::vector<std::unique_ptr<Client>> open;
  for (int i = 0; i < 4; ++i) {
    open.push_back(std::make_unique<Client>(server->port()));
    open.back()->send("GET / HTTP/1.1\r\n\r\n");
    REQUIRE(status_of(open.back()->answer()) == 200);
  }
  {
    Client over(server->port());
    auto answer = over.answer();
    CHECK(status_of(answer) == 429);
    CHECK(answer.find("Retry-After: 1") != std::string::npos);
    CHECK(over.closed_by_server());
  }
  CHECK(events.count(GuardEvent::per_ip_cap) == 1);
  open.pop_back();  // one leaves: room for another
  CHECK(eventually([&] { return server->open_connections() == 3; }));
  Client next(server->port());
  next.send("GET /next HTTP/1.1\r\n\r\n");
  CHECK(body_of(next.answer()) == "GET /next ");
}

TEST_CASE(
    "a handler that drops its Responder answers 500 and one that answers a departed client"
    " harms nothing",
    "[http][front]") {
  Events events;
  std::mutex mutex;
  std::condition_variable held_cv;
  std::deque<Responder> held;
  auto server = start(small_limits(events), [&](FrontRequest& request, Responder responder) {
    if (request.head.path == "/drop") return;  // the Responder goes out of scope
    std::lock_guard lock(mutex);
    held.push_back(std::move(responder));
    held_cv.notify_all();
  });
  {
    Client client(server->port());
    client.send("GET /drop HTTP/1.1\r\n\r\n");
    auto answer = client.answer();
    CHECK(status_of(answer) == 500);
    CHECK(body_of(answer).find("not answered") != std::string::npos);
  }
  {
    Client client(server->port());
    client.send("POST /hold HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody");
    std::unique_lock lock(mutex);
    REQUIRE(held_cv.wait_for(lock, kWait, [&] { return !held.empty(); }));
  }  // the client leaves while its request is held; its slot is kept until the answer
  {
    std::lock_guard lock(mutex);
    held.front().answer(Reply::text(200, "too late"));
    held.pop_front();
  }
  CHECK(eventually([&] { return server->open_connections() == 0; }));
  Client client(server->port());
  client.send("GET /drop HTTP/1.1\r\n\r\n");
  CHECK(status_of(client.answer()) == 500);
}

TEST_CASE("Expect 100-continue gets its interim answer before the body is sent", "[http][front]") {
  Events events;
  auto server = start(small_limits(events), echo);
  Client client(server->port());
  client.send("POST /e HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
  // "HTTP/1.1 100 Continue\r\n\r\n" has no Content-Length: it reads as an answer of its own.
  CHECK(client.answer() == "HTTP/1.1 100 Continue\r\n\r\n");
  client.send("abc");
  CHECK(body_of(client.answer()) == "POST /e abc");
}

TEST_CASE("a large answer reaches a slow reader whole and HEAD gets no body", "[http][front]") {
  Events events;
  const std::string big(4 << 20, 'x');
  auto server = start(small_limits(events), [&](FrontRequest& request, Responder responder) {
    responder.answer(Reply::text(200, big));
  });
  Client client(server->port());
  client.send("GET /big HTTP/1.1\r\n\r\n");
  auto answer = client.answer();  // the socket buffer fills: the loop waits for EPOLLOUT
  CHECK(body_of(answer) == big);
  client.send("HEAD /big HTTP/1.1\r\n\r\n");
  auto head = client.head_only();
  CHECK(status_of(head) == 200);
  CHECK(head.find(std::string("Content-Length: ").append(std::to_string(big.size()))) !=
        std::string::npos);
  client.send("GET /after-head HTTP/1.1\r\n\r\n");
  CHECK(client.answer().size() == head.size() + big.size());  // no body bytes came between
}

TEST_CASE("two loops share the port and serve concurrent clients", "[http][front]") {
  Events events;
  auto options = small_limits(events);
  options.loops = 2;
  options.limits.max_connections_per_ip = 64;
  std::mutex mutex;
  std::map<size_t, std::set<std::thread::id>> threads_of_loop;
  auto server = start(std::move(options), [&](FrontRequest& request, Responder responder) {
    {
      std::lock_guard lock(mutex);
      threads_of_loop[request.loop_index].insert(std::this_thread::get_id());
    }
    echo(request, std::move(responder));
  });
  REQUIRE(server->loop_count() == 2);
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 16; ++i) {
    clients.emplace_back([&, i] {
      Client client(server->port());
      for (int r = 0; r < 20; ++r) {
        std::string path = std::string("/").append(std::to_string(i)).append("-");
        path.append(std::to_string(r));
        client.send(std::string("GET ").append(path).append(" HTTP/1.1\r\n\r\n"));
        if (body_of(client.answer()) == std::string("GET ").append(path).append(" ")) ++ok;
      }
    });
  }
  for (auto& t : clients) t.join();
  CHECK(ok == 16 * 20);
  std::lock_guard lock(mutex);
  // 16 connections: the kernel spread them over both loops, each loop one thread of its own.
  REQUIRE(threads_of_loop.size() == 2);
  CHECK(threads_of_loop[0].size() == 1);
  CHECK(threads_of_loop[1].size() == 1);
  CHECK(*threads_of_loop[0].begin() != *threads_of_loop[1].begin());
}

TEST_CASE("stop returns with a request still held and its late answer is dropped",
          "[http][front]") {
  Events events;
  std::mutex mutex;
  std::condition_variable held_cv;
  std::optional<Responder> held;
  auto server = start(small_limits(events), [&](FrontRequest& request, Responder responder) {
    std::lock_guard lock(mutex);
    held.emplace(std::move(responder));
    held_cv.notify_all();
  });
  Client client(server->port());
  client.send("GET /held HTTP/1.1\r\n\r\n");
  {
    std::unique_lock lock(mutex);
    REQUIRE(held_cv.wait_for(lock, kWait, [&] { return held.has_value(); }));
  }
  server->stop();
  CHECK(client.closed_by_server());
  held->answer(Reply::text(200, "after stop"));  // posted to a stopped loop: dropped
  server.reset();
  held.reset();
}

TEST_CASE("an error answer after a HEAD request still has its body", "[http][front]") {
  Events events;
  auto server = start(small_limits(events), echo);
  Client client(server->port());
  client.send("HEAD /h HTTP/1.1\r\n\r\nPOST /p HTTP/1.1\r\nContent-Length: zz\r\n\r\n");
  CHECK(status_of(client.head_only()) == 200);
  auto refused = client.answer();
  CHECK(status_of(refused) == 400);
  CHECK(body_of(refused).find("Content-Length is not a number") != std::string::npos);
}

TEST_CASE("a reset connection keeps its slot and its request's bytes until the answer",
          "[http][front]") {
  Events events;
  auto options = small_limits(events);
  options.limits.max_connections_per_ip = 1;
  std::mutex mutex;
  std::condition_variable held_cv;
  std::optional<Responder> held;
  std::string_view held_body, held_header;
  auto server = start(std::move(options), [&](FrontRequest& request, Responder responder) {
    if (request.head.path != "/hold") return echo(request, std::move(responder));
    std::lock_guard lock(mutex);
    held_body = request.body;
    held_header = request.head.header("X-Trace");
    held.emplace(std::move(responder));
    held_cv.notify_all();
  });
  {
    Client client(server->port());
    client.send("POST /hold HTTP/1.1\r\nX-Trace: abc-123\r\nContent-Length: 7\r\n\r\npayload");
    std::unique_lock lock(mutex);
    REQUIRE(held_cv.wait_for(lock, kWait, [&] { return held.has_value(); }));
    linger reset{1, 0};  // close with RST, not FIN: the server sees EPOLLERR and closes at once
    ::setsockopt(client.fd(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  }
  {
    // The held request still counts against its address: a second connection is refused.
    Client second(server->port());
    CHECK(status_of(second.answer()) == 429);
  }
  {
    std::lock_guard lock(mutex);
    CHECK(held_body == "payload");  // the views stay valid until the answer
    CHECK(held_header == "abc-123");
    held->answer(Reply::text(200, "to nobody"));
  }
  CHECK(eventually([&] { return server->open_connections() == 0; }));
  Client third(server->port());
  third.send("GET /after HTTP/1.1\r\n\r\n");
  CHECK(body_of(third.answer()) == "GET /after ");
}

TEST_CASE("a body read after its head keeps the head's values", "[http][front]") {
  Events events;
  std::string seen_trace, seen_type;
  size_t seen_length = 0;
  auto server = start(small_limits(events), [&](FrontRequest& request, Responder responder) {
    seen_trace = request.head.header("X-Trace");
    seen_type = request.head.header("Content-Type");
    seen_length = request.body.size();
    responder.answer(Reply::text(200, "ok"));
  });
  Client client(server->port());
  const std::string body(300'000, 'b');
  std::string head = "POST /big HTTP/1.1\r\nX-Trace: t-42\r\nContent-Type: text/plain\r\n";
  head.append("Expect: 100-continue\r\nContent-Length: ").append(std::to_string(body.size()));
  client.send(head.append("\r\n\r\n"));
  // The interim answer says the head is parsed: the body then grows the buffer it points into.
  CHECK(client.answer() == "HTTP/1.1 100 Continue\r\n\r\n");
  client.send(body);
  CHECK(body_of(client.answer()) == "ok");
  CHECK(seen_trace == "t-42");
  CHECK(seen_type == "text/plain");
  CHECK(seen_length == body.size());
}

TEST_CASE("a streamed answer is sent chunked from off the loop and refused on it",
          "[http][front]") {
  Events events;
  std::mutex workers_mutex;
  std::vector<std::thread> workers;
  auto server = start(small_limits(events), [&](FrontRequest& request, Responder responder) {
    Reply reply;
    reply.content_type = "application/octet-stream";
    reply.stream = [](const Reply::Writer& write) { return write("first,") && write("second"); };
    if (request.head.path == "/on-loop") return responder.answer(std::move(reply));
    std::lock_guard lock(workers_mutex);
    workers.emplace_back([responder = std::move(responder), reply]() mutable {
      responder.answer(std::move(reply));
    });
  });
  Client client(server->port());
  client.send("GET /worker HTTP/1.1\r\n\r\n");
  auto [head, body] = client.chunked_answer();
  CHECK(status_of(head) == 200);
  CHECK(head.find("Transfer-Encoding: chunked") != std::string::npos);
  CHECK(body == "first,second");
  // The connection is kept: the next request on it is answered.
  client.send("GET /on-loop HTTP/1.1\r\n\r\n");
  CHECK(status_of(client.answer()) == 500);
  std::lock_guard lock(workers_mutex);
  for (auto& t : workers) t.join();
}

// 64 MiB produced as fast as the producer can, for a client that first reads nothing.
struct BigStream {
  static constexpr size_t kPiece = 64 * 1024;
  static constexpr size_t kPieces = 1024;
  std::atomic<size_t> produced{0};
  std::atomic<bool> refused{false};  // the writer said stop
  std::atomic<bool> returned{false};
  std::thread worker;

  LoopServer::Handler handler() {
    return [this](FrontRequest&, Responder responder) {
      worker = std::thread([this, responder = std::move(responder)]() mutable {
        Reply reply;
        reply.content_type = "application/octet-stream";
        reply.stream = [this](const Reply::Writer& write) {
          const std::string piece(kPiece, 'x');
          for (size_t i = 0; i < kPieces; ++i) {
            if (!write(piece)) {
              refused = true;
              return false;
            }
            produced += kPiece;
          }
          return true;
        };
        responder.answer(std::move(reply));
        returned = true;
      });
    };
  }
  ~BigStream() {
    if (worker.joinable()) worker.join();
  }
};

TEST_CASE("a streamed answer waits for a slow client instead of buffering the whole body",
          "[http][front]") {
  Events events;
  BigStream stream;
  auto server = start(small_limits(events), stream.handler());
  Client client(server->port());
  client.send("GET /big HTTP/1.1\r\n\r\n");
  // The producer runs until the pipe, the connection's output and the socket buffers are
  // full, then waits: far from the 64 MiB a gathering server would hold by now.
  size_t before = 0;
  CHECK(eventually([&] {
    const size_t now = stream.produced.load();
    const bool settled = now > 0 && now == before;
    before = now;
    return settled;
  }));
  CHECK(stream.produced.load() < BigStream::kPiece * BigStream::kPieces / 4);
  CHECK_FALSE(stream.returned.load());
  auto [head, body] = client.chunked_answer();
  CHECK(status_of(head) == 200);
  CHECK(body.size() == BigStream::kPiece * BigStream::kPieces);
  CHECK(body.find_first_not_of('x') == std::string::npos);
  CHECK(eventually([&] { return stream.returned.load(); }));
  CHECK_FALSE(stream.refused.load());
}

TEST_CASE("a client that leaves mid-stream stops the producer at its next piece", "[http][front]") {
  Events events;
  BigStream stream;
  auto server = start(small_limits(events), stream.handler());
  {
    Client client(server->port());
    client.send("GET /big HTTP/1.1\r\n\r\n");
    CHECK(client.head_only().find("200") != std::string::npos);
  }  // closed with the body mostly unread
  CHECK(eventually([&] { return stream.returned.load(); }));
  CHECK(stream.refused.load());
  CHECK(stream.produced.load() < BigStream::kPiece * BigStream::kPieces);
  CHECK(eventually([&] { return server->open_connections() == 0; }));
}

#include "gateway/http/http_guard.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

#include "gateway/http/request.hpp"

namespace omnigate {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

thread_local RequestFraming* t_current_framing = nullptr;

// A busy keep-alive client's next request usually arrives within a millisecond of our answer;
// waiting that long in the thread saves a round trip through the parking set.
constexpr int kLingerForNextRequestMs = 1;
// After an answer that leaves a body unread, the client may still be sending it: read and drop
// it for a while before closing, or the kernel resets the connection and the client may lose
// the answer (what nginx calls a lingering close).
constexpr milliseconds kDrainTime{2'000};
constexpr size_t kReadChunk = 16 * 1024;
// A head larger than this (many Set-Cookie lines, say) is sent at once rather than held.
constexpr size_t kHeldHeadMax = 8 * 1024;

int poll_one(int fd, short events, milliseconds timeout) {
  pollfd p{fd, events, 0};
  int ms = static_cast<int>(std::max<int64_t>(0, timeout.count()));
  for (;;) {
    int r = ::poll(&p, 1, ms);
    if (r < 0 && errno == EINTR) continue;
    if (r > 0 && (p.revents & (POLLERR | POLLNVAL))) return -1;
    return r;
  }
}

}  // namespace

RequestFraming* RequestFraming::current() {
  return t_current_framing;
}

// One TCP connection: its socket, its unread bytes (kept across requests and parking, so
// pipelined requests are not lost), and its place in the per-IP count.
struct GuardedServer::Connection {
  int fd = -1;
  std::string peer_ip;
  int peer_port = 0;
  // The local address, asked of the kernel once (cpp-httplib wants both for every request).
  std::string local_ip;
  int local_port = -1;
  std::string key;  // per-IP cap key; "" when exempt
  std::vector<char> buffer;
  size_t begin = 0, end = 0;
  size_t scanned = 0;  // bytes of the current head already searched for its end
  size_t lines = 0;    // and the line ends among them
  int requests_left = 0;
  int served = 0;
  bool draining = false;
  bool head_started = true;  // a new connection's deadline runs from the accept
  Clock::time_point head_deadline;
  Clock::time_point park_deadline;

  bool buffered() const { return begin < end; }
  enum class HeadState { complete, need_more, closed, too_large };
  HeadState prefetch_head(const HttpGuardLimits& limits);
};

// Reads, without blocking, until the buffer holds a whole request head (request line, headers,
// blank line). cpp-httplib then parses it from memory, so a slow client holds no thread while
// its head trickles in. A head ends at the first "\n\r\n" (cpp-httplib skips lines that end
// in a bare LF, and a line of just CRLF ends the head).
GuardedServer::Connection::HeadState GuardedServer::Connection::prefetch_head(
    const HttpGuardLimits& limits) {
  Connection& c = *this;
  for (;;) {
    const char* data = c.buffer.data();
    size_t from = c.begin + (c.scanned >= 2 ? c.scanned - 2 : 0);
    size_t found = std::string_view(data + from, c.end - from).find("\n\r\n");
    // The head ends after "\n\r\n"; without it, everything buffered is head so far.
    size_t head_end = found == std::string_view::npos ? c.end : from + found + 3;
    c.lines += static_cast<size_t>(std::count(data + c.begin + c.scanned, data + head_end, '\n'));
    c.scanned = head_end - c.begin;
    // The request line and the blank line that ends the head are lines too.
    size_t line_cap = limits.max_headers + (found == std::string_view::npos ? 1 : 2);
    if (c.scanned > limits.max_header_bytes || c.lines > line_cap) return HeadState::too_large;
    if (found != std::string_view::npos) {
      c.scanned = 0;
      c.lines = 0;
      return HeadState::complete;
    }
    if (c.buffer.empty()) c.buffer.resize(kReadChunk);
    if (c.end == c.buffer.size()) {
      if (c.begin > 0) {
        std::memmove(c.buffer.data(), c.buffer.data() + c.begin, c.end - c.begin);
        c.end -= c.begin;
        c.begin = 0;
      } else {
        c.buffer.resize(c.buffer.size() + kReadChunk);  // bounded by max_header_bytes above
      }
    }
    ssize_t n = ::recv(c.fd, c.buffer.data() + c.end, c.buffer.size() - c.end, MSG_DONTWAIT);
    if (n > 0) {
      c.end += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
      return HeadState::need_more;
    return HeadState::closed;
  }
}

// The framing-aware stream cpp-httplib reads a request through and writes its answer to.
class GuardedServer::ConnStream final : public httplib::Stream, public RequestFraming {
 public:
  ConnStream(Connection& connection, const HttpGuardLimits& limits)
      : c_(connection), limits_(limits) {}

  void begin_request() {
    wrote_this_answer_ = false;
    phase_ = Phase::head;
    framing_ = Framing::none;
    framing_problem_.clear();
    remaining_ = 0;
    chunked_ = ChunkedFraming();
    body_failed_ = false;
  }

  // Called by cpp-httplib once the head is parsed (its setup_request hook).
  void head_complete(const httplib::Request& req) {
    phase_ = Phase::body;
    std::vector<std::string_view> lengths, encodings;
    auto collect = [&req](const char* name, std::vector<std::string_view>& values) {
      auto [first, last] = req.headers.equal_range(name);  // case-insensitive, stored values
      for (auto it = first; it != last; ++it) values.emplace_back(it->second);
    };
    collect("Content-Length", lengths);
    collect("Transfer-Encoding", encodings);
    BodyFraming framing = body_framing(lengths, encodings);
    switch (framing.kind) {
      case BodyFraming::Kind::none:
        framing_ = Framing::none;
        break;
      case BodyFraming::Kind::length:
        framing_ = Framing::length;
        remaining_ = framing.length;
        break;
      case BodyFraming::Kind::chunked:
        framing_ = Framing::chunked;
        break;
      case BodyFraming::Kind::refused:
        framing_problem_ = framing.problem;
        break;
    }
    if (!framing_problem_.empty()) {
      framing_ = Framing::refused;
      body_failed_ = true;
    }
  }

  // False when the held head of the answer could not be sent.
  bool end_request() {
    phase_ = Phase::between;
    return flush();
  }
  bool head_was_complete() const { return phase_ != Phase::head; }

  std::string framing_problem() const override { return framing_problem_; }
  bool body_complete() const override {
    if (body_failed_) return false;
    switch (framing_) {
      case Framing::none:
        return true;
      case Framing::length:
        return remaining_ == 0;
      case Framing::chunked:
        return chunked_.done();
      case Framing::refused:
        return false;
    }
    return false;
  }
  bool bad_framing() const { return framing_ == Framing::refused || body_failed_; }

  bool is_readable() const override { return c_.buffered() || poll_in(limits_.read_timeout) > 0; }
  bool is_writable() const override { return poll_one(c_.fd, POLLOUT, limits_.write_timeout) > 0; }

  ssize_t read(char* ptr, size_t size) override {
    if (size == 0) return 0;
    switch (phase_) {
      case Phase::head:
        return read_head(ptr, size);
      case Phase::body:
        return read_body(ptr, size);
      case Phase::between:
        return 0;
    }
    return -1;
  }

  // cpp-httplib writes an answer's head and its body in two calls. The head is held until the
  // body's first bytes follow (or the request ends, end_request), and both leave in one
  // sendmsg: one syscall and one TCP segment for a small answer instead of two. A streamed
  // body is not held back: only the head waits, and only for the first chunk.
  ssize_t write(const char* ptr, size_t size) override {
    if (size == 0) return 0;
    if (!wrote_this_answer_ && size <= kHeldHeadMax) {
      wrote_this_answer_ = true;
      held_.assign(ptr, size);
      return static_cast<ssize_t>(size);
    }
    wrote_this_answer_ = true;
    if (!send_all(ptr, size)) return -1;
    return static_cast<ssize_t>(size);
  }

  // Sends what write() still holds; false when the connection cannot take it.
  bool flush() {
    if (held_.empty()) return true;
    return send_all(nullptr, 0);
  }

  // Known since the accept: no getpeername per request.
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = c_.peer_ip;
    port = c_.peer_port;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    if (c_.local_port < 0) {
      sockaddr_storage addr{};
      socklen_t len = sizeof addr;
      if (getsockname(c_.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return;
      c_.local_ip = socket_address_ip(addr);
      c_.local_port = socket_address_port(addr);
    }
    ip = c_.local_ip;
    port = c_.local_port;
  }
  socket_t socket() const override { return c_.fd; }

 private:
  enum class Phase { head, body, between };
  enum class Framing { none, length, chunked, refused };

  int poll_in(milliseconds timeout) const { return poll_one(c_.fd, POLLIN, timeout); }

  // Sends the held head, then [ptr, ptr + size), in as few sendmsg calls as the socket takes,
  // waiting for room at most http.write_timeout each time it is full.
  bool send_all(const char* ptr, size_t size) {
    iovec parts[2];
    int count = 0;
    if (!held_.empty()) parts[count++] = {held_.data(), held_.size()};
    if (size > 0) parts[count++] = {const_cast<char*>(ptr), size};
    iovec* next = parts;
    while (count > 0) {
      msghdr message{};
      message.msg_iov = next;
      message.msg_iovlen = static_cast<size_t>(count);
      ssize_t sent = ::sendmsg(c_.fd, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) break;
        if (poll_one(c_.fd, POLLOUT, limits_.write_timeout) <= 0) break;
        continue;
      }
      auto left = static_cast<size_t>(sent);
      while (count > 0 && left >= next->iov_len) {
        left -= next->iov_len;
        ++next;
        --count;
      }
      if (count > 0) {
        next->iov_base = static_cast<char*>(next->iov_base) + left;
        next->iov_len -= left;
      }
    }
    held_.clear();
    return count == 0;
  }

  // Makes bytes available in the buffer, waiting until `deadline`: >0 bytes, 0 EOF, -1 error
  // or timeout (then *timed_out is set).
  ssize_t fill(Clock::time_point deadline, bool* timed_out) {
    if (c_.buffered()) return static_cast<ssize_t>(c_.end - c_.begin);
    c_.begin = c_.end = 0;
    if (c_.buffer.empty()) c_.buffer.resize(kReadChunk);
    // Read first: the body usually follows its head at once, and a poll before every read
    // would be a syscall spent on a known answer.
    for (;;) {
      ssize_t n = ::recv(c_.fd, c_.buffer.data(), c_.buffer.size(), MSG_DONTWAIT);
      if (n > 0) {
        c_.end = static_cast<size_t>(n);
        return n;
      }
      if (n == 0) return 0;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        *timed_out = true;
        return -1;
      }
      int ready = poll_in(left);
      if (ready == 0) {
        *timed_out = true;
        return -1;
      }
      if (ready < 0) return -1;
    }
  }

  size_t take(char* ptr, size_t size) {
    size_t n = std::min(size, c_.end - c_.begin);
    std::memcpy(ptr, c_.buffer.data() + c_.begin, n);
    c_.begin += n;
    return n;
  }

  // The head is in the buffer already (prefetch_head): no waiting, no caps to check here.
  ssize_t read_head(char* ptr, size_t size) {
    if (!c_.buffered()) return 0;
    return static_cast<ssize_t>(take(ptr, size));
  }

  ssize_t read_body(char* ptr, size_t size) {
    if (!held_.empty()) {
      // "100 Continue", written before the body is read: the client waits for it.
      if (!flush()) {
        body_failed_ = true;
        return -1;
      }
      wrote_this_answer_ = false;  // the real answer's head is held for its body again
    }
    if (framing_ == Framing::none || framing_ == Framing::refused) return 0;
    if (framing_ == Framing::length && remaining_ == 0) return 0;
    if (framing_ == Framing::chunked && chunked_.done()) return 0;
    bool timed_out = false;
    ssize_t available = fill(Clock::now() + limits_.read_timeout, &timed_out);
    if (available <= 0) {
      body_failed_ = true;  // EOF or timeout inside the body: it is incomplete
      return -1;
    }
    if (framing_ == Framing::length) {
      size_t n = take(ptr, static_cast<size_t>(std::min<uint64_t>(size, remaining_)));
      remaining_ -= n;
      return static_cast<ssize_t>(n);
    }
    size_t peek = std::min(size, c_.end - c_.begin);
    ssize_t framed = chunked_.feed(c_.buffer.data() + c_.begin, peek);
    if (framed < 0) {
      body_failed_ = true;
      return -1;
    }
    return static_cast<ssize_t>(take(ptr, static_cast<size_t>(framed)));
  }

  Connection& c_;
  const HttpGuardLimits& limits_;
  Phase phase_ = Phase::between;
  Framing framing_ = Framing::none;
  std::string framing_problem_;
  uint64_t remaining_ = 0;
  ChunkedFraming chunked_;
  bool body_failed_ = false;
  // The answer's head, held for its body (write); kept across requests for its capacity.
  std::string held_;
  bool wrote_this_answer_ = false;
};

// The set of connections that wait for bytes without a thread: one epoll set, one thread.
class GuardedServer::Parker {
 public:
  explicit Parker(GuardedServer& server)
      : server_(server), epoll_fd_(epoll_create1(EPOLL_CLOEXEC)) {}
  ~Parker() {
    stop();
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
  }

  void start() {
    std::lock_guard lock(mutex_);
    if (thread_.joinable() || stopped_) return;
    thread_ = std::thread([this] { run(); });
  }

  // Takes the connection; false (connection returned untouched in `connection`) when stopped.
  bool park(std::unique_ptr<Connection>& connection) {
    std::lock_guard lock(mutex_);
    if (stopped_ || !thread_.joinable()) return false;
    epoll_event event{};
    event.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    event.data.fd = connection->fd;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, connection->fd, &event) != 0) return false;
    int fd = connection->fd;
    parked_[fd] = std::move(connection);
    return true;
  }

  // Stops the thread and closes every parked connection.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopped_ = true;
    }
    if (thread_.joinable()) thread_.join();
    std::unordered_map<int, std::unique_ptr<Connection>> parked;
    {
      std::lock_guard lock(mutex_);
      parked.swap(parked_);
    }
    for (auto& [fd, connection] : parked) server_.close(std::move(connection));
  }

 private:
  void run() {
    std::vector<epoll_event> events(64);
    auto next_sweep = Clock::now();
    for (;;) {
      {
        std::lock_guard lock(mutex_);
        if (stopped_) return;
      }
      int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 50);
      for (int i = 0; i < n; ++i) {
        std::unique_ptr<Connection> connection = take(events[i].data.fd);
        if (!connection) continue;
        if (connection->draining) {
          drain(std::move(connection));
        } else {
          server_.resume_later(std::move(connection));
        }
      }
      if (Clock::now() >= next_sweep) {
        sweep();
        next_sweep = Clock::now() + milliseconds(100);
      }
    }
  }

  std::unique_ptr<Connection> take(int fd) {
    std::lock_guard lock(mutex_);
    auto it = parked_.find(fd);
    if (it == parked_.end()) return nullptr;
    auto connection = std::move(it->second);
    parked_.erase(it);
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    return connection;
  }

  // Reads and drops what a client still sends after an answer that closes the connection.
  void drain(std::unique_ptr<Connection> connection) {
    char sink[kReadChunk];
    for (int round = 0; round < 4; ++round) {
      ssize_t n = ::recv(connection->fd, sink, sizeof sink, MSG_DONTWAIT);
      if (n > 0) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      server_.close(std::move(connection));  // EOF or error: the client is done
      return;
    }
    if (!park(connection)) server_.close(std::move(connection));
  }

  void sweep() {
    std::vector<std::unique_ptr<Connection>> expired;
    {
      std::lock_guard lock(mutex_);
      auto now = Clock::now();
      for (auto it = parked_.begin(); it != parked_.end();) {
        if (it->second->park_deadline <= now) {
          epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->first, nullptr);
          expired.push_back(std::move(it->second));
          it = parked_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& connection : expired) {
      if (connection->head_started && !connection->draining && server_.on_event_)
        server_.on_event_(GuardEvent::header_timeout);
      server_.close(std::move(connection));
    }
  }

 public:
  // Closes the parked connections of `key` whose client has already hung up (FIN or reset)
  // but whose wake-up has not been handled yet; returns how many. A client that opens a
  // connection per request closes each one right after its answer: without this, the per-IP
  // cap would count connections that are gone but not yet reaped.
  int reap_hung_up(const std::string& key) {
    std::vector<std::unique_ptr<Connection>> gone;
    {
      std::lock_guard lock(mutex_);
      for (auto it = parked_.begin(); it != parked_.end();) {
        pollfd p{it->first, POLLRDHUP, 0};
        bool hung_up = it->second->key == key && ::poll(&p, 1, 0) > 0 &&
                       (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
        if (hung_up) {
          epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->first, nullptr);
          gone.push_back(std::move(it->second));
          it = parked_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& connection : gone) server_.close(std::move(connection));
    return static_cast<int>(gone.size());
  }

 private:
  GuardedServer& server_;
  int epoll_fd_;
  std::mutex mutex_;
  bool stopped_ = false;
  std::thread thread_;
  std::unordered_map<int, std::unique_ptr<Connection>> parked_;
};

// cpp-httplib's thread pool, told to stop the parking set and unblock every connection
// before it joins its workers (Server::stop would otherwise wait for idle clients).
class GuardedServer::Pool final : public httplib::ThreadPool {
 public:
  Pool(size_t threads, GuardedServer& server) : httplib::ThreadPool(threads), server_(server) {}
  void shutdown() override {
    server_.shutdown_all();
    httplib::ThreadPool::shutdown();
  }

 private:
  GuardedServer& server_;
};

GuardedServer::GuardedServer(HttpGuardLimits limits, EventSink on_event)
    : limits_(std::move(limits)),
      on_event_(std::move(on_event)),
      parker_(std::make_unique<Parker>(*this)) {
  new_task_queue = [this] {
    auto* pool = new Pool(limits_.threads, *this);
    {
      std::lock_guard lock(mutex_);
      pool_ = pool;
    }
    parker_->start();
    return pool;
  };
  set_keep_alive_max_count(static_cast<size_t>(limits_.keep_alive_max_requests));
  auto seconds = [](milliseconds ms) { return std::max<time_t>(1, (ms.count() + 999) / 1000); };
  set_keep_alive_timeout(seconds(limits_.keep_alive_timeout));
  set_read_timeout(seconds(limits_.read_timeout));
  set_write_timeout(seconds(limits_.write_timeout));
  // The answer to a request whose body stays unread says that the connection closes.
  set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
    auto* framing = RequestFraming::current();
    if (!framing || framing->body_complete()) return;
    res.headers.erase("Keep-Alive");
    res.headers.erase("Connection");
    res.set_header("Connection", "close");
  });
}

GuardedServer::~GuardedServer() {
  parker_->stop();
}

size_t GuardedServer::open_connections() const {
  std::lock_guard lock(mutex_);
  return open_;
}

bool GuardedServer::process_and_close_socket(socket_t sock) {
  auto connection = std::make_unique<Connection>();
  connection->fd = sock;
  connection->requests_left = limits_.keep_alive_max_requests;
  connection->head_deadline = Clock::now() + limits_.header_timeout;
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getpeername(sock, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    connection->peer_ip = socket_address_ip(addr);
    connection->peer_port = socket_address_port(addr);
  }
  bool exempt = limits_.exempt.trusts(connection->peer_ip);
  bool refused = false;
  if (!exempt) connection->key = client_key(connection->peer_ip);
  // Counts only connections that are still there. One whose client has hung up (it read its
  // answer and closed) is on its way out -- parked, queued for a worker or being closed --
  // however long a loaded machine takes to get to it: not counted (under ctest -j2 the 100 ms
  // grace was not always enough).
  auto at_cap = [&] {
    std::lock_guard lock(mutex_);
    auto it = per_ip_.find(connection->key);
    if (it == per_ip_.end() || it->second < limits_.max_connections_per_ip) return false;
    int gone = 0;
    for (const auto& [fd, key] : counted_) {
      if (key != connection->key) continue;
      pollfd p{fd, POLLRDHUP, 0};
      if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) ++gone;
    }
    return it->second - gone >= limits_.max_connections_per_ip;
  };
  if (!exempt && at_cap()) {
    // Count only connections that are still there: reap those whose client hung up, and give
    // the ones already on their way to close (queued on a worker) a moment to finish.
    parker_->reap_hung_up(connection->key);
    auto until = Clock::now() + milliseconds(100);
    while (at_cap() && Clock::now() < until) {
      std::this_thread::sleep_for(milliseconds(5));
      parker_->reap_hung_up(connection->key);
    }
  }
  if (!exempt) refused = at_cap();
  {
    std::lock_guard lock(mutex_);
    ++open_;
    if (!exempt) {
      ++per_ip_[connection->key];
      counted_[sock] = connection->key;
    }
  }
  if (refused) {
    if (on_event_) on_event_(GuardEvent::per_ip_cap);
    static const std::string body =
        R"({"error":{"code":"rate_limited","message":"too many open connections from this address"}})";
    std::string answer =
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
        "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    ::send(sock, answer.data(), answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(sock, SHUT_WR);
    connection->draining = true;
    connection->park_deadline = Clock::now() + kDrainTime;
    if (!parker_->park(connection)) close(std::move(connection));
    return false;
  }
  resume(std::move(connection));
  return true;
}

void GuardedServer::resume(std::unique_ptr<Connection> connection) {
  connection = serve(std::move(connection));
  if (connection) park_or_close(std::move(connection));
}

void GuardedServer::resume_later(std::unique_ptr<Connection> connection) {
  std::unique_lock lock(mutex_);
  if (pool_) {
    // std::function needs a copyable callable: the connection travels as a raw pointer.
    Connection* raw = connection.release();
    pool_->enqueue([this, raw] { resume(std::unique_ptr<Connection>(raw)); });
    return;
  }
  lock.unlock();
  close(std::move(connection));  // shutting down: nobody will serve it
}

std::unique_ptr<GuardedServer::Connection> GuardedServer::serve(
    std::unique_ptr<Connection> connection) {
  Connection& c = *connection;
  {
    std::lock_guard lock(mutex_);
    active_[c.fd] = c.key;
  }
  auto leave = [&] {
    std::lock_guard lock(mutex_);
    active_.erase(c.fd);
  };
  ConnStream stream(c, limits_);
  bool answered = false;
  bool after_answer = false;
  while (svr_sock_ != INVALID_SOCKET && c.requests_left > 0) {
    if (after_answer && !c.buffered()) {
      // A busy keep-alive client's next request usually arrives within a millisecond of our
      // answer: wait that long here before parking. Poll first -- a read right after the
      // answer would find nothing and cost a syscall.
      after_answer = false;
      int ready = poll_one(c.fd, POLLIN, milliseconds(kLingerForNextRequestMs));
      if (ready == 0) {
        leave();
        return connection;  // parked: the thread is free
      }
      if (ready < 0) break;
    }
    auto head = c.prefetch_head(limits_);
    if (c.buffered() && !c.head_started) {
      c.head_started = true;
      c.head_deadline = Clock::now() + limits_.header_timeout;
    }
    if (head == Connection::HeadState::need_more) {
      if (c.head_started && Clock::now() >= c.head_deadline) {
        if (on_event_) on_event_(GuardEvent::header_timeout);
        break;
      }
      if (!c.buffered() && poll_one(c.fd, POLLIN, milliseconds(kLingerForNextRequestMs)) > 0)
        continue;
      leave();
      return connection;  // waiting for bytes: park it, the thread is free
    }
    if (head == Connection::HeadState::closed) break;
    if (head == Connection::HeadState::too_large) {
      if (on_event_) on_event_(GuardEvent::header_too_large);
      static const std::string body =
          R"json({"error":{"code":"bad_request","message":"the request head has too many header lines or bytes (http.max_headers, http.max_header_bytes)"}})json";
      std::string answer =
          "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: application/json\r\n"
          "Connection: close\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body;
      stream.write(answer.data(), answer.size());
      stream.flush();
      answered = true;
      break;
    }
    stream.begin_request();
    bool close_connection = c.requests_left == 1;
    bool connection_closed = false;
    t_current_framing = &stream;
    bool ok = process_request(stream, close_connection, connection_closed,
                              [&stream](httplib::Request& req) { stream.head_complete(req); });
    t_current_framing = nullptr;
    bool head_complete = stream.head_was_complete();
    bool sent = stream.end_request();
    --c.requests_left;
    ++c.served;
    c.head_started = false;
    answered = true;
    after_answer = true;
    if (!sent) break;           // the client does not take the answer: nothing more to serve
    if (!head_complete) break;  // a head cpp-httplib refused (it answered 400 or 414)
    if (stream.bad_framing() || !stream.body_complete()) {
      if (on_event_)
        on_event_(stream.bad_framing() ? GuardEvent::bad_framing : GuardEvent::incomplete_body);
      break;
    }
    if (!ok || connection_closed) break;
  }
  leave();
  if (answered) {
    // Drain what the client may still send, so that it reads the answer instead of a reset.
    ::shutdown(c.fd, SHUT_WR);
    c.draining = true;
    c.park_deadline = Clock::now() + kDrainTime;
    if (parker_->park(connection)) return nullptr;
  }
  close(std::move(connection));
  return nullptr;
}

void GuardedServer::park_or_close(std::unique_ptr<Connection> connection) {
  Connection& c = *connection;
  if (c.head_started) {
    c.park_deadline = c.head_deadline;  // a head under way, or a new connection's first one
  } else {
    c.park_deadline = Clock::now() + limits_.keep_alive_timeout;
    if (!c.buffered()) {
      c.buffer = {};  // an idle connection keeps no buffer
      c.begin = c.end = 0;
    }
  }
  if (!parker_->park(connection)) close(std::move(connection));
}

void GuardedServer::close(std::unique_ptr<Connection> connection) {
  if (!connection || connection->fd < 0) return;
  {
    std::lock_guard lock(mutex_);
    --open_;
    counted_.erase(connection->fd);
    if (!connection->key.empty()) {
      auto it = per_ip_.find(connection->key);
      if (it != per_ip_.end() && --it->second <= 0) per_ip_.erase(it);
    }
  }
  ::shutdown(connection->fd, SHUT_RDWR);
  ::close(connection->fd);
  connection->fd = -1;
}

void GuardedServer::shutdown_all() {
  {
    std::lock_guard lock(mutex_);
    pool_ = nullptr;
  }
  parker_->stop();
  std::lock_guard lock(mutex_);
  for (const auto& [fd, active] : active_) ::shutdown(fd, SHUT_RDWR);
}

// ---------------------------------------------------------------------------------------------

AuthThrottle::AuthThrottle(int per_minute, size_t max_clients)
    : per_minute_(per_minute), max_clients_(max_clients) {}

double AuthThrottle::refill(const Bucket& bucket, Clock::time_point now) const {
  double minutes = std::chrono::duration<double>(now - bucket.updated).count() / 60.0;
  return std::min(per_minute_, bucket.tokens + minutes * per_minute_);
}

std::optional<int> AuthThrottle::retry_after(const std::string& client_key,
                                             Clock::time_point now) const {
  if (per_minute_ <= 0) return std::nullopt;
  std::lock_guard lock(mutex_);
  auto it = buckets_.find(client_key);
  if (it == buckets_.end()) return std::nullopt;
  double tokens = refill(it->second, now);
  if (tokens >= 1.0) return std::nullopt;
  double seconds = (1.0 - tokens) * 60.0 / per_minute_;
  return std::max(1, static_cast<int>(seconds + 0.999));
}

void AuthThrottle::record_failure(const std::string& client_key, Clock::time_point now) {
  if (per_minute_ <= 0) return;
  std::lock_guard lock(mutex_);
  auto it = buckets_.find(client_key);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_clients_) make_room(now);
    it = buckets_.emplace(client_key, Bucket{per_minute_, now}).first;
  }
  it->second.tokens = std::max(0.0, refill(it->second, now) - 1.0);
  it->second.updated = now;
}

void AuthThrottle::make_room(Clock::time_point now) {
  // Full buckets carry no information: drop them all. If none is full, drop the stalest.
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    it = refill(it->second, now) >= per_minute_ ? buckets_.erase(it) : std::next(it);
  }
  if (buckets_.size() < max_clients_) return;
  auto stalest = std::min_element(
      buckets_.begin(), buckets_.end(),
      [](const auto& a, const auto& b) { return a.second.updated < b.second.updated; });
  buckets_.erase(stalest);
}

size_t AuthThrottle::size() const {
  std::lock_guard lock(mutex_);
  return buckets_.size();
}

}  // namespace omnigate

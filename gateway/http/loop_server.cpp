#include "gateway/http/loop_server.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>

#include "gateway/core/log.hpp"
#include "gateway/core/strings.hpp"

namespace omnigate {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr size_t kReadChunk = 16 * 1024;
// When accept runs out of descriptors, the listener rests this long instead of spinning.
constexpr milliseconds kAcceptPause{100};
constexpr Clock::time_point kNoDeadline = Clock::time_point::max();

bool safe_header_text(std::string_view text) {
  return text.find_first_of("\r\n", 0) == std::string_view::npos &&
         text.find('\0') == std::string_view::npos;
}

// The JSON error body of ARCHITECTURE for the answers the front gives itself.
std::string error_body(std::string_view code, std::string_view message) {
  std::string body = R"({"error":{"code":")";
  body.append(code).append(R"(","message":")");
  for (char c : message) {
    if (c == '"' || c == '\\') body.push_back('\\');
    body.push_back(c);  // our own fixed texts: ASCII without control bytes
  }
  body.append("\"}}");
  return body;
}

Reply front_error(int status, std::string_view code, std::string_view message) {
  Reply reply;
  reply.status = status;
  reply.body = error_body(code, message);
  return reply;
}

}  // namespace

struct LoopServer::Shared {
  Options options;
  Handler handler;
  mutable std::mutex mutex;
  std::unordered_map<std::string, int> per_ip;  // open connections per client key
  // The sockets of those connections not closed yet, whichever loop owns them, each with its
  // connection's `busy` flag (a request of it is handled or answered).
  struct Counted {
    int fd;
    const std::atomic<bool>* busy;
  };
  std::unordered_map<std::string, std::vector<Counted>> sockets;
  std::atomic<size_t> open{0};
  // Set when stop() begins: a streamed answer's producer that no loop took yet stops waiting.
  std::atomic<bool> stopped{false};

  void event(GuardEvent e) const {
    if (options.on_event) options.on_event(e);
  }
  // Counts a new connection; false when its client is at the cap (then not counted). A client
  // that opens a connection per request closes each right after its answer, and another loop
  // may not have read that FIN yet: connections whose client has hung up are not counted
  // against it (as the guarded server does) -- unless a request of theirs is still handled
  // or answered: a client that half-closes after each request must not pile up held
  // requests past the cap. Sockets are only polled here, under the lock that forget() takes
  // before a socket is closed, so no number is reused meanwhile.
  bool admit(const std::string& key, int fd, const std::atomic<bool>* busy) {
    if (key.empty()) return true;
    std::lock_guard lock(mutex);
    int& count = per_ip[key];
    if (count >= options.limits.max_connections_per_ip) {
      int gone = 0;
      for (const Counted& other : sockets[key]) {
        if (other.busy->load(std::memory_order_acquire)) continue;
        pollfd p{other.fd, POLLRDHUP, 0};
        if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) ++gone;
      }
      if (count - gone >= options.limits.max_connections_per_ip) {
        if (count == 0) per_ip.erase(key);
        return false;
      }
    }
    ++count;
    sockets[key].push_back({fd, busy});
    return true;
  }
  // Before its socket is closed (its count goes later, with its buffers: erase_later).
  void forget(const std::string& key, int fd) {
    if (key.empty()) return;
    std::lock_guard lock(mutex);
    auto it = sockets.find(key);
    if (it == sockets.end()) return;
    auto& fds = it->second;
    fds.erase(std::remove_if(fds.begin(), fds.end(), [fd](const Counted& c) { return c.fd == fd; }),
              fds.end());
    if (fds.empty()) sockets.erase(it);
  }
  void release(const std::string& key) {
    if (key.empty()) return;
    std::lock_guard lock(mutex);
    auto it = per_ip.find(key);
    if (it != per_ip.end() && --it->second <= 0) per_ip.erase(it);
  }
};

namespace {

struct Connection;

}  // namespace

// A streamed answer's body between the thread producing it (a media download on a worker)
// and the loop sending it. About kStreamWindow bytes wait here and as much in the connection's
// output (plus a piece), so a slow client slows the source instead of filling memory, and a
// client that leaves stops the source at its next piece.
struct StreamPipe {
  std::mutex mutex;
  std::condition_variable room;
  std::string pending;    // body bytes the loop has not taken yet
  bool finished = false;  // the producer is done: the body is complete
  bool failed = false;    // the producer failed: the answer is cut
  bool gone = false;      // the client left or the answer was dropped: the producer stops
  bool attached = false;  // a loop took the answer: from now its connection's close stops us

  void stop_producer() {
    {
      std::lock_guard lock(mutex);
      gone = true;
    }
    room.notify_all();
  }
};

constexpr size_t kStreamWindow = 256 * 1024;

// One loop's state: its EventLoop, listener and connections. Touched only on its loop thread,
// but for post() through the EventLoop.
struct Responder::LoopState {
  std::unique_ptr<EventLoop> loop;
  std::shared_ptr<LoopServer::Shared> shared;
  int listen_fd = -1;
  size_t index = 0;

  struct Listener final : EventLoop::Watcher {
    LoopState* state = nullptr;
    void on_events(uint32_t) override { state->accept_all(); }
  } listener;

  struct Conn final : EventLoop::Watcher {
    enum class Phase { head, body, handling, writing, draining, closed };

    LoopState* state = nullptr;
    uint64_t id = 0;
    int fd = -1;
    std::string peer_ip;
    int peer_port = 0;
    std::string key;  // per-IP cap key; "" when exempt
    Phase phase = Phase::head;
    // Bytes may wait in the socket: an edge came while the connection was not reading, or a
    // read filled the scratch buffer. Read them once the answer is out (edge-triggered epoll
    // does not report them again).
    bool unread = false;
    // EPOLLRDHUP seen: the client's FIN is behind the bytes, so a short read does not mean
    // the socket is drained (edge-triggered: no later event would report the end).
    bool fin_seen = false;
    bool uncounted = false;  // its per-IP slot and open count released (erase_later)
    // From dispatch until the answer is out: read by another loop's admission (Shared::admit).
    std::atomic<bool> busy{false};

    std::string in;            // bytes read, from the current request's start
    size_t skip = 0;           // leading empty lines skipped before the head
    size_t scanned = 0;        // of the head, searched for its end
    size_t lines = 0;          // line ends among them
    bool head_started = true;  // a new connection's head deadline runs from the accept
    size_t head_end = 0;       // offset in `in` just past the head
    RequestHead head;
    BodyFraming framing;
    uint64_t body_cap = 0;
    ChunkedFraming chunked;
    std::string chunked_body;
    size_t request_end = 0;  // offset in `in` just past the request's body
    bool keep_alive = true;
    bool close_after = false;
    bool is_head_method = false;
    bool http10 = false;
    const char* parsed_base = nullptr;  // in.data() when the head's views were taken
    int served = 0;

    bool in_dispatch = false;  // the handler is running on this stack
    bool answered = false;     // an answer arrived while in_dispatch (serialized in `out`)
    std::string out;
    size_t out_sent = 0;
    std::shared_ptr<StreamPipe> stream;  // a streamed answer still being produced
    std::shared_ptr<void> context;       // Options::on_head's, until the request is dispatched
    bool stream_chunked = false;         // its body goes out chunked (else until close: 1.0)

    Clock::time_point deadline = kNoDeadline;
    Clock::time_point timer_at = kNoDeadline;  // when the armed timer fires (max: none armed)

    void on_events(uint32_t events) override { state->on_events(*this, events); }
  };

  std::unordered_map<uint64_t, std::unique_ptr<Conn>> connections;
  // The time at the start of the current event (a read, an answer, a timer): every deadline
  // set while handling it counts from here, one clock read per event instead of one per
  // deadline. Handlers do not block, so it is never older than the event's own work.
  Clock::time_point tick = Clock::now();
  char scratch[kReadChunk];
  uint64_t next_id = 0;
  bool stopping = false;

  // ------------------------------------------------------------------------------------------
  // Edge-triggered, registered once: a request's phases change what is done with an event,
  // never the interest, so serving a request costs no epoll_ctl.
  static constexpr uint32_t kConnectionEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

  void arm(Conn& c, Clock::time_point when) {
    c.deadline = when;
    if (when == kNoDeadline || c.timer_at <= when) return;  // the armed timer comes first
    c.timer_at = when;
    uint64_t id = c.id;
    loop->run_at(when, [this, id, when] { on_timer(id, when); });
  }

  void on_timer(uint64_t id, Clock::time_point armed_for) {
    auto it = connections.find(id);
    if (it == connections.end()) return;
    Conn& c = *it->second;
    if (c.timer_at != armed_for) return;  // superseded by an earlier one
    c.timer_at = kNoDeadline;
    if (c.deadline == kNoDeadline) return;
    tick = Clock::now();
    if (tick < c.deadline) {
      arm(c, c.deadline);  // moved later since: wait again, one timer per connection
      return;
    }
    expire(c);
  }

  void expire(Conn& c) {
    using Phase = Conn::Phase;
    switch (c.phase) {
      case Phase::head:
        if (c.head_started) {
          shared->event(GuardEvent::header_timeout);
          answer_and_close(c, front_error(408, "bad_request",
                                          "the request head did not arrive within "
                                          "http.header_timeout"));
        } else {
          close(c);  // idle past http.keep_alive_timeout
        }
        return;
      case Phase::body:
        shared->event(GuardEvent::incomplete_body);
        // A body that ends early is refused as the guarded server refuses it: 400, nothing
        // processed (README, "The HTTP layer against hostile clients").
        answer_and_close(c, front_error(400, "bad_request",
                                        "the request body stalled for longer than "
                                        "http.read_timeout: nothing was processed"));
        return;
      case Phase::writing:
      case Phase::draining:
        close(c);
        return;
      case Phase::handling:
      case Phase::closed:
        return;
    }
  }

  // ------------------------------------------------------------------------------------------
  void accept_all() {
    tick = Clock::now();
    for (;;) {
      sockaddr_storage addr{};
      socklen_t len = sizeof addr;
      int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          log::warn("http", std::string("accept paused: ") + std::strerror(errno));
          loop->modify(listen_fd, 0, &listener);
          loop->run_at(Clock::now() + kAcceptPause, [this] {
            if (!stopping) loop->modify(listen_fd, EPOLLIN, &listener);
          });
        }
        return;  // EAGAIN: all taken
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto c = std::make_unique<Conn>();
      c->state = this;
      c->id = ++next_id;
      c->fd = fd;
      c->peer_ip = socket_address_ip(addr);
      c->peer_port = socket_address_port(addr);
      const auto& limits = shared->options.limits;
      if (!limits.exempt.trusts(c->peer_ip)) c->key = client_key(c->peer_ip);
      bool admitted = shared->admit(c->key, fd, &c->busy);
      if (!admitted) c->key.clear();  // not counted, so not to be uncounted
      shared->open.fetch_add(1, std::memory_order_relaxed);
      Conn& conn = *c;
      connections.emplace(conn.id, std::move(c));
      if (!loop->add(fd, kConnectionEvents, &conn)) {
        close(conn);
        continue;
      }
      if (!admitted) {
        shared->event(GuardEvent::per_ip_cap);
        Reply refused =
            front_error(429, "rate_limited", "too many open connections from this address");
        refused.headers.emplace_back("Retry-After", "1");
        answer_and_close(conn, std::move(refused));
        continue;
      }
      arm(conn, tick + limits.header_timeout);
    }
  }

  // ------------------------------------------------------------------------------------------
  void on_events(Conn& c, uint32_t events) {
    using Phase = Conn::Phase;
    tick = Clock::now();
    if (c.phase == Phase::closed) return;
    if (events & EPOLLERR) {
      close(c);
      return;
    }
    if (c.phase == Phase::handling || c.phase == Phase::writing) {
      // Pipelined bytes, or the client's FIN: left in the socket until the answer is out (a
      // half-closed client may still read it).
      if (events & (EPOLLIN | EPOLLRDHUP)) c.unread = true;
      if (events & EPOLLRDHUP) c.fin_seen = true;
      if (events & EPOLLHUP) {
        close(c);  // reset: nothing can reach the client
        return;
      }
      if (c.phase == Phase::writing && (events & EPOLLOUT)) {
        if (c.stream)
          pump(c);
        else if (write_some(c))
          resume(c);
      }
      return;
    }
    if (c.phase == Phase::draining) {
      drain(c);
      return;
    }
    if ((events & EPOLLOUT) && c.out_sent < c.out.size()) flush_interim(c);
    if (events & EPOLLRDHUP) c.fin_seen = true;
    read_some(c);
  }

  // Reads what the current phase wants and advances the request as far as the bytes go.
  void read_some(Conn& c) {
    for (;;) {
      if (c.phase != Conn::Phase::head && c.phase != Conn::Phase::body) {
        c.unread = true;  // the last read filled the scratch: there may be more
        return;
      }
      // Into the loop's scratch, then appended: a request of a kilobyte costs a copy of a
      // kilobyte, not the zeroing of a connection buffer's worth of spare room.
      ssize_t n = ::recv(c.fd, scratch, sizeof scratch, 0);
      if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n < 0 && errno == EINTR) continue;
        // EOF or a reset: inside a request it is incomplete, between requests it is the end.
        // A client that half-closed inside a body may still read why nothing was processed.
        if (c.phase == Conn::Phase::body) {
          shared->event(GuardEvent::incomplete_body);
          if (n == 0) {
            answer_and_close(c, front_error(400, "bad_request",
                                            "the body ended before its Content-Length or its "
                                            "last chunk: nothing was processed"));
            return;
          }
        }
        close(c);
        return;
      }
      c.in.append(scratch, static_cast<size_t>(n));
      advance(c);
      if (static_cast<size_t>(n) < sizeof scratch && !c.fin_seen) return;  // drained
    }
  }

  // After an answer: the next request from what is buffered, then from the socket if bytes
  // may wait there.
  void resume(Conn& c) {
    advance(c);
    if (c.unread && (c.phase == Conn::Phase::head || c.phase == Conn::Phase::body)) {
      c.unread = false;
      read_some(c);
    }
  }

  // Parses, dispatches and answers as many requests as the buffer holds (pipelining), without
  // recursion: an answer given inside the handler continues this loop.
  void advance(Conn& c) {
    using Phase = Conn::Phase;
    const auto& limits = shared->options.limits;
    for (;;) {
      if (c.phase == Phase::head) {
        // RFC 9112 §2.2: empty lines before a request line are ignored.
        while (c.scanned == 0 && c.skip < c.in.size() &&
               (c.in[c.skip] == '\r' || c.in[c.skip] == '\n'))
          ++c.skip;
        if (c.skip == c.in.size()) {
          if (c.skip > 0) {
            c.in.clear();
            c.skip = 0;
          }
          return;
        }
        if (!c.head_started) {
          c.head_started = true;
          arm(c, tick + limits.header_timeout);
        }
        std::string_view bytes(c.in.data() + c.skip, c.in.size() - c.skip);
        size_t end = find_head_end(bytes, c.scanned, c.lines);
        size_t line_cap = limits.max_headers + (end == std::string_view::npos ? 1 : 2);
        size_t head_bytes = end == std::string_view::npos ? bytes.size() : end;
        if (head_bytes > limits.max_header_bytes || c.lines > line_cap) {
          shared->event(GuardEvent::header_too_large);
          answer_and_close(c, front_error(431, "bad_request",
                                          "the request head has too many header lines or bytes "
                                          "(http.max_headers, http.max_header_bytes)"));
          return;
        }
        if (end == std::string_view::npos) return;  // wait for the rest of the head
        c.head_end = c.skip + end;
        if (!start_body(c)) return;
      }
      if (c.phase == Phase::body) {
        if (!read_body(c)) return;
        dispatch(c);
      }
      if (c.phase == Phase::handling) {
        if (!c.answered) return;  // the answer comes later, from any thread
        c.answered = false;
        if (!write_some(c)) return;
        continue;  // written: the next pipelined request, if any
      }
      return;
    }
  }

  // The head is complete: parse it and decide how its body is framed. False when answered.
  bool start_body(Conn& c) {
    std::string_view head(c.in.data() + c.skip, c.head_end - c.skip);
    HeadParse parsed = parse_request_head(head, c.head);
    if (parsed.status != 0) {
      answer_and_close(c, front_error(parsed.status, "bad_request", parsed.problem));
      return false;
    }
    // Before any answer, the front's own refusals included: a HEAD answer carries no body.
    c.is_head_method = c.head.method == "HEAD";
    c.http10 = c.head.minor_version == 0;
    std::vector<std::string_view> lengths, encodings;
    for (const auto& [name, value] : c.head.headers) {
      if (iequals(name, "Content-Length")) lengths.push_back(value);
      if (iequals(name, "Transfer-Encoding")) encodings.push_back(value);
    }
    c.framing = body_framing(lengths, encodings);
    if (c.http10 && !encodings.empty()) {
      // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing (a 1.0
      // proxy in front would not have read it as chunked).
      c.framing.kind = BodyFraming::Kind::refused;
      c.framing.problem = "Transfer-Encoding in an HTTP/1.0 request";
    }
    if (c.framing.kind == BodyFraming::Kind::refused) {
      shared->event(GuardEvent::bad_framing);
      answer_and_close(c, front_error(400, "bad_request", c.framing.problem));
      return false;
    }
    if (shared->options.on_head) c.context = shared->options.on_head(c.head);
    const auto& cap = shared->options.body_cap;
    c.body_cap = cap ? cap(c.head, c.context.get()) : 0;
    if (c.framing.kind == BodyFraming::Kind::length && c.framing.length > c.body_cap) {
      answer_and_close(c, too_large(c));
      return false;
    }
    c.parsed_base = c.in.data();
    c.phase = Conn::Phase::body;
    arm(c, tick + shared->options.limits.read_timeout);
    bool body_expected = c.framing.kind == BodyFraming::Kind::chunked ||
                         (c.framing.kind == BodyFraming::Kind::length && c.framing.length > 0);
    if (body_expected && c.head.expects_continue() && c.in.size() == c.head_end) {
      // The client waits for this before it sends the body (curl does for large POSTs).
      // Through `out`: what the socket does not take now is sent at EPOLLOUT, or ahead of
      // the answer, never half of it lost.
      c.out.assign("HTTP/1.1 100 Continue\r\n\r\n");
      c.out_sent = 0;
      flush_interim(c);
    }
    return true;
  }

  // Sends what is left of an interim answer while the body is read (no phase change).
  void flush_interim(Conn& c) {
    while (c.out_sent < c.out.size()) {
      ssize_t n = ::send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return;  // EAGAIN: EPOLLOUT's edge resumes it; an error shows at the next read
      c.out_sent += static_cast<size_t>(n);
    }
    c.out.clear();
    c.out_sent = 0;
  }

  // Counted as the guarded server counts it: an answer before the body was read.
  Reply too_large(Conn& c) {
    shared->event(GuardEvent::incomplete_body);
    if (shared->options.too_large) {
      // A chunked body is refused while it is read: appending may have moved the head's bytes.
      if (c.phase == Conn::Phase::body && c.in.data() != c.parsed_base) {
        rebase(c.head, c.parsed_base, c.in.data());
        c.parsed_base = c.in.data();
      }
      return shared->options.too_large(c.head, c.body_cap);
    }
    std::string message = "the body is larger than the ";
    message.append(std::to_string(c.body_cap)).append(" bytes allowed here");
    return front_error(413, "payload_too_large", message);
  }

  // True when the body is complete (request_end set); false when more bytes are needed or the
  // request was answered.
  bool read_body(Conn& c) {
    const size_t have = c.in.size() - c.head_end;
    switch (c.framing.kind) {
      case BodyFraming::Kind::none:
        c.request_end = c.head_end;
        return true;
      case BodyFraming::Kind::length:
        if (have < c.framing.length) {
          arm(c, tick + shared->options.limits.read_timeout);
          return false;
        }
        c.request_end = c.head_end + static_cast<size_t>(c.framing.length);
        return true;
      case BodyFraming::Kind::chunked: {
        ssize_t taken = c.chunked.feed(c.in.data() + c.head_end, have, &c.chunked_body);
        if (taken < 0) {
          shared->event(GuardEvent::bad_framing);
          answer_and_close(c, front_error(400, "bad_request", "the chunked body is malformed"));
          return false;
        }
        // The decoded chunks are in chunked_body: only the undecoded tail stays in `in`, so
        // tiny chunks cannot make the raw bytes many times the body's cap.
        c.in.erase(c.head_end, static_cast<size_t>(taken));
        if (c.chunked_body.size() > c.body_cap) {
          answer_and_close(c, too_large(c));
          return false;
        }
        if (!c.chunked.done()) {
          arm(c, tick + shared->options.limits.read_timeout);
          return false;
        }
        c.request_end = c.head_end;
        return true;
      }
      case BodyFraming::Kind::refused:
        return false;
    }
    return false;
  }

  void dispatch(Conn& c) {
    c.phase = Conn::Phase::handling;
    c.busy.store(true, std::memory_order_release);
    c.deadline = kNoDeadline;  // the handler's own deadline bounds it
    ++c.served;
    c.keep_alive = c.head.keep_alive() && c.served < shared->options.limits.keep_alive_max_requests;
    // The head's views were taken before the body was read; appending may have moved `in`.
    if (c.in.data() != c.parsed_base) rebase(c.head, c.parsed_base, c.in.data());
    FrontRequest request;
    request.head = std::move(c.head);
    request.body = c.framing.kind == BodyFraming::Kind::chunked
                       ? std::string_view(c.chunked_body)
                       : std::string_view(c.in.data() + c.head_end, c.request_end - c.head_end);
    request.peer_ip = c.peer_ip;
    request.peer_port = c.peer_port;
    request.received = tick;
    request.loop_index = index;
    request.context = std::move(c.context);
    c.in_dispatch = true;
    const uint64_t id = c.id;
    shared->handler(request, Responder(self.lock(), id));
    // The handler may have answered, and the connection may be gone (the answer's write
    // failed): look it up again.
    auto it = connections.find(id);
    if (it != connections.end()) {
      it->second->in_dispatch = false;
      c.head = std::move(request.head);  // keeps the header vector's capacity
      if (c.phase == Conn::Phase::closed) erase_later(c);
    }
  }

  static void rebase(RequestHead& head, const char* from, const char* to) {
    auto move = [from, to](std::string_view& view) {
      if (view.data() == nullptr) return;
      // Offsets as integers: `from` is freed memory, not to be compared as a pointer.
      auto offset = reinterpret_cast<uintptr_t>(view.data()) - reinterpret_cast<uintptr_t>(from);
      view = std::string_view(to + offset, view.size());
    };
    move(head.method);
    move(head.target);
    move(head.path);
    move(head.query);
    for (auto& [name, value] : head.headers) {
      move(name);
      move(value);
    }
  }

  // ------------------------------------------------------------------------------------------
  // The answer of the request being handled on connection `id` (loop thread).
  void deliver(uint64_t id, Reply reply) {
    tick = Clock::now();
    auto it = connections.find(id);
    if (it == connections.end()) return;
    Conn& c = *it->second;
    if (c.phase == Conn::Phase::closed) {
      erase_later(c);  // the client left while we worked: its buffers were kept for this
      return;
    }
    if (c.phase != Conn::Phase::handling || c.answered) return;  // a second answer: ignored
    if (!c.keep_alive) c.close_after = true;
    serialize(c, reply);
    if (c.in_dispatch) {
      c.answered = true;  // advance() writes it when the handler returns
      return;
    }
    if (write_some(c)) resume(c);
  }

  // The head of a streamed answer (Responder::answer); its body follows through the pipe.
  void deliver_stream(uint64_t id, Reply reply, std::shared_ptr<StreamPipe> pipe) {
    tick = Clock::now();
    auto it = connections.find(id);
    if (it == connections.end()) {
      pipe->stop_producer();
      return;
    }
    Conn& c = *it->second;
    if (c.phase == Conn::Phase::closed) {
      pipe->stop_producer();
      erase_later(c);
      return;
    }
    if (c.phase != Conn::Phase::handling || c.answered) {
      pipe->stop_producer();
      return;
    }
    if (!c.keep_alive) c.close_after = true;
    serialize(c, reply, true);
    const bool no_body =
        c.is_head_method || reply.status < 200 || reply.status == 204 || reply.status == 304;
    if (no_body) {
      pipe->stop_producer();  // a HEAD answer: the head is all that is sent
    } else {
      {
        std::lock_guard lock(pipe->mutex);
        pipe->attached = true;
      }
      c.stream = std::move(pipe);
      c.stream_chunked = !c.http10;
    }
    c.phase = Conn::Phase::writing;
    if (write_some(c)) resume(c);
  }

  void pump_posted(uint64_t id) {
    tick = Clock::now();
    auto it = connections.find(id);
    if (it != connections.end() && it->second->stream) pump(*it->second);
  }

  // Moves what the producer has into `out` while the client keeps up, sends it, and ends the
  // answer once the body is complete. Runs at the producer's post and at EPOLLOUT.
  void pump(Conn& c) {
    for (;;) {
      if (c.phase != Conn::Phase::writing || !c.stream) return;
      bool took = false;
      const bool room = c.out.size() - c.out_sent < kStreamWindow;
      if (room) {
        std::string chunk;
        bool finished = false, failed = false;
        {
          std::lock_guard lock(c.stream->mutex);
          chunk.swap(c.stream->pending);
          finished = c.stream->finished;
          failed = c.stream->failed;
        }
        c.stream->room.notify_all();
        if (failed) {
          // The source broke off: the body is cut, which the client sees (no last chunk, or
          // fewer bytes than a 1.0 client was promised by nothing): the connection closes.
          close(c);
          return;
        }
        took = !chunk.empty() || finished;
        if (!chunk.empty()) {
          if (c.stream_chunked) {
            char size[20];
            int n = std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
            c.out.append(size, static_cast<size_t>(n)).append(chunk).append("\r\n");
          } else {
            c.out.append(chunk);
          }
        }
        if (finished) {
          if (c.stream_chunked) c.out.append("0\r\n\r\n");
          c.stream.reset();
        }
      }
      if (!send_out(c)) return;  // EPOLLOUT continues it, or the connection closed
      if (!c.stream) {
        if (finish_answer(c)) resume(c);
        return;
      }
      // All sent. Nothing new was there: the producer's next piece posts a pump. (When the
      // output was too full to look, look now: the producer may be waiting for room.)
      if (room && !took) {
        c.deadline = kNoDeadline;  // waiting for the producer: its own timeouts bound it
        return;
      }
    }
  }

  // `streamed`: the body follows in pieces (pump), chunked -- or, to an HTTP/1.0 client,
  // until the connection closes.
  void serialize(Conn& c, const Reply& reply, bool streamed = false) {
    std::string_view body = reply.body;
    if (streamed && c.http10) c.close_after = true;
    const bool no_body = reply.status < 200 || reply.status == 204 || reply.status == 304;
    std::string& out = c.out;
    out.erase(0, c.out_sent);  // what is left of an interim answer goes first
    c.out_sent = 0;
    out.append("HTTP/1.1 ").append(std::to_string(reply.status)).append(" ");
    out.append(status_reason(reply.status)).append("\r\n");
    bool has_retry_after = false;
    for (const auto& [name, value] : reply.headers) {
      if (!safe_header_text(name) || !safe_header_text(value) || name.empty()) {
        log::warn("http", "a header with CR, LF or NUL was dropped from an answer");
        continue;
      }
      if (iequals(name, "Connection") && iequals(value, "close")) {
        c.close_after = true;
        continue;
      }
      if (iequals(name, "Connection") || iequals(name, "Content-Length")) continue;
      has_retry_after = has_retry_after || iequals(name, "Retry-After");
      out.append(name).append(": ").append(value).append("\r\n");
    }
    if ((reply.status == 429 || reply.status == 503) && !has_retry_after) {
      out.append("Retry-After: ")
          .append(std::to_string(shared->options.retry_after.count()))
          .append("\r\n");
    }
    if (!no_body && !reply.content_type.empty() && safe_header_text(reply.content_type))
      out.append("Content-Type: ").append(reply.content_type).append("\r\n");
    if (c.close_after) {
      out.append("Connection: close\r\n");
    } else if (c.http10) {
      out.append("Connection: keep-alive\r\n");  // HTTP/1.0 closes unless told otherwise
    }
    if (streamed) {
      if (!no_body && !c.http10) out.append("Transfer-Encoding: chunked\r\n");
    } else if (!no_body) {
      out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
    }
    out.append("\r\n");
    if (!no_body && !c.is_head_method) out.append(body);
  }

  // An answer the front gives itself, after which the connection closes.
  void answer_and_close(Conn& c, Reply reply) {
    c.close_after = true;
    c.phase = Conn::Phase::writing;
    serialize(c, reply);
    write_some(c);
  }

  // Sends what `out` holds. True when all of it is sent and the connection is ready for its
  // next request (phase head); false when it waits for room, drains or closed.
  bool write_some(Conn& c) {
    if (!send_out(c)) return false;
    if (c.stream) {
      pump(c);  // the rest of a streamed body: pump() finishes the answer when it is done
      return false;
    }
    return finish_answer(c);
  }

  // Sends what `out` holds: true when all of it is sent; false when it waits for room
  // (EPOLLOUT) or the connection closed.
  bool send_out(Conn& c) {
    while (c.out_sent < c.out.size()) {
      ssize_t n = ::send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          c.phase = Conn::Phase::writing;  // EPOLLOUT's edge resumes it
          arm(c, tick + shared->options.limits.write_timeout);
          return false;
        }
        close(c);  // the client is gone
        return false;
      }
      c.out_sent += static_cast<size_t>(n);
      if (c.out_sent < c.out.size()) arm(c, tick + shared->options.limits.write_timeout);
    }
    c.out.clear();
    c.out_sent = 0;
    return true;
  }

  // The answer is out: the connection closes (drains) or reads its next request (true).
  bool finish_answer(Conn& c) {
    if (c.close_after) {
      ::shutdown(c.fd, SHUT_WR);
      c.phase = Conn::Phase::draining;
      c.in.clear();
      c.in.shrink_to_fit();
      arm(c, tick + shared->options.linger);
      drain(c);  // what came meanwhile (no edge will report it again)
      return false;
    }
    next_request(c);
    return true;
  }

  // The answer is out: drop the request's bytes, keep what was pipelined after it.
  void next_request(Conn& c) {
    c.busy.store(false, std::memory_order_release);
    c.in.erase(0, c.request_end);
    c.skip = c.scanned = c.lines = 0;
    c.head_end = c.request_end = 0;
    c.chunked = ChunkedFraming();
    c.chunked_body.clear();
    c.is_head_method = false;
    c.http10 = false;
    c.head_started = false;
    c.phase = Conn::Phase::head;
    if (c.in.empty() && c.in.capacity() > 4 * kReadChunk) c.in.shrink_to_fit();
    arm(c, tick + shared->options.limits.keep_alive_timeout);
  }

  void drain(Conn& c) {
    char sink[4096];
    for (;;) {
      ssize_t n = ::recv(c.fd, sink, sizeof sink, 0);
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      close(c);  // the client has read the answer and closed too
      return;
    }
  }

  void close(Conn& c) {
    if (c.phase == Conn::Phase::closed) return;
    const bool awaiting_answer = c.phase == Conn::Phase::handling && !c.answered;
    c.phase = Conn::Phase::closed;
    c.context.reset();  // a request whose body never completed lets go of its route at once
    if (c.stream) {
      c.stream->stop_producer();
      c.stream.reset();
    }
    c.deadline = kNoDeadline;
    if (c.fd >= 0) {
      loop->remove(c.fd);
      shared->forget(c.key, c.fd);
      ::close(c.fd);
      c.fd = -1;
    }
    // A request still handled elsewhere keeps its buffers (its views) until the answer.
    // At stop too: the Responder keeps this loop's state, and so these buffers, alive.
    if (!awaiting_answer) erase_later(c);
  }

  // After the events of this round: a later event of the same batch may still name it.
  // Its place in the per-IP cap and the open count go with it, not with its socket: a client
  // that resets its connections while their requests are handled still holds their slots (and
  // the buffers they keep), so it cannot pile up held requests past the cap.
  void erase_later(Conn& c) {
    uint64_t id = c.id;
    if (c.in_dispatch) return;  // dispatch() looks it up after the handler; erased then
    if (!c.uncounted) {
      c.uncounted = true;
      shared->release(c.key);
      shared->open.fetch_sub(1, std::memory_order_relaxed);
    }
    loop->after_dispatch([this, id] { connections.erase(id); });
  }

  void close_all() {
    stopping = true;
    if (listen_fd >= 0) {
      loop->remove(listen_fd);
      ::close(listen_fd);
      listen_fd = -1;
    }
    std::vector<Conn*> all;
    for (auto& [id, c] : connections) all.push_back(c.get());
    for (Conn* c : all) close(*c);
  }

  std::weak_ptr<LoopState> self;
};

// ---------------------------------------------------------------------------------------------

Responder::Responder(std::shared_ptr<LoopState> state, uint64_t connection)
    : state_(std::move(state)), connection_(connection) {}

Responder::Responder(Responder&& other) noexcept
    : state_(std::move(other.state_)), connection_(other.connection_) {}

Responder& Responder::operator=(Responder&& other) noexcept {
  if (this != &other) {
    if (state_) answer(front_error(500, "internal", "the request was not answered"));
    state_ = std::move(other.state_);
    connection_ = other.connection_;
  }
  return *this;
}

Responder::~Responder() {
  if (state_) answer(front_error(500, "internal", "the request was not answered"));
}

EventLoop& Responder::loop() const {
  return *state_->loop;
}

void Responder::answer(Reply reply) {
  if (!state_) return;
  std::shared_ptr<LoopState> state = std::move(state_);
  state_.reset();
  if (reply.stream && state->loop->on_loop_thread()) {
    // A body produced while it is sent waits on its source: it would stall every connection
    // the loop owns.
    log::warn("http", "a streamed answer was given on the loop thread: refused");
    reply = front_error(500, "internal", "a streamed answer cannot be given on the loop");
  }
  if (reply.stream) {
    // The body is produced here, on the answering thread (the media proxy's worker), and
    // handed to the loop through a bounded pipe: the head goes first, then each piece as the
    // client takes it. A producer that fails cuts the answer.
    auto producer = std::move(reply.stream);
    reply.stream = nullptr;
    auto pipe = std::make_shared<StreamPipe>();
    LoopState* raw = state.get();
    const uint64_t id = connection_;
    EventLoop& loop = *state->loop;
    auto wake_loop = [&loop, raw, id] { loop.post([raw, id] { raw->pump_posted(id); }); };
    loop.post([raw, id, reply = std::move(reply), pipe]() mutable {
      raw->deliver_stream(id, std::move(reply), std::move(pipe));
    });
    const LoopServer::Shared& shared = *state->shared;
    const bool ok = producer([&pipe, &wake_loop, &shared](std::string_view piece) {
      if (piece.empty()) return true;
      std::unique_lock lock(pipe->mutex);
      // Once a loop has the answer, its connection's close (the client left, a write timeout,
      // the server stopping) stops us. Before that, a server that stops may never run the
      // task that would hand it over: then we stop rather than wait forever.
      while (!pipe->gone && pipe->pending.size() >= kStreamWindow) {
        pipe->room.wait_for(lock, std::chrono::milliseconds(100));
        if (!pipe->attached && shared.stopped.load()) pipe->gone = true;
      }
      if (pipe->gone) return false;
      const bool was_empty = pipe->pending.empty();
      pipe->pending.append(piece);
      lock.unlock();
      if (was_empty) wake_loop();
      return true;
    });
    {
      std::lock_guard lock(pipe->mutex);
      (ok ? pipe->finished : pipe->failed) = true;
    }
    wake_loop();
    return;
  }
  if (state->loop->on_loop_thread()) {
    state->deliver(connection_, std::move(reply));
    return;
  }
  // Tasks run only while the loop runs, and the server keeps the state while it does.
  LoopState* raw = state.get();
  uint64_t id = connection_;
  state->loop->post(
      [raw, id, reply = std::move(reply)]() mutable { raw->deliver(id, std::move(reply)); });
}

// ---------------------------------------------------------------------------------------------

namespace {

// A listening socket on host:port with SO_REUSEPORT, so each loop accepts its own share.
Result<int> listen_on(const std::string& host, int port, int backlog) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0) {
    return make_error(ErrorCode::internal, "http",
                      "cannot resolve listen address " + host + ": " + gai_strerror(rc));
  }
  std::string last_error = "no address";
  for (addrinfo* a = found; a; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, backlog) == 0) {
      ::freeaddrinfo(found);
      return fd;
    }
    last_error = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(found);
  std::string message = "cannot listen on ";
  message.append(host).append(":").append(service).append(": ").append(last_error);
  return make_error(ErrorCode::internal, "http", message);
}

int bound_port(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  return socket_address_port(addr);
}

}  // namespace

Result<std::unique_ptr<LoopServer>> LoopServer::start(const std::string& host, int port,
                                                      Options options, Handler handler) {
  std::unique_ptr<LoopServer> server(new LoopServer());
  size_t count = options.loops ? options.loops : std::max(1u, std::thread::hardware_concurrency());
  server->shared_ = std::make_shared<Shared>();
  server->shared_->options = std::move(options);
  server->shared_->handler = std::move(handler);
  for (size_t i = 0; i < count; ++i) {
    auto state = std::make_shared<Responder::LoopState>();
    state->self = state;
    state->index = i;
    state->shared = server->shared_;
    auto loop = EventLoop::create();
    if (!loop) return loop.error();
    state->loop = std::move(*loop);
    // The first listener picks the port (0: any free one); the others share it.
    auto fd =
        listen_on(host, i == 0 ? port : server->port_, server->shared_->options.listen_backlog);
    if (!fd) return fd.error();
    state->listen_fd = *fd;
    if (i == 0) server->port_ = bound_port(*fd);
    state->listener.state = state.get();
    if (!state->loop->add(state->listen_fd, EPOLLIN, &state->listener)) {
      ::close(state->listen_fd);
      return make_error(ErrorCode::internal, "http",
                        std::string("cannot watch the listener: ") + std::strerror(errno));
    }
    server->loops_.push_back(std::move(state));
  }
  for (auto& state : server->loops_) {
    server->threads_.emplace_back([loop = state->loop.get()] { loop->run(); });
  }
  return server;
}

LoopServer::~LoopServer() {
  stop();
}

EventLoop& LoopServer::loop(size_t index) const {
  return *loops_.at(index)->loop;
}

size_t LoopServer::open_connections() const {
  return shared_ ? shared_->open.load(std::memory_order_relaxed) : 0;
}

void LoopServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  shared_->stopped.store(true);
  for (auto& state : loops_) {
    Responder::LoopState* raw = state.get();
    if (threads_.empty()) {
      raw->close_all();
      continue;
    }
    raw->loop->post([raw] { raw->close_all(); });
    raw->loop->stop();
  }
  for (auto& thread : threads_) thread.join();
  threads_.clear();
}

}  // namespace omnigate

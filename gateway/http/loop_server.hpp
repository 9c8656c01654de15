// The event-loop HTTP front (bench/README.md, "The epoll front probe", step 1, its HTTP half):
// one EventLoop per core, each with its own SO_REUSEPORT listener, owning its connections from
// accept to close. No thread is held by a connection, idle or slow; a request's answer may come
// later and from any thread (the loop's publisher answers a webhook from its PubAck, a worker
// pool answers the synchronous routes), and is written by the loop that owns the connection.
//
// The guard's limits hold here as they do on the guarded cpp-httplib server (http_guard.hpp),
// over the same HttpGuardLimits and GuardEvent labels:
// - a head within http.header_timeout (from the accept, or from its first byte on a kept-alive
//   connection), http.max_headers lines and http.max_header_bytes (else 431, closed);
// - a body framed by exactly one Content-Length or by chunked (framing.hpp; else 400, closed),
//   no larger than the route's cap (Options::body_cap; else 413, closed), each read within
//   http.read_timeout of the last, and not cut by the client's half-close (else 400, closed);
// - an answer written within http.write_timeout of its last progress (else closed);
// - an idle connection closed after http.keep_alive_timeout, any connection after
//   http.keep_alive_max_requests answers;
// - at most http.max_connections_per_ip open per client address (IPv6 per /64; trusted proxies
//   exempt), shared by all loops: over it, 429 and closed.
// An answer that leaves a connection closing carries `Connection: close`; the connection is
// then half-closed and what the client still sends is read and dropped for a while (a lingering
// close), so the client reads the answer rather than a reset and an unread body is never
// parsed as a request (CWE-444).
//
// Pipelined requests are served one at a time, in order: while a request is being handled its
// connection reads nothing more, so a client cannot make it buffer without bound. A connection
// the client resets meanwhile keeps its per-IP slot (and its buffers) until the answer.
// Connections are edge-triggered and registered once: serving a request costs no epoll_ctl.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "gateway/core/error.hpp"
#include "gateway/http/framing.hpp"
#include "gateway/http/request.hpp"
#include "gateway/loop/event_loop.hpp"

namespace omnigate {

// A request as the front read it. Every view points into its connection's buffers and stays
// valid until the request is answered (the connection reads nothing more until then, and a
// connection the client closed meanwhile keeps its buffers until the answer comes).
struct FrontRequest {
  RequestHead head;
  std::string_view body;  // decoded when chunked
  std::string_view peer_ip;
  int peer_port = 0;
  // What Options::on_head returned for this request's head (null without the hook).
  std::shared_ptr<void> context;
  std::chrono::steady_clock::time_point received;  // when its body was complete
  // Which of the server's loops serves it (0 .. loops-1): per-loop state such as the loop's
  // publisher is picked by it, with no lock.
  size_t loop_index = 0;
};

class LoopServer;

// The one answer to a request: answer() from any thread, once. A Responder dropped without an
// answer answers 500, so a request never hangs on a forgotten path. The answer to a connection
// that has closed meanwhile is dropped (the work it stands for is not undone).
class Responder {
 public:
  Responder() = default;  // answers nothing: a placeholder to move an answer into
  Responder(Responder&& other) noexcept;
  Responder& operator=(Responder&& other) noexcept;
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;
  ~Responder();

  // A streamed reply (Reply::stream, the media proxy) is produced on the calling thread, which
  // this blocks until the body is sent, the client leaves or the server stops: the body goes
  // out chunked through a bounded window (a slow client slows the producer). Given on the loop
  // thread it is refused (500): it would stall the loop.
  void answer(Reply reply);
  // The loop the request's connection lives on: its publisher answers on this loop.
  EventLoop& loop() const;
  explicit operator bool() const { return state_ != nullptr; }

  struct LoopState;  // defined in loop_server.cpp

 private:
  friend class LoopServer;
  Responder(std::shared_ptr<LoopState> state, uint64_t connection);
  std::shared_ptr<LoopState> state_;
  uint64_t connection_ = 0;
};

class LoopServer {
 public:
  using EventSink = std::function<void(GuardEvent)>;
  // Called on the connection's loop thread, with the request's body complete. It must not
  // block: answer at once, or hand the Responder to whatever answers later. The FrontRequest
  // object lives for the call (its views until the answer): move it along to use it later.
  using Handler = std::function<void(FrontRequest& request, Responder responder)>;

  struct Options {
    HttpGuardLimits limits;          // `threads` is not used: see `loops`
    size_t loops = 0;                // 0: one per core
    int listen_backlog = SOMAXCONN;  // per loop's listener (SO_REUSEPORT: one each)
    // The largest body a request may have, decided from its head (the route's max_body) and
    // what on_head made of it (null without on_head); 0 refuses every body.
    std::function<uint64_t(const RequestHead& head, const void* context)> body_cap;
    // Called on the loop when a head is parsed, before its body is read: what the owner
    // decides then (its route, a pin of the accounts the route serves) travels with the
    // request as FrontRequest::context, and is dropped if the body never completes.
    std::function<std::shared_ptr<void>(const RequestHead& head)> on_head;
    // The 413 for a body over its cap, worded by whoever owns the route (a web form answers in
    // the visitor's language, with CORS headers); unset: the front's own JSON error.
    std::function<Reply(const RequestHead& head, uint64_t cap)> too_large;
    // What a 429 or 503 without its own Retry-After says (http.retry_after).
    std::chrono::seconds retry_after{1};
    // How long a closing connection's late bytes are read and dropped (see above); the guarded
    // server lingers as long.
    std::chrono::milliseconds linger{2'000};
    EventSink on_event;
  };

  // Listens on host:port (0: a free port, the same for every loop) and starts the loops.
  // Errors: internal (the address cannot be bound, no epoll set).
  static Result<std::unique_ptr<LoopServer>> start(const std::string& host, int port,
                                                   Options options, Handler handler);
  ~LoopServer();
  LoopServer(const LoopServer&) = delete;
  LoopServer& operator=(const LoopServer&) = delete;

  int port() const { return port_; }
  size_t loop_count() const { return loops_.size(); }
  // The loop of that index, to start what lives on it (its publisher) while it runs.
  EventLoop& loop(size_t index) const;
  // Open connections right now, on every loop.
  size_t open_connections() const;
  // Closes the listeners and every connection, stops and joins the loops. A request still
  // being handled keeps its connection's buffers, so its views stay valid until its Responder
  // answers or is dropped; answers that come later are dropped, and streamed ones stop.
  void stop();

  struct Shared;  // the per-IP count and the options, shared by the loops

 private:
  LoopServer() = default;
  std::shared_ptr<Shared> shared_;
  std::vector<std::shared_ptr<Responder::LoopState>> loops_;
  std::vector<std::thread> threads_;
  int port_ = 0;
  bool stopped_ = false;
};

}  // namespace omnigate

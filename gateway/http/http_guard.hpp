// The HTTP connection layer under cpp-httplib: what the library's own connection loop does not
// do, done in the one place it lets a subclass take over (Server::process_and_close_socket).
//
// - Framing: every request is read through a framing-aware stream. Its head must arrive within
//   http.header_timeout and within http.max_headers lines / http.max_header_bytes; its body is
//   exactly its Content-Length, or a chunked body checked chunk by chunk, and never a byte more.
//   A response sent before the whole body was read (413 from the pre-routing handler, a refused
//   framing, a failed read) carries `Connection: close` and the connection is closed, so an
//   unread body can never be parsed as the next request (CWE-444).
// - Pipelining: one stream and one buffer per connection, kept across requests, so bytes of a
//   pipelined request read together with the previous one are served, not dropped.
// - Idle connections hold no thread: between requests (and before the first) a connection is
//   parked in an epoll set and handed back to the pool when bytes arrive; a parked connection is
//   closed after http.keep_alive_timeout (http.header_timeout before its first request).
// - At most http.max_connections_per_ip open connections per client address (IPv6 per /64);
//   trusted proxies are exempt (they multiplex many clients and do their own limiting).
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "gateway/http/client_ip.hpp"
#include "gateway/http/framing.hpp"

namespace omnigate {

// The framing of the request being served on the calling thread (handlers run on the thread
// that reads their request). nullptr outside a request.
class RequestFraming {
 public:
  static RequestFraming* current();
  // Why the request's framing is refused ("" when it is acceptable): two Content-Length
  // headers, a non-numeric one, a Transfer-Encoding other than chunked, both at once.
  virtual std::string framing_problem() const = 0;
  // Whether every byte the framing declares has been read (and a chunked body ended properly).
  virtual bool body_complete() const = 0;

 protected:
  ~RequestFraming() = default;
};

class GuardedServer : public httplib::Server {
 public:
  using EventSink = std::function<void(GuardEvent)>;
  GuardedServer(HttpGuardLimits limits, EventSink on_event);
  ~GuardedServer() override;

  // Open connections right now (parked and active), for tests and diagnostics.
  size_t open_connections() const;

  struct Connection;  // defined in http_guard.cpp

 private:
  class Parker;
  class Pool;
  class ConnStream;

  bool process_and_close_socket(socket_t sock) override;
  // Serves requests on a connection until it must close (returns nullptr) or goes idle (returns
  // it, to be parked).
  std::unique_ptr<Connection> serve(std::unique_ptr<Connection> connection);
  void resume(std::unique_ptr<Connection> connection);
  // From the parking set's thread: bytes arrived, a pool thread serves the connection.
  void resume_later(std::unique_ptr<Connection> connection);
  void park_or_close(std::unique_ptr<Connection> connection);
  void close(std::unique_ptr<Connection> connection);
  void shutdown_all();

  HttpGuardLimits limits_;
  EventSink on_event_;
  std::unique_ptr<Parker> parker_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, int> per_ip_;  // open connections per client key
  std::unordered_map<int, std::string> active_;  // fds served by a pool thread now -> client key
  // Every connection counted in per_ip_, parked, queued, served or on its way to close:
  // fd -> client key, until close() uncounts it.
  std::unordered_map<int, std::string> counted_;
  size_t open_ = 0;
  Pool* pool_ = nullptr;  // the server's task queue, while it runs (guarded by mutex_)
};

// Failed authentications (401/403) per client, past `per_minute` answered 429 before the
// handler runs. A token bucket per client key (IPv6 per /64); the table holds at most
// `max_clients` entries, full buckets are dropped first, then the stalest.
class AuthThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  AuthThrottle(int per_minute, size_t max_clients = 16384);
  // Seconds to wait when this client is over its rate; nullopt when it may proceed.
  std::optional<int> retry_after(const std::string& client_key, Clock::time_point now) const;
  void record_failure(const std::string& client_key, Clock::time_point now);
  size_t size() const;

 private:
  struct Bucket {
    double tokens;
    Clock::time_point updated;
  };
  double refill(const Bucket& bucket, Clock::time_point now) const;
  void make_room(Clock::time_point now);

  double per_minute_;
  size_t max_clients_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace omnigate

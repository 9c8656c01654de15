// The probe of bench/README.md "Issue 14: the next step": what the Telegram webhook costs when
// the request path is an epoll loop that answers from the PubAck, with no thread per
// connection and no request thread parked on a future. Bench-only: it is not the gateway and
// never becomes it (no guard limits, no spool, no other routes); it sizes the rewrite before
// the rewrite is made.
//
// What runs per request is the gateway's own code where the gateway has code: the secret check
// (verify::secret), telegram::parse_update, enrich, enforce_schema, the SeenIndex lookup,
// subject_for, serialize, the counters of /metrics; then js_PublishMsgAsync with the same
// headers and Nats-Msg-Id, the id inserted into the SeenIndex on the PubAck, which also
// follows the stream (the long-horizon dedup, as in the gateway). The answer `200 {"ok":true}`
// is written only after the PubAck, from the loop that owns the connection: the ack handler
// (nats.c's delivery thread) queues the completion and wakes that loop through an eventfd only
// when its queue was empty, so a burst of acks costs one wake.
//
// It speaks just enough HTTP/1.1 for wrk and curl: Content-Length bodies, keep-alive,
// pipelined requests answered in order. GET /readyz and GET /metrics are there so bench/ab.sh
// can run it as it runs omnigate:
//
//   bench/ab.sh build/epoll_probe                 # PROBE_LOOPS=1 for one loop
//
// Environment (ab.sh exports the first three): OMNIGATE_BENCH_PORT, OMNIGATE_BENCH_NATS,
// OMNIGATE_BENCH_TG_SECRET. The variants, all off by default:
//   PROBE_LOOPS=N            loops (default 2, one per core, SO_REUSEPORT)
//   PROBE_DEDUP_HORIZON_S=S  the follower's horizon (default 7 days; 0 turns it off)
//   PROBE_SEND_ASAP=1        nats.c's SendAsap on the shared connection
//   PROBE_NO_PUBLISH=1       everything but the publish, answered at once (no ack path)
//   PROBE_INLINE_FREE=1      our messages freed on our thread, not by nats.c's collector
//   PROBE_NATS_LOOP=1        each loop owns a NATS connection on nats.c's external event-loop
//                            adapter and reads its PubAcks itself (no nats.c thread between a
//                            request and its answer); with it:
//     PROBE_LOOP_SEND_ASAP=1 SendAsap on the loops' connections
//     PROBE_FOLLOW_ON_LOOP=1 the dedup follower read on loop 0
// POST /v1/noop answers 202 at once: the loop's floor with the same bytes.
#include <arpa/inet.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "connectors/telegram/telegram_parse.hpp"
#include "gateway/config/config.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/core/strings.hpp"
#include "gateway/http/verify.hpp"
#include "gateway/model/interaction.hpp"
#include "gateway/model/schema_guard.hpp"
#include "gateway/nats/seen_index.hpp"
#include "gateway/pipeline/pipeline.hpp"

namespace {

using namespace omnigate;

constexpr size_t kMaxHead = 32 * 1024;
constexpr size_t kMaxBody = 1024 * 1024;
constexpr const char* kStream = "OMNIGATE_INTERACTIONS";

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

class Loop;

// One publish in flight: whose answer it completes.
struct Pending {
  Loop* loop;
  int fd;
  uint64_t generation;  // the connection's, so an ack for a closed fd reused since is dropped
  std::string id;
};

struct Completion {
  int fd;
  uint64_t generation;
  bool ok;
};

struct Connection {
  int fd = -1;
  uint64_t generation = 0;
  std::string in;  // bytes read and not yet consumed
  std::string out;
  size_t out_sent = 0;
  int waiting = 0;  // publishes of the current request still unacknowledged
  bool failed = false;
  bool close_after = false;
  bool want_out = false;  // registered for EPOLLOUT: a response did not fit the socket buffer
};

struct Shared {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  SeenIndex* seen = nullptr;
  Metrics metrics;
  std::string secret;
  telegram::BotSettings bot;
  IdentityConfig identity;
  bool skip_publish = false;
  std::atomic<uint64_t> followed{0};  // messages the on-loop follower read
  // In-flight publishes by message, sharded as the gateway's Publisher shards its waiters.
  struct alignas(64) Shard {
    std::mutex mutex;
    std::unordered_map<natsMsg*, Pending> pending;
  };
  std::array<Shard, 16> shards;
  Shard& shard_of(natsMsg* msg) {
    return shards[(reinterpret_cast<uintptr_t>(msg) >> 6) % shards.size()];
  }
};

Shared* g_shared = nullptr;
bool g_inline_free = false;

// PROBE_INLINE_FREE=1: nats.c's natsMsg_Destroy hands every message to the library's one
// garbage-collector thread (a global mutex, and a wake-up of that thread whenever it sleeps);
// a message whose gc.freeCb is null is freed on the calling thread instead. natsGCItem
// {next, freeCb} is the first member of natsMsg in nats.c 3.x (src/gc.h, src/msg.h).
struct GcItem {
  void* next;
  void (*free_cb)(void*);
};
static_assert(NATS_VERSION_MAJOR == 3, "the natsMsg layout assumed here is nats.c 3.x's");
void destroy_msg(natsMsg* msg) {
  if (msg != nullptr && g_inline_free) reinterpret_cast<GcItem*>(msg)->free_cb = nullptr;
  natsMsg_Destroy(msg);
}
std::atomic<bool> g_stop{false};

class Loop {
 public:
  Loop(Shared& shared, int port) : shared_(shared) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    listen_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(listen_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listen_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(listen_, 1024) != 0) {
      std::perror("epoll_probe: bind/listen");
      std::exit(1);
    }
    add(listen_, EPOLLIN);
    add(wake_, EPOLLIN);
  }

  // From the ack handler's thread.
  void complete(Completion done) {
    bool was_empty;
    {
      std::lock_guard lock(queue_mutex_);
      was_empty = queue_.empty();
      queue_.push_back(done);
    }
    if (was_empty) {
      uint64_t one = 1;
      [[maybe_unused]] auto n = write(wake_, &one, sizeof one);
    }
  }

  void run() {
    std::array<epoll_event, 256> events;
    while (!g_stop.load(std::memory_order_relaxed)) {
      int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 200);
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == listen_) {
          accept_all();
        } else if (fd == nats_fd_) {
          if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
            natsConnection_ProcessReadEvent(nc_);
            drain_inbox();
            drain_follower();
          }
          if (events[i].events & EPOLLOUT) natsConnection_ProcessWriteEvent(nc_);
        } else if (fd == wake_) {
          drain_completions();
        } else {
          auto it = connections_.find(fd);
          if (it == connections_.end()) continue;
          Connection& c = *it->second;
          if (events[i].events & (EPOLLHUP | EPOLLERR)) {
            close_connection(c);
            continue;
          }
          if (events[i].events & EPOLLOUT) flush(c);
          if ((events[i].events & EPOLLIN) && connections_.count(fd)) on_readable(c);
        }
      }
    }
  }

 private:
  void add(int fd, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
  }

  void accept_all() {
    for (;;) {
      int fd = accept4(listen_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto c = std::make_unique<Connection>();
      c->fd = fd;
      c->generation = ++generations_;
      c->in.reserve(4096);
      add(fd, EPOLLIN);
      connections_[fd] = std::move(c);
    }
  }

  void close_connection(Connection& c) {
    epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    connections_.erase(c.fd);  // c is gone
  }

  void on_readable(Connection& c) {
    char buffer[16384];
    for (;;) {
      ssize_t n = read(c.fd, buffer, sizeof buffer);
      if (n > 0) {
        c.in.append(buffer, static_cast<size_t>(n));
        if (c.in.size() > kMaxHead + kMaxBody) break;  // serve what is there; the rest waits
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        if (c.waiting == 0)
          close_connection(c);
        else
          c.close_after = true;  // answer the request in flight, then close
        return;
      }
      if (errno == EAGAIN) break;
    }
    serve(c);
  }

  void drain_completions() {
    uint64_t count;
    [[maybe_unused]] auto r = read(wake_, &count, sizeof count);
    {
      std::lock_guard lock(queue_mutex_);
      batch_.swap(queue_);
    }
    for (const Completion& done : batch_) finish(done);
    batch_.clear();
  }

  void finish(const Completion& done) {
    auto it = connections_.find(done.fd);
    if (it == connections_.end() || it->second->generation != done.generation) return;
    Connection& c = *it->second;
    if (!done.ok) c.failed = true;
    if (--c.waiting > 0) return;
    if (c.failed) {
      respond(c, 503, R"({"error":{"code":"not_durable","message":"not acknowledged"}})");
    } else {
      respond(c, 200, R"({"ok":true})");
    }
    c.failed = false;
    if (c.close_after) {
      close_connection(c);
      return;
    }
    serve(c);  // a pipelined request may be waiting behind this one
  }

  void respond(Connection& c, int status, std::string_view body) {
    const char* reason = status == 200   ? "OK"
                         : status == 202 ? "Accepted"
                         : status == 400 ? "Bad Request"
                         : status == 401 ? "Unauthorized"
                         : status == 404 ? "Not Found"
                         : status == 413 ? "Payload Too Large"
                         : status == 431 ? "Request Header Fields Too Large"
                                         : "Service Unavailable";
    char head[160];
    int n = std::snprintf(
        head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
        status, reason, body.starts_with("{") ? "application/json" : "text/plain", body.size());
    c.out.append(head, static_cast<size_t>(n));
    c.out.append(body);
    shared_.metrics.http_requests.inc({"probe", std::to_string(status)});  // as the server counts
    flush(c);
  }

  void flush(Connection& c) {
    while (c.out_sent < c.out.size()) {
      ssize_t n = send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
      if (n > 0) {
        c.out_sent += static_cast<size_t>(n);
        continue;
      }
      if (errno == EAGAIN) {
        c.want_out = true;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT;
        ev.data.fd = c.fd;
        epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
        return;
      }
      c.close_after = true;
      return;
    }
    c.out.clear();
    c.out_sent = 0;
    if (c.want_out) {
      c.want_out = false;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = c.fd;
      epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
    }
  }

  // Serves the complete requests in c.in, in order, until one waits for its PubAck.
  void serve(Connection& c) {
    size_t consumed = 0;
    const int fd = c.fd;
    while (c.waiting == 0) {
      std::string_view buffered(c.in.data() + consumed, c.in.size() - consumed);
      size_t head_end = buffered.find("\r\n\r\n");
      if (head_end == std::string_view::npos) {
        if (buffered.size() > kMaxHead) {
          respond(c, 431, "request head too large");
          c.close_after = true;
        }
        break;
      }
      std::string_view head = buffered.substr(0, head_end);
      size_t line_end = head.find("\r\n");
      std::string_view request_line = head.substr(0, line_end);
      size_t sp1 = request_line.find(' ');
      size_t sp2 = request_line.rfind(' ');
      if (sp1 == std::string_view::npos || sp2 <= sp1) {
        respond(c, 400, "bad request line");
        c.close_after = true;
        break;
      }
      std::string_view method = request_line.substr(0, sp1);
      std::string_view path = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
      size_t content_length = 0;
      std::string_view secret;
      bool keep_alive = true;
      size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2;
      while (pos < head.size()) {
        size_t end = head.find("\r\n", pos);
        if (end == std::string_view::npos) end = head.size();
        std::string_view line = head.substr(pos, end - pos);
        pos = end + 2;
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        std::string_view name = line.substr(0, colon);
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
          value.remove_prefix(1);
        if (iequals(name, "content-length")) {
          content_length = std::strtoul(std::string(value).c_str(), nullptr, 10);
        } else if (iequals(name, "x-telegram-bot-api-secret-token")) {
          secret = value;
        } else if (iequals(name, "connection") && iequals(value, "close")) {
          keep_alive = false;
        }
      }
      if (content_length > kMaxBody) {
        respond(c, 413, "body too large");
        c.close_after = true;
        break;
      }
      const size_t total = head_end + 4 + content_length;
      if (buffered.size() < total) break;  // the body is still arriving
      std::string_view body = buffered.substr(head_end + 4, content_length);
      if (!keep_alive) c.close_after = true;
      handle(c, method, path, secret, body);
      consumed += total;
      if (c.close_after) break;
    }
    // c may have been closed by nothing here (closing happens after answers); drop what was
    // served.
    if (connections_.count(fd) == 0) return;
    if (consumed > 0) c.in.erase(0, consumed);
    if (c.close_after && c.waiting == 0 && c.out.empty()) close_connection(c);
  }

  void handle(Connection& c, std::string_view method, std::string_view path,
              std::string_view secret, std::string_view body) {
    if (method == "GET" && path == "/readyz") return respond(c, 200, "ready");
    if (method == "GET" && path == "/metrics") return respond(c, 200, shared_.metrics.render());
    // The loop's own floor: the same bytes read and framed, answered at once.
    if (method == "POST" && path == "/v1/noop") return respond(c, 202, R"({"accepted":true})");
    if (method != "POST" || path != "/v1/telegram/benchbot") return respond(c, 404, "not found");
    if (auto auth = verify::secret(secret, shared_.secret, "X-Telegram-Bot-Api-Secret-Token");
        !auth) {
      return respond(c, 401, R"({"error":{"code":"unauthorized"}})");
    }
    auto parsed = telegram::parse_update(body, shared_.bot, now_millis());
    if (!parsed) {
      shared_.metrics.rejected.inc({"telegram", "bad_request"});
      return respond(c, 400, R"({"error":{"code":"bad_request"}})");
    }
    for (const auto& type : parsed->ignored) shared_.metrics.ignored_events.inc({"telegram", type});
    for (Submission& submission : parsed->submissions) {
      Interaction in = enrich(std::move(submission), shared_.identity);
      if (!enforce_schema(in, shared_.metrics)) {
        c.failed = true;
        continue;
      }
      if (shared_.seen->contains(in.id)) {
        shared_.metrics.duplicates.inc({"telegram"});
        continue;
      }
      std::string subject = subject_for(in);
      std::string payload = serialize(in);
      if (shared_.skip_publish) {
        // PROBE_NO_PUBLISH: everything but the publish, answered at once (the mapping's share).
        shared_.seen->insert(in.id);
      } else if (!publish(c, subject, in.id, payload)) {
        c.failed = true;
        continue;
      }
      // Counted when sent (ab.sh divides CPU by this); a run with non-2xx answers says so.
      shared_.metrics.interactions_published.inc({in.channel, in.kind});
    }
    if (c.waiting == 0) {
      if (c.failed)
        respond(c, 503, R"({"error":{"code":"not_durable"}})");
      else
        respond(c, 200, R"({"ok":true})");
      c.failed = false;
    }
  }

  // The interaction as the gateway's Publisher sends it: its headers, and with `reply` (the
  // loop's own PubAck protocol) the Nats-Msg-Id that js_PublishMsgAsync would add.
  static natsMsg* interaction_message(const std::string& subject, const char* reply,
                                      const std::string& id, const std::string& payload) {
    natsMsg* msg = nullptr;
    if (natsMsg_Create(&msg, subject.c_str(), reply, payload.data(),
                       static_cast<int>(payload.size())) != NATS_OK) {
      return nullptr;
    }
    natsMsgHeader_Set(msg, "Content-Type", "application/json");
    natsMsgHeader_Set(msg, "Omnigate-Schema", "interaction.v1");
    if (reply != nullptr) natsMsgHeader_Set(msg, "Nats-Msg-Id", id.c_str());
    return msg;
  }

  bool publish(Connection& c, const std::string& subject, const std::string& id,
               const std::string& payload) {
    if (nc_ != nullptr) return publish_on_loop(c, subject, id, payload);
    natsMsg* msg = interaction_message(subject, nullptr, id, payload);
    if (msg == nullptr) return false;
    jsPubOptions options;
    jsPubOptions_Init(&options);
    options.MsgId = id.c_str();
    Shared::Shard& shard = shared_.shard_of(msg);
    natsMsg* key = msg;
    {
      std::lock_guard lock(shard.mutex);
      shard.pending.emplace(key, Pending{this, c.fd, c.generation, id});
    }
    ++c.waiting;
    if (js_PublishMsgAsync(shared_.js, &msg, &options) != NATS_OK) {
      std::lock_guard lock(shard.mutex);
      shard.pending.erase(key);
      destroy_msg(msg);
      --c.waiting;
      return false;
    }
    return true;
  }

  // PROBE_NATS_LOOP: the PubAck protocol on this loop's own connection, no nats.c thread in
  // the path. A core publish with a reply subject of this loop's inbox and the Nats-Msg-Id
  // header (what js_PublishMsgAsync sends); the PubAck comes back on the inbox, read when the
  // loop reads the NATS socket.
  bool publish_on_loop(Connection& c, const std::string& subject, const std::string& id,
                       const std::string& payload) {
    const uint64_t n = ++next_reply_;
    std::string reply = reply_prefix_;
    reply.append(std::to_string(n));
    natsMsg* msg = interaction_message(subject, reply.c_str(), id, payload);
    if (msg == nullptr) return false;
    natsStatus s = natsConnection_PublishMsg(nc_, msg);
    destroy_msg(msg);
    if (s != NATS_OK) return false;
    local_pending_.emplace(n, Pending{this, c.fd, c.generation, id});
    ++c.waiting;
    return true;
  }

  // PROBE_FOLLOW_ON_LOOP: the dedup follower's headers-only ordered consumer on this loop's
  // connection, read here after each read event (the gateway's follower is a thread of its
  // own waiting in natsSubscription_NextMsg). Same work per message: metadata, the
  // Nats-Msg-Id header, SeenIndex::insert at the stored time.
  void drain_follower() {
    natsSubscription* sub = follower_.load(std::memory_order_acquire);
    if (sub == nullptr) return;
    natsMsg* msg = nullptr;
    while (natsSubscription_NextMsg(&msg, sub, 0) == NATS_OK) {
      jsMsgMetaData* meta = nullptr;
      if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
        auto at = SeenIndex::SysClock::time_point(
            std::chrono::duration_cast<SeenIndex::SysClock::duration>(
                std::chrono::nanoseconds(meta->Timestamp)));
        jsMsgMetaData_Destroy(meta);
        const char* id = nullptr;
        if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id != nullptr) {
          shared_.seen->insert(id, at);
          shared_.followed.fetch_add(1, std::memory_order_relaxed);
        }
      }
      destroy_msg(msg);
    }
  }

  void drain_inbox() {
    natsMsg* msg = nullptr;
    while (natsSubscription_NextMsg(&msg, inbox_, 0) == NATS_OK) {
      std::string_view subject = natsMsg_GetSubject(msg);
      std::string_view data(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
      uint64_t n = std::strtoull(subject.substr(subject.rfind('.') + 1).data(), nullptr, 10);
      auto it = local_pending_.find(n);
      if (it != local_pending_.end()) {
        const bool ok = data.find("\"error\"") == std::string_view::npos &&
                        data.find(R"("stream":"OMNIGATE_INTERACTIONS")") != std::string_view::npos;
        Pending pending = std::move(it->second);
        local_pending_.erase(it);
        if (ok) shared_.seen->insert(pending.id);
        finish(Completion{pending.fd, pending.generation, ok});
      }
      destroy_msg(msg);
    }
  }

 public:
  natsConnection* loop_connection() const { return nc_; }
  void follow(natsSubscription* sub) { follower_.store(sub, std::memory_order_release); }

  // nats.c's external event loop adapter: the connection's socket in this loop's epoll set.
  void connect_on_loop(const std::string& url, int index) {
    natsOptions* options = nullptr;
    natsOptions_Create(&options);
    natsOptions_SetURL(options, url.c_str());
    // PROBE_LOOP_SEND_ASAP=1: publishes written at once from this thread, no flusher kick.
    natsOptions_SetSendAsap(options, env_or("PROBE_LOOP_SEND_ASAP", "0") == "1");
    natsOptions_SetEventLoop(options, this, &Loop::ev_attach, &Loop::ev_read, &Loop::ev_write,
                             &Loop::ev_detach);
    if (natsConnection_Connect(&nc_, options) != NATS_OK) {
      std::fprintf(stderr, "epoll_probe: loop connect: %s\n", nats_GetLastError(nullptr));
      std::exit(1);
    }
    natsOptions_Destroy(options);
    reply_prefix_ = "_INBOX.probe" + std::to_string(getpid()) + "_" + std::to_string(index) + ".";
    natsConnection_SubscribeSync(&inbox_, nc_, (reply_prefix_ + "*").c_str());
    natsSubscription_SetPendingLimits(inbox_, -1, -1);
  }

 private:
  static natsStatus ev_attach(void** user, void* loop, natsConnection*, natsSock sock) {
    auto* self = static_cast<Loop*>(loop);
    *user = self;
    self->nats_fd_ = sock;
    self->nats_read_ = true;  // attached = polled for reads (nats.h, natsEvLoop_Attach)
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = sock;
    epoll_ctl(self->epoll_, EPOLL_CTL_ADD, sock, &ev);
    return NATS_OK;
  }
  void ev_update() {
    epoll_event ev{};
    ev.events = (nats_read_ ? EPOLLIN : 0u) | (nats_write_ ? EPOLLOUT : 0u);
    ev.data.fd = nats_fd_;
    epoll_ctl(epoll_, EPOLL_CTL_MOD, nats_fd_, &ev);
  }
  static natsStatus ev_read(void* user, bool add) {
    auto* self = static_cast<Loop*>(user);
    self->nats_read_ = add;
    self->ev_update();
    return NATS_OK;
  }
  static natsStatus ev_write(void* user, bool add) {
    auto* self = static_cast<Loop*>(user);
    self->nats_write_ = add;
    self->ev_update();
    return NATS_OK;
  }
  static natsStatus ev_detach(void* user) {
    auto* self = static_cast<Loop*>(user);
    epoll_ctl(self->epoll_, EPOLL_CTL_DEL, self->nats_fd_, nullptr);
    self->nats_fd_ = -1;
    return NATS_OK;
  }

  natsConnection* nc_ = nullptr;
  natsSubscription* inbox_ = nullptr;
  std::atomic<natsSubscription*> follower_{nullptr};
  std::atomic<int> nats_fd_{-1};
  std::atomic<bool> nats_read_{false}, nats_write_{false};
  std::string reply_prefix_;
  uint64_t next_reply_ = 0;
  std::unordered_map<uint64_t, Pending> local_pending_;

  Shared& shared_;
  int epoll_ = -1, wake_ = -1, listen_ = -1;
  uint64_t generations_ = 0;
  std::unordered_map<int, std::unique_ptr<Connection>> connections_;
  std::mutex queue_mutex_;
  std::vector<Completion> queue_, batch_;
};

void on_ack(jsCtx*, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error, void*) {
  Shared& shared = *g_shared;
  Shared::Shard& shard = shared.shard_of(msg);
  Pending pending;
  {
    std::lock_guard lock(shard.mutex);
    auto it = shard.pending.find(msg);
    if (it == shard.pending.end()) {
      destroy_msg(msg);
      return;
    }
    pending = std::move(it->second);
    shard.pending.erase(it);
  }
  destroy_msg(msg);
  const bool ok = ack != nullptr && error == nullptr && ack->Stream != nullptr &&
                  std::strcmp(ack->Stream, kStream) == 0 && (ack->Sequence > 0 || ack->Duplicate);
  if (ok) shared.seen->insert(pending.id);
  pending.loop->complete(Completion{pending.fd, pending.generation, ok});
}

}  // namespace

int main() {
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGINT, [](int) { g_stop = true; });
  std::signal(SIGTERM, [](int) { g_stop = true; });
  const int port = std::atoi(env_or("OMNIGATE_BENCH_PORT", "8080").c_str());
  const int loops = std::max(1, std::atoi(env_or("PROBE_LOOPS", "2").c_str()));
  const long horizon_s = std::atol(env_or("PROBE_DEDUP_HORIZON_S", "604800").c_str());
  const std::string url = env_or("OMNIGATE_BENCH_NATS", "nats://127.0.0.1:4222");

  auto shared = std::make_unique<Shared>();
  g_shared = shared.get();
  shared->secret = env_or("OMNIGATE_BENCH_TG_SECRET", "");
  shared->bot.account = "benchbot";
  shared->skip_publish = env_or("PROBE_NO_PUBLISH", "0") == "1";
  g_inline_free = env_or("PROBE_INLINE_FREE", "0") == "1";
  if (shared->secret.empty()) {
    std::fprintf(stderr, "epoll_probe: set OMNIGATE_BENCH_TG_SECRET\n");
    return 2;
  }

  natsOptions* options = nullptr;
  natsOptions_Create(&options);
  natsOptions_SetURL(options, url.c_str());
  // PROBE_SEND_ASAP=1: nats.c writes each publish on the loop thread (no flusher wake-up).
  natsOptions_SetSendAsap(options, env_or("PROBE_SEND_ASAP", "0") == "1");
  if (natsConnection_Connect(&shared->nc, options) != NATS_OK) {
    std::fprintf(stderr, "epoll_probe: cannot connect to %s: %s\n", url.c_str(),
                 nats_GetLastError(nullptr));
    return 1;
  }
  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.PublishAsync.AckHandler = &on_ack;
  js_options.PublishAsync.MaxPending = 65536;
  natsConnection_JetStream(&shared->js, shared->nc, &js_options);

  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  const char* subjects[] = {"omnigate.interactions.>"};
  cfg.Name = kStream;
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Duplicates = 120LL * 1'000'000'000;
  cfg.MaxAge = 30LL * 24 * 3600 * 1'000'000'000;
  jsStreamInfo* info = nullptr;
  jsErrCode js_error = static_cast<jsErrCode>(0);
  if (js_AddStream(&info, shared->js, &cfg, nullptr, &js_error) != NATS_OK) {
    std::fprintf(stderr, "epoll_probe: cannot create the stream: %s\n", nats_GetLastError(nullptr));
    return 1;
  }
  jsStreamInfo_Destroy(info);

  SeenIndex seen{std::chrono::seconds(horizon_s)};
  shared->seen = &seen;
  // What the follower has read, beside what was published: a follower that reads nothing
  // would make its variant look cheap.
  shared->metrics.add_gauge("omnigate_probe_seen_ids", "ids in the dedup index",
                            [&seen] { return static_cast<double>(seen.size()); });
  shared->metrics.add_gauge("omnigate_probe_followed", "messages the on-loop follower read",
                            [s = shared.get()] { return static_cast<double>(s->followed.load()); });
  const bool nats_on_loop = env_or("PROBE_NATS_LOOP", "0") == "1";
  const bool follow_on_loop = nats_on_loop && env_or("PROBE_FOLLOW_ON_LOOP", "0") == "1";
  if (follow_on_loop) {
    seen.mark_caught_up();  // the stream is new: nothing to read back
  } else {
    seen.start(shared->js, kStream, [] { return true; });
    seen.wait_caught_up(std::chrono::steady_clock::now() + std::chrono::seconds(10));
  }

  std::vector<std::unique_ptr<Loop>> all;
  for (int i = 0; i < loops; ++i) {
    all.push_back(std::make_unique<Loop>(*shared, port));
    if (nats_on_loop) all.back()->connect_on_loop(url, i);
  }
  std::vector<std::thread> threads;
  for (auto& loop : all) threads.emplace_back([&loop] { loop->run(); });
  jsCtx* follower_js = nullptr;
  natsSubscription* follower = nullptr;
  if (follow_on_loop) {
    // Subscribed from here while the loops run: the consumer's creation is a request whose
    // reply only loop 0 reads.
    natsConnection_JetStream(&follower_js, all[0]->loop_connection(), nullptr);
    jsSubOptions sub_options;
    jsSubOptions_Init(&sub_options);
    sub_options.Stream = kStream;
    sub_options.Ordered = true;
    sub_options.Config.HeadersOnly = true;
    sub_options.Config.DeliverPolicy = js_DeliverNew;
    jsErrCode sub_error = static_cast<jsErrCode>(0);
    if (js_SubscribeSync(&follower, follower_js, "omnigate.interactions.>", nullptr, &sub_options,
                         &sub_error) != NATS_OK) {
      std::fprintf(stderr, "epoll_probe: cannot follow the stream: %s\n",
                   nats_GetLastError(nullptr));
      return 1;
    }
    natsSubscription_SetPendingLimits(follower, -1, 256 * 1024 * 1024);
    all[0]->follow(follower);
  }
  for (auto& thread : threads) thread.join();

  seen.stop();
  jsCtx_Destroy(shared->js);
  natsConnection_Destroy(shared->nc);
  natsOptions_Destroy(options);
  return 0;
}

// The running gateway: HTTP plumbing (cpp-httplib, tuned, or the event-loop front: http.server),
// the built-in routes, and the connectors' routes behind one wrapper that enforces body caps,
// counts requests by route and status, and turns every failure into the JSON error format.
// Both servers serve the same route table through the same wrapper (answer_route).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/consent/consent.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/kit/connector.hpp"
#include "gateway/nats/object_store.hpp"
#include "gateway/nats/publisher.hpp"
#include "gateway/pipeline/pipeline.hpp"
#include "gateway/pipeline/sink.hpp"
#include "gateway/spool/spool.hpp"
#include "gateway/spool/spooling_sink.hpp"
#include "gateway/state/cursor_store.hpp"
#include "gateway/state/name_cache.hpp"

namespace httplib {
class Server;
struct Request;
}  // namespace httplib

namespace omnigate {

struct RequestBody;
class GuardedServer;
class AuthThrottle;
class LoopServer;
class LoopPublisher;
class LoopSink;
class Responder;
class WorkPool;
struct FrontRequest;
struct RequestHead;

// What a reload did: one line per account added, changed or removed ("telegram/support added"),
// and the settings it could not apply because they need a restart ("nats.url").
struct ReloadOutcome {
  std::vector<std::string> accounts;
  std::vector<std::string> needs_restart;
};

class Gateway : public Router {
 public:
  // Connects to NATS (or keeps trying), starts the connectors, declares every route.
  static Result<std::unique_ptr<Gateway>> create(Config config);
  ~Gateway() override;

  // Binds http.address:http.port (port 0 = any free port); returns the bound port.
  Result<int> bind();
  // Serves until stop(); blocks.
  void serve();
  void stop();
  // SIGHUP: `next` is the config file loaded again (secret files re-read). Accounts added,
  // changed (any value, secrets included) or removed take effect at once: routes find accounts
  // per request, a request in flight keeps the account it was routed with, pollers of changed
  // accounts restart. Everything else (listen address, NATS, consent keys...) keeps its
  // running value and is named in needs_restart. An error (the new accounts do not fit the
  // running config) changes nothing.
  Result<ReloadOutcome> reload(Config next);

  Metrics& metrics() { return metrics_; }
  const Config& config() const { return config_; }
  Publisher& publisher() { return *publisher_; }
  SpoolingSink& spooling_sink() { return *spooling_sink_; }
  ConsentService& consent() { return *consent_; }
  // What connectors are built on; tests drive a connector's parts on it directly.
  GatewayContext& context() { return *context_; }

  void add_channel_route(RouteSpec spec) override;
  void add_route(std::string method, std::string path, uint64_t max_body,
                 RouteHandler handler) override;
  void add_media_source(std::string channel, MediaSource source) override;

 private:
  explicit Gateway(Config config);
  void add_builtin_routes();
  // The proxy behind GET /v1/media/<channel>/<account>/<ref>, one route for every channel's
  // media sources: before the connectors start (they add sources), routed after them.
  void create_media_proxy();
  // GET /readyz: 200 ready, 200 degraded while interactions are spooled (webhooks are still
  // taken durably: a load balancer must keep sending them), 503 when nothing can be made durable.
  Reply readiness_reply() const;
  void add_dedup_gauges();
  void add_spool_gauges();
  // GET /status (gateway/app/status_page.hpp) behind http.status_token; 404 when it is empty.
  void add_status_route();
  Reply status_reply(const InboundRequest& request) const;
  using SharedCap = std::shared_ptr<std::atomic<uint64_t>>;
  // One route as both servers serve it.
  struct Route {
    std::string method;
    std::string path;     // an exact path, or a prefix ending in '/'
    bool prefix = false;  // the path continues: one segment (a channel's account) or any rest
    std::string label;    // "POST /v1/telegram/:account": metrics and the request log
    std::string channel;  // set for a channel route: the segment after `path` is its account
    Connector* connector = nullptr;  // its accounts are pinned while a request is handled
    SharedCap cap;                   // the body cap while reading (a channel's follows reloads)
    // false for /healthz, /readyz, /metrics and /v1/noop: no throttle, not counted in flight.
    bool guarded = true;
    std::function<Reply(InboundRequest&)> handler;
    // A channel route that only checks and maps (RouteSpec::intake), behind the same checks as
    // `handler` (which submits what it returns and answers): the front runs it on the loop.
    std::function<Intake(InboundRequest&)> intake;
  };
  struct BodyState {
    bool too_large = false;
    bool incomplete = false;        // shorter than its Content-Length, a broken chunked framing
    const char* problem = nullptr;  // a malformed multipart body
  };
  // One wrapper for every route: body cap, auth throttle, Retry-After on 429/503, metrics by
  // route/status, and for a channel route each answer in metrics.activity for its account.
  Reply answer_route(const Route& route, InboundRequest& request, BodyState body);
  // answer_route in two halves around a handler that answers later (an intake on the loop):
  // the checks before it (a refusal, or none) with the client they throttle, then what every
  // answer gets (auth failures throttled, Retry-After, metrics, activity).
  std::optional<Reply> admit(const Route& route, InboundRequest& request, BodyState body,
                             std::string& client);
  void settle(const Route& route, std::string_view account, const std::string& client,
              Reply& reply);
  // A channel's refusal before its handler runs (an unknown account, a body above the
  // account's max_body), or none.
  std::optional<Reply> channel_refusal(const RouteSpec& spec, Connector* connector,
                                       InboundRequest& request);
  // What an intake's handler returned, made durable on the calling thread (blocking).
  Reply submit_intake(Intake intake, std::string_view channel,
                      std::chrono::steady_clock::time_point deadline);
  Route& add_route_entry(Route route);
  // cpp-httplib's registration of a route (its pattern a regular expression of the path).
  void register_handler(const Route& route, const std::string& pattern);
  // The first route for method and (decoded) path; `account` is set for a channel route.
  const Route* find_route(std::string_view method, std::string_view path,
                          std::string_view& account) const;
  // The 413 of a body refused before it was read, worded by its channel when it has one.
  Reply too_large_reply(std::string_view method, std::string_view path, uint64_t cap,
                        InboundRequest& request);
  // The one log line of a request, after its answer (never a path, query or body).
  void log_request(std::string_view method, int status);
  // The event-loop front (http.server: loop): a request is handed from its loop to a worker,
  // which runs the route and answers.
  Result<int> bind_front();
  struct FrontRoute;
  std::shared_ptr<FrontRoute> route_front(const RequestHead& head);
  void handle_front(FrontRequest& request, Responder responder);
  Reply front_reply(const Route& route, FrontRequest& request, std::string_view path,
                    std::string_view account);
  // The InboundRequest of a front request (its query and multipart fields kept in `storage`).
  struct FrontInbound;
  void front_inbound(FrontRequest& front, std::string_view path, std::string_view account,
                     FrontInbound& out);
  // An intake route answered from its loop: checked and mapped here, published on the loop's
  // own publisher, answered from its PubAck (a worker only to spool). false: not taken here
  // (no publisher on this loop yet), the caller hands it to a worker as any route.
  bool intake_on_loop(FrontRequest& request, Responder& responder,
                      std::shared_ptr<FrontRoute>& routed);
  // The loops' publishers and their sinks: made after the front starts, gone before it stops.
  void start_loop_sinks();
  void stop_loop_sinks(std::chrono::steady_clock::time_point until);

  struct RouteCap {
    std::string method;
    std::string path;  // exact path, or a prefix ending in '/' (channel routes)
    uint64_t max_body;
  };
  // A channel route's read cap: its spec's max_body, or the largest of the accounts' caps.
  uint64_t channel_read_cap(const Connector* connector, uint64_t spec_max_body) const;
  struct ChannelCap {
    Connector* connector;
    uint64_t spec_max_body;
    SharedCap cap;
  };
  // The route a request would reach (for body caps before the body is read), or "unmatched".
  RouteCap route_for(std::string_view method, std::string_view path) const;

  Config config_;
  Metrics metrics_;
  const SysMillis started_at_ = now_millis();  // the status page's uptime
  std::unique_ptr<Publisher> publisher_;
  std::unique_ptr<JetStreamSink> jetstream_sink_;
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<SpoolingSink> spooling_sink_;
  Sink* sink_ = nullptr;  // what the pipeline hands interactions to
  std::unique_ptr<ObjectStoreArchive> raw_archive_;
  std::unique_ptr<Pipeline> pipeline_;
  std::unique_ptr<ConsentService> consent_;
  std::unique_ptr<CursorStore> cursors_;
  std::unique_ptr<NameCache> names_;
  std::unique_ptr<GatewayContext> context_;
  std::unique_ptr<AuthThrottle> auth_throttle_;
  std::unique_ptr<GuardedServer> server_;
  // http.server: loop. Workers before the front: the front stops (joins its loops) first.
  std::unique_ptr<WorkPool> workers_;
  std::unique_ptr<WorkPool> spoolers_;  // the loops' spool writes, apart from slow handlers
  std::unique_ptr<LoopServer> front_;
  std::mutex front_mutex_;  // guards the two flags below (serve() waits on them)
  std::condition_variable front_stopped_signal_;
  bool front_stopping_ = false;
  size_t max_queued_ = 0;  // requests waiting for a worker before the front answers 503
  bool front_stopped_ = false;
  std::deque<Route> routes_;  // fixed once serving (references stay valid); only caps change
  std::vector<ChannelCap> channel_caps_;
  uint64_t payload_ceiling_ = 0;  // cpp-httplib's own body limit, set in bind()
  std::atomic<int64_t> requests_in_flight_{0};
  int listen_fd_ = -1;
  // One per loop, by loop index; read by the loops once loop_sinks_ready_ is set.
  std::vector<std::unique_ptr<LoopPublisher>> loop_publishers_;
  std::vector<std::unique_ptr<LoopSink>> loop_sinks_;
  std::atomic<bool> loop_sinks_ready_{false};
  std::atomic<bool> loop_intake_closed_{false};  // stopping: the loops refuse 503
  // Intakes submitted on a loop and not answered yet (stop waits for them).
  std::mutex loop_intakes_mutex_;
  std::condition_variable loop_intakes_idle_;
  size_t loop_intakes_ = 0;
  // Last: destroyed first, so no download outlives the connectors its sources call.
  std::unique_ptr<MediaProxy> media_;
};

}  // namespace omnigate

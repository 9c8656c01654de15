// The running gateway: HTTP plumbing (cpp-httplib, tuned), the built-in routes, and the
// connectors' routes behind one wrapper that enforces body caps, counts requests by route
// and status, and turns every failure into the JSON error format.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
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
  // One wrapper for every route: body cap, Retry-After on 429/503, metrics by route/status.
  // `channel` is set for a channel route (its account is the first match): each answer is
  // recorded in metrics.activity for that account.
  using SharedCap = std::shared_ptr<std::atomic<uint64_t>>;
  void register_handler(const std::string& method, const std::string& pattern,
                        const std::string& label, const std::string& channel, SharedCap cap,
                        std::function<Reply(const httplib::Request&, const RequestBody&,
                                            std::chrono::steady_clock::time_point)>
                            fn);

  struct RouteCap {
    std::string method;
    std::string path;  // exact path, or a prefix ending in '/' (channel routes)
    uint64_t max_body;
  };
  struct RouteEntry {
    std::string method;
    std::string path;
    SharedCap max_body;  // a channel route's changes with its accounts (reload)
  };
  // A channel route's read cap: its spec's max_body, or the largest of the accounts' caps.
  uint64_t channel_read_cap(const Connector* connector, uint64_t spec_max_body) const;
  struct ChannelCap {
    Connector* connector;
    uint64_t spec_max_body;
    SharedCap cap;
  };
  // The route a request would reach (for body caps before the body is read), or "unmatched".
  RouteCap route_for(const std::string& method, const std::string& path) const;

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
  std::vector<RouteEntry> routes_;  // fixed once serving; only the caps change
  std::vector<ChannelCap> channel_caps_;
  uint64_t payload_ceiling_ = 0;  // cpp-httplib's own body limit, set in bind()
  std::atomic<int64_t> requests_in_flight_{0};
  int listen_fd_ = -1;
  // Last: destroyed first, so no download outlives the connectors its sources call.
  std::unique_ptr<MediaProxy> media_;
};

}  // namespace omnigate

// The running gateway: HTTP plumbing (cpp-httplib, tuned), the built-in routes, and the
// connectors' routes behind one wrapper that enforces body caps, counts requests by route
// and status, and turns every failure into the JSON error format.
#pragma once

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
  void register_handler(const std::string& method, const std::string& pattern,
                        const std::string& label, const std::string& channel, uint64_t cap,
                        std::function<Reply(const httplib::Request&, const RequestBody&,
                                            std::chrono::steady_clock::time_point)>
                            fn);

  struct RouteCap {
    std::string method;
    std::string path;  // exact path, or a prefix ending in '/' (channel routes)
    uint64_t max_body;
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
  std::vector<RouteCap> routes_;
  int listen_fd_ = -1;
  // Last: destroyed first, so no download outlives the connectors its sources call.
  std::unique_ptr<MediaProxy> media_;
};

}  // namespace omnigate

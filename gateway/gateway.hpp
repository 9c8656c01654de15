// The running gateway: HTTP plumbing (cpp-httplib, tuned), the built-in routes, and the
// connectors' routes behind one wrapper that enforces body caps, counts requests by route
// and status, and turns every failure into the JSON error format.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gateway/config.hpp"
#include "gateway/connector.hpp"
#include "gateway/metrics.hpp"
#include "gateway/pipeline.hpp"
#include "gateway/publisher.hpp"

namespace httplib {
class Server;
}

namespace omnigate {

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

  void add_channel_route(RouteSpec spec) override;

 private:
  explicit Gateway(Config config);
  void add_builtin_routes();
  uint64_t body_cap_for(const std::string& method, const std::string& path) const;

  Config config_;
  Metrics metrics_;
  std::unique_ptr<Publisher> publisher_;
  std::unique_ptr<Pipeline> pipeline_;
  std::unique_ptr<httplib::Server> server_;
  std::vector<RouteSpec> routes_;
  int listen_fd_ = -1;
};

}  // namespace omnigate

#include "gateway/app/gateway.hpp"

#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <future>
#include <optional>
#include <regex>
#include <set>

#include "gateway/app/status_page.hpp"
#include "gateway/core/log.hpp"
#include "gateway/core/secrets.hpp"
#include "gateway/core/strings.hpp"
#include "gateway/core/work_pool.hpp"
#include "gateway/http/form_data.hpp"
#include "gateway/http/http_guard.hpp"
#include "gateway/http/loop_server.hpp"
#include "gateway/http/verify.hpp"
#include "gateway/nats/loop_publisher.hpp"
#include "gateway/spool/loop_sink.hpp"

namespace omnigate {

// The body of a request as its handler sees it, read by us (see register_handler).
struct RequestBody {
  std::string data;
  std::vector<httplib::MultipartFormData> parts;
  bool too_large = false;
  bool incomplete = false;  // shorter than its Content-Length, or a broken chunked framing
};

namespace {

using Clock = std::chrono::steady_clock;

int64_t now_millis_count() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool valid_account_segment(const std::string& account) {
  if (account.empty() || account.size() > 64) return false;
  return std::all_of(account.begin(), account.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

void write_reply(const Reply& reply, httplib::Response& res) {
  res.status = reply.status;
  for (const auto& [name, value] : reply.headers) res.set_header(name, value);
  if (reply.stream) {
    auto stream = reply.stream;
    res.set_chunked_content_provider(reply.content_type, [stream](size_t, httplib::DataSink& sink) {
      bool ok = stream(
          [&sink](std::string_view chunk) { return sink.write(chunk.data(), chunk.size()); });
      if (ok) sink.done();
      return ok;
    });
    return;
  }
  res.set_content(reply.body, reply.content_type);
}

// A channel route's answer in the status page's counts: its status class and, for an error, its
// code and message (from the JSON error body; "http_<status>" for a page such as a web form's,
// whose text is not kept). An account that is not configured is not recorded (ActivityRecorder
// keeps the config's accounts only).
void record_activity(ActivityRecorder& activity, const std::string& channel,
                     const std::string& account, const Reply& reply) {
  std::string code, detail;
  if (reply.status >= 400) {
    code = "http_" + std::to_string(reply.status);
    auto body = nlohmann::json::parse(reply.body, nullptr, false);
    const auto error = body.is_object() ? body.find("error") : body.end();
    if (error != body.end() && error->is_object()) {
      auto text = [&](const char* key, std::string& out) {
        auto value = error->find(key);
        if (value != error->end() && value->is_string()) out = value->get<std::string>();
      };
      text("code", code);
      text("message", detail);
    }
  }
  activity.request(channel, account, reply.status, code, detail);
}

// The status page's check: Authorization: Bearer <token>, or -- because a browser cannot send a
// bearer header and an operator just opens the page -- HTTP Basic with the token as the password
// (any user name). Both compared in constant time.
bool status_authorized(const InboundRequest& request, const std::string& token) {
  if (verify::bearer(request, token)) return true;
  std::string_view header = trim(request.header("Authorization"));
  if (header.size() < 6 || !iequals(header.substr(0, 6), "Basic ") || header.size() > 2048)
    return false;
  std::string base64(trim(header.substr(6)));  // RFC 4648 base64 into the base64url we decode
  for (char& c : base64) c = c == '+' ? '-' : c == '/' ? '_' : c;
  while (!base64.empty() && base64.back() == '=') base64.pop_back();
  auto credentials = base64url_decode(base64);
  const size_t colon = credentials ? credentials->find(':') : std::string::npos;
  if (colon == std::string::npos) return false;
  return constant_time_equals(std::string_view(*credentials).substr(colon + 1), token);
}

// A request between its routing and its answer (omnigate_http_requests_in_flight).
class InFlight {
 public:
  explicit InFlight(std::atomic<int64_t>& count) : count_(count) { count_.fetch_add(1); }
  ~InFlight() { count_.fetch_sub(1); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  std::atomic<int64_t>& count_;
};

// Every configured account as (channel, account).
std::vector<std::pair<std::string, std::string>> configured_accounts(const Config& config) {
  std::vector<std::pair<std::string, std::string>> accounts;
  for (const auto& connector : config.connectors) {
    for (const auto& account : connector->account_names())
      accounts.emplace_back(std::string(connector->channel()), account);
  }
  return accounts;
}

// The keys whose values differ between two loads of the file (outside channels:), each by where
// it is: "nats.url", "consent.texts[0].text". Values are compared as written ("1MiB" and
// "1048576" differ, as does a default written out and the key left out): a false "needs a
// restart" costs a log line, a missed one would hide a change that was not applied.
std::vector<std::string> changed_settings(const std::map<std::string, std::string>& running,
                                          const std::map<std::string, std::string>& next) {
  std::vector<std::string> changed;
  auto a = running.begin();
  auto b = next.begin();
  while (a != running.end() || b != next.end()) {
    if (b == next.end() || (a != running.end() && a->first < b->first)) {
      changed.push_back(a++->first);
    } else if (a == running.end() || b->first < a->first) {
      changed.push_back(b++->first);
    } else {
      if (a->second != b->second) changed.push_back(a->first);
      ++a;
      ++b;
    }
  }
  return changed;
}

// What changed in one channel's accounts between two loads (by their fingerprints).
AccountChanges account_changes(const std::string& channel, const Connector* running,
                               const Connector* next, const Config& running_config,
                               const Config& next_config) {
  AccountChanges changes;
  auto fingerprint = [&channel](const Config& config, const std::string& account) {
    auto it = config.account_fingerprints.find(channel + "/" + account);
    return it == config.account_fingerprints.end() ? std::string() : it->second;
  };
  const auto before = running ? running->account_names() : std::vector<std::string>();
  const auto after = next ? next->account_names() : std::vector<std::string>();
  for (const auto& account : after) {
    if (std::find(before.begin(), before.end(), account) == before.end())
      changes.added.push_back(account);
    else if (fingerprint(running_config, account) != fingerprint(next_config, account))
      changes.changed.push_back(account);
  }
  for (const auto& account : before) {
    if (std::find(after.begin(), after.end(), account) == after.end())
      changes.removed.push_back(account);
  }
  return changes;
}

InboundRequest inbound_from(const httplib::Request& req, const RequestBody& body,
                            std::string_view account, Clock::time_point deadline) {
  InboundRequest in;
  in.method = req.method;
  in.path = req.path;
  in.account = account;
  in.body = body.data;
  in.remote_addr = req.remote_addr;
  in.deadline = deadline;
  in.body_bytes = body.data.size();
  for (const auto& part : body.parts) in.body_bytes += part.content.size();
  in.headers.reserve(req.headers.size());
  for (const auto& [name, value] : req.headers) in.headers.emplace_back(name, value);
  for (const auto& [name, value] : req.params) in.query.emplace_back(name, value);
  for (const auto& part : body.parts) {
    if (part.filename.empty()) in.multipart.emplace_back(part.name, part.content);
  }
  return in;
}

}  // namespace

namespace {
HttpGuardLimits guard_limits(const HttpConfig& http) {
  HttpGuardLimits limits;
  limits.threads = static_cast<size_t>(http.threads);
  limits.header_timeout = http.header_timeout;
  limits.keep_alive_timeout = http.keep_alive_timeout;
  limits.read_timeout = http.read_timeout;
  limits.write_timeout = http.write_timeout;
  limits.max_headers = static_cast<size_t>(http.max_headers);
  limits.max_header_bytes = static_cast<size_t>(http.max_header_bytes);
  limits.max_connections_per_ip = http.max_connections_per_ip;
  limits.keep_alive_max_requests = http.keep_alive_max_requests;
  limits.exempt = http.trusted_proxies;
  return limits;
}
}  // namespace

Gateway::Gateway(Config config)
    : config_(std::move(config)),
      auth_throttle_(std::make_unique<AuthThrottle>(config_.http.auth_failures_per_minute)),
      server_(std::make_unique<GuardedServer>(guard_limits(config_.http), [this](GuardEvent e) {
        metrics_.http_refused.inc({std::string(guard_event_name(e))});
      })) {}

Gateway::~Gateway() {
  stop();
  for (auto& connector : config_.connectors) connector->stop();
}

Result<std::unique_ptr<Gateway>> Gateway::create(Config config) {
  std::unique_ptr<Gateway> gateway(new Gateway(std::move(config)));
  log::set_level(gateway->config_.log.level);
  log::set_format(gateway->config_.log.format);
  // The accounts the status page records (again after each reload).
  gateway->metrics_.activity.set_accounts(configured_accounts(gateway->config_));
  // The spool first: an unwritable or corrupt spool refuses the start before anything else.
  auto spool = Spool::open(gateway->config_.spool);
  if (!spool) return spool.error();
  gateway->spool_ = std::move(spool.value());
  auto publisher = Publisher::start(gateway->config_.nats, gateway->metrics_);
  if (!publisher) return publisher.error();
  gateway->publisher_ = std::move(publisher.value());
  if (gateway->publisher_->ready()) {
    // Start answering with a complete dedup index where it is quick (a young stream); a long
    // catch-up goes on in the background and requests wait for it within their deadlines.
    gateway->publisher_->seen_index().wait_caught_up(Clock::now() +
                                                     gateway->config_.nats.connect_timeout);
  }
  gateway->jetstream_sink_ = std::make_unique<JetStreamSink>(*gateway->publisher_);
  gateway->spooling_sink_ = std::make_unique<SpoolingSink>(
      *gateway->jetstream_sink_, *gateway->spool_, gateway->publisher_->seen_index(),
      gateway->metrics_, gateway->config_);
  gateway->sink_ = gateway->spooling_sink_.get();
  gateway->add_dedup_gauges();
  gateway->add_spool_gauges();
  gateway->metrics_.add_gauge(
      "omnigate_http_requests_in_flight",
      "Requests routed to a handler and not yet answered (their bodies may still be arriving).",
      [count = &gateway->requests_in_flight_] { return static_cast<double>(count->load()); });
  gateway->raw_archive_ = std::make_unique<ObjectStoreArchive>(
      [publisher = gateway->publisher_.get()] { return publisher->connection(); },
      raw_archive_settings(gateway->config_.nats));
  gateway->pipeline_ =
      std::make_unique<Pipeline>(gateway->config_, gateway->publisher_->seen_index(),
                                 *gateway->sink_, gateway->metrics_, gateway->raw_archive_.get());
  gateway->consent_ = std::make_unique<ConsentService>(gateway->config_, *gateway->pipeline_,
                                                       gateway->metrics_, *gateway->publisher_);
  gateway->add_builtin_routes();
  gateway->add_status_route();
  gateway->create_media_proxy();
  if (!gateway->config_.consent.signing_key.empty()) gateway->consent_->register_routes(*gateway);
  // Connectors keep the context for their lifetime: the gateway owns it.
  gateway->cursors_ = std::make_unique<CursorStore>(*gateway->publisher_);
  gateway->names_ =
      std::make_unique<NameCache>(gateway->publisher_.get(), gateway->config_.nats.names_ttl);
  gateway->context_ = std::make_unique<GatewayContext>(
      GatewayContext{gateway->config_, *gateway->pipeline_, gateway->metrics_, *gateway->consent_,
                     *gateway->cursors_, *gateway->names_, *gateway->raw_archive_});
  for (auto& connector : gateway->config_.connectors)
    connector->start(*gateway->context_, *gateway);
  // After the channel routes: cpp-httplib tries routes in order, webhooks are the hot path.
  gateway->add_route("GET", "/v1/media/*", 0,
                     [media = gateway->media_.get()](const InboundRequest& request) {
                       return media->handle(request);
                     });
  return gateway;
}

Gateway::RouteCap Gateway::route_for(std::string_view method, std::string_view path) const {
  std::string_view account;
  if (const Route* route = find_route(method, path, account))
    return {route->method, route->path, route->cap->load(std::memory_order_relaxed)};
  return {std::string(method), "unmatched", config_.http.max_body};
}

const Gateway::Route* Gateway::find_route(std::string_view method, std::string_view path,
                                          std::string_view& account) const {
  // HEAD is served by the GET route (the server drops the body), as cpp-httplib does.
  if (method == "HEAD") method = "GET";
  for (const auto& route : routes_) {
    if (route.method != method) continue;
    if (!route.prefix) {
      if (path == route.path) return &route;
      continue;
    }
    if (path.size() <= route.path.size() || path.compare(0, route.path.size(), route.path) != 0)
      continue;
    const std::string_view rest = path.substr(route.path.size());
    if (route.channel.empty()) return &route;                // "/v1/media/" + any rest
    if (rest.find('/') != std::string_view::npos) continue;  // "/v1/<channel>/" + one segment
    account = rest;
    return &route;
  }
  return nullptr;
}

Gateway::Route& Gateway::add_route_entry(Route route) {
  routes_.push_back(std::move(route));
  return routes_.back();
}

std::optional<Reply> Gateway::admit(const Route& route, InboundRequest& request, BodyState body,
                                    std::string& client) {
  log::request_route(route.label, "");  // a channel handler adds the account once it is known
  const auto now = Clock::now();
  request.deadline = now + config_.nats.publish_timeout;
  const uint64_t cap = route.cap->load(std::memory_order_relaxed);
  // Built-in routes are not throttled (a health check must not be refused for its address).
  if (route.guarded) {
    client = client_key(config_.http.trusted_proxies.client_ip(
        request.remote_addr, request.header_joined("X-Forwarded-For")));
  }
  if (body.too_large || request.body.size() > cap) {
    return Reply::error(make_error(
        ErrorCode::payload_too_large, "route",
        "the body is larger than " + std::to_string(cap) + " bytes allowed for this route"));
  }
  if (body.incomplete) {
    return Reply::error(make_error(ErrorCode::bad_request, "route",
                                   "the body ended before its Content-Length, or its chunked "
                                   "framing is broken: nothing was processed"));
  }
  if (body.problem) {
    return Reply::error(make_error(ErrorCode::bad_request, "route",
                                   std::string(body.problem) + ": nothing was processed"));
  }
  if (!route.guarded) return std::nullopt;
  if (auto wait = auth_throttle_->retry_after(client, now)) {
    // Too many failed authentications from this client: the handler does not run at all.
    metrics_.http_refused.inc({"auth_throttled"});
    return Reply::error(make_error(ErrorCode::rate_limited, "route",
                                   "too many failed authentications from this address"),
                        std::chrono::seconds(*wait));
  }
  return std::nullopt;
}

void Gateway::settle(const Route& route, std::string_view account, const std::string& client,
                     Reply& reply) {
  if (route.guarded && (reply.status == 401 || reply.status == 403)) {
    auth_throttle_->record_failure(client, Clock::now());
    metrics_.auth_failures.inc({route.label});
  }
  if (reply.status == 503 || reply.status == 429) {
    // Handlers may set their own Retry-After; fill in the configured one when they did not.
    bool has_retry = std::any_of(reply.headers.begin(), reply.headers.end(),
                                 [](const auto& h) { return iequals(h.first, "Retry-After"); });
    if (!has_retry) {
      auto seconds = std::chrono::duration_cast<std::chrono::seconds>(config_.http.retry_after);
      reply.headers.emplace_back("Retry-After", std::to_string(seconds.count()));
    }
  }
  metrics_.http_requests.inc({route.label, std::to_string(reply.status)});
  if (!route.channel.empty())
    record_activity(metrics_.activity, route.channel, std::string(account), reply);
}

Reply Gateway::answer_route(const Route& route, InboundRequest& request, BodyState body) {
  std::string client;
  std::optional<Reply> refused = admit(route, request, body, client);
  Reply reply = refused ? std::move(*refused) : route.handler(request);
  settle(route, request.account, client, reply);
  return reply;
}

void Gateway::register_handler(const Route& route, const std::string& pattern) {
  auto respond = [this, &route](const httplib::Request& req, const RequestBody& body,
                                httplib::Response& res) {
    const std::string account =
        !route.channel.empty() && req.matches.size() > 1 ? req.matches[1].str() : "";
    InboundRequest request = inbound_from(req, body, account, Clock::now());
    write_reply(answer_route(route, request, {body.too_large, body.incomplete, nullptr}), res);
  };
  const std::string& method = route.method;
  if (method == "POST" || method == "PUT") {
    // We read bodies ourselves: Debian's cpp-httplib refuses urlencoded bodies above 8 KB
    // before any handler runs (a long Cyrillic comment is ~6 bytes a letter), and reading
    // lets the route's own cap stop an oversized body early.
    auto reading = [respond, &route, requests_in_flight = &requests_in_flight_](
                       const httplib::Request& req, httplib::Response& res,
                       const httplib::ContentReader& reader) {
      // The channel's accounts as they are when the request is routed, for the whole request.
      auto pin = route.connector ? route.connector->pin_accounts() : nullptr;
      std::optional<InFlight> in_flight;
      if (route.guarded) in_flight.emplace(*requests_in_flight);
      const uint64_t cap = route.cap->load(std::memory_order_relaxed);
      RequestBody body;
      uint64_t received = 0;
      auto within_cap = [&](size_t n) {
        received += n;
        if (received > cap) body.too_large = true;
        return !body.too_large;
      };
      bool complete = false;
      if (req.is_multipart_form_data()) {
        complete = reader(
            [&](const httplib::MultipartFormData& part) {
              body.parts.push_back(part);
              return true;
            },
            [&](const char* data, size_t n) {
              if (!within_cap(n)) return false;
              body.parts.back().content.append(data, n);
              return true;
            });
      } else {
        complete = reader([&](const char* data, size_t n) {
          if (!within_cap(n)) return false;
          body.data.append(data, n);
          return true;
        });
      }
      // cpp-httplib hands over what arrived even when the body broke off: the reader's result
      // and the guard's framing check say whether it is the whole body.
      auto* framing = RequestFraming::current();
      if (!body.too_large && (!complete || (framing && !framing->body_complete())))
        body.incomplete = true;
      respond(req, body, res);
    };
    if (method == "POST")
      server_->Post(pattern, reading);
    else
      server_->Put(pattern, reading);
    return;
  }
  auto plain = [respond, &route, requests_in_flight = &requests_in_flight_](
                   const httplib::Request& req, httplib::Response& res) {
    auto pin = route.connector ? route.connector->pin_accounts() : nullptr;
    std::optional<InFlight> in_flight;
    if (route.guarded) in_flight.emplace(*requests_in_flight);
    RequestBody body;
    body.data = req.body;
    respond(req, body, res);
  };
  if (method == "GET")
    server_->Get(pattern, plain);
  else if (method == "DELETE")
    server_->Delete(pattern, plain);
  else if (method == "OPTIONS")
    server_->Options(pattern, plain);
  else
    log::error("http", "unsupported method " + method + " for " + route.label);
}

uint64_t Gateway::channel_read_cap(const Connector* connector, uint64_t spec_max_body) const {
  uint64_t cap = spec_max_body;
  if (!cap && connector) {
    for (const auto& account : connector->account_names()) {
      const uint64_t account_cap = connector->max_body(account);
      cap = std::max(cap, account_cap ? account_cap : config_.http.max_body);
    }
  }
  if (payload_ceiling_ != 0) cap = std::min(cap, payload_ceiling_);  // see reload()
  return cap ? cap : config_.http.max_body;
}

std::optional<Reply> Gateway::channel_refusal(const RouteSpec& spec, Connector* connector,
                                              InboundRequest& request) {
  const std::string account(request.account);
  if (!valid_account_segment(account) || !connector || !connector->has_account(account)) {
    return Reply::error(make_error(ErrorCode::unknown_account, "route",
                                   "no " + spec.channel + " account named '" +
                                       (valid_account_segment(account) ? account : "?") +
                                       "' is configured"));
  }
  log::request_route(spec.method + " /v1/" + spec.channel + "/:account", account);
  uint64_t size = request.body.size();
  for (const auto& part : request.multipart) size += part.second.size();
  size = std::max(size, request.body_bytes);  // files of a multipart body count too
  uint64_t limit = connector->max_body(account);
  if (limit == 0) limit = config_.http.max_body;
  if (size > limit) {
    metrics_.rejected.inc({spec.channel, "payload_too_large"});
    Reply reply = Reply::error(make_error(ErrorCode::payload_too_large, "route",
                                          "the body is larger than " + std::to_string(limit) +
                                              " bytes allowed for this account (max_body)"));
    connector->decorate_refusal(request, reply);
    return reply;
  }
  return std::nullopt;
}

Reply Gateway::submit_intake(Intake intake, std::string_view channel, Clock::time_point deadline) {
  if (intake.answer) return std::move(*intake.answer);
  auto accepted = pipeline_->submit_mapped(std::move(intake.mapped), channel, deadline);
  if (!accepted) return Reply::error(accepted.error());
  return intake.durable(*accepted);
}

void Gateway::add_channel_route(RouteSpec spec) {
  Connector* connector = config_.connector(spec.channel);
  // While reading, the account is not known yet: the largest cap of any account; each
  // account's own cap is checked before its handler runs (channel_refusal).
  auto cap = std::make_shared<std::atomic<uint64_t>>(channel_read_cap(connector, spec.max_body));
  channel_caps_.push_back({connector, spec.max_body, cap});
  Route route;
  route.method = spec.method;
  route.path = "/v1/" + spec.channel + "/";
  route.prefix = true;
  route.label = spec.method + " /v1/" + spec.channel + "/:account";
  route.channel = spec.channel;
  route.connector = connector;
  route.cap = cap;
  if (spec.intake) {
    route.intake = [this, spec, connector](InboundRequest& request) -> Intake {
      if (auto refused = channel_refusal(spec, connector, request)) return std::move(*refused);
      return spec.intake(request);
    };
    route.handler = [this, intake = route.intake, channel = spec.channel](InboundRequest& request) {
      return submit_intake(intake(request), channel, request.deadline);
    };
  } else {
    route.handler = [this, spec, connector](InboundRequest& request) {
      if (auto refused = channel_refusal(spec, connector, request)) return std::move(*refused);
      return spec.handler(request);
    };
  }
  register_handler(add_route_entry(std::move(route)), "/v1/" + spec.channel + "/([^/]+)");
}

void Gateway::add_route(std::string method, std::string path, uint64_t max_body,
                        RouteHandler handler) {
  Route route;
  route.method = method;
  route.label = method + " " + path;
  route.cap = std::make_shared<std::atomic<uint64_t>>(max_body ? max_body : config_.http.max_body);
  // httplib matches routes as regular expressions: escape the fixed path.
  static const std::regex special(R"([.^$|()\[\]{}*+?\\])");
  route.prefix = path.size() >= 2 && path.compare(path.size() - 2, 2, "/*") == 0;
  if (route.prefix) {
    path.pop_back();  // ".../" : body caps and metrics treat it as a prefix
    route.label = method + " " + path;
  }
  route.path = path;
  std::string pattern = std::regex_replace(path, special, R"(\$&)") + (route.prefix ? ".+" : "");
  route.handler = [handler = std::move(handler)](InboundRequest& request) {
    return handler(request);
  };
  register_handler(add_route_entry(std::move(route)), pattern);
}

void Gateway::create_media_proxy() {
  const HttpConfig& http = config_.http;
  MediaProxyLimits limits;
  limits.workers = http.media_workers;
  limits.queue = http.media_queue;
  limits.first_byte_timeout = http.media_first_byte_timeout;
  limits.timeout = http.media_timeout;
  media_ = std::make_unique<MediaProxy>(limits, metrics_);
  const MediaProxy& media = *media_;
  metrics_.add_gauge("omnigate_media_in_flight",
                     "Media proxy downloads running or waiting for a worker (http.media_workers "
                     "+ http.media_queue at most).",
                     [&media] { return static_cast<double>(media.in_flight()); });
}

void Gateway::add_media_source(std::string channel, MediaSource source) {
  media_->add_source(std::move(channel), std::move(source));
}

void Gateway::add_builtin_routes() {
  auto builtin = [this](std::string method, std::string path,
                        std::function<Reply(InboundRequest&)> handler) {
    Route route;
    route.method = std::move(method);
    route.path = std::move(path);
    route.label = route.method + " " + route.path;
    route.cap = std::make_shared<std::atomic<uint64_t>>(config_.http.max_body);
    route.guarded = false;
    route.handler = std::move(handler);
    const std::string pattern = route.path;  // no regex specials in these paths
    register_handler(add_route_entry(std::move(route)), pattern);
  };
  builtin("GET", "/healthz", [](InboundRequest&) { return Reply::json(200, {{"status", "ok"}}); });
  builtin("GET", "/readyz", [this](InboundRequest&) { return readiness_reply(); });
  builtin("GET", "/metrics", [this](InboundRequest&) {
    return Reply::text(200, metrics_.render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  if (config_.http.noop_route) {
    // The benchmark's ceiling: the same server, plumbing and metrics, no parse or publish.
    auto noop = [](InboundRequest&) { return Reply::json(202, {{"status", "accepted"}}); };
    builtin("POST", "/v1/noop", noop);
    builtin("GET", "/v1/noop", noop);
  }
}

void Gateway::add_status_route() {
  // Through add_route: a wrong token is an auth failure like any other (counted, throttled).
  add_route("GET", "/status", 0,
            [this](const InboundRequest& request) { return status_reply(request); });
}

Reply Gateway::status_reply(const InboundRequest& request) const {
  if (config_.http.status_token.empty()) {
    return Reply::error(make_error(ErrorCode::not_found, "route",
                                   "the status page is off: set http.status_token (a secret, "
                                   "e.g. ${OMNIGATE_STATUS_TOKEN}) to turn it on"));
  }
  if (!status_authorized(request, config_.http.status_token)) {
    Reply refused = Reply::error(make_error(ErrorCode::unauthorized, "verify",
                                            "missing or wrong status token (Authorization: "
                                            "Bearer <token>, or Basic with it as the password)"));
    refused.headers.emplace_back("WWW-Authenticate",
                                 "Basic realm=\"omnigate status\", charset=\"UTF-8\"");
    return refused;
  }
  StatusSources sources{config_,
                        metrics_,
                        publisher_->readiness(),
                        spooling_sink_->stats(),
                        spooling_sink_->full(),
                        started_at_,
                        now_millis()};
  nlohmann::json status = status_json(sources);
  const bool as_json = request.query_param("format") == "json";
  Reply reply = as_json ? Reply::json(200, status) : Reply::html(200, status_html(status));
  reply.headers.emplace_back("Cache-Control", "no-store");
  return reply;
}

Reply Gateway::readiness_reply() const {
  using nlohmann::json;
  NatsReadiness nats = publisher_->readiness();
  const SeenIndex& index = publisher_->seen_index();
  json body = {{"stream", config_.nats.stream.name},
               {"nats", {{"connected", nats.connected}, {"stream_ready", nats.stream_ready}}},
               {"dedup_index", {{"caught_up", index.caught_up()}, {"ids", index.size()}}}};
  std::string reason, problem;
  if (!nats.connected) {
    reason = "nats_disconnected";
    problem = nats.problem;
  } else if (!nats.stream_ready) {
    reason = "stream_missing";
    problem = nats.problem;
  } else if (!index.caught_up()) {
    reason = "dedup_index_loading";
    problem = "the dedup index is still reading the stream after start";
  }
  SpoolStats spool = spooling_sink_->stats();
  const bool spool_full = spooling_sink_->full();
  body["spool"] = {{"depth", spool.depth}, {"bytes", spool.bytes}, {"full", spool_full}};
  if (spool.oldest_ms)
    body["spool"]["oldest_age_seconds"] = (now_millis_count() - *spool.oldest_ms) / 1000.0;
  if (reason.empty() && spool.depth == 0) {
    body["status"] = "ready";
    return Reply::json(200, body);
  }
  bool any_account_spools = false;
  for (const auto& connector : config_.connectors) {
    for (const auto& account : connector->account_names())
      any_account_spools = any_account_spools || connector->spools_when_nats_down(account);
  }
  if (!spool_full && (any_account_spools || reason.empty())) {
    // Spooling (or draining): webhooks and polled events are still made durable here, so a
    // load balancer must keep sending them -- 200, not 503. API accounts (on_nats_down:
    // reject) get 503 per request meanwhile; `reason`/`nats` say why.
    body["status"] = "degraded";
    body["reason"] = "spooling";
    if (!reason.empty()) body["nats_problem"] = reason;
    if (!problem.empty()) body["detail"] = problem;
    return Reply::json(200, body);
  }
  if (reason.empty()) {
    reason = "spool_full";
    problem = "the spool is full (spool.max_bytes) and still draining";
  } else {
    problem += "; and the spool is full (spool.max_bytes)";
  }
  body["status"] = "not_ready";
  body["reason"] = reason;
  body["error"] = {{"code", "not_durable"}, {"message", problem}};
  Reply reply = Reply::json(503, body);
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(config_.http.retry_after);
  reply.headers.emplace_back("Retry-After", std::to_string(seconds.count()));
  return reply;
}

void Gateway::add_spool_gauges() {
  const SpoolingSink& sink = *spooling_sink_;
  metrics_.add_gauge("omnigate_spool_depth", "Interactions in the local spool, not yet drained.",
                     [&sink] { return static_cast<double>(sink.stats().depth); });
  metrics_.add_gauge("omnigate_spool_bytes", "Payload bytes in the local spool (spool.max_bytes).",
                     [&sink] { return static_cast<double>(sink.stats().bytes); });
  metrics_.add_gauge("omnigate_spool_oldest_age_seconds",
                     "Age of the oldest interaction in the spool; 0 when empty.", [&sink] {
                       auto oldest = sink.stats().oldest_ms;
                       return oldest ? (now_millis_count() - *oldest) / 1000.0 : 0.0;
                     });
}

void Gateway::add_dedup_gauges() {
  const SeenIndex& index = publisher_->seen_index();
  metrics_.add_gauge("omnigate_dedup_index_ids",
                     "Interaction ids within the dedup horizon held by the dedup index.",
                     [&index] { return static_cast<double>(index.size()); });
  metrics_.add_gauge("omnigate_dedup_index_read_messages",
                     "Messages the dedup index has read back from the stream since start (its "
                     "catch-up, then only what other instances stored).",
                     [&index] { return static_cast<double>(index.messages_read()); });
  metrics_.add_gauge("omnigate_dedup_index_bytes", "Memory of the dedup index's tables.",
                     [&index] { return static_cast<double>(index.memory_bytes()); });
  metrics_.add_gauge("omnigate_dedup_index_caught_up",
                     "1 once the dedup index has read the stream's horizon after start.",
                     [&index] { return index.caught_up() ? 1.0 : 0.0; });
}

Reply Gateway::too_large_reply(std::string_view method, std::string_view path, uint64_t cap,
                               InboundRequest& request) {
  std::string_view account;
  const Route* found = find_route(method, path, account);
  // The label is the route, never the request's own path: labels must stay a bounded set.
  const std::string label = found ? found->label : std::string(method) + " unmatched";
  log::request_route(label, "");
  metrics_.http_requests.inc({label, "413"});
  Reply reply = Reply::error(make_error(
      ErrorCode::payload_too_large, "route",
      "the body is larger than " + std::to_string(cap) + " bytes allowed for this route"));
  // Refused before the body is read, so before any connector ran: its channel still words
  // the refusal for its callers (the web form: the visitor's language and CORS headers, or a
  // page on another origin could not even read the 413).
  if (found && !found->channel.empty() && found->connector) {
    const std::string name(account);
    if (valid_account_segment(name) && found->connector->has_account(name)) {
      request.account = account;
      request.deadline = Clock::now() + config_.nats.publish_timeout;
      found->connector->decorate_refusal(request, reply);
    }
  }
  return reply;
}

void Gateway::log_request(std::string_view method, int status) {
  log::RequestRecord record = log::request_end();
  if (!config_.log.requests || !log::enabled(log::Level::info)) return;
  std::string route = record.route;
  if (route.size() > method.size() && route.compare(0, method.size(), method) == 0 &&
      route[method.size()] == ' ')
    route.erase(0, method.size() + 1);
  log::Fields fields = {{"method", std::string(method)}, {"route", route}};
  if (!record.account.empty()) fields.emplace_back("account", record.account);
  fields.emplace_back("status", int64_t{status});
  if (record.latency_ms >= 0) fields.emplace_back("latency_ms", record.latency_ms);
  if (!record.first_interaction.empty())
    fields.emplace_back("interaction_id", record.first_interaction);
  if (record.interactions > 1) fields.emplace_back("interactions", record.interactions);
  log::write(log::Level::info, "http", "request", fields);
}

Result<int> Gateway::bind() {
  const HttpConfig& http = config_.http;
  uint64_t largest_cap = http.max_body;
  for (const auto& route : routes_) largest_cap = std::max(largest_cap, route.cap->load());
  payload_ceiling_ = largest_cap;
  if (http.server == "loop") return bind_front();
  // Threads, keep-alive and timeouts are the guard's (gateway/http/http_guard.hpp).
  server_->set_tcp_nodelay(http.tcp_nodelay);
  server_->set_payload_max_length(static_cast<size_t>(largest_cap));

  // Refuse an ambiguous framing, and an oversized declared body, before reading it. Either
  // answer leaves the body unread, so the guard closes the connection after it.
  server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    log::request_begin();  // every parsed request passes here first; its log line is below
    auto* framing = RequestFraming::current();
    if (framing && !framing->framing_problem().empty()) {
      metrics_.http_requests.inc({"unmatched", "400"});
      write_reply(Reply::error(make_error(ErrorCode::bad_request, "route",
                                          "refused framing: " + framing->framing_problem())),
                  res);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!req.has_header("Content-Length")) return httplib::Server::HandlerResponse::Unhandled;
    uint64_t length = std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10);
    const uint64_t cap = route_for(req.method, req.path).max_body;
    if (length <= cap) return httplib::Server::HandlerResponse::Unhandled;
    InboundRequest request = inbound_from(req, RequestBody{}, "", Clock::now());
    Reply reply = too_large_reply(req.method, req.path, cap, request);
    write_reply(reply, res);
    return httplib::Server::HandlerResponse::Handled;
  });
  // cpp-httplib calls this for every response >= 400, including the ones our handlers wrote:
  // only the server's own errors (no route, bad request line, oversized body) get a body here.
  server_->set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        ErrorCode code = ErrorCode::not_found;
        std::string detail = "no route for " + req.method + " " + req.path;
        if (res.status == 413) {
          code = ErrorCode::payload_too_large;
          detail = "the body is larger than this server accepts";
        } else if (res.status == 400) {
          code = ErrorCode::bad_request;
          detail = "malformed HTTP request";
        } else if (res.status == 405) {
          code = ErrorCode::method_not_allowed;
          detail = req.method + " is not allowed on " + req.path;
        } else if (res.status >= 500) {
          code = ErrorCode::internal;
          detail = "internal error";
        }
        metrics_.http_requests.inc({"unmatched", std::to_string(res.status)});
        int status = res.status;
        write_reply(Reply::error(make_error(code, "route", detail)), res);
        res.status = status;
        return httplib::Server::HandlerResponse::Handled;
      }));
  server_->set_exception_handler(
      [this](const httplib::Request& req, httplib::Response& res, std::exception_ptr) {
        log::error("http", "unhandled exception on " + req.method + " " + req.path);
        metrics_.http_requests.inc({"exception", "500"});
        write_reply(Reply::error(make_error(ErrorCode::internal, "route", "internal error")), res);
      });

  // After every response is written: the one request log line (never a path, query or body:
  // the route pattern, the account, the interaction id, the status and the time taken).
  server_->set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    log_request(req.method, res.status);
  });

  // Debian's cpp-httplib is built with a listen backlog of 5: a burst of provider connections
  // would wait for SYN retries. We keep the socket fd and listen() again with a real backlog.
  server_->set_socket_options([this](socket_t fd) {
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_fd_ = fd;
  });
  int port = http.port;
  if (port == 0) {
    port = server_->bind_to_any_port(http.address);
    if (port < 0) port = 0;
  } else if (!server_->bind_to_port(http.address, port)) {
    port = 0;
  }
  if (port == 0) {
    return make_error(ErrorCode::internal, "route",
                      "cannot listen on " + http.address + ":" + std::to_string(http.port) +
                          " (in use, or not permitted)");
  }
  if (listen_fd_ >= 0) ::listen(listen_fd_, http.listen_backlog);
  return port;
}

Result<ReloadOutcome> Gateway::reload(Config next) {
  ReloadOutcome outcome;
  // Outside channels: nothing is applied while running (the listener, the NATS connection, the
  // spool, the consent keys are all in use); each changed key is named.
  outcome.needs_restart = changed_settings(config_.settings, next.settings);
  // The new accounts must fit the running sections (a form's consent text, the signing key):
  // checked against them, not against the new file's.
  Config candidate;
  candidate.file = config_.file;
  candidate.http = config_.http;
  candidate.nats = config_.nats;
  candidate.identity = config_.identity;
  candidate.consent = config_.consent;
  candidate.leases = config_.leases;
  candidate.outbox = config_.outbox;
  candidate.log = config_.log;
  candidate.spool = config_.spool;
  candidate.connectors = std::move(next.connectors);
  candidate.account_fingerprints = std::move(next.account_fingerprints);
  ConfigContext context(config_.file);
  for (const auto& connector : candidate.connectors) connector->check(candidate, context);
  if (!context.problems.empty()) {
    return make_error(ErrorCode::invalid_field, "config",
                      "the new accounts do not fit the running config (a restart would apply "
                      "both):\n" +
                          context.problems_text());
  }
  // A channel that was not running has no routes: they are declared at start.
  for (const auto& fresh : candidate.connectors) {
    if (!config_.connector(fresh->channel()))
      outcome.needs_restart.push_back("channels." + std::string(fresh->channel()));
  }
  for (const auto& running : config_.connectors) {
    const std::string channel(running->channel());
    Connector* fresh = candidate.connector(channel);
    std::unique_ptr<Connector> none;  // the channel's section is gone: every account is removed
    if (!fresh) {
      for (const auto& registration : connector_registry())
        if (registration.channel == channel) none = registration.factory();
      fresh = none.get();
    }
    const AccountChanges changes =
        account_changes(channel, running.get(), fresh, config_, candidate);
    if (changes.empty() || !fresh) continue;
    if (!running->replace_accounts(*fresh, changes)) {
      outcome.needs_restart.push_back("channels." + channel);
      continue;
    }
    for (const auto& account : changes.added)
      outcome.accounts.push_back(channel + "/" + account + " added");
    for (const auto& account : changes.changed)
      outcome.accounts.push_back(channel + "/" + account + " changed");
    for (const auto& account : changes.removed)
      outcome.accounts.push_back(channel + "/" + account + " removed");
    for (const auto& account : changes.removed)
      config_.account_fingerprints.erase(channel + "/" + account);
    for (const auto& names : {changes.added, changes.changed}) {
      for (const auto& account : names) {
        config_.account_fingerprints[channel + "/" + account] =
            candidate.account_fingerprints[channel + "/" + account];
      }
    }
  }
  // Read caps of the channel routes follow their accounts, up to the limit cpp-httplib was
  // given at bind (a larger max_body needs a restart).
  std::set<std::string> too_large;
  for (auto& route : channel_caps_) {
    route.cap->store(channel_read_cap(route.connector, route.spec_max_body),
                     std::memory_order_relaxed);
    if (!route.connector || route.spec_max_body != 0) continue;
    for (const auto& account : route.connector->account_names()) {
      if (route.connector->max_body(account) > payload_ceiling_) {
        too_large.insert("channels." + std::string(route.connector->channel()) + " " + account +
                         " " + route.connector->max_body_key() + " above " +
                         std::to_string(payload_ceiling_));
      }
    }
  }
  outcome.needs_restart.insert(outcome.needs_restart.end(), too_large.begin(), too_large.end());
  metrics_.activity.set_accounts(configured_accounts(config_));
  return outcome;
}

namespace {
// cpp-httplib's req.path is decoded; so is the front's (an account, a media reference). A
// malformed escape stays as sent, as cpp-httplib keeps it: that path then matches no route.
std::string_view decoded_path(std::string_view raw, std::optional<std::string>& storage) {
  if (raw.find('%') == std::string_view::npos) return raw;
  storage = percent_decode_path(raw);
  return storage ? std::string_view(*storage) : raw;
}
}  // namespace

// A front request's route, decided from its head before its body is read -- as cpp-httplib's
// routing does -- so the accounts it routes to are pinned and it counts as in flight while its
// body arrives (a reload meanwhile does not take its account away).
struct Gateway::FrontRoute {
  std::string path;  // decoded
  std::string_view account;
  const Route* route = nullptr;
  std::shared_ptr<const void> accounts;  // the route's accounts as they were: pinned on a worker
  std::unique_ptr<InFlight> in_flight;
};

std::shared_ptr<Gateway::FrontRoute> Gateway::route_front(const RequestHead& head) {
  auto routed = std::make_shared<FrontRoute>();
  std::optional<std::string> decoded;
  routed->path = decoded_path(head.path, decoded);
  routed->route = find_route(head.method, routed->path, routed->account);
  if (routed->route) {
    // Held here, on the loop; pinned on the worker that runs the handler (a pin is per thread).
    if (routed->route->connector) routed->accounts = routed->route->connector->snapshot_accounts();
    if (routed->route->guarded) routed->in_flight = std::make_unique<InFlight>(requests_in_flight_);
  }
  return routed;
}

Result<int> Gateway::bind_front() {
  const HttpConfig& http = config_.http;
  workers_ = std::make_unique<WorkPool>(static_cast<size_t>(http.threads));
  spoolers_ = std::make_unique<WorkPool>(2);
  max_queued_ = static_cast<size_t>(http.threads) * 4;
  LoopServer::Options options;
  options.limits = guard_limits(http);
  options.loops = static_cast<size_t>(http.loops);
  options.listen_backlog = http.listen_backlog;
  options.retry_after = std::chrono::duration_cast<std::chrono::seconds>(http.retry_after);
  options.on_event = [this](GuardEvent e) {
    metrics_.http_refused.inc({std::string(guard_event_name(e))});
  };
  // On the loop thread, before the body is read: the route's cap, and its channel's 413.
  // The cap of the route on_head found (no second lookup), the default where none matched.
  options.body_cap = [this](const RequestHead&, const void* context) -> uint64_t {
    const auto* routed = static_cast<const FrontRoute*>(context);
    return routed && routed->route ? routed->route->cap->load(std::memory_order_relaxed)
                                   : config_.http.max_body;
  };
  options.on_head = [this](const RequestHead& head) -> std::shared_ptr<void> {
    return route_front(head);
  };
  options.too_large = [this](const RequestHead& head, uint64_t cap) {
    std::optional<std::string> decoded;
    const std::string_view path = decoded_path(head.path, decoded);
    InboundRequest request;
    request.method = head.method;
    request.path = path;
    request.headers = head.headers;
    log::request_begin();
    Reply reply = too_large_reply(head.method, path, cap, request);
    log_request(head.method, reply.status);
    return reply;
  };
  auto front = LoopServer::start(http.address, http.port, std::move(options),
                                 [this](FrontRequest& request, Responder responder) {
                                   handle_front(request, std::move(responder));
                                 });
  if (!front) {
    return make_error(ErrorCode::internal, "route",
                      "cannot listen on " + http.address + ":" + std::to_string(http.port) + ": " +
                          front.error().detail);
  }
  front_ = std::move(front.value());
  start_loop_sinks();
  return front_->port();
}

void Gateway::handle_front(FrontRequest& request, Responder responder) {
  // On the request's loop: routed here (cheap), handled on a worker, because a handler may
  // wait for its PubAck. The request's views stay valid until it is answered
  // (loop_server.hpp); the FrontRequest itself lives for this call only: it moves along.
  struct Job {
    FrontRequest request;
    Responder responder;
    std::shared_ptr<FrontRoute> routed;
  };
  auto job = std::make_shared<Job>();
  job->routed = std::static_pointer_cast<FrontRoute>(request.context);
  if (!job->routed) job->routed = route_front(request.head);
  const Route* route = job->routed->route;
  if (!route) {
    log::request_begin(request.received);
    metrics_.http_requests.inc({"unmatched", "404"});
    responder.answer(Reply::error(
        make_error(ErrorCode::not_found, "route",
                   "no route for " + std::string(request.head.method) + " " + job->routed->path)));
    log_request(request.head.method, 404);
    return;
  }
  if (route->intake && intake_on_loop(request, responder, job->routed)) return;
  job->request = std::move(request);
  auto refuse = [this, &job, &responder](const char* why) {
    log::request_begin(job->request.received);
    log::request_route(job->routed->route->label, "");
    metrics_.http_requests.inc({job->routed->route->label, "503"});
    responder.answer(Reply::error(make_error(ErrorCode::not_durable, "route", why)));
    log_request(job->request.head.method, 503);
  };
  // The responder moves into the job only once it is posted: a refused request is answered
  // here, on its loop.
  Responder* answer_to = &job->responder;
  auto run = [this, job] {
    // The request's time counts from when its body was complete, its wait for a worker too.
    log::request_begin(job->request.received);
    const std::string method(job->request.head.method);
    int status = 500;
    try {
      const FrontRoute& routed = *job->routed;
      auto pin = routed.route->connector && routed.accounts
                     ? routed.route->connector->pin_snapshot(routed.accounts)
                     : nullptr;
      Reply reply = front_reply(*routed.route, job->request, routed.path, routed.account);
      status = reply.status;
      // A streamed reply (a media download) is produced and sent from this worker.
      job->responder.answer(std::move(reply));
    } catch (const std::exception&) {
      log::error("http", "unhandled exception on " + method + " " + job->routed->route->label);
      metrics_.http_requests.inc({"exception", "500"});
      status = 500;
      job->responder.answer(
          Reply::error(make_error(ErrorCode::internal, "route", "internal error")));
    }
    job->routed.reset();  // the pin and the in-flight count end with the answer
    log_request(method, status);
  };
  *answer_to = std::move(responder);
  switch (workers_->try_post(std::move(run), max_queued_)) {
    case WorkPool::Admission::posted:
      return;
    case WorkPool::Admission::closed:
      responder = std::move(*answer_to);
      refuse("the gateway is shutting down");
      return;
    case WorkPool::Admission::full:
      // Every worker busy and this many waiting: a provider retries a 503 (Retry-After); a
      // request that waited longer would only miss its deadline.
      responder = std::move(*answer_to);
      refuse("the gateway is at capacity: every worker is busy");
      return;
  }
}

struct Gateway::FrontInbound {
  InboundRequest request;
  std::vector<std::pair<std::string, std::string>> query;  // request.query's views point here
  FormParse form;                                          // and request.multipart's here
  BodyState body;
  FrontInbound() = default;
  FrontInbound(const FrontInbound&) = delete;  // the views above would dangle
};

void Gateway::front_inbound(FrontRequest& front, std::string_view path, std::string_view account,
                            FrontInbound& out) {
  const RequestHead& head = front.head;
  InboundRequest& request = out.request;
  request.method = head.method;
  request.path = path;
  request.account = account;
  request.body = front.body;
  request.body_bytes = front.body.size();
  request.remote_addr = front.peer_ip;
  request.headers = head.headers;
  if (!head.query.empty()) {
    // Every pair, as cpp-httplib keeps them: the head's own cap bounds how many there are.
    out.query = parse_urlencoded(head.query, head.query.size() + 1);
    request.query.reserve(out.query.size());
    for (const auto& [name, value] : out.query) request.query.emplace_back(name, value);
  }
  if (request.media_type() == "multipart/form-data") {
    // As cpp-httplib hands them over: the fields, not the files; the body itself is not kept.
    out.form = parse_multipart_form(request.header("Content-Type"), front.body,
                                    limits::kMaxMapEntries + 1);
    out.body.problem = out.form.problem;
    request.body = {};
    for (const auto& part : out.form.parts) {
      if (part.filename.empty()) request.multipart.emplace_back(part.name, part.content);
    }
  }
}

Reply Gateway::front_reply(const Route& route, FrontRequest& front, std::string_view path,
                           std::string_view account) {
  FrontInbound inbound;
  front_inbound(front, path, account, inbound);
  return answer_route(route, inbound.request, inbound.body);
}

bool Gateway::intake_on_loop(FrontRequest& front, Responder& responder,
                             std::shared_ptr<FrontRoute>& routed) {
  if (!loop_sinks_ready_.load(std::memory_order_acquire)) return false;
  const Route* route = routed->route;
  // A request between its route and its answer; its views (head, body) stay valid until then.
  struct Pending {
    Responder responder;
    std::shared_ptr<FrontRoute> routed;  // its pin and in-flight count end with the answer
    std::string method;
    std::string client;
    Reply (*durable)(const std::vector<Accepted>&) = nullptr;
    log::SuspendedRequest log;
    bool suspended = false;
    std::function<void()> gone;  // set once submitted: stop() waits for every submitted one
    ~Pending() {
      if (gone) gone();
    }
    void suspend() {
      log = log::request_suspend();
      suspended = true;
    }
    void resume() {
      if (suspended) log::request_resume(std::move(log));
      suspended = false;
    }
  };
  auto pending = std::make_shared<Pending>();
  pending->responder = std::move(responder);
  pending->routed = routed;
  pending->method = front.head.method;
  log::request_begin(front.received);
  // Every answer, here or later, on this loop or a worker: what answer_route gives each.
  auto answer = [this, route](Pending& p, Reply reply) {
    if (!p.routed) return;  // answered already (a failure answered 500)
    settle(*route, p.routed->account, p.client, reply);
    const int status = reply.status;
    p.responder.answer(std::move(reply));
    p.routed.reset();
    log_request(p.method, status);
  };
  // What an exception leaves: a 500 if nothing was answered, as the threaded server's.
  auto failed = [this, route](Pending& p) {
    p.resume();
    log::error("http", "unhandled exception on " + p.method + " " + route->label);
    metrics_.http_requests.inc({"exception", "500"});
    if (!p.routed) return;
    p.responder.answer(Reply::error(make_error(ErrorCode::internal, "route", "internal error")));
    p.routed.reset();
    log_request(p.method, 500);
  };
  if (loop_intake_closed_.load(std::memory_order_acquire)) {
    log::request_route(route->label, "");
    answer(*pending, Reply::error(make_error(ErrorCode::not_durable, "route",
                                             "the gateway is shutting down")));
    return true;
  }
  try {
    // Pinned while the handler runs here (a pin is per thread; a worker pins again).
    auto pin = route->connector && routed->accounts
                   ? route->connector->pin_snapshot(routed->accounts)
                   : nullptr;
    FrontInbound inbound;
    front_inbound(front, routed->path, routed->account, inbound);
    if (auto refused = admit(*route, inbound.request, inbound.body, pending->client)) {
      answer(*pending, std::move(*refused));
      return true;
    }
    Intake intake = route->intake(inbound.request);
    if (intake.answer) {
      answer(*pending, std::move(*intake.answer));
      return true;
    }
    pending->durable = intake.durable;
    const Clock::time_point deadline = inbound.request.deadline;
    {
      std::lock_guard lock(loop_intakes_mutex_);
      ++loop_intakes_;
    }
    pending->gone = [this] {
      std::lock_guard lock(loop_intakes_mutex_);
      if (--loop_intakes_ == 0) loop_intakes_idle_.notify_all();
    };
    // Suspended while the loop serves others; `done` may run inside the call below.
    pending->suspend();
    auto done = [pending, answer, failed](Result<std::vector<Accepted>> accepted,
                                          std::vector<std::string> durable_ids) {
      try {  // on the loop: nothing may escape (it would end the process)
        pending->resume();
        for (const auto& id : durable_ids) log::request_interaction(id);
        Reply reply = accepted ? pending->durable(*accepted) : Reply::error(accepted.error());
        answer(*pending, std::move(reply));
      } catch (const std::exception&) {
        failed(*pending);
      }
    };
    if (pipeline_->submit_mapped_async(intake.mapped, route->channel, deadline,
                                       *loop_sinks_[front.loop_index], std::move(done))) {
      return true;
    }
    // Not without blocking (NATS away, the spool holding interactions, the dedup index still
    // reading the stream, a raw archive write): what was mapped goes through the blocking
    // pipeline on a worker, as the threaded server's handler does.
    auto run = [this, pending, answer, failed, intake = std::move(intake), deadline]() mutable {
      try {
        pending->resume();
        const FrontRoute& held = *pending->routed;
        auto pin = held.route->connector && held.accounts
                       ? held.route->connector->pin_snapshot(held.accounts)
                       : nullptr;
        Reply reply = submit_intake(std::move(intake), held.route->channel, deadline);
        pin.reset();
        answer(*pending, std::move(reply));
      } catch (const std::exception&) {
        failed(*pending);
      }
    };
    const auto admission = workers_->try_post(std::move(run), max_queued_);
    if (admission == WorkPool::Admission::posted) return true;
    pending->resume();
    answer(*pending,
           Reply::error(make_error(ErrorCode::not_durable, "route",
                                   admission == WorkPool::Admission::closed
                                       ? "the gateway is shutting down"
                                       : "the gateway is at capacity: every worker is busy")));
  } catch (const std::exception&) {
    failed(*pending);
  }
  return true;
}

void Gateway::start_loop_sinks() {
  for (size_t i = 0; i < front_->loop_count(); ++i) {
    auto started = LoopPublisher::start(front_->loop(i), *publisher_, static_cast<int>(i));
    if (!started) {
      // The routes still work, each on a worker with the shared connection.
      log::warn("http",
                "webhooks are handled on workers: the event loop's NATS connection "
                "cannot start: " +
                    started.error().detail);
      stop_loop_sinks(Clock::now());
      return;
    }
    loop_sinks_.push_back(
        std::make_unique<LoopSink>(front_->loop(i), **started, *spooling_sink_, *spoolers_));
    loop_publishers_.push_back(std::move(started.value()));
  }
  loop_sinks_ready_.store(true, std::memory_order_release);
}

void Gateway::stop_loop_sinks(Clock::time_point until) {
  loop_sinks_ready_.store(false, std::memory_order_release);
  {
    std::unique_lock lock(loop_intakes_mutex_);
    loop_intakes_idle_.wait_until(lock, until, [this] { return loop_intakes_ == 0; });
  }
  // Each publisher is destroyed on its loop (what it still has open is answered 503 there),
  // then its sink.
  for (size_t i = 0; i < loop_publishers_.size(); ++i) {
    std::promise<void> gone;
    front_->loop(i).post([this, i, &gone] {
      loop_publishers_[i].reset();
      if (i < loop_sinks_.size()) loop_sinks_[i].reset();
      gone.set_value();
    });
    gone.get_future().wait();
  }
  loop_publishers_.clear();
  loop_sinks_.clear();
}

void Gateway::serve() {
  if (!front_) {
    server_->listen_after_bind();
    return;
  }
  std::unique_lock lock(front_mutex_);
  front_stopped_signal_.wait(lock, [this] { return front_stopped_; });
}

void Gateway::stop() {
  if (front_) {
    {
      std::lock_guard lock(front_mutex_);
      if (front_stopping_) return;
      front_stopping_ = true;
    }
    workers_->close_intake();  // from here a request is refused on its loop (503)
    loop_intake_closed_.store(true, std::memory_order_release);
    // What is being handled is answered first, within the time a handler has for its PubAck;
    // then the connections close (a download still streaming stops at its next piece; a
    // request still handled keeps its bytes until it is done) and the rest is waited for.
    const auto until = Clock::now() + config_.nats.publish_timeout + std::chrono::seconds(1);
    workers_->drain_until(until);
    stop_loop_sinks(until);
    front_->stop();
    workers_->drain();
    {
      std::lock_guard lock(front_mutex_);
      front_stopped_ = true;
    }
    front_stopped_signal_.notify_all();
    return;
  }
  if (server_ && server_->is_running()) server_->stop();
}

}  // namespace omnigate

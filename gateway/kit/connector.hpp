// The contract between the gateway core and a channel connector. A connector is a folder
// under connectors/ that registers itself with OMNIGATE_REGISTER_CONNECTOR and one line in
// connectors/CMakeLists.txt; the core never names a channel.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/config/config_reader.hpp"
#include "gateway/http/media_proxy.hpp"
#include "gateway/http/request.hpp"
#include "gateway/model/submission.hpp"

namespace omnigate {

struct Config;
class Pipeline;
class Metrics;
class ConsentService;
class CursorStore;
class NameCache;
class RawArchive;

using RouteHandler = std::function<Reply(const InboundRequest&)>;

// What a webhook's handler makes of one request when all it does is check and map: either an
// answer of its own (a refusal, a handshake), or the interactions for the core to make durable
// with the answer to give once every one is (a failure is answered with its error, which the
// provider retries). The core submits them -- on the event-loop front without a worker thread.
struct Intake {
  Intake(Reply reply) : answer(std::move(reply)) {}  // NOLINT: a refusal is returned as is
  Intake(Mapped mapped, Reply (*durable)(const std::vector<Accepted>& accepted))
      : mapped(std::move(mapped)), durable(durable) {}
  std::optional<Reply> answer;
  Mapped mapped;
  Reply (*durable)(const std::vector<Accepted>& accepted) = nullptr;
};
// Must not block (no provider call, no lock held for long): it may run on an event loop.
using IntakeHandler = std::function<Intake(const InboundRequest&)>;

struct RouteSpec {
  std::string method;   // GET, POST, ...
  std::string channel;  // the route is /v1/<channel>/<account>
  // The cap while reading the body, before the account is known; 0 = the largest max_body of
  // the connector's accounts (each account's own cap is then enforced by the core).
  uint64_t max_body = 0;
  RouteHandler handler;
  // Set instead of `handler` for a route that only checks and maps (Telegram's webhook, the API).
  IntakeHandler intake;
};

// Where a connector declares its routes; the gateway does the plumbing (body caps,
// metrics per route and status, the JSON error format, unknown routes).
class Router {
 public:
  virtual ~Router() = default;
  // `/v1/<channel>/<account>` with the account segment checked against [A-Za-z0-9_-]{1,64}.
  virtual void add_channel_route(RouteSpec spec) = 0;
  // A fixed path outside /v1/<channel>/ (consent pages, static assets); request.account is "".
  // A path ending in "/*" matches everything below it; the handler reads request.path.
  virtual void add_route(std::string method, std::string path, uint64_t max_body,
                         RouteHandler handler) = 0;
  // Serves GET /v1/media/<channel>/<account>/<ref> through the core's media proxy (bearer check,
  // bounded download pool, error statuses before the first byte; gateway/http/media_proxy.hpp).
  virtual void add_media_source(std::string channel, MediaSource source) = 0;
};

// What a started connector may use; it lives as long as the gateway.
struct GatewayContext {
  const Config& config;
  Pipeline& pipeline;
  Metrics& metrics;
  ConsentService& consent;
  CursorStore& cursors;
  // Display names looked up from a provider API, shared by every instance (VK users.get).
  NameCache& names;
  // Raw bytes kept beside the stream (Submission::archive_raw), read back by media sources.
  RawArchive& raw_archive;
};

// What a reload (SIGHUP) changes in one channel's accounts, by comparing the running file's and
// the new file's values of each account (secrets included, as read from their files).
struct AccountChanges {
  std::vector<std::string> added, removed, changed;
  bool empty() const { return added.empty() && removed.empty() && changed.empty(); }
};

class Connector {
 public:
  virtual ~Connector() = default;
  virtual std::string_view channel() const = 0;
  // Reads one channels.<channel>[] entry. `account` is already validated and unique; the
  // connector reads its own keys from `entry` (unknown keys are rejected after this returns).
  virtual void read_account(const std::string& account, ConfigMap& entry) = 0;
  virtual bool has_account(std::string_view account) const = 0;
  // The body cap of the account's requests; the core answers 413 above it before the handler
  // runs. 0 = http.max_body. (ChannelConnector reads it from the account's max_body key.)
  virtual uint64_t max_body(std::string_view account) const { return 0; }
  // The account key of that cap: max_body, or the channel's own word where it is clearer
  // (e-mail: max_message, the largest message taken).
  virtual std::string max_body_key() const { return "max_body"; }
  // Every configured account (for the route's read cap and for checks over all accounts).
  virtual std::vector<std::string> account_names() const { return {}; }
  // The default of the account key on_nats_down (read by the core for every channel): true =
  // `spool` (providers that punish errors or drop undelivered events: webhooks, pollers),
  // false = `reject`, 503 with Retry-After (callers that retry on their own: an API).
  virtual bool spools_by_default() const { return true; }
  // The account's on_nats_down: true = `spool`, false = `reject`. Unknown accounts: true.
  virtual bool spools_when_nats_down(std::string_view account) const { return true; }
  // Why `on_nats_down: spool` is refused for this channel ("" = it may spool): e-mail, whose
  // whole message must reach the raw archive in JetStream before it is taken.
  virtual std::string why_never_spools() const { return ""; }
  // Called on the core's own refusals of a request to this channel (a body above the account's
  // max_body) before they are sent: e.g. the web form adds its CORS headers.
  virtual void decorate_refusal(const InboundRequest& request, Reply& reply) const {}
  // After every section is read: checks that need the rest of the config (e.g. consent texts
  // a form refers to). Report with context.problem(mark, ...) using marks kept while reading.
  virtual void check(const Config& config, ConfigContext& context) const {}
  // Declares routes and starts background work (pollers).
  virtual void start(GatewayContext& context, Router& router) = 0;
  virtual void stop() {}
  // A reload (SIGHUP), on a started connector: takes the accounts `fresh` (a connector of the
  // same channel, just read from the new file, never started) read. A request in flight keeps
  // the account it began with; pollers of removed and changed accounts stop, those of added
  // and changed ones start. false: this connector cannot change accounts while running.
  virtual bool replace_accounts(Connector& fresh, const AccountChanges& changes) { return false; }
  // While the returned guard lives, on this thread, the connector answers from its accounts as
  // they are now: the core takes one when a request is routed (before its body is read), so a
  // reload meanwhile never changes or removes the account under a request in flight.
  virtual std::shared_ptr<const void> pin_accounts() const { return nullptr; }
  // The same in two halves, for a request routed on one thread and handled on another (the
  // event-loop front): the accounts as they are now, held but pinned nowhere; then, on the
  // handling thread, pinned there while the returned guard lives (destroyed on that thread).
  virtual std::shared_ptr<const void> snapshot_accounts() const { return nullptr; }
  virtual std::shared_ptr<const void> pin_snapshot(std::shared_ptr<const void> snapshot) const {
    return nullptr;
  }
  // `omnigate <channel> <args...>`: operator commands (e.g. registering a webhook). Returns a
  // process exit code; 2 with a usage line for unknown arguments.
  virtual int command(const std::vector<std::string>& args, const Config& config) { return 2; }
  // The usage of command(): one line per command, each starting "omnigate <channel> ", for
  // `omnigate --help` and `omnigate <channel> --help` (called on an unconfigured connector).
  // Empty: `--help` hands {"--help"} to command() and shows the usage it prints.
  virtual std::string command_usage() const { return {}; }
  // How an account runs, for the start-up log line (e.g. Telegram's "webhook" or "poll");
  // never a secret. Empty: nothing beyond on_nats_down to say.
  virtual std::string account_mode(std::string_view account) const { return {}; }
  // The exit code of `omnigate <channel> ...` when the config cannot be loaded or has no
  // account of the channel: 2, or what the command's callers expect (an MTA's pipe transport:
  // 78, EX_CONFIG, which it reports instead of retrying). Asked of a connector made for the
  // purpose (no account read).
  virtual int config_error_exit_code() const { return 2; }
};

using ConnectorFactory = std::function<std::unique_ptr<Connector>()>;

struct ConnectorRegistration {
  std::string channel;
  ConnectorFactory factory;
};

// Registered connectors, in registration order.
std::vector<ConnectorRegistration>& connector_registry();

struct ConnectorRegistrar {
  ConnectorRegistrar(std::string channel, ConnectorFactory factory);
};

#define OMNIGATE_CONCAT_INNER(a, b) a##b
#define OMNIGATE_CONCAT(a, b) OMNIGATE_CONCAT_INNER(a, b)
#define OMNIGATE_REGISTER_CONNECTOR(channel_name, ConnectorType)                        \
  static ::omnigate::ConnectorRegistrar OMNIGATE_CONCAT(omnigate_registrar_, __LINE__)( \
      channel_name, [] { return std::make_unique<ConnectorType>(); })

}  // namespace omnigate

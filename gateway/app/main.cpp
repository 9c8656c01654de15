// omnigate: run the gateway, check a config, or tail the interactions stream.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gateway/app/gateway.hpp"
#include "gateway/app/tail.hpp"
#include "gateway/config/config.hpp"  // also Spool (gateway/spool/spool.hpp), for `omnigate spool`
#include "gateway/config/config_reader.hpp"
#include "gateway/consent/consent.hpp"
#include "gateway/core/build_info.hpp"
#include "gateway/core/clock.hpp"
#include "gateway/core/log.hpp"
#include "gateway/mail/outbox.hpp"
#include "gateway/model/identifiers.hpp"
#include "gateway/model/interaction.hpp"

namespace {

// One line per subcommand; each answers --help with its own usage (below). Connector commands
// are listed from the registry (Connector::command_usage).
constexpr const char* kOverview = R"(omnigate - omnichannel intake gateway

usage: omnigate <command> [options]     (omnigate <command> --help: its options)

  run [--config FILE]                 serve (default config: config/omnigate.example.yaml)
  check-config FILE                   validate a config file without starting
  tail [options]                      print interactions from JetStream as they arrive
  consent-link --account A --email E  print an unsubscribe link for a CRM mailing
  outbox list|resend                  pending or failed confirmation mail; send again
  spool stats [--config FILE]         depth, bytes and oldest age of the local spool
  version                             version, git commit and build date
  help                                this text
)";

constexpr const char* kRunUsage = R"(usage: omnigate run [--config FILE]

Serves HTTP and publishes to NATS JetStream until SIGINT or SIGTERM (a clean stop: exit 0).
SIGHUP reloads the config file and its secret files: accounts added, changed or removed take
effect at once; other changes are logged as needing a restart.
  --config FILE      the config (default config/omnigate.example.yaml); secrets come from ${VAR}
)";

constexpr const char* kCheckConfigUsage =
    R"(usage: omnigate check-config FILE [--print nats.url|http.address|http.port]

Validates FILE (keys, values, secrets present) without starting; exit 0 ok, 2 with the problems.
  --print KEY        print one resolved value (for scripts)
)";

constexpr const char* kTailUsage = R"(usage: omnigate tail [options]

Prints interactions from JetStream, one JSON document per line (new ones, unless told otherwise);
reconnects by itself when NATS restarts.
  --config FILE      take the NATS URL and stream from this config (only its nats: section)
  --nats URL         NATS server (default: nats.url of the config, else nats://127.0.0.1:4222)
  --channel C        only this channel (%s)
  --account A        only this account
  --kind K           only this kind (%s)
  --durable NAME     a durable consumer: resumes where the last run stopped, acks each line
  --from-start       replay the whole stream (ephemeral consumer)
  --since T          from a time: RFC 3339 (2026-12-01T09:00:00Z) or a duration ago (10m, 2h, 7d)
  --count N          exit after N interactions
  --idle-exit MS     exit after MS milliseconds with nothing new
  --pretty           one line per interaction for a person: local time, channel/account, kind,
                     name, the first 80 characters of the text
)";

constexpr const char* kConsentLinkUsage =
    R"(usage: omnigate consent-link --account A --email E [options]

Prints an unsubscribe link (and its List-Unsubscribe headers) for a CRM mailing.
  --config FILE      (default config/omnigate.example.yaml): signing key, public URL
  --channel C        channel of the withdrawal (default webform; the account must exist)
  --account A        the account the link is minted for
  --email E          the address being unsubscribed
  --purpose P        repeatable (default marketing)
  --via C            channel being unsubscribed from, repeatable (default email)
  --language ru|en   language of the page (default ru)
)";

constexpr const char* kOutboxUsage = R"(usage: omnigate outbox list [--failed] [--config FILE]
       omnigate outbox resend <id>|--all-failed [--config FILE]

list: pending (or finally failed) confirmation mail: id, attempts, age, masked address, last error.
resend: queue failed mail again. Needs only the config's nats: section.
)";

constexpr const char* kSpoolUsage = R"(usage: omnigate spool stats [--config FILE]

Depth, bytes and oldest age of the local spool (reads spool.path; works while omnigate runs).
)";

constexpr const char* kVersionUsage = R"(usage: omnigate version

Prints the version, the git commit it was built from and the build date.
)";

bool asks_for_help(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") return true;
  }
  return false;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::vector<std::string> channel_names() {
  std::vector<std::string> out;
  for (const auto& registration : omnigate::connector_registry())
    out.push_back(registration.channel);
  return out;
}

std::vector<std::string> kind_names() {
  return {omnigate::kKinds.begin(), omnigate::kKinds.end()};
}

std::string tail_usage() {
  char buffer[4096];
  std::snprintf(buffer, sizeof buffer, kTailUsage, joined(channel_names()).c_str(),
                joined(kind_names()).c_str());
  return buffer;
}

// The overview, and every registered connector's commands under it.
void print_overview(FILE* out) {
  std::fprintf(out, "%s", kOverview);
  std::string channels;
  for (const auto& registration : omnigate::connector_registry()) {
    std::string usage = registration.factory()->command_usage();
    std::istringstream lines(usage);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("omnigate ", 0) == 0) line.erase(0, 9);
      channels += "  " + line + "\n";
    }
  }
  if (!channels.empty())
    std::fprintf(out, "\nchannel commands (each takes --config FILE):\n%s", channels.c_str());
}

// "omnigate <command>: unknown option X" and what is valid, exit code 2.
int unknown_option(const char* command, const std::string& option, const std::string& usage) {
  std::fprintf(stderr, "omnigate %s: unknown option '%s'\n\n%s", command, option.c_str(),
               usage.c_str());
  return 2;
}

constexpr const char* kDefaultConfig = "config/omnigate.example.yaml";

// A config that does not load: its problems, and -- in a checkout where `make run` generated
// the development secrets -- how to use them, the usual cause in a second terminal. Exit 2.
int config_problem(const std::string& detail) {
  std::fprintf(stderr, "%s", detail.c_str());
  if (detail.find("is not set") != std::string::npos && std::filesystem::exists("var/dev.env")) {
    std::fprintf(stderr,
                 "hint: `make run` keeps the development secrets in var/dev.env; load them with\n"
                 "  set -a; . var/dev.env; set +a\n"
                 "or run bin/omnigate, which does that (export PATH=$PWD/bin:$PATH)\n");
  }
  return 2;
}

int check_config(const std::string& path, const std::string& print_key) {
  auto config = omnigate::load_config_file(path);
  if (!config) {
    return config_problem(config.error().detail);
  }
  if (!print_key.empty()) {
    // For scripts (make run): the resolved value of one key, after ${ENV} substitution.
    if (print_key == "nats.url")
      std::printf("%s\n", config->nats.url.c_str());
    else if (print_key == "http.address")
      std::printf("%s\n", config->http.address.c_str());
    else if (print_key == "http.port")
      std::printf("%d\n", config->http.port);
    else {
      std::fprintf(stderr,
                   "omnigate check-config: --print supports nats.url, http.address, http.port\n");
      return 2;
    }
    return 0;
  }
  const auto& nats = config->nats;
  if (nats.stream.max_age.count() > 0 && nats.dedup_horizon > nats.stream.max_age) {
    // The stream is the dedup record: an id older than max_age is gone from it.
    std::fprintf(stderr,
                 "%s: warning: nats.stream.max_age is shorter than nats.dedup_horizon; a retry "
                 "older than max_age will be published again (set max_age to 0 or >= "
                 "dedup_horizon)\n",
                 path.c_str());
  }
  std::printf("%s: ok (%zu channel%s", path.c_str(), config->connectors.size(),
              config->connectors.size() == 1 ? "" : "s");
  for (const auto& c : config->connectors)
    std::printf(" %.*s", int(c->channel().size()), c->channel().data());
  std::printf(")\n");
  return 0;
}

// The NATS URL(s) without user:password@ or a token: the start-up line names no secret.
std::string without_credentials(const std::string& urls) {
  std::string out, url;
  std::istringstream list(urls);
  while (std::getline(list, url, ',')) {
    size_t scheme = url.find("://");
    size_t host = scheme == std::string::npos ? 0 : scheme + 3;
    size_t at = url.find('@', host);
    if (at != std::string::npos) url.erase(host, at + 1 - host);
    out += (out.empty() ? "" : ",") + url;
  }
  return out;
}

// Before serving: what runs, from which build and config, against which NATS and stream, with
// which channels and accounts -- names and modes only.
void log_start(const std::string& path, const omnigate::Config& config) {
  const auto& build = omnigate::build_info();
  std::string channels;
  for (const auto& connector : config.connectors) {
    std::string channel(connector->channel());
    std::string accounts;
    for (const auto& account : connector->account_names()) {
      std::string mode = connector->account_mode(account);
      mode += (mode.empty() ? "" : ",");
      mode += config.spools_when_nats_down(channel, account) ? "spool" : "reject";
      accounts += (accounts.empty() ? "" : " ") + account + "(" + mode + ")";
    }
    channels += (channels.empty() ? "" : "; ") + channel + ": " + accounts;
  }
  omnigate::log::write(omnigate::log::Level::info, "main", "starting",
                       {{"version", std::string(build.version)},
                        {"commit", std::string(build.commit)},
                        {"config", path},
                        {"nats", without_credentials(config.nats.url)},
                        {"stream", config.nats.stream.name},
                        {"replicas", int64_t{config.nats.stream.replicas}},
                        {"channels", channels.empty() ? std::string("none") : channels}});
}

// SIGHUP: the file (and the secret files it names) read again; the accounts' changes applied,
// the rest logged as needing a restart. A file that does not load changes nothing.
void apply_reload(const std::string& path, omnigate::Gateway& gateway);

void reload(const std::string& path, omnigate::Gateway& gateway) {
  // The process is serving: nothing a file holds may end it.
  try {
    apply_reload(path, gateway);
  } catch (const std::exception& e) {
    omnigate::log::write(omnigate::log::Level::error, "main",
                         "reload failed; the running config is kept", {{"problem", e.what()}});
  }
}

void apply_reload(const std::string& path, omnigate::Gateway& gateway) {
  namespace log = omnigate::log;
  log::info("main", "reloading " + path + " (SIGHUP)");
  auto next = omnigate::load_config_file(path);
  if (!next) {
    log::write(log::Level::error, "main",
               "reload refused: the file does not load; the running config is kept",
               {{"problems", next.error().detail}});
    return;
  }
  auto outcome = gateway.reload(std::move(next.value()));
  if (!outcome) {
    log::write(log::Level::error, "main", "reload refused; the running config is kept",
               {{"problems", outcome.error().detail}});
    return;
  }
  for (const auto& change : outcome->accounts) log::info("main", "reload: " + change);
  if (!outcome->needs_restart.empty()) {
    std::string keys;
    for (const auto& key : outcome->needs_restart) keys += (keys.empty() ? "" : ", ") + key;
    log::write(log::Level::warn, "main",
               "changed in the file but needs a restart; the running value is kept",
               {{"keys", keys}});
  }
  log::write(log::Level::info, "main", "reloaded",
             {{"accounts_changed", static_cast<int64_t>(outcome->accounts.size())},
              {"needs_restart", static_cast<int64_t>(outcome->needs_restart.size())}});
}

int run(const std::string& path) {
  // Block the stop signals in every thread; one thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);   // reload the config and secret files (reload() below)
  sigaddset(&signals, SIGUSR1);  // how the main thread wakes the waiter when serve() ends
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto config = omnigate::load_config_file(path);
  if (!config) return config_problem(config.error().detail);
  omnigate::log::set_format(config->log.format);
  log_start(path, config.value());
  auto gateway = omnigate::Gateway::create(std::move(config.value()));
  if (!gateway) {
    std::fprintf(stderr, "omnigate: %s\n", gateway.error().detail.c_str());
    return 1;
  }
  auto port = gateway.value()->bind();
  if (!port) {
    std::fprintf(stderr, "omnigate: %s\n", port.error().detail.c_str());
    return 1;
  }
  // The port is bound (and listening: bind() calls listen()): a client may connect now, so
  // this is the line that says so.
  const auto& http = gateway.value()->config().http;
  omnigate::log::info("http", "listening on " + http.address + ":" + std::to_string(*port) +
                                  " with " + std::to_string(http.threads) + " workers");
  std::atomic<bool> signalled{false};
  std::thread waiter([&] {
    int signal_number = 0;
    while (true) {
      sigwait(&signals, &signal_number);
      if (signal_number != SIGHUP) break;
      reload(path, *gateway.value());
    }
    if (signal_number == SIGUSR1) return;  // serve() ended by itself
    signalled = true;
    omnigate::log::info("main", std::string("stopping on ") + strsignal(signal_number));
    gateway.value()->stop();
  });
  gateway.value()->serve();
  if (!signalled) pthread_kill(waiter.native_handle(), SIGUSR1);
  waiter.join();
  // Connectors, pollers, the NATS connection and the spool close here, in order, before the
  // last line: nothing logs after "stopped".
  gateway.value().reset();
  omnigate::log::info("main", "stopped");
  return 0;
}

std::optional<long> whole_number(const std::string& text) {
  if (text.empty() || text.size() > 12 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return std::stol(text);
}

int bad_value(const char* flag, const char* expected) {
  std::fprintf(stderr, "omnigate tail: %s needs %s\n", flag, expected);
  return 2;
}

// --since: an RFC 3339 time, or a duration back from now. Nanoseconds since the epoch (UTC).
std::optional<int64_t> since_to_ns(const std::string& text) {
  using namespace std::chrono;
  if (auto time = omnigate::parse_rfc3339(text))
    return duration_cast<nanoseconds>(time->time_since_epoch()).count();
  const bool looks_like_duration = !text.empty() && text.back() >= 'a' && text.back() <= 'z';
  if (auto ago = looks_like_duration ? omnigate::parse_duration(text) : std::nullopt) {
    auto now = duration_cast<nanoseconds>(system_clock::now().time_since_epoch());
    return (now - duration_cast<nanoseconds>(*ago)).count();
  }
  return std::nullopt;
}

int tail(const std::vector<std::string>& args) {
  if (asks_for_help(args)) {
    std::printf("%s", tail_usage().c_str());
    return 0;
  }
  omnigate::TailOptions options;
  std::string config_path, since;
  for (size_t i = 0; i < args.size(); ++i) {
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "omnigate tail: %s needs a value\n", flag);
        std::exit(2);
      }
      return args[++i];
    };
    const std::string& a = args[i];
    if (a == "--config")
      config_path = value("--config");
    else if (a == "--nats")
      options.nats_url = value("--nats");
    else if (a == "--channel")
      options.channel = value("--channel");
    else if (a == "--account")
      options.account = value("--account");
    else if (a == "--kind")
      options.kind = value("--kind");
    else if (a == "--durable")
      options.durable = value("--durable");
    else if (a == "--from-start")
      options.from_start = true;
    else if (a == "--since")
      since = value("--since");
    else if (a == "--pretty")
      options.pretty = true;
    else if (a == "--count") {
      auto n = whole_number(value("--count"));
      if (!n || *n < 1) return bad_value("--count", "a whole number of at least 1");
      options.count = *n;
    } else if (a == "--idle-exit") {
      auto n = whole_number(value("--idle-exit"));
      if (!n) return bad_value("--idle-exit", "a whole number of milliseconds");
      options.idle_exit_ms = *n;
    } else {
      return unknown_option("tail", a, tail_usage());
    }
  }
  auto listed = [](const std::string& v, const std::vector<std::string>& valid) {
    return v == "*" || std::find(valid.begin(), valid.end(), v) != valid.end();
  };
  if (!listed(options.kind, kind_names())) {
    std::fprintf(stderr, "omnigate tail: unknown kind '%s'; valid kinds: %s\n",
                 options.kind.c_str(), joined(kind_names()).c_str());
    return 2;
  }
  if (!listed(options.channel, channel_names())) {
    std::fprintf(stderr, "omnigate tail: unknown channel '%s'; valid channels: %s\n",
                 options.channel.c_str(), joined(channel_names()).c_str());
    return 2;
  }
  if (!since.empty()) {
    if (!options.durable.empty() || options.from_start) {
      std::fprintf(stderr,
                   "omnigate tail: --since replays with an ephemeral consumer; it does "
                   "not go with --durable or --from-start\n");
      return 2;
    }
    auto since_ns = since_to_ns(since);
    if (!since_ns) {
      return bad_value("--since",
                       "an RFC 3339 time (2026-12-01T09:00:00Z) or a duration (30s, 10m, 2h, 7d)");
    }
    options.since_ns = since_ns;
  }
  if (config_path.empty() && options.nats_url.empty()) {
    if (FILE* f = std::fopen(kDefaultConfig, "r")) {
      std::fclose(f);
      config_path = kDefaultConfig;
    }
  }
  if (!config_path.empty()) {
    auto nats = omnigate::load_nats_config_file(config_path);
    if (!nats) {
      return config_problem(nats.error().detail);
    }
    if (options.nats_url.empty()) options.nats_url = nats->url;
    options.stream = nats->stream.name;
  }
  if (options.nats_url.empty()) options.nats_url = "nats://127.0.0.1:4222";
  return omnigate::run_tail(options);
}

int consent_link(const std::vector<std::string>& args) {
  if (asks_for_help(args)) {
    std::printf("%s", kConsentLinkUsage);
    return 0;
  }
  std::string config_path = kDefaultConfig, channel = "webform", account, email, language = "ru";
  std::vector<std::string> purposes, via;
  for (size_t i = 0; i < args.size(); ++i) {
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "omnigate consent-link: %s needs a value\n", flag);
        std::exit(2);
      }
      return args[++i];
    };
    const std::string& a = args[i];
    if (a == "--config")
      config_path = value("--config");
    else if (a == "--channel")
      channel = value("--channel");
    else if (a == "--account")
      account = value("--account");
    else if (a == "--email")
      email = value("--email");
    else if (a == "--purpose")
      purposes.push_back(value("--purpose"));
    else if (a == "--via")
      via.push_back(value("--via"));
    else if (a == "--language")
      language = value("--language");
    else
      return unknown_option("consent-link", a, kConsentLinkUsage);
  }
  auto config = omnigate::load_config_file(config_path);
  if (!config) {
    return config_problem(config.error().detail);
  }
  if (config->consent.signing_key.empty()) {
    std::fprintf(stderr, "omnigate consent-link: consent.signing_key is not configured\n");
    return 2;
  }
  omnigate::Connector* connector = config->connector(channel);
  if (!connector || !connector->has_account(account)) {
    std::fprintf(stderr, "omnigate consent-link: no %s account named '%s' in %s\n", channel.c_str(),
                 account.c_str(), config_path.c_str());
    return 2;
  }
  auto normalized = omnigate::normalize_email(email);
  if (!normalized) {
    std::fprintf(stderr, "omnigate consent-link: --email is not an e-mail address\n");
    return 2;
  }
  if (purposes.empty()) purposes = {"marketing"};
  if (via.empty()) via = {"email"};
  // Signing needs only the config: no NATS, no running gateway.
  omnigate::ConsentLinks links(*config);
  auto claims = links.unsubscribe_claims(channel, account, *normalized, purposes, via, language);
  const auto minted = links.unsubscribe_links(claims);
  std::printf("%s\nList-Unsubscribe: %s\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\n",
              minted.url.c_str(), minted.list_unsubscribe.c_str());
  return 0;
}

// `omnigate spool stats [--config FILE]`: needs only the spool: section.
int spool_command(const std::vector<std::string>& args) {
  if (asks_for_help(args)) {
    std::printf("%s", kSpoolUsage);
    return 0;
  }
  std::string config_path = kDefaultConfig;
  if (args.size() == 3 && args[0] == "stats" && args[1] == "--config") config_path = args[2];
  if (args.empty() || args[0] != "stats" || (args.size() != 1 && args.size() != 3) ||
      (args.size() == 3 && args[1] != "--config")) {
    std::fprintf(stderr, "%s", kSpoolUsage);
    return 2;
  }
  auto config = omnigate::load_spool_config_file(config_path);
  if (!config) {
    return config_problem(config.error().detail);
  }
  std::printf("spool:  %s\n", config->path.c_str());
  if (!std::filesystem::exists(config->path)) {
    std::printf("depth:  0 (no file yet: nothing was spooled)\n");
    return 0;
  }
  auto stats = omnigate::Spool::inspect(config->path);
  if (!stats) {
    std::fprintf(stderr, "omnigate: %s\n", stats.error().detail.c_str());
    return 2;
  }
  std::printf("depth:  %llu\nbytes:  %llu of %llu (spool.max_bytes)\n",
              static_cast<unsigned long long>(stats->depth),
              static_cast<unsigned long long>(stats->bytes),
              static_cast<unsigned long long>(config->max_bytes));
  if (stats->oldest_ms) {
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    std::printf("oldest: %.3f s ago\n", static_cast<double>(now - *stats->oldest_ms) / 1000.0);
  } else {
    std::printf("oldest: -\n");
  }
  return 0;
}

// `omnigate <channel> <command> ... [--config FILE]`: handed to the channel's connector.
int channel_command(const std::vector<std::string>& args) {
  if (asks_for_help(args)) {
    // Usage needs no config: ask an unconfigured connector of the channel.
    for (const auto& registration : omnigate::connector_registry()) {
      if (registration.channel != args[0]) continue;
      auto connector = registration.factory();
      std::string usage = connector->command_usage();
      if (usage.empty()) {
        // A connector without command_usage(): its own answer to an unknown argument.
        std::printf("usage: omnigate %s <command> [--config FILE] (connectors/%s/README.md)\n",
                    args[0].c_str(), args[0].c_str());
        std::fflush(stdout);
        omnigate::Config empty;
        connector->command({"--help"}, empty);
        return 0;
      }
      std::printf("usage (each takes --config FILE too):\n%s", usage.c_str());
      return 0;
    }
  }
  std::string config_path = kDefaultConfig;
  std::vector<std::string> rest;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) {
      config_path = args[++i];
    } else {
      rest.push_back(args[i]);
    }
  }
  int config_error = 2;
  for (const auto& registration : omnigate::connector_registry()) {
    if (registration.channel == args[0])
      config_error = registration.factory()->config_error_exit_code();
  }
  auto config = omnigate::load_config_file(config_path);
  if (!config) {
    config_problem(config.error().detail);
    return config_error;
  }
  omnigate::Connector* connector = config->connector(args[0]);
  if (connector == nullptr) {
    std::fprintf(stderr, "omnigate: no %s accounts are configured in %s\n", args[0].c_str(),
                 config_path.c_str());
    return config_error;
  }
  return connector->command(rest, config.value());
}

// `omnigate outbox ...`: needs only the nats: section (no channel secrets).
int outbox(const std::vector<std::string>& args) {
  if (asks_for_help(args)) {
    std::printf("%s", kOutboxUsage);
    return 0;
  }
  std::string config_path = kDefaultConfig;
  std::vector<std::string> rest;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) {
      config_path = args[++i];
    } else {
      rest.push_back(args[i]);
    }
  }
  auto nats = omnigate::load_nats_config_file(config_path);
  if (!nats) {
    return config_problem(nats.error().detail);
  }
  return omnigate::outbox_command(rest, nats.value());
}

bool is_registered_channel(const std::string& name) {
  for (const auto& registration : omnigate::connector_registry()) {
    if (registration.channel == name) return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // Without a command: the usage, never a server (that is `omnigate run`).
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    print_overview(stdout);
    return 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "run") {
    if (asks_for_help(rest)) {
      std::printf("%s", kRunUsage);
      return 0;
    }
    if (rest.empty()) return run(kDefaultConfig);
    if (rest.size() == 2 && rest[0] == "--config") return run(rest[1]);
    if (rest.size() == 1 && rest[0].rfind("-", 0) != 0) return run(rest[0]);  // run FILE
    return unknown_option("run", rest[0], kRunUsage);
  }
  if (args[0] == "check-config") {
    if (asks_for_help(rest)) {
      std::printf("%s", kCheckConfigUsage);
      return 0;
    }
    if (rest.size() == 1 && rest[0].rfind("-", 0) != 0) return check_config(rest[0], "");
    if (rest.size() == 3 && rest[1] == "--print") return check_config(rest[0], rest[2]);
    std::fprintf(stderr, "%s", kCheckConfigUsage);
    return 2;
  }
  if (args[0] == "tail") return tail(rest);
  if (args[0] == "spool") return spool_command(rest);
  if (args[0] == "consent-link") return consent_link(rest);
  if (args[0] == "outbox") return outbox(rest);
  if (is_registered_channel(args[0])) return channel_command(args);
  if (args[0] == "version" || args[0] == "--version") {
    if (asks_for_help(rest)) {
      std::printf("%s", kVersionUsage);
      return 0;
    }
    if (!rest.empty()) return unknown_option("version", rest[0], kVersionUsage);
    const auto& build = omnigate::build_info();
    std::printf("omnigate %.*s\ncommit: %.*s\nbuilt:  %.*s\n", int(build.version.size()),
                build.version.data(), int(build.commit.size()), build.commit.data(),
                int(build.date.size()), build.date.data());
    return 0;
  }
  std::fprintf(stderr, "omnigate: unknown command '%s'\n\n", args[0].c_str());
  print_overview(stderr);
  return 2;
}

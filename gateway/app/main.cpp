// omnigate: run the gateway, check a config, or tail the interactions stream.
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "gateway/app/gateway.hpp"
#include "gateway/app/tail.hpp"
#include "gateway/config/config.hpp"  // also Spool (gateway/spool/spool.hpp), for `omnigate spool`
#include "gateway/consent/consent.hpp"
#include "gateway/core/log.hpp"
#include "gateway/mail/outbox.hpp"
#include "gateway/model/identifiers.hpp"

namespace {

constexpr const char* kUsage = R"(omnigate - omnichannel intake gateway

usage:
  omnigate run [--config FILE]          serve (default config: config/omnigate.example.yaml)
  omnigate check-config FILE            validate a config file without starting
  omnigate tail [options]               print interactions from JetStream, one JSON per line
      --config FILE      take the NATS URL and stream from this config
      --nats URL         NATS server (default: nats.url of the config, else nats://127.0.0.1:4222)
      --channel C --account A --kind K  filter (default: everything)
      --durable NAME     a durable consumer: resumes where the last run stopped
      --from-start       replay the stream (ephemeral consumer)
      --count N          exit after N interactions
      --idle-exit MS     exit after MS milliseconds with nothing new
  omnigate consent-link --account A --email E [options]
                                        print an unsubscribe link for a CRM mailing
      --config FILE      (default config/omnigate.example.yaml): signing key, public URL
      --channel C        channel of the withdrawal (default webform; the account must exist)
      --purpose P        repeatable (default marketing)
      --via C            channel being unsubscribed from, repeatable (default email)
      --language ru|en   language of the page (default ru)
  omnigate outbox list [--failed] [--config FILE]
                                        pending (or finally failed) confirmation mail:
                                        id, attempts, age, masked address, last error
  omnigate outbox resend <id>|--all-failed [--config FILE]
                                        queue failed mail again
  omnigate <channel> <command> [--config FILE]
                                        a channel's operator commands, e.g.
                                        omnigate telegram set-webhook <account>
                                        omnigate telegram info <account>
                                        omnigate email deliver <account> < message.eml
                                          (an MTA's pipe: exit 0 durable, 75 retry later)
  omnigate spool stats [--config FILE]  depth, bytes and oldest age of the local spool
                                        (reads spool.path; works while omnigate runs)
  omnigate version
)";

constexpr const char* kDefaultConfig = "config/omnigate.example.yaml";

int check_config(const std::string& path, const std::string& print_key) {
  auto config = omnigate::load_config_file(path);
  if (!config) {
    std::fprintf(stderr, "%s", config.error().detail.c_str());
    return 2;
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

int run(const std::string& path) {
  // Block the stop signals in every thread; one thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto config = omnigate::load_config_file(path);
  if (!config) {
    std::fprintf(stderr, "%s", config.error().detail.c_str());
    return 2;
  }
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
  const auto& http = gateway.value()->config().http;
  omnigate::log::info("http", "listening on " + http.address + ":" + std::to_string(*port) +
                                  " with " + std::to_string(http.threads) + " workers");
  std::thread waiter([&] {
    int signal_number = 0;
    sigwait(&signals, &signal_number);
    omnigate::log::info("main", std::string("stopping on ") + strsignal(signal_number));
    gateway.value()->stop();
  });
  gateway.value()->serve();
  pthread_kill(waiter.native_handle(), SIGTERM);  // wake the waiter if serve() ended by itself
  waiter.join();
  return 0;
}

int tail(const std::vector<std::string>& args) {
  omnigate::TailOptions options;
  std::string config_path;
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
    else if (a == "--count")
      options.count = std::stol(value("--count"));
    else if (a == "--idle-exit")
      options.idle_exit_ms = std::stol(value("--idle-exit"));
    else {
      std::fprintf(stderr, "omnigate tail: unknown option %s\n%s", a.c_str(), kUsage);
      return 2;
    }
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
      std::fprintf(stderr, "%s", nats.error().detail.c_str());
      return 2;
    }
    if (options.nats_url.empty()) options.nats_url = nats->url;
    options.stream = nats->stream.name;
  }
  if (options.nats_url.empty()) options.nats_url = "nats://127.0.0.1:4222";
  return omnigate::run_tail(options);
}

int consent_link(const std::vector<std::string>& args) {
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
    else {
      std::fprintf(stderr, "omnigate consent-link: unknown option %s\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  auto config = omnigate::load_config_file(config_path);
  if (!config) {
    std::fprintf(stderr, "%s", config.error().detail.c_str());
    return 2;
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
  std::string url = links.unsubscribe_url(claims);
  std::printf("%s\nList-Unsubscribe: <%s>\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\n",
              url.c_str(), url.c_str());
  return 0;
}

// `omnigate spool stats [--config FILE]`: needs only the spool: section.
int spool_command(const std::vector<std::string>& args) {
  std::string config_path = kDefaultConfig;
  if (args.size() == 3 && args[0] == "stats" && args[1] == "--config") config_path = args[2];
  if (args.empty() || args[0] != "stats" || (args.size() != 1 && args.size() != 3) ||
      (args.size() == 3 && args[1] != "--config")) {
    std::fprintf(stderr, "usage: omnigate spool stats [--config FILE]\n");
    return 2;
  }
  auto config = omnigate::load_spool_config_file(config_path);
  if (!config) {
    std::fprintf(stderr, "%s", config.error().detail.c_str());
    return 2;
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
    std::fprintf(stderr, "%s", config.error().detail.c_str());
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
    std::fprintf(stderr, "%s", nats.error().detail.c_str());
    return 2;
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
  if (args.empty() || args[0] == "run") {
    std::string path = kDefaultConfig;
    if (args.size() >= 3 && args[1] == "--config")
      path = args[2];
    else if (args.size() >= 2 && args[1] != "--config")
      path = args[1];
    return run(path);
  }
  if (args[0] == "--config" && args.size() >= 2) return run(args[1]);
  if (args[0] == "check-config") {
    if (args.size() == 2) return check_config(args[1], "");
    if (args.size() == 4 && args[2] == "--print") return check_config(args[1], args[3]);
    std::fprintf(stderr,
                 "usage: omnigate check-config FILE [--print nats.url|http.address|http.port]\n");
    return 2;
  }
  if (args[0] == "tail") return tail(std::vector<std::string>(args.begin() + 1, args.end()));
  if (args[0] == "spool")
    return spool_command(std::vector<std::string>(args.begin() + 1, args.end()));
  if (args[0] == "consent-link") {
    return consent_link(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  if (args[0] == "outbox") return outbox(std::vector<std::string>(args.begin() + 1, args.end()));
  if (is_registered_channel(args[0])) return channel_command(args);
  if (args[0] == "version" || args[0] == "--version") {
    std::printf("omnigate 0.1.0\n");
    return 0;
  }
  if (args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    std::printf("%s", kUsage);
    return 0;
  }
  std::fprintf(stderr, "omnigate: unknown command '%s'\n%s", args[0].c_str(), kUsage);
  return 2;
}

#include "gateway/config/config.hpp"

#include "gateway/core/strings.hpp"

#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>

#include "gateway/model/formats.hpp"
#include "gateway/model/identifiers.hpp"
#include "gateway/model/ids.hpp"

namespace omnigate {
namespace {

bool valid_account_name(const std::string& name) {
  static const std::regex pattern("[A-Za-z0-9_-]{1,64}");
  return std::regex_match(name, pattern);
}

milliseconds ms_at_least(ConfigMap& map, const std::string& key, milliseconds fallback,
                         milliseconds min) {
  milliseconds value = map.duration(key, fallback);
  if (value < min) {
    map.problem(key, "must be at least " + std::to_string(min.count()) + "ms");
    return fallback;
  }
  return value;
}

void read_http(ConfigMap map, HttpConfig& http) {
  http.address = map.string("address", http.address);
  http.port = static_cast<int>(map.integer("port", http.port, 0, 65535));
  http.server = map.string("server", http.server);
  if (http.server != "threads" && http.server != "loop")
    map.problem("server", "must be threads (cpp-httplib) or loop (the event-loop front)");
  http.loops = static_cast<int>(map.integer("loops", http.loops, 0, 256));
  http.threads = static_cast<int>(map.integer("threads", http.threads, 2, 4096));
  http.listen_backlog =
      static_cast<int>(map.integer("listen_backlog", http.listen_backlog, 16, 65535));
  http.tcp_nodelay = map.boolean("tcp_nodelay", http.tcp_nodelay);
  http.keep_alive_timeout =
      ms_at_least(map, "keep_alive_timeout", http.keep_alive_timeout, milliseconds(1000));
  http.keep_alive_max_requests = static_cast<int>(
      map.integer("keep_alive_max_requests", http.keep_alive_max_requests, 1, 100'000'000));
  http.read_timeout = ms_at_least(map, "read_timeout", http.read_timeout, milliseconds(100));
  http.header_timeout = ms_at_least(map, "header_timeout", http.header_timeout, milliseconds(100));
  http.max_headers = static_cast<int>(map.integer("max_headers", http.max_headers, 16, 10'000));
  http.max_header_bytes = map.size("max_header_bytes", http.max_header_bytes);
  if (http.max_header_bytes < 4096 || http.max_header_bytes > 1024 * 1024)
    map.problem("max_header_bytes", "must be between 4KiB and 1MiB");
  http.max_connections_per_ip = static_cast<int>(
      map.integer("max_connections_per_ip", http.max_connections_per_ip, 1, 1'000'000));
  http.auth_failures_per_minute = static_cast<int>(
      map.integer("auth_failures_per_minute", http.auth_failures_per_minute, 0, 1'000'000));
  http.write_timeout = ms_at_least(map, "write_timeout", http.write_timeout, milliseconds(100));
  http.retry_after = ms_at_least(map, "retry_after", http.retry_after, milliseconds(1000));
  http.max_body = map.size("max_body", http.max_body);
  if (http.max_body < 1024) map.problem("max_body", "must be at least 1KiB");
  http.noop_route = map.boolean("noop_route", http.noop_route);
  http.media_workers = static_cast<int>(map.integer("media_workers", http.media_workers, 1, 256));
  http.media_queue = static_cast<int>(map.integer("media_queue", http.media_queue, 0, 10'000));
  http.media_first_byte_timeout = ms_at_least(map, "media_first_byte_timeout",
                                              http.media_first_byte_timeout, milliseconds(100));
  http.media_timeout = ms_at_least(map, "media_timeout", http.media_timeout, milliseconds(1000));
  if (http.media_timeout < http.media_first_byte_timeout)
    map.problem("media_timeout", "must be at least media_first_byte_timeout");
  http.status_token = map.secret("status_token", false);
  http.public_url = map.string("public_url", http.public_url);
  while (!http.public_url.empty() && http.public_url.back() == '/') http.public_url.pop_back();
  if (http.public_url.rfind("http://", 0) != 0 && http.public_url.rfind("https://", 0) != 0) {
    map.problem("public_url", "must start with http:// or https://");
  }
  if (auto bad = TrustedProxies::parse(map.string_list("trusted_proxies"), http.trusted_proxies)) {
    map.problem("trusted_proxies", "'" + *bad + "' is not an IP address or CIDR (10.0.0.0/8)");
  }
  map.finish();
}

// A name NATS accepts for an Object Store bucket (and so in the stream name OBJ_<bucket>).
bool bucket_name_ok(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

void read_nats(ConfigMap map, NatsConfig& nats) {
  nats.url = map.string("url", nats.url);
  nats.client_name = map.string("client_name", nats.client_name);
  nats.user = map.string("user", "");
  nats.password = map.string("password", "");
  nats.token = map.string("token", "");
  nats.credentials_file = map.string("credentials_file", "");
  nats.connect_timeout =
      ms_at_least(map, "connect_timeout", nats.connect_timeout, milliseconds(100));
  nats.reconnect_wait = ms_at_least(map, "reconnect_wait", nats.reconnect_wait, milliseconds(10));
  nats.publish_timeout =
      ms_at_least(map, "publish_timeout", nats.publish_timeout, milliseconds(100));
  nats.ack_wait = ms_at_least(map, "ack_wait", nats.ack_wait, milliseconds(50));
  ConfigMap stream = map.map("stream");
  nats.stream.name = stream.string("name", nats.stream.name);
  nats.stream.replicas = static_cast<int>(stream.integer("replicas", 1, 1, 5));
  nats.stream.duplicate_window =
      ms_at_least(stream, "duplicate_window", nats.stream.duplicate_window, milliseconds(1000));
  nats.stream.max_age = stream.duration("max_age", nats.stream.max_age);
  nats.stream.max_bytes = stream.integer("max_bytes", -1, -1, INT64_MAX);
  stream.finish();
  ConfigMap raw_archive = map.map("raw_archive");
  nats.raw_archive.bucket = raw_archive.string("bucket", nats.raw_archive.bucket);
  if (!bucket_name_ok(nats.raw_archive.bucket))
    raw_archive.problem("bucket", "must be 1-64 characters of A-Z a-z 0-9 _ -");
  nats.raw_archive.max_age = raw_archive.duration("max_age", nats.raw_archive.max_age);
  raw_archive.finish();
  nats.dedup_horizon = map.duration("dedup_horizon", nats.dedup_horizon);
  nats.names_ttl = map.duration("names_ttl", nats.names_ttl);
  if (nats.names_ttl.count() <= 0) map.problem("names_ttl", "must be positive (e.g. 3d)");
  if (nats.dedup_horizon.count() != 0 && nats.dedup_horizon < nats.stream.duplicate_window) {
    map.problem("dedup_horizon", "must be 0 (off) or at least nats.stream.duplicate_window");
  }
  nats.manage_streams = map.boolean("manage_streams", nats.manage_streams);
  if (!nats.user.empty() && nats.password.empty()) map.problem("password", "is required with user");
  map.finish();
}

void read_identity(ConfigMap map, IdentityConfig& identity) {
  identity.default_region = map.string("default_region", identity.default_region);
  if (!is_supported_region(identity.default_region)) {
    map.problem("default_region", "'" + identity.default_region +
                                      "' is not a region libphonenumber knows (use ISO 3166 "
                                      "alpha-2, e.g. RU, KZ, BY, DE)");
  }
  map.finish();
}

void read_template(ConfigMap map, MailTemplate& out) {
  out.subject = map.string("subject", out.subject);
  out.text = map.string("text", out.text);
  map.finish();
}

void read_consent(ConfigMap map, ConsentConfig& consent) {
  consent.signing_key = map.secret("signing_key", false, 32);
  consent.links_token = map.secret("links_token", false);
  consent.confirm_ttl = ms_at_least(map, "confirm_ttl", consent.confirm_ttl, milliseconds(60'000));
  consent.unsubscribe_mailto = map.string("unsubscribe_mailto", "");
  if (!consent.unsubscribe_mailto.empty()) {
    auto address = normalize_email(consent.unsubscribe_mailto);
    if (!address || consent.unsubscribe_mailto.find_first_of("?&<>,\" ") != std::string::npos)
      map.problem("unsubscribe_mailto", "must be a plain e-mail address (unsubscribe@example.ru)");
    else
      consent.unsubscribe_mailto = *address;
  }
  consent.operator_name = map.string("operator_name", "");
  consent.return_url = map.string("return_url", "");
  if (!consent.return_url.empty() && !formats::is_web_url(consent.return_url))
    map.problem("return_url", "must be an http(s) URL such as https://example.ru/");
  static const std::regex word("[a-z][a-z0-9_]{0,63}");
  std::set<std::string> ids;
  for (auto& entry : map.list_of_maps("texts")) {
    ConsentText text;
    text.id = entry.required_string("id");
    if (!text.id.empty() && !ids.insert(text.id).second) entry.problem("id", "is used twice");
    text.version = entry.required_string("version");
    text.purpose = entry.required_string("purpose");
    if (!text.purpose.empty() && !std::regex_match(text.purpose, word)) {
      entry.problem("purpose", "must match [a-z][a-z0-9_]*, e.g. processing or marketing");
    }
    text.channels = entry.string_list("channels");
    if (text.channels.empty())
      entry.problem("channels", "must list at least one channel (email, phone, sms, ...)");
    for (const auto& channel : text.channels) {
      if (!std::regex_match(channel, word))
        entry.problem("channels", "'" + channel + "' must match [a-z][a-z0-9_]*");
    }
    text.text = entry.required_string("text");
    text.policy_url = entry.string("policy_url", "");
    text.sha256 = sha256_hex(text.text);
    entry.finish();
    consent.texts.push_back(std::move(text));
  }
  ConfigMap smtp = map.map("smtp");
  consent.smtp.url = smtp.string("url", "");
  if (!consent.smtp.url.empty() && consent.smtp.url.rfind("smtp://", 0) != 0 &&
      consent.smtp.url.rfind("smtps://", 0) != 0) {
    smtp.problem("url", "must start with smtp:// or smtps://");
  }
  consent.smtp.username = smtp.string("username", "");
  consent.smtp.password = smtp.string("password", "");
  consent.smtp.from = smtp.string("from", "");
  if (!consent.smtp.url.empty() && consent.smtp.from.empty())
    smtp.problem("from", "is required with url");
  consent.smtp.timeout = ms_at_least(smtp, "timeout", consent.smtp.timeout, milliseconds(100));
  smtp.finish();
  consent.confirmation_ru = default_confirmation_template("ru");
  consent.confirmation_en = default_confirmation_template("en");
  ConfigMap templates = map.map("confirmation_email");
  read_template(templates.map("ru"), consent.confirmation_ru);
  read_template(templates.map("en"), consent.confirmation_en);
  templates.finish();
  map.finish();
}

void read_leases(ConfigMap map, LeasesConfig& leases) {
  leases.ttl = ms_at_least(map, "ttl", leases.ttl, milliseconds(1000));
  map.finish();
}

void read_outbox(ConfigMap map, OutboxConfig& outbox) {
  outbox.max_attempts = static_cast<int>(map.integer("max_attempts", outbox.max_attempts, 1, 1000));
  outbox.max_age = ms_at_least(map, "max_age", outbox.max_age, milliseconds(1000));
  const bool custom_backoff = map.has("backoff");
  std::vector<milliseconds> backoff;
  for (const auto& text : map.string_list("backoff")) {
    auto value = parse_duration(text);
    if (!value || value->count() < 10) {
      map.problem("backoff", "'" + text + "' is not a duration of at least 10ms (e.g. 30s)");
      continue;
    }
    backoff.push_back(*value);
  }
  if (custom_backoff && backoff.empty()) map.problem("backoff", "must list at least one duration");
  if (!backoff.empty()) outbox.backoff = std::move(backoff);
  map.finish();
}

void read_log(ConfigMap map, LogConfig& log) {
  log.level = map.string("level", log.level);
  if (log.level != "debug" && log.level != "info" && log.level != "warn" && log.level != "error") {
    map.problem("level", "must be one of debug, info, warn, error");
  }
  log.format = map.string("format", log.format);
  if (log.format != "text" && log.format != "json") map.problem("format", "must be text or json");
  log.requests = map.boolean("requests", log.requests);
  map.finish();
}

void read_spool(ConfigMap map, SpoolConfig& spool) {
  spool.path = map.string("path", spool.path);
  if (spool.path.empty()) map.problem("path", "must name a file, e.g. var/spool.db");
  spool.max_bytes = map.size("max_bytes", spool.max_bytes);
  if (spool.max_bytes < 1024 * 1024) map.problem("max_bytes", "must be at least 1MiB");
  map.finish();
}

// SHA-256 of the values read below `prefix` ("channels.vk[2]."), named relative to it: the same
// account written at another position of the list has the same fingerprint.
std::string fingerprint(const ConfigContext& context, const std::string& prefix) {
  std::string values;
  for (auto it = context.values.lower_bound(prefix);
       it != context.values.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    values.append(it->first, prefix.size()).append(1, '\0').append(it->second).append(1, '\0');
  }
  return sha256_hex(values);
}

void read_channels(ConfigMap map, Config& config) {
  std::vector<std::string> registered;
  for (const auto& registration : connector_registry()) registered.push_back(registration.channel);
  std::set<std::string> present;
  for (const auto& name : map.keys()) present.insert(name);

  for (const auto& registration : connector_registry()) {
    std::vector<ConfigMap> accounts = map.list_of_maps(registration.channel);
    if (!present.count(registration.channel)) continue;
    auto connector = registration.factory();
    std::set<std::string> seen;
    for (auto& entry : accounts) {
      std::string account = entry.required_string("account");
      if (!account.empty() && !valid_account_name(account)) {
        entry.problem("account", "'" + account + "' must match [A-Za-z0-9_-]{1,64}");
      } else if (!account.empty() && !seen.insert(account).second) {
        entry.problem("account", "'" + account + "' is configured twice for this channel");
      }
      connector->read_account(account, entry);  // on_nats_down too (gateway/kit/accounts.hpp)
      entry.finish();
      config.account_fingerprints[registration.channel + "/" + account] =
          fingerprint(map.context(), entry.display() + ".");
    }
    config.connectors.push_back(std::move(connector));
  }
  map.finish();  // a channel nobody registered is an unknown key, with the valid list
}

}  // namespace

const ConsentText* ConsentConfig::text(std::string_view id) const {
  for (const auto& text : texts) {
    if (text.id == id) return &text;
  }
  return nullptr;
}

bool Config::spools_when_nats_down(std::string_view channel, std::string_view account) const {
  const Connector* found = connector(channel);
  return found == nullptr || found->spools_when_nats_down(account);
}

Connector* Config::connector(std::string_view channel) const {
  for (const auto& connector : connectors) {
    if (connector->channel() == channel) return connector.get();
  }
  return nullptr;
}

Result<Config> load_config_text(const std::string& text, const std::string& file_name,
                                ConfigContext& context) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    context.problem(e.mark, "not valid YAML: " + e.msg);
    return make_error(ErrorCode::invalid_field, "config", context.problems_text());
  }
  Config config;
  config.file = file_name;
  ConfigMap top(root, "", "", context);
  read_http(top.map("http"), config.http);
  read_nats(top.map("nats"), config.nats);
  read_identity(top.map("identity"), config.identity);
  read_consent(top.map("consent"), config.consent);
  read_leases(top.map("leases"), config.leases);
  read_outbox(top.map("outbox"), config.outbox);
  read_log(top.map("log"), config.log);
  read_spool(top.map("spool"), config.spool);
  read_channels(top.map("channels"), config);
  top.finish();
  for (const auto& connector : config.connectors) connector->check(config, context);
  config.known_paths = context.known_paths;
  for (const auto& [where, value] : context.values) {
    if (where.rfind("channels.", 0) != 0) config.settings.emplace(where, value);
  }
  if (!context.problems.empty()) {
    return make_error(ErrorCode::invalid_field, "config", context.problems_text());
  }
  return config;
}

namespace {
std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}
}  // namespace

Result<Config> load_config_file(const std::string& path) {
  auto text = read_file(path);
  if (!text) return make_error(ErrorCode::invalid_field, "config", path + ": cannot open file\n");
  ConfigContext context(path);
  return load_config_text(*text, path, context);
}

namespace {
// One top-level section of a config file, for subcommands that must not need the rest (the
// channels' secrets).
template <class Section>
Result<Section> load_section_file(const std::string& path, const char* key,
                                  void (*read)(ConfigMap, Section&)) {
  auto text = read_file(path);
  if (!text) return make_error(ErrorCode::invalid_field, "config", path + ": cannot open file\n");
  ConfigContext context(path);
  Section section;
  try {
    YAML::Node root = YAML::Load(*text);
    if (root.IsMap() && root[key]) read(ConfigMap(root[key], key, key, context), section);
  } catch (const YAML::Exception& e) {
    context.problem(e.mark, "not valid YAML: " + e.msg);
  }
  if (!context.problems.empty()) {
    return make_error(ErrorCode::invalid_field, "config", context.problems_text());
  }
  return section;
}
}  // namespace

Result<NatsConfig> load_nats_config_file(const std::string& path) {
  return load_section_file<NatsConfig>(path, "nats", read_nats);
}

Result<SpoolConfig> load_spool_config_file(const std::string& path) {
  return load_section_file<SpoolConfig>(path, "spool", read_spool);
}

MailTemplate default_confirmation_template(const std::string& language) {
  if (ascii_lower(language.substr(0, 2)) == "en") {
    return {
        "Please confirm your subscription",
        "Hello,\n"
        "\n"
        "You are receiving this e-mail because this address was entered in the form "
        "\"{{form}}\".\n"
        "\n"
        "To confirm your subscription, please open this link:\n"
        "{{link}}\n"
        "\n"
        "By confirming, you agree to the following:\n"
        "\"{{consent_text}}\"\n"
        "\n"
        "The link is valid for {{expires_hours}} hours. If you did not ask for this, simply "
        "ignore this e-mail: without confirmation you will not be subscribed.\n",
    };
  }
  // "ч." rather than "часов": the number is a placeholder, and 1/2/5 need different words.
  return {
      "Подтвердите подписку",
      "Здравствуйте!\n"
      "\n"
      "Вы получили это письмо, потому что этот адрес указали в форме «{{form}}».\n"
      "\n"
      "Чтобы подтвердить подписку, перейдите по ссылке:\n"
      "{{link}}\n"
      "\n"
      "Подтверждая подписку, вы даёте согласие:\n"
      "«{{consent_text}}»\n"
      "\n"
      "Ссылка действует {{expires_hours}} ч. Если вы не подписывались, просто проигнорируйте "
      "это письмо: без подтверждения подписка не оформится.\n",
  };
}

}  // namespace omnigate

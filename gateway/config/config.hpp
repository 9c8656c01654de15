// The gateway's configuration: one YAML file, see config/omnigate.example.yaml for every key.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gateway/core/error.hpp"
#include "gateway/http/client_ip.hpp"
#include "gateway/kit/connector.hpp"

namespace omnigate {

using std::chrono::milliseconds;

struct SmtpConfig {
  // smtp://host:port (STARTTLS when the server offers it, CURLUSESSL_TRY) or smtps://host:port.
  std::string url;
  std::string username, password;  // empty username = no AUTH
  std::string from;                // "Shop <noreply@example.ru>"; the display name may be Cyrillic
  std::chrono::milliseconds timeout{10'000};  // one whole attempt, connect to QUIT
};

struct MailTemplate {
  std::string subject, text;
};

// The built-in confirmation mail, with placeholders {{link}}, {{form}}, {{consent_text}} and
// {{expires_hours}}: "en" (also "en-US", "EN") in English, anything else in Russian.
MailTemplate default_confirmation_template(const std::string& language);

struct SpoolConfig {                  // top-level `spool:` section of the config
  std::string path = "var/spool.db";  // relative paths are relative to the process cwd
  uint64_t max_bytes = 1ull << 30;    // payload bytes held; full -> append fails not_durable (503)
};

struct HttpConfig {
  std::string address = "127.0.0.1";
  int port = 8080;
  // "loop" (the default): the event-loop front, one loop per core reading every connection and
  // answering the webhooks that only map, `threads` workers running the other handlers
  // (gateway/http/loop_server.hpp); "threads": cpp-httplib, a worker per request being read
  // or handled.
  std::string server = "loop";
  int loops = 0;     // event loops of server: loop; 0 = one per core
  int threads = 64;  // requests read or handled at once (server: threads), handled (loop)
  int listen_backlog = 1024;
  bool tcp_nodelay = true;
  milliseconds keep_alive_timeout{5'000};
  int keep_alive_max_requests = 100'000;
  milliseconds read_timeout{10'000};
  // The request line and headers must arrive within this, whatever the pace of the bytes.
  milliseconds header_timeout{10'000};
  int max_headers = 100;
  uint64_t max_header_bytes = 32 * 1024;
  // Open connections per client address (IPv6 per /64); trusted proxies are exempt.
  int max_connections_per_ip = 48;
  // Failed authentications (401/403) per client address and minute before 429; 0 = off.
  int auth_failures_per_minute = 30;
  milliseconds write_timeout{10'000};
  milliseconds retry_after{5'000};
  uint64_t max_body = 1024 * 1024;
  bool noop_route = false;
  // The gateway's address as the Internet sees it: the base of links in e-mails (double
  // opt-in, unsubscribe) and of webhook URLs registered with providers.
  std::string public_url = "http://127.0.0.1:8080";
  TrustedProxies trusted_proxies;
  // The media proxy (GET /v1/media/...): concurrent downloads, requests waiting for one (503
  // with Retry-After beyond), time to the upstream's first byte (504 after), a whole download.
  int media_workers = 8;
  int media_queue = 32;
  milliseconds media_first_byte_timeout{30'000};
  milliseconds media_timeout{120'000};
  // Bearer token of GET /status (the operator's page); empty = the page is off (404).
  std::string status_token;
};

struct StreamConfig {
  std::string name = "OMNIGATE_INTERACTIONS";
  int replicas = 1;
  milliseconds duplicate_window{120'000};
  // Bounded by default (30 days): a stream kept forever fills the disk. Must stay 0 or at least
  // NatsConfig::dedup_horizon (the stream is the dedup record); the gateway warns otherwise.
  milliseconds max_age{30LL * 24 * 3600 * 1000};
  int64_t max_bytes = -1;
};

// The raw archive (gateway/pipeline/raw_archive.hpp): whole e-mails kept beside the stream in
// the NATS Object Store layout, stream OBJ_<bucket>, created on first use.
struct RawArchiveConfig {
  std::string bucket = "omnigate_raw";
  milliseconds max_age{30LL * 24 * 3600 * 1000};  // 0 = kept for ever
};

struct NatsConfig {
  std::string url = "nats://127.0.0.1:4222";
  std::string client_name = "omnigate";
  std::string user;
  std::string password;
  std::string token;
  std::string credentials_file;
  milliseconds connect_timeout{2'000};
  milliseconds reconnect_wait{500};
  milliseconds publish_timeout{5'000};
  milliseconds ack_wait{2'000};
  milliseconds dedup_horizon{7LL * 24 * 3600 * 1000};
  // How long a display name looked up from a provider API (VK users.get) is kept in the KV
  // bucket omnigate_names before it is looked up again.
  milliseconds names_ttl{3LL * 24 * 3600 * 1000};
  bool manage_streams = true;
  StreamConfig stream;
  RawArchiveConfig raw_archive;
};

struct IdentityConfig {
  std::string default_region = "RU";
};

// A consent text as shown to people: the evidence records its id, version and SHA-256.
struct ConsentText {
  std::string id, version, purpose;
  std::vector<std::string> channels;
  std::string text;
  std::string policy_url;
  std::string sha256;  // of `text`, exactly as configured (UTF-8)
};

struct ConsentConfig {
  // Seals confirmation and unsubscribe links and web form render tokens (AES-256-GCM).
  std::string signing_key;
  // Bearer token for POST /v1/consent/links (CRMs minting unsubscribe links); empty = route off.
  std::string links_token;
  // An address delivered to an e-mail account of this gateway: unsubscribe links get a
  // mailto: twin there (List-Unsubscribe), and a mail to it withdraws like the link. "" = off.
  std::string unsubscribe_mailto;
  milliseconds confirm_ttl{72LL * 3600 * 1000};
  std::vector<ConsentText> texts;
  SmtpConfig smtp;  // url empty = no double opt-in e-mails can be sent
  MailTemplate confirmation_ru, confirmation_en;
  // Shown on the confirmation and unsubscribe pages: who asks ("ООО «Пример»"); empty = not named.
  std::string operator_name;
  // The "back to the site" link of those pages (a web form may set its own); empty = no link.
  std::string return_url;

  const ConsentText* text(std::string_view id) const;
};

// Poll leases (gateway/state/lease.hpp): one instance polls an account at a time.
struct LeasesConfig {
  // A crashed holder's lease is taken over this long (plus at most 2 s) after its last renewal;
  // the holder renews every ttl/3. A channel account may set its own (e.g. telegram lease_ttl).
  milliseconds ttl{15'000};
};

// The durable outbox of outgoing mail (gateway/mail/outbox.hpp): the JetStream work-queue stream
// OMNIGATE_OUTBOX, sent by every instance's sender.
struct OutboxConfig {
  int max_attempts = 10;             // SMTP attempts before a mail moves to the failed subject
  milliseconds max_age{86'400'000};  // a mail not delivered this long after queuing fails
  // Wait before attempt n+1 after the n-th transient failure; the last entry repeats.
  std::vector<milliseconds> backoff{milliseconds(10'000), milliseconds(60'000),
                                    milliseconds(300'000), milliseconds(900'000),
                                    milliseconds(3'600'000)};
};

struct LogConfig {
  std::string level = "info";   // debug | info | warn | error
  std::string format = "text";  // text | json (one object per line)
  bool requests = true;         // one info line per HTTP request (route, status, latency)
};

struct Config {
  std::string file;
  HttpConfig http;
  NatsConfig nats;
  IdentityConfig identity;
  ConsentConfig consent;
  LeasesConfig leases;
  OutboxConfig outbox;
  LogConfig log;
  SpoolConfig spool;
  std::vector<std::unique_ptr<Connector>> connectors;  // one per configured channel
  std::set<std::string> known_paths;                   // every key the loader knows
  // Every value the file sets outside channels: (ConfigContext::values), and the SHA-256 of each
  // account's values by "<channel>/<account>": what a reload (SIGHUP) compares. Secrets
  // included, so neither is ever logged.
  std::map<std::string, std::string> settings;
  std::map<std::string, std::string> account_fingerprints;

  Connector* connector(std::string_view channel) const;
  // Whether an interaction of this account is spooled (2xx) rather than refused (503) when
  // JetStream cannot take it in time: its on_nats_down. Unknown accounts spool.
  bool spools_when_nats_down(std::string_view channel, std::string_view account) const;
};

// Loads and validates a config file. On failure the error's detail lists every problem,
// one per line, as "file:line:column: message".
Result<Config> load_config_file(const std::string& path);
// Only the nats: section (for `omnigate tail`, which must not need the channels' secrets).
Result<NatsConfig> load_nats_config_file(const std::string& path);
// Only the spool: section (for `omnigate spool stats`).
Result<SpoolConfig> load_spool_config_file(const std::string& path);
Result<Config> load_config_text(const std::string& text, const std::string& file_name,
                                ConfigContext& context);

}  // namespace omnigate

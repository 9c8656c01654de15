// The media proxy: GET /v1/media/<channel>/<account>/<ref>, one route registered by the core,
// so a CRM can show a customer's photo without holding the provider's credentials. A connector
// only says, per account, which bearer token opens its media and how a ref becomes a download
// (MediaSource); the core checks the path and the bearer, downloads on a bounded worker pool,
// and answers once the upstream's first byte arrived -- an upstream that fails before that is
// an error status (502, 504), never a 200 and a cut connection.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/core/error.hpp"
#include "gateway/http/client.hpp"
#include "gateway/http/request.hpp"

namespace omnigate {

class Metrics;

// Where a ref's bytes are: a URL the gateway may GET, with the headers the provider requires
// (WhatsApp: Authorization: Bearer <access token>). `content_type` overrides the upstream's
// Content-Type when the provider serves everything as application/octet-stream (Telegram).
struct MediaTarget {
  std::string url;
  http::HeaderList headers;
  std::optional<std::string> content_type;
  // Sent as Content-Disposition: attachment; filename*=UTF-8''... (the e-mail part's name).
  std::optional<std::string> file_name;
  // Bytes the gateway holds itself rather than a URL (the e-mail archive), read on the media
  // worker: it calls `begin(content_type)` once, then `write` with the bytes in order; false
  // from either means stop (the client is gone). An Error before `begin` is the answer.
  using Begin = std::function<bool(std::string_view content_type)>;
  using Write = std::function<bool(std::string_view bytes)>;
  std::function<Status(const Begin& begin, const Write& write)> local;
};

struct MediaSource {
  // The bearer token a caller must present for `account`: nullopt = no such account (404
  // unknown_account), "" = the proxy is off for this account (404 not_found).
  std::function<std::optional<std::string>(std::string_view account)> bearer_token;
  // The download for `ref` (already checked against [A-Za-z0-9_.:-]{1,512}) of a known account
  // with the bearer checked. Runs on a media worker and may call the provider (Telegram's
  // getFile); an Error is the answer (not_found: the provider does not know the ref).
  std::function<Result<MediaTarget>(std::string_view account, std::string_view ref)> resolve;
  // Refs may contain '/' (e-mail: <interaction id>/<part>). Never for a source that puts the
  // ref into a provider URL, where a slash could walk the provider's paths.
  bool nested_refs = false;
};

struct MediaProxyLimits {
  int workers = 8;  // concurrent downloads
  int queue = 32;   // requests waiting for a worker; one more is 503 + Retry-After
  std::chrono::milliseconds first_byte_timeout{30'000};  // queue wait + resolve + first byte
  std::chrono::milliseconds timeout{120'000};            // one whole download
  size_t buffer_bytes = 1024 * 1024;  // read ahead of a slow client, per download
};

class MediaProxy {
 public:
  // Counts answers in metrics.media_requests by channel and outcome (ok, an error code's name,
  // client_gone, failed_mid_stream) and wrong bearers in metrics.rejected; `metrics` must
  // outlive the proxy.
  MediaProxy(MediaProxyLimits limits, Metrics& metrics);
  ~MediaProxy();  // cancels queued and running downloads and joins the workers
  MediaProxy(const MediaProxy&) = delete;
  MediaProxy& operator=(const MediaProxy&) = delete;

  // Before the first request (start-up). A second source for a channel replaces the first.
  void add_source(std::string channel, MediaSource source);

  // GET /v1/media/<channel>/<account>/<ref>. The reply streams the file; a 401 is the caller's
  // to count as an authentication failure.
  Reply handle(const InboundRequest& request);

  // Downloads running or waiting for a worker now.
  size_t in_flight() const;

  class Pool;
  struct Transfer;

 private:
  MediaProxyLimits limits_;
  Metrics& metrics_;
  std::vector<std::pair<std::string, MediaSource>> sources_;
  std::unique_ptr<Pool> pool_;
};

// Parses /v1/media/<channel>/<account>/<ref> by a character loop: channel [a-z0-9_]{1,32},
// account [A-Za-z0-9_-]{1,64}, ref [A-Za-z0-9_.:/-]{1,512} (a '/' only where the source allows
// nested refs). False for anything else.
struct MediaPath {
  std::string_view channel, account, ref;
};
bool parse_media_path(std::string_view path, MediaPath& out);

// The media type of a file by the extension of its path or name (case-insensitive), for
// providers whose file servers send application/octet-stream (Telegram; VK documents carry
// only an extension). application/octet-stream when unknown.
std::string media_type_for_path(std::string_view path);

}  // namespace omnigate

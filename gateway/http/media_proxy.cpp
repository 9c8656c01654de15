#include "gateway/http/media_proxy.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "gateway/core/log.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/core/strings.hpp"
#include "gateway/http/verify.hpp"

namespace omnigate {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// `text` is 1..max_length characters, each alphanumeric or one of `extra`.
bool segment_ok(std::string_view text, size_t max_length, std::string_view extra) {
  if (text.empty() || text.size() > max_length) return false;
  for (char c : text) {
    if (!is_alnum(c) && extra.find(c) == std::string_view::npos) return false;
  }
  return true;
}

// The segment of `path` from `from` up to the next '/' (or the end); `from` moves past it.
std::string_view next_segment(std::string_view path, size_t& from) {
  size_t end = from;
  while (end < path.size() && path[end] != '/') ++end;
  std::string_view segment = path.substr(from, end - from);
  from = end < path.size() ? end + 1 : end;
  return segment;
}

// RFC 6266 with the RFC 8187 form only: every byte outside attr-char percent-encoded, so a
// Cyrillic or hostile name (quotes, CR LF) can never break the header.
std::string content_disposition(std::string_view file_name) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string value = "attachment; filename*=UTF-8''";
  size_t length = std::min<size_t>(file_name.size(), 255);
  while (length < file_name.size() &&
         (static_cast<unsigned char>(file_name[length]) & 0xC0) == 0x80)
    --length;  // never cut a UTF-8 sequence
  for (unsigned char c : file_name.substr(0, length)) {
    if (is_alnum(static_cast<char>(c)) ||
        std::string_view("!#$&+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos) {
      value += static_cast<char>(c);
    } else {
      value += '%';
      value += kHex[c >> 4];
      value += kHex[c & 15];
    }
  }
  return value;
}

}  // namespace

bool parse_media_path(std::string_view path, MediaPath& out) {
  constexpr std::string_view prefix = "/v1/media/";
  if (path.size() > prefix.size() + 32 + 64 + 512 + 2 || path.substr(0, prefix.size()) != prefix)
    return false;
  size_t at = prefix.size();
  MediaPath parsed;
  parsed.channel = next_segment(path, at);
  parsed.account = next_segment(path, at);
  if (at == path.size() || path[at - 1] != '/') return false;  // no ref segment
  parsed.ref = path.substr(at);
  bool channel_lower = std::none_of(parsed.channel.begin(), parsed.channel.end(),
                                    [](char c) { return c >= 'A' && c <= 'Z'; });
  if (!channel_lower || !segment_ok(parsed.channel, 32, "_") ||
      !segment_ok(parsed.account, 64, "_-") || !segment_ok(parsed.ref, 512, "_.:/-")) {
    return false;
  }
  out = parsed;
  return true;
}

std::string media_type_for_path(std::string_view path) {
  static constexpr std::pair<std::string_view, std::string_view> types[] = {
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"png", "image/png"},
      {"webp", "image/webp"},
      {"gif", "image/gif"},
      {"mp4", "video/mp4"},
      {"webm", "video/webm"},
      {"oga", "audio/ogg"},
      {"ogg", "audio/ogg"},
      {"mp3", "audio/mpeg"},
      {"m4a", "audio/mp4"},
      {"pdf", "application/pdf"},
      {"tgs", "application/x-tgsticker"},  // Telegram's animated stickers
  };
  size_t dot = path.rfind('.');
  size_t slash = path.rfind('/');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && slash > dot))
    return "application/octet-stream";
  std::string_view ext = path.substr(dot + 1);
  for (const auto& [known, type] : types) {
    if (iequals(ext, known)) return std::string(type);
  }
  return "application/octet-stream";
}

// One proxied file, shared by the worker that downloads it and the HTTP thread that sends it.
struct MediaProxy::Transfer {
  const MediaSource* source = nullptr;
  std::string account, ref;
  MediaProxyLimits limits;
  const std::atomic<bool>* pool_stopping = nullptr;

  std::atomic<bool> cancelled{false};  // the client went away, or it waited too long
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<std::string> chunks;
  size_t buffered = 0;
  bool started = false;  // the first byte arrived (or a complete empty file)
  bool done = false;     // the worker is finished with it
  std::optional<Error> error;
  std::string content_type;
  std::optional<std::string> file_name;

  bool stop_requested() const { return cancelled.load() || pool_stopping->load(); }

  void cancel() {
    {
      std::lock_guard lock(mutex);  // a waiter between its check and its wait sees it
      cancelled = true;
    }
    changed.notify_all();
  }

  void finish(std::optional<Error> failure) {
    std::lock_guard lock(mutex);
    done = true;
    error = std::move(failure);
    changed.notify_all();
  }

  // The answer starts: its type is known (the upstream's first byte arrived).
  bool begin(const MediaTarget& target, std::string_view upstream_type) {
    std::lock_guard lock(mutex);
    started = true;
    content_type = target.content_type     ? *target.content_type
                   : upstream_type.empty() ? "application/octet-stream"
                                           : std::string(upstream_type);
    file_name = target.file_name;
    changed.notify_all();
    return !stop_requested();
  }

  // Hands `chunk` to the sending thread, waiting while the buffer is full.
  bool push(std::string_view chunk) {
    std::unique_lock lock(mutex);
    // The pool's stop flag is set under another mutex: look again now and then.
    while (buffered >= limits.buffer_bytes && !stop_requested())
      changed.wait_for(lock, milliseconds(250));
    if (stop_requested()) return false;
    chunks.emplace_back(chunk);
    buffered += chunk.size();
    changed.notify_all();
    return true;
  }

  // On a media worker: resolve the ref, download (or read the gateway's own bytes), hand the
  // chunks over through a bounded buffer.
  void run() {
    if (stop_requested()) return finish(make_error(ErrorCode::overloaded, "media", "cancelled"));
    auto target = source->resolve(account, ref);
    if (!target) return finish(target.error());
    if (target->local) {
      auto read = target->local([&](std::string_view type) { return begin(*target, type); },
                                [&](std::string_view chunk) { return push(chunk); });
      if (!read) return finish(read.error());
      if (stop_requested())
        return finish(make_error(ErrorCode::upstream_timeout, "media", "the read was cancelled"));
      return finish(std::nullopt);
    }
    http::DownloadRequest request{target->url, target->headers, limits.timeout};
    http::DownloadHandlers handlers;
    handlers.on_first_byte = [&](int, std::string_view upstream_type) {
      return begin(*target, upstream_type);
    };
    handlers.on_chunk = [&](std::string_view chunk) { return push(chunk); };
    handlers.cancelled = [this] { return stop_requested(); };
    auto result = http::download(request, handlers);
    if (!result) return finish(result.error());
    if (result->cancelled) {
      return finish(make_error(ErrorCode::upstream_timeout, "media", "the download was cancelled"));
    }
    finish(std::nullopt);
  }
};

// N threads and a bounded queue of transfers: a burst of downloads waits or gets 503, it never
// becomes a thread each.
class MediaProxy::Pool {
 public:
  Pool(int workers, size_t capacity) : capacity_(capacity) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
  }

  ~Pool() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_all();
    for (auto& thread : threads_) thread.join();
    for (auto& transfer : queue_) {
      transfer->finish(make_error(ErrorCode::overloaded, "media", "the gateway is stopping"));
    }
  }

  // False when every worker is busy and `capacity` transfers already wait for one.
  bool submit(std::shared_ptr<Transfer> transfer) {
    std::lock_guard lock(mutex_);
    if (stopping_ || queue_.size() + running_ >= threads_.size() + capacity_) return false;
    transfer->pool_stopping = &stopping_;
    queue_.push_back(std::move(transfer));
    ready_.notify_one();
    return true;
  }

  size_t in_flight() const {
    std::lock_guard lock(mutex_);
    return queue_.size() + running_;
  }

 private:
  void work() {
    while (true) {
      std::shared_ptr<Transfer> transfer;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        transfer = std::move(queue_.front());
        queue_.pop_front();
        ++running_;
      }
      try {
        transfer->run();
      } catch (const std::exception& e) {
        // A source that throws (a connector bug) fails its request, not the process.
        transfer->finish(make_error(ErrorCode::internal, "media", "the media source failed"));
        log::error("media", std::string("a media source threw: ") + e.what());
      }
      std::lock_guard lock(mutex_);
      --running_;
    }
  }

  const size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::shared_ptr<Transfer>> queue_;
  size_t running_ = 0;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> threads_;
};

MediaProxy::MediaProxy(MediaProxyLimits limits, Metrics& metrics)
    : limits_(limits),
      metrics_(metrics),
      pool_(std::make_unique<Pool>(limits.workers, static_cast<size_t>(limits.queue))) {}

MediaProxy::~MediaProxy() = default;

void MediaProxy::add_source(std::string channel, MediaSource source) {
  for (auto& [name, existing] : sources_) {
    if (name == channel) {
      existing = std::move(source);
      return;
    }
  }
  sources_.emplace_back(std::move(channel), std::move(source));
}

size_t MediaProxy::in_flight() const {
  return pool_->in_flight();
}

Reply MediaProxy::handle(const InboundRequest& request) {
  MediaPath path;
  if (!parse_media_path(request.path, path)) {
    metrics_.media_requests.inc({"unknown", "not_found"});
    return Reply::error(make_error(ErrorCode::not_found, "route",
                                   "expected /v1/media/<channel>/<account>/<ref> (account "
                                   "[A-Za-z0-9_-]{1,64}, ref [A-Za-z0-9_.:-]{1,512})"));
  }
  const MediaSource* source = nullptr;
  for (const auto& [name, candidate] : sources_) {
    if (name == path.channel) source = &candidate;
  }
  if (source && !source->nested_refs && path.ref.find('/') != std::string_view::npos) {
    metrics_.media_requests.inc({std::string(path.channel), "not_found"});
    return Reply::error(make_error(ErrorCode::not_found, "route",
                                   "a " + std::string(path.channel) +
                                       " media ref is one path segment ([A-Za-z0-9_.:-]{1,512})"));
  }
  // The channel label only ever names a registered channel: labels stay a bounded set.
  const std::string channel = source ? std::string(path.channel) : "unknown";
  auto refuse = [&](const Error& error) {
    metrics_.media_requests.inc({channel, std::string(error.name())});
    return Reply::error(error);
  };
  std::optional<std::string> token;
  if (source) token = source->bearer_token(path.account);
  if (!token) {
    return refuse(make_error(
        ErrorCode::unknown_account, "route",
        source
            ? "no " + channel + " account named '" + std::string(path.account) + "' is configured"
            : "no channel named '" + std::string(path.channel) + "' serves media"));
  }
  if (token->empty()) {
    return refuse(make_error(ErrorCode::not_found, "route",
                             "the media proxy is off for this " + channel +
                                 " account (it has no media token configured)"));
  }
  if (auto bearer = verify::bearer(request, *token); !bearer) {
    metrics_.rejected.inc({channel, "unauthorized"});
    return refuse(bearer.error());
  }

  auto transfer = std::make_shared<Transfer>();
  transfer->source = source;
  transfer->account = std::string(path.account);
  transfer->ref = std::string(path.ref);
  transfer->limits = limits_;
  if (!pool_->submit(transfer)) {
    return refuse(make_error(ErrorCode::overloaded, "media",
                             "every media worker is busy and the queue is full; retry later"));
  }
  {
    std::unique_lock lock(transfer->mutex);
    bool answered = transfer->changed.wait_for(lock, limits_.first_byte_timeout,
                                               [&] { return transfer->started || transfer->done; });
    if (!answered) {
      lock.unlock();
      transfer->cancel();
      return refuse(make_error(ErrorCode::upstream_timeout, "media",
                               "the file did not start arriving within " +
                                   std::to_string(limits_.first_byte_timeout.count()) + " ms"));
    }
    if (!transfer->started) {
      Error error = transfer->error.value_or(
          make_error(ErrorCode::internal, "media", "the download ended without a file"));
      lock.unlock();
      log::warn("media", channel + ": " + error.detail);
      return refuse(error);
    }
  }

  // From here the answer is a 200: a failure can only cut the connection. The guard counts the
  // outcome once and cancels the download if the reply is dropped before it was sent.
  struct Sending {
    Sending(std::shared_ptr<Transfer> t, LabeledCounter& c, std::string ch)
        : transfer(std::move(t)), counter(c), channel(std::move(ch)) {}
    Sending(const Sending&) = delete;
    std::shared_ptr<Transfer> transfer;
    LabeledCounter& counter;
    std::string channel;
    std::string outcome = "client_gone";
    ~Sending() {
      transfer->cancel();
      counter.inc({channel, outcome});
    }
  };
  auto sending = std::make_shared<Sending>(transfer, metrics_.media_requests, channel);
  Reply reply;
  reply.status = 200;
  {
    std::lock_guard lock(transfer->mutex);
    reply.content_type = transfer->content_type;
    if (transfer->file_name)
      reply.headers.emplace_back("Content-Disposition", content_disposition(*transfer->file_name));
  }
  reply.headers.emplace_back("Cache-Control", "private, max-age=3600");
  reply.stream = [sending](const Reply::Writer& write) {
    Transfer& t = *sending->transfer;
    while (true) {
      std::string chunk;
      {
        std::unique_lock lock(t.mutex);
        t.changed.wait(lock, [&] { return !t.chunks.empty() || t.done; });
        if (t.chunks.empty()) {
          sending->outcome = t.error ? "failed_mid_stream" : "ok";
          return !t.error;
        }
        chunk = std::move(t.chunks.front());
        t.chunks.pop_front();
        t.buffered -= chunk.size();
        t.changed.notify_all();
      }
      if (!write(chunk)) {
        sending->outcome = "client_gone";
        t.cancel();
        return false;
      }
    }
  };
  return reply;
}

}  // namespace omnigate

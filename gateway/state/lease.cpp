#include "gateway/state/lease.hpp"

#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "gateway/core/log.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/model/ids.hpp"

namespace omnigate {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::string_view kComponent = "lease";
// A value written by another version or by hand may name any ttl; waiting longer than this
// for it would stall the account.
constexpr milliseconds kLongestForeignTtl{5 * 60 * 1000};

std::string make_holder_id() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, 8, "host");
  // Two gateways in one process (tests) or a restarted process with a recycled pid must not
  // pass for each other: a random part makes every Lease its own holder.
  return std::string(host) + ":" + std::to_string(::getpid()) + ":" + random_uuid().substr(0, 8);
}

int64_t ms(milliseconds d) {
  return static_cast<int64_t>(d.count());
}

}  // namespace

std::string encode_lease(const LeaseValue& value) {
  return nlohmann::json{
      {"holder", value.holder}, {"ttl_ms", value.ttl_ms}, {"expires_at_ms", value.expires_at_ms}}
      .dump();
}

std::optional<LeaseValue> decode_lease(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  auto holder = j.find("holder");
  auto ttl = j.find("ttl_ms");
  auto expires = j.find("expires_at_ms");
  if (holder == j.end() || !holder->is_string()) return std::nullopt;
  if (ttl == j.end() || !ttl->is_number_integer() || ttl->get<int64_t>() < 0) return std::nullopt;
  if (expires == j.end() || !expires->is_number_integer()) return std::nullopt;
  return LeaseValue{holder->get<std::string>(), ttl->get<int64_t>(), expires->get<int64_t>()};
}

Lease::Lease(CursorStore& store, Metrics& metrics, std::string channel, std::string account,
             LeaseSettings settings)
    : store_(store),
      metrics_(metrics),
      channel_(std::move(channel)),
      account_(std::move(account)),
      key_(key_for(channel_, account_)),
      holder_(make_holder_id()),
      settings_(settings) {
  metrics_.lease_held.set({channel_, account_}, 0);
}

Lease::~Lease() {
  stop();
}

milliseconds Lease::check_every() const {
  return std::clamp(settings_.ttl / 3, milliseconds(50), milliseconds(1000));
}

void Lease::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void Lease::stop() {
  halt(true);
}

void Lease::abandon() {
  halt(false);
}

void Lease::halt(bool release) {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
  uint64_t revision = 0;
  {
    std::lock_guard lock(mutex_);
    if (!held_) return;
    held_ = false;
    revision = revision_;
  }
  metrics_.lease_held.set({channel_, account_}, 0);
  if (!release) return;
  // Compare-and-set: if someone took the lease over meanwhile, theirs stays untouched.
  auto released = store_.put(key_, encode_lease({"", ms(settings_.ttl), 0}), revision);
  if (released && !released->conflict) {
    log::info(kComponent, key_ + ": released");
  } else {
    log::info(kComponent, key_ + ": not released (" +
                              (released ? "already taken over" : released.error().detail) +
                              "); another instance takes it over after its ttl");
  }
}

bool Lease::held() const {
  std::lock_guard lock(mutex_);
  return held_ && Clock::now() < valid_until_;
}

bool Lease::wait_held(milliseconds timeout) {
  std::unique_lock lock(mutex_);
  // Held but past its validity (the heartbeat is still in a renewal) counts as not held: the
  // wait goes on instead of returning at once to a caller that loops on it.
  changed_.wait_for(lock, timeout,
                    [&] { return stopping_ || (held_ && Clock::now() < valid_until_); });
  return held_ && Clock::now() < valid_until_;
}

void Lease::drop() {
  set_lost("dropped: another instance wrote this account's cursor; checking the lease again");
}

std::string Lease::value_now() const {
  auto wall = now_millis().time_since_epoch().count();
  return encode_lease({holder_, ms(settings_.ttl), wall + ms(settings_.ttl)});
}

void Lease::set_held(uint64_t revision, Clock::time_point sent_at) {
  {
    std::lock_guard lock(mutex_);
    held_ = true;
    revision_ = revision;
    valid_until_ = sent_at + settings_.ttl - renew_every();
  }
  metrics_.lease_held.set({channel_, account_}, 1);
  changed_.notify_all();
}

void Lease::set_lost(const std::string& why) {
  {
    std::lock_guard lock(mutex_);
    if (!held_) return;
    held_ = false;
  }
  metrics_.lease_held.set({channel_, account_}, 0);
  log::warn(kComponent, key_ + ": lost (" + why + ")");
  changed_.notify_all();
  if (on_lost_) on_lost_();
}

bool Lease::sleep_until(Clock::time_point until) {
  std::unique_lock lock(mutex_);
  const bool was_held = held_;
  changed_.wait_until(lock, until, [&] { return stopping_ || held_ != was_held; });
  return !stopping_;
}

void Lease::run() {
  while (true) {
    bool held;
    Clock::time_point valid_until;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      held = held_;
      valid_until = valid_until_;
    }
    if (!held) {
      if (!try_acquire() && !sleep_until(Clock::now() + check_every())) return;
      continue;
    }
    // Renew every ttl/3; wake at the validity's end too, to report the loss in time.
    auto next = std::min(Clock::now() + renew_every(), valid_until);
    if (!sleep_until(next)) return;
    if (Clock::now() >= valid_until) {
      set_lost("not renewed within " + std::to_string(ms(settings_.ttl - renew_every())) +
               " ms; stopped before another instance may take over");
      continue;
    }
    renew();
  }
}

bool Lease::try_acquire() {
  auto stored = store_.get(key_);
  if (!stored) return false;  // NATS away: nobody can take it meanwhile, try again later
  const Clock::time_point now = Clock::now();
  uint64_t expected = 0;
  bool takeover = false;
  std::string previous;
  if (stored->has_value()) {
    const CursorEntry& entry = **stored;
    auto value = decode_lease(entry.value);
    expected = entry.revision;
    bool free = value && (value->holder.empty() || value->holder == holder_);
    if (!free) {
      if (entry.revision != observed_revision_) {
        observed_revision_ = entry.revision;
        observed_since_ = now;
        observed_holder_ = value ? value->holder : "";
        if (!value) {
          log::warn(kComponent, key_ + ": the stored lease is not a lease value; taking it over " +
                                    "if it stays unchanged for " +
                                    std::to_string(ms(settings_.ttl)) + " ms");
        }
        return false;
      }
      milliseconds wait = settings_.ttl;
      if (value) wait = std::max(wait, std::min(milliseconds(value->ttl_ms), kLongestForeignTtl));
      if (now - observed_since_ < wait) return false;
      takeover = true;
      previous = observed_holder_.empty() ? "an unreadable value" : observed_holder_;
    }
  }
  const Clock::time_point sent_at = Clock::now();
  auto written = store_.put(key_, value_now(), expected);
  if (!written || written->conflict) return false;  // someone else was quicker: observe again
  // Counted before held() turns true: whoever sees the lease held sees the takeover counted.
  if (takeover) metrics_.lease_takeovers.inc({channel_, account_});
  set_held(written->revision, sent_at);
  observed_revision_ = 0;
  if (takeover) {
    log::warn(kComponent,
              key_ + ": taken over from " + previous + " (not renewed for " +
                  std::to_string(
                      std::chrono::duration_cast<milliseconds>(now - observed_since_).count()) +
                  " ms); this instance (" + holder_ + ") polls now");
  } else {
    log::info(kComponent, key_ + ": acquired by this instance (" + holder_ + ")");
  }
  return true;
}

void Lease::renew() {
  uint64_t revision;
  {
    std::lock_guard lock(mutex_);
    revision = revision_;
  }
  Clock::time_point sent_at = Clock::now();
  auto written = store_.put(key_, value_now(), revision);
  if (written && !written->conflict) {
    set_held(written->revision, sent_at);
    return;
  }
  if (written) {
    // A renewal whose answer was lost may have landed: then the key is ours at a newer
    // revision. Anyone else's value means the lease is gone.
    auto stored = store_.get(key_);
    if (stored && stored->has_value()) {
      auto value = decode_lease((*stored)->value);
      if (value && value->holder == holder_) {
        sent_at = Clock::now();
        auto again = store_.put(key_, value_now(), (*stored)->revision);
        if (again && !again->conflict) {
          set_held(again->revision, sent_at);
          return;
        }
      }
    }
    set_lost("another instance holds it now");
    return;
  }
  log::warn(kComponent, key_ + ": renewal failed (" + written.error().detail +
                            "); retrying until the lease runs out");
}

}  // namespace omnigate

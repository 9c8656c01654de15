#include "gateway/state/poll_loop.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "gateway/config/config.hpp"
#include "gateway/core/clock.hpp"
#include "gateway/core/log.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/pipeline/pipeline.hpp"

namespace omnigate {
namespace {

using std::chrono::milliseconds;

std::string seconds_text(milliseconds duration) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(duration.count()) / 1000.0);
  return text;
}

uint64_t seed_of(uint64_t configured) {
  if (configured != 0) return configured;
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}

}  // namespace

PollLoopSettings poll_loop_settings(const Config& config, std::string channel, std::string account,
                                    std::string cursor_key, milliseconds lease_ttl) {
  PollLoopSettings loop;
  loop.channel = std::move(channel);
  loop.account = std::move(account);
  loop.cursor_key = std::move(cursor_key);
  loop.lease.ttl = lease_ttl.count() > 0 ? lease_ttl : config.leases.ttl;
  loop.submit_timeout = config.nats.publish_timeout;
  return loop;
}

milliseconds backoff_delay(const PollBackoff& backoff, int failures, double unit) {
  const milliseconds ceiling = std::max(backoff.max, milliseconds(1));
  milliseconds nominal = std::clamp(backoff.initial, milliseconds(1), ceiling);
  for (int i = 1; i < failures && nominal < ceiling; ++i) nominal = std::min(ceiling, nominal * 2);
  const milliseconds half = nominal / 2;
  const double spread = std::clamp(unit, 0.0, 1.0) * static_cast<double>((nominal - half).count());
  return std::min(nominal, half + milliseconds(static_cast<int64_t>(std::llround(spread))));
}

PollLoop::PollLoop(std::unique_ptr<PollSource> source, CursorStore& cursors, Pipeline& pipeline,
                   Metrics& metrics, PollLoopSettings settings, PollSleeper sleeper)
    : source_(std::move(source)),
      cursors_(cursors),
      pipeline_(pipeline),
      metrics_(metrics),
      settings_(std::move(settings)),
      sleeper_(std::move(sleeper)),
      jitter_(seed_of(settings_.jitter_seed)) {
  lease_ = std::make_unique<Lease>(cursors_, metrics_, settings_.channel, settings_.account,
                                   settings_.lease);
  lease_->on_lost([this] {
    {
      std::lock_guard lock(mutex_);
      abort_ = true;
    }
    wake_.notify_all();
  });
  activity_id_ = metrics_.activity.add_poller([this] { return state(); });
}

PollLoop::~PollLoop() {
  metrics_.activity.remove_poller(activity_id_);  // first: state() reads the members below
  stop();
}

PollerState PollLoop::state() const {
  PollerState state;
  state.channel = settings_.channel;
  state.account = settings_.account;
  state.lease_held = lease_->held();
  state.consecutive_failures = failures_;
  std::lock_guard lock(state_mutex_);
  state.last_poll_ms = last_poll_ms_;
  state.last_error = last_error_;
  state.cursor = cursor_;
  return state;
}

void PollLoop::note_error(const Error& error, std::string_view stage) {
  std::lock_guard lock(state_mutex_);
  last_error_ =
      ActivityError{std::string(error.name()), std::string(stage), 0,
                    now_millis().time_since_epoch().count(), activity_detail(error.detail)};
}

void PollLoop::note_cursor(const std::string& cursor) {
  std::lock_guard lock(state_mutex_);
  cursor_ = cursor;
}

void PollLoop::start() {
  if (thread_.joinable()) return;
  stopping_ = false;
  abort_ = false;
  lease_->start();
  thread_ = std::thread([this] { run(); });
}

void PollLoop::request_stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    abort_ = true;
  }
  wake_.notify_all();
}

void PollLoop::stop() {
  request_stop();
  if (thread_.joinable()) thread_.join();
  lease_->stop();  // after the last write: the next holder starts from our last stored cursor
}

bool PollLoop::pause(milliseconds duration) {
  if (sleeper_) return sleeper_(duration) && !abort_;
  std::unique_lock lock(mutex_);
  return !wake_.wait_for(lock, duration, [&] { return abort_.load(); });
}

bool PollLoop::back_off(milliseconds at_least, const std::string& why) {
  ++failures_;
  const double unit = std::uniform_real_distribution<double>(0.0, 1.0)(jitter_);
  const milliseconds delay = std::max(at_least, backoff_delay(settings_.backoff, failures_, unit));
  log::warn(settings_.channel, who() + ": " + why + "; retrying in " + seconds_text(delay) +
                                   " (failure " + std::to_string(failures_.load()) + " in a row)");
  return pause(delay);
}

void PollLoop::run() {
  while (!stopping_) {
    if (lease_->wait_held(milliseconds(250))) poll_while_held();
  }
}

void PollLoop::poll_while_held() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    abort_ = false;  // a new term; a loss from here on sets it again (on_lost)
  }
  if (!lease_->held()) return;
  source_->reset();  // another instance may have polled since our last term
  std::string cursor;
  uint64_t revision = 0;  // the cursor's KV revision: every write is compare-and-set on it
  while (true) {
    if (abort_ || !lease_->held()) return;
    auto stored = cursors_.get(settings_.cursor_key);
    if (stored) {
      if (stored->has_value()) {
        cursor = (*stored)->value;
        revision = (*stored)->revision;
      }
      break;
    }
    metrics_.poll_failures.inc({settings_.channel, settings_.account, "cursor"});
    note_error(stored.error(), "cursor");
    if (!back_off(milliseconds(0), "cannot read the cursor " + settings_.cursor_key + " (" +
                                       stored.error().detail + ")")) {
      return;
    }
  }
  note_cursor(cursor);
  log::info(settings_.channel, who() + ": polling from " +
                                   (revision == 0 ? std::string("the start (no stored cursor)")
                                                  : "cursor revision " + std::to_string(revision)));
  while (!abort_ && lease_->held()) {
    PollResult fetched = source_->fetch(cursor, abort_);
    if (abort_) return;  // stopped, or the lease was lost while the fetch was held
    if (auto* failed = std::get_if<PollError>(&fetched)) {
      metrics_.poll_failures.inc({settings_.channel, settings_.account, "fetch"});
      note_error(failed->error, "fetch");
      if (failed->reset_source) source_->reset();
      if (!back_off(failed->at_least, "fetch failed: " + failed->error.detail)) return;
      continue;
    }
    {
      std::lock_guard lock(state_mutex_);
      last_poll_ms_ = now_millis().time_since_epoch().count();
    }
    bool all_durable = true;
    if (!submit_and_advance(std::get<PollBatch>(std::move(fetched)), cursor, revision,
                            all_durable)) {
      return;
    }
    if (all_durable) {
      failures_ = 0;
      continue;
    }
    metrics_.poll_failures.inc({settings_.channel, settings_.account, "submit"});
    if (!back_off(milliseconds(0),
                  "not every event of the batch is durable; the cursor stays before the "
                  "first one that is not")) {
      return;
    }
  }
}

bool PollLoop::submit_and_advance(PollBatch batch, std::string& cursor, uint64_t& revision,
                                  bool& all_durable) {
  // The whole batch goes to the pipeline at once; the cursor then advances over the items in
  // order up to the first one with a submission that is not durable.
  std::vector<Submission> submissions;
  std::vector<size_t> ends;  // per item: one past its last submission
  ends.reserve(batch.items.size());
  for (auto& item : batch.items) {
    if (item.rejected) {
      // Nothing we could ever publish: count it and move past it.
      metrics_.rejected.inc({settings_.channel, std::string(item.rejected->name())});
      log::warn(settings_.channel, who() + ": skipped an event: " + item.rejected->detail);
    }
    for (const auto& type : item.mapped.ignored)
      metrics_.ignored_events.inc({settings_.channel, type});
    for (auto& submission : item.mapped.submissions) submissions.push_back(std::move(submission));
    ends.push_back(submissions.size());
  }
  std::vector<Result<Accepted>> accepted;
  if (!submissions.empty()) {
    auto deadline = std::chrono::steady_clock::now() + settings_.submit_timeout;
    accepted = pipeline_.submit_all(std::move(submissions), deadline);
  }
  std::string next = cursor;
  size_t durable = 0;  // items
  for (size_t begin = 0; durable < batch.items.size(); begin = ends[durable++]) {
    auto failed = std::find_if(accepted.begin() + begin, accepted.begin() + ends[durable],
                               [](const Result<Accepted>& a) { return !a.ok(); });
    if (failed != accepted.begin() + ends[durable]) {
      // Keep the cursor before this item: the provider hands it again.
      log::warn(settings_.channel, who() + ": " + failed->error().detail);
      note_error(failed->error(), "submit");
      break;
    }
    if (!batch.items[durable].cursor_after.empty()) next = batch.items[durable].cursor_after;
  }
  all_durable = durable == batch.items.size();
  if (all_durable && !batch.next_cursor.empty()) next = batch.next_cursor;
  if (durable > 0) source_->on_durable(batch, durable);
  if (next == cursor) return true;
  // Only what is durable is confirmed; a failed write just means a restart fetches events
  // already published again, and their ids make them duplicates.
  auto saved = cursors_.put(settings_.cursor_key, next, revision);
  if (saved && saved->conflict) {
    log::warn(settings_.channel, who() + ": the cursor " + settings_.cursor_key +
                                     " was written by another instance; stopping and checking "
                                     "the lease");
    lease_->drop();
    return false;
  }
  if (saved) {
    revision = saved->revision;
  } else {
    metrics_.poll_failures.inc({settings_.channel, settings_.account, "cursor"});
    note_error(saved.error(), "cursor");
    log::warn(settings_.channel, who() + ": cursor not saved: " + saved.error().detail);
  }
  cursor = std::move(next);
  note_cursor(cursor);
  return true;
}

}  // namespace omnigate

// The loop every poller shares (Telegram getUpdates, VK Bots Long Poll, IMAP): hold the
// account's lease, read the cursor, fetch a batch from the connector's PollSource, submit it,
// advance the cursor (compare-and-set) over the prefix of the batch that is durable, back off
// on errors, and stop promptly.
//
// A connector supplies only the provider part, a PollSource: "given this cursor, what comes
// next, and what is the cursor after each item". The loop knows nothing of what a cursor means;
// it is an opaque string stored in omnigate_cursors under the connector's key:
//   - Telegram: the getUpdates offset. Each update is an item whose cursor_after is
//     update_id + 1, so a batch durable up to update k confirms exactly updates <= k.
//   - VK Bots Long Poll: the `ts`. Updates of one a_check answer have no ts of their own: every
//     item leaves cursor_after empty (not a resume point) and the batch's next_cursor is the
//     answer's ts, stored only when the whole batch is durable (a partial batch is asked again
//     from the old ts; the deterministic ids make the repeats duplicates). `failed: 1` is a
//     batch with no items and next_cursor = the given ts; `failed: 2/3` is a PollError with
//     reset_source (the source fetches a new key, and for 3 a new ts, in its next fetch).
//   - IMAP: "UIDVALIDITY:UID". Each message is an item with cursor_after "V:uid". When the
//     mailbox's UIDVALIDITY differs from the cursor's, the source re-scans from UID 1 and its
//     items carry the new "V:uid"; dedup on Message-ID keeps the re-scan from doubling a
//     message. A dropped connection is a PollError with reset_source (reconnect, re-select).
//     `after_durable: seen | move` is done in on_durable, for the durable prefix only.
// A source never stores a cursor itself and never submits: everything it hands back is in the
// batch, so "advanced only after durable" and "a restart resumes" hold for every channel alike.
//
// Leases: only the instance holding lease.<channel>.<account> (gateway/state/lease.hpp) polls.
// A lost renewal aborts a fetch in flight; a cursor write that loses its compare-and-set proves
// another instance works on the account, so the loop drops the lease, ends the term, and
// re-reads lease and cursor before it polls again.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "gateway/core/activity.hpp"
#include "gateway/core/error.hpp"
#include "gateway/model/submission.hpp"
#include "gateway/state/cursor_store.hpp"
#include "gateway/state/lease.hpp"

namespace omnigate {

class Metrics;
class Pipeline;
struct Config;

// One provider event: what the mapping made of it, and where polling resumes once it is
// durable.
struct PolledItem {
  Mapped mapped;
  // The cursor that confirms this item and everything before it; "" when the item is not a
  // resume point of its own (the batch's next_cursor confirms it).
  std::string cursor_after;
  // Set when the event could not be mapped at all (no bytes we could ever publish): counted in
  // omnigate_rejected_total{channel, reason} and logged with its detail, then passed over like
  // a durable item so one bad event never blocks the account.
  std::optional<Error> rejected;
  // The provider bytes the submissions' raw_bytes point into; a pointer, so that moving the
  // item keeps the views valid.
  std::shared_ptr<const std::string> raw;
};

struct PollBatch {
  std::vector<PolledItem> items;  // in the provider's order
  // The cursor once every item is durable; "" = the last item's non-empty cursor_after (or the
  // current cursor when there is none).
  std::string next_cursor;
};

// A failed fetch. The loop logs `error` (its detail must name no person: no text, phone or
// address) and waits a jittered exponential back-off before the next fetch.
struct PollError {
  Error error;
  // Wait at least this long: the provider's own request (Telegram 429 retry_after, VK error
  // 6/29), or a floor for errors that retrying soon cannot fix (a revoked token).
  std::chrono::milliseconds at_least{0};
  // Call PollSource::reset() before the next fetch (a new VK key; a new IMAP connection).
  bool reset_source = false;
};

using PollResult = std::variant<PollBatch, PollError>;

// What a connector implements. Called on the loop's thread only, never concurrently.
class PollSource {
 public:
  virtual ~PollSource() = default;
  // The next batch after `cursor` ("" when none was ever stored: the source's own start). May
  // block (a long poll) but must return soon after `cancel` turns true; what it returns then is
  // discarded. A stored cursor the source cannot read is its to handle (log it, start over):
  // the loop never interprets one.
  virtual PollResult fetch(const std::string& cursor, const std::atomic<bool>& cancel) = 0;
  // Forget provider session state (keys, connections, cached positions). Called at the start
  // of every lease term -- another instance may have moved the cursor meanwhile -- and after a
  // PollError with reset_source.
  virtual void reset() {}
  // After each submit: the first `durable` items of `batch` are durable (in JetStream or the
  // spool), whatever becomes of the cursor write. Where the provider is told that an event is
  // handled (IMAP after_durable: seen / move) it is done here, never before. The items'
  // submissions have been handed to the pipeline; cursor_after and raw are intact.
  virtual void on_durable(const PollBatch& batch, size_t durable) {}
};

struct PollBackoff {
  std::chrono::milliseconds initial{1'000};
  std::chrono::milliseconds max{30'000};
};

// The wait after `failures` consecutive failures (1 = the first): nominal =
// min(max, initial * 2^(failures - 1)), then "equal jitter": nominal/2 + unit * nominal/2, with
// `unit` uniform in [0, 1). So it grows, never exceeds max, and never drops below half of its
// nominal value; instances failing together spread out instead of retrying in step.
std::chrono::milliseconds backoff_delay(const PollBackoff& backoff, int failures, double unit);

struct PollLoopSettings {
  std::string channel;     // lease key, metric labels, log lines
  std::string account;     // ditto; an account name, never a person
  std::string cursor_key;  // the key in omnigate_cursors, e.g. "telegram.<account>.offset"
  LeaseSettings lease;
  std::chrono::milliseconds submit_timeout{5'000};  // each batch's deadline (nats.publish_timeout)
  PollBackoff backoff;
  uint64_t jitter_seed = 0;  // 0: seeded from std::random_device (tests fix it)
};

// The settings of a connector's poller for one account: its lease TTL (0 = the config's
// leases.ttl) and nats.publish_timeout as each batch's deadline.
PollLoopSettings poll_loop_settings(const Config& config, std::string channel, std::string account,
                                    std::string cursor_key, std::chrono::milliseconds lease_ttl);

// How the loop waits between attempts: returns false when woken early (stop, lease lost). The
// default waits on the loop's own condition variable; tests inject one that records the
// requested durations and returns at once, so back-off is observed without timing anything.
using PollSleeper = std::function<bool(std::chrono::milliseconds)>;

class PollLoop {
 public:
  PollLoop(std::unique_ptr<PollSource> source, CursorStore& cursors, Pipeline& pipeline,
           Metrics& metrics, PollLoopSettings settings, PollSleeper sleeper = {});
  ~PollLoop();  // stop()
  PollLoop(const PollLoop&) = delete;
  PollLoop& operator=(const PollLoop&) = delete;

  // Starts the lease heartbeat and the polling thread.
  void start();
  // Aborts a fetch in flight (its cancel flag), ends any wait, joins the thread and releases
  // the lease, so another instance resumes from the last stored cursor at once.
  void stop();
  // What stop() does before it waits for the poll thread: the loop ends after the batch in
  // hand. Callable from the poll thread itself (a source's callback).
  void request_stop();

  const PollLoopSettings& settings() const { return settings_; }
  // For GET /status (every loop registers it with metrics.activity): lease, last poll, errors,
  // cursor. Safe from any thread.
  PollerState state() const;

 private:
  void run();
  // One term of holding the lease: read the cursor, then fetch/submit/advance until stopped or
  // the lease is gone.
  void poll_while_held();
  // Submits a batch; stores the cursor over its durable prefix. false when the loop must end
  // the term (a lost compare-and-set); `all_durable` says whether a back-off is due.
  bool submit_and_advance(PollBatch batch, std::string& cursor, uint64_t& revision,
                          bool& all_durable);
  // Waits the back-off of one more failure (at least `at_least`); false when woken.
  bool back_off(std::chrono::milliseconds at_least, const std::string& why);
  bool pause(std::chrono::milliseconds duration);
  std::string who() const { return settings_.channel + "/" + settings_.account; }
  // What state() reports, noted on the loop's thread.
  void note_error(const Error& error, std::string_view stage);
  void note_cursor(const std::string& cursor);

  std::unique_ptr<PollSource> source_;
  CursorStore& cursors_;
  Pipeline& pipeline_;
  Metrics& metrics_;
  const PollLoopSettings settings_;
  PollSleeper sleeper_;
  std::unique_ptr<Lease> lease_;
  std::mt19937_64 jitter_;
  std::atomic<int> failures_{0};  // consecutive failures (fetch, submit or cursor read)

  mutable std::mutex state_mutex_;  // guards the three below (read by state())
  std::optional<int64_t> last_poll_ms_;
  std::optional<ActivityError> last_error_;
  std::string cursor_;
  uint64_t activity_id_ = 0;  // the registration in metrics.activity

  std::atomic<bool> stopping_{false};
  std::atomic<bool> abort_{false};  // stopping, or the lease lost: the fetch's cancel flag
  std::mutex mutex_;
  std::condition_variable wake_;
  std::thread thread_;
};

}  // namespace omnigate

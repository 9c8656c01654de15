// What GET /status shows an operator ("a customer says they wrote to the bot: did we get it?"):
// per channel account the last interaction made durable, the counts of the last hour in
// 1-minute buckets and the last error; the state of every poller; the outbox's last hour.
//
// Only names, counts, error codes and times are kept: never a message text, phone number, e-mail
// address or request body. The accounts are fixed at start (the config's): recording for any
// other account is a no-op, so nothing a client sends can grow this. Recording finds the account
// under a shared lock (exclusive only while a reload replaces the accounts) and locks only that
// account's own mutex: request threads of different accounts never queue on one lock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace omnigate {

// Counts by name over the last hour, in 1-minute buckets (a ring of 60, reused as minutes pass).
// Not synchronized: its owner's mutex guards it.
class MinuteCounts {
 public:
  static constexpr int kMinutes = 60;
  void add(std::string_view name, int64_t now_ms, uint64_t by = 1);
  // The sums over the buckets of the hour ending at `now_ms`.
  std::map<std::string, uint64_t> last_hour(int64_t now_ms) const;

 private:
  struct Bucket {
    int64_t minute = -1;  // unix minute this bucket counts, -1 = never used
    std::vector<std::pair<std::string, uint64_t>> counts;  // a handful of names: linear search
  };
  Bucket buckets_[kMinutes];
};

// An error as the status page shows it: its code (ErrorCode's name), where it happened, the HTTP
// status it was answered with (0 when none: a poller, a pipeline outcome), when, and its detail
// (Error::detail or the error answer's message: written to be shown to the caller, never a text
// or contact of a person) cut to kMaxDetail bytes.
struct ActivityError {
  static constexpr size_t kMaxDetail = 200;
  std::string code;
  std::string stage;
  int status = 0;
  int64_t at_ms = 0;
  std::string detail;
};

// `detail` cut to ActivityError::kMaxDetail bytes at a UTF-8 character boundary.
std::string activity_detail(std::string_view detail);

struct AccountActivity {
  std::string channel;
  std::string account;
  std::optional<int64_t> last_event_ms;  // the last interaction made durable (published/spooled)
  // published, duplicates, spooled, failed (interactions not made durable or refused by the
  // pipeline),
  // http_2xx/http_4xx/http_5xx (answered requests), rejected.<code> (requests answered >= 400).
  std::map<std::string, uint64_t> last_hour;
  std::optional<ActivityError> last_error;
};

// One poller's state (gateway/state/poll_loop.hpp fills it).
struct PollerState {
  std::string channel;
  std::string account;
  bool lease_held = false;              // this instance holds lease.<channel>.<account> and polls
  std::optional<int64_t> last_poll_ms;  // the last fetch that returned a batch (maybe empty)
  int consecutive_failures = 0;
  std::optional<ActivityError> last_error;
  std::string cursor;  // opaque (an offset, a ts, "UIDVALIDITY:UID"): never a person
};

class ActivityRecorder {
 public:
  // The accounts recorded: at start, and again after a reload (SIGHUP). An account kept keeps
  // its counts; a removed one is dropped. At most kMaxAccounts are kept.
  static constexpr size_t kMaxAccounts = 10'000;
  void set_accounts(const std::vector<std::pair<std::string, std::string>>& channel_accounts);

  // An interaction of a submission: "published", "duplicates" or "spooled" (published and spooled
  // also set the last event time).
  void durable(std::string_view channel, std::string_view account, std::string_view outcome);
  // An interaction that was not made durable, or was refused by the pipeline (not_durable,
  // invalid_payload, ...).
  void failed(std::string_view channel, std::string_view account, std::string_view code,
              std::string_view stage, std::string_view detail);
  // A request answered on a channel route: its status class, and for >= 400 its error code.
  void request(std::string_view channel, std::string_view account, int status,
               std::string_view error_code, std::string_view detail);
  // A result of the consent mail outbox: "sent", "retried" or "failed".
  void mail(std::string_view result);

  std::vector<AccountActivity> accounts() const;  // in channel, account order
  std::map<std::string, uint64_t> mail_last_hour() const;

  // The pollers: a PollLoop registers a function returning its state in its constructor and
  // removes it (by the returned id) first thing in its destructor; pollers() calls each under
  // the registry's lock, so no poller is destroyed while it is being read.
  uint64_t add_poller(std::function<PollerState()> read_state);
  void remove_poller(uint64_t id);
  std::vector<PollerState> pollers() const;

 private:
  struct Entry {
    std::string channel, account;
    mutable std::mutex mutex;
    std::optional<int64_t> last_event_ms;
    MinuteCounts counts;
    std::optional<ActivityError> last_error;
  };
  Entry* find(std::string_view channel, std::string_view account) const;
  // Runs update(entry, now_ms) under the entries' shared lock and the entry's own lock; nothing
  // for an account that is not recorded.
  template <class Update>
  void update(std::string_view channel, std::string_view account, Update&& update);

  // channel -> account -> entry; replaced by set_accounts under an exclusive lock of
  // entries_mutex_, read under a shared one.
  mutable std::shared_mutex entries_mutex_;
  std::map<std::string, std::map<std::string, std::unique_ptr<Entry>, std::less<>>, std::less<>>
      entries_;
  mutable std::mutex mail_mutex_;
  MinuteCounts mail_;
  mutable std::mutex pollers_mutex_;
  uint64_t next_poller_id_ = 1;
  std::map<uint64_t, std::function<PollerState()>> pollers_;
};

}  // namespace omnigate

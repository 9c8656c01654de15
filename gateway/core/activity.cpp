#include "gateway/core/activity.hpp"

#include "gateway/core/clock.hpp"

namespace omnigate {
namespace {

constexpr int64_t kMinuteMs = 60'000;

int64_t now_ms() {
  return now_millis().time_since_epoch().count();
}

}  // namespace

std::string activity_detail(std::string_view detail) {
  if (detail.size() <= ActivityError::kMaxDetail) return std::string(detail);
  size_t end = ActivityError::kMaxDetail;
  while (end > 0 && (static_cast<unsigned char>(detail[end]) & 0xC0) == 0x80) --end;
  return std::string(detail.substr(0, end)) + "…";
}

void MinuteCounts::add(std::string_view name, int64_t now_ms, uint64_t by) {
  const int64_t minute = now_ms / kMinuteMs;
  Bucket& bucket = buckets_[minute % kMinutes];
  if (bucket.minute != minute) {
    bucket.minute = minute;
    bucket.counts.clear();  // keeps its capacity: a reused bucket allocates nothing
  }
  for (auto& [counted, count] : bucket.counts) {
    if (counted == name) {
      count += by;
      return;
    }
  }
  bucket.counts.emplace_back(std::string(name), by);
}

std::map<std::string, uint64_t> MinuteCounts::last_hour(int64_t now_ms) const {
  const int64_t minute = now_ms / kMinuteMs;
  std::map<std::string, uint64_t> sums;
  for (const Bucket& bucket : buckets_) {
    if (bucket.minute < 0 || bucket.minute > minute || bucket.minute <= minute - kMinutes) continue;
    for (const auto& [name, count] : bucket.counts) sums[name] += count;
  }
  return sums;
}

void ActivityRecorder::set_accounts(
    const std::vector<std::pair<std::string, std::string>>& channel_accounts) {
  std::unique_lock lock(entries_mutex_);
  decltype(entries_) next;
  size_t kept = 0;
  for (const auto& [channel, account] : channel_accounts) {
    if (kept == kMaxAccounts) break;
    auto& accounts = next[channel];
    if (accounts.count(account)) continue;
    std::unique_ptr<Entry> entry;
    if (auto running = entries_.find(channel); running != entries_.end()) {
      if (auto found = running->second.find(account); found != running->second.end())
        entry = std::move(found->second);  // its counts and last event stay
    }
    if (!entry) {
      entry = std::make_unique<Entry>();
      entry->channel = channel;
      entry->account = account;
    }
    accounts.emplace(account, std::move(entry));
    ++kept;
  }
  entries_ = std::move(next);
}

ActivityRecorder::Entry* ActivityRecorder::find(std::string_view channel,
                                                std::string_view account) const {
  auto accounts = entries_.find(channel);
  if (accounts == entries_.end()) return nullptr;
  auto entry = accounts->second.find(account);
  return entry == accounts->second.end() ? nullptr : entry->second.get();
}

template <class Update>
void ActivityRecorder::update(std::string_view channel, std::string_view account, Update&& update) {
  std::shared_lock entries_lock(entries_mutex_);  // a reload may replace the entries meanwhile
  Entry* entry = find(channel, account);
  if (!entry) return;  // not a configured account: nothing a client sends can grow this
  const int64_t now = now_ms();
  std::lock_guard lock(entry->mutex);
  update(*entry, now);
}

void ActivityRecorder::durable(std::string_view channel, std::string_view account,
                               std::string_view outcome) {
  update(channel, account, [&](Entry& entry, int64_t now) {
    entry.counts.add(outcome, now);
    if (outcome != "duplicates") entry.last_event_ms = now;
  });
}

void ActivityRecorder::failed(std::string_view channel, std::string_view account,
                              std::string_view code, std::string_view stage,
                              std::string_view detail) {
  update(channel, account, [&](Entry& entry, int64_t now) {
    entry.counts.add("failed", now);
    entry.last_error =
        ActivityError{std::string(code), std::string(stage), 0, now, activity_detail(detail)};
  });
}

void ActivityRecorder::request(std::string_view channel, std::string_view account, int status,
                               std::string_view error_code, std::string_view detail) {
  const char* status_class = status >= 500 ? "http_5xx" : status >= 400 ? "http_4xx" : "http_2xx";
  update(channel, account, [&](Entry& entry, int64_t now) {
    entry.counts.add(status_class, now);
    if (status < 400) return;
    std::string rejected = "rejected.";
    rejected.append(error_code);
    entry.counts.add(rejected, now);
    entry.last_error =
        ActivityError{std::string(error_code), "request", status, now, activity_detail(detail)};
  });
}

void ActivityRecorder::mail(std::string_view result) {
  const int64_t now = now_ms();
  std::lock_guard lock(mail_mutex_);
  mail_.add(result, now);
}

std::vector<AccountActivity> ActivityRecorder::accounts() const {
  const int64_t now = now_ms();
  std::vector<AccountActivity> out;
  std::shared_lock entries_lock(entries_mutex_);
  for (const auto& [channel, accounts] : entries_) {
    for (const auto& [account, entry] : accounts) {
      AccountActivity activity;
      activity.channel = channel;
      activity.account = account;
      std::lock_guard lock(entry->mutex);
      activity.last_event_ms = entry->last_event_ms;
      activity.last_hour = entry->counts.last_hour(now);
      activity.last_error = entry->last_error;
      out.push_back(std::move(activity));
    }
  }
  return out;
}

std::map<std::string, uint64_t> ActivityRecorder::mail_last_hour() const {
  std::lock_guard lock(mail_mutex_);
  return mail_.last_hour(now_ms());
}

uint64_t ActivityRecorder::add_poller(std::function<PollerState()> read_state) {
  std::lock_guard lock(pollers_mutex_);
  const uint64_t id = next_poller_id_++;
  pollers_.emplace(id, std::move(read_state));
  return id;
}

void ActivityRecorder::remove_poller(uint64_t id) {
  std::lock_guard lock(pollers_mutex_);
  pollers_.erase(id);
}

std::vector<PollerState> ActivityRecorder::pollers() const {
  std::lock_guard lock(pollers_mutex_);
  std::vector<PollerState> out;
  out.reserve(pollers_.size());
  for (const auto& [id, read_state] : pollers_) out.push_back(read_state());
  return out;
}

}  // namespace omnigate

// The part of a connector every channel shares: its table of accounts (channels.<channel>[]),
// read with typed config, the keys every account has (max_body, stop_words, on_nats_down), the
// body cap the core enforces before the handler, the accounts' background workers (pollers),
// replacing the accounts on a reload (SIGHUP), and the one reject path.
//
//   struct BotAccount : AccountBase { std::string token; };
//   class TelegramConnector : public ChannelConnector<BotAccount> {
//     void read(BotAccount& bot, ConfigMap& entry) override { bot.token = entry.secret(...); }
//     void start_channel(GatewayContext&, Router&) override { ... }
//   };
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/log.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/kit/connector.hpp"
#include "gateway/model/keyword_consent.hpp"

namespace omnigate {

// What every account of every channel has.
struct AccountBase {
  std::string name;       // the <account> of /v1/<channel>/<account>
  uint64_t max_body = 0;  // max_body: 413 above it, answered by the core before the handler
  StopWords stop_words;   // stop_words: keyword consent (messengers)
  bool spool_on_nats_down = true;  // on_nats_down: spool (true) or reject (false)
};

// What an account runs in the background (a poller). Stopped and destroyed when a reload
// removes or changes its account, and when the connector stops.
class AccountWorker {
 public:
  virtual ~AccountWorker() = default;
  // Returns when the work has ended (a poller: its thread joined, its lease released).
  virtual void stop() = 0;
};

template <class Account>
class ChannelConnector : public Connector {
 public:
  // An account as a request or a poller holds it: a reload (SIGHUP) replaces the table, never
  // an account in use, so whoever holds one keeps it valid to the end of its work.
  using AccountRef = std::shared_ptr<const Account>;

  void read_account(const std::string& name, ConfigMap& entry) final {
    auto account = std::make_shared<Account>();
    account->name = name;
    account->max_body = entry.size(max_body_key(), default_max_body());
    if (uses_stop_words()) {
      if (entry.has("stop_words")) account->stop_words = StopWords(entry.string_list("stop_words"));
    }
    // Here, for every channel: no connector re-implements it.
    const std::string policy =
        entry.string("on_nats_down", spools_by_default() ? "spool" : "reject");
    if (policy != "spool" && policy != "reject") {
      entry.problem("on_nats_down", "must be spool or reject");
    } else if (policy == "spool" && !why_never_spools().empty()) {
      entry.problem("on_nats_down", "must be reject: " + why_never_spools());
    }
    account->spool_on_nats_down = policy == "spool";
    read(*account, entry);
    // Before start(), on one thread: the table is not shared yet.
    auto table = std::const_pointer_cast<Table>(current());
    table->insert_or_assign(name, std::move(account));
  }

  bool has_account(std::string_view name) const final { return find(name) != nullptr; }

  uint64_t max_body(std::string_view name) const final {
    AccountRef account = find(name);
    return account ? account->max_body : default_max_body();
  }

  bool spools_when_nats_down(std::string_view name) const final {
    AccountRef account = find(name);
    return account == nullptr || account->spool_on_nats_down;
  }

  std::vector<std::string> account_names() const final {
    std::vector<std::string> names;
    for (const auto& [name, account] : *snapshot()) names.push_back(name);
    return names;
  }

  void start(GatewayContext& context, Router& router) final {
    context_ = &context;
    auto prepared = std::make_shared<Table>();
    for (const auto& [name, account] : *current()) {
      auto ready = std::make_shared<Account>(*account);
      prepare(*ready);
      prepared->emplace(name, std::move(ready));
    }
    {
      std::lock_guard table_lock(table_mutex_);
      table_ = prepared;
    }
    start_channel(context, router);
    std::lock_guard lock(workers_mutex_);
    for (const auto& [name, account] : *prepared) start_worker_of(name, account);
  }

  void stop() final {
    std::map<std::string, std::unique_ptr<AccountWorker>, std::less<>> workers;
    {
      std::lock_guard lock(workers_mutex_);
      workers.swap(workers_);
    }
    for (auto& [name, worker] : workers) worker->stop();
  }

  std::shared_ptr<const void> pin_accounts() const final { return pin_snapshot(snapshot()); }

  std::shared_ptr<const void> snapshot_accounts() const final { return snapshot(); }

  std::shared_ptr<const void> pin_snapshot(std::shared_ptr<const void> held) const final {
    struct Pin {
      std::shared_ptr<const Table> table;
      const Table* previous;
      ~Pin() { pinned_ = previous; }
    };
    // `held` is a snapshot_accounts() of this connector: a Table.
    auto pin = std::make_shared<Pin>(Pin{std::static_pointer_cast<const Table>(held), pinned_});
    pinned_ = pin->table.get();
    return pin;
  }

  bool replace_accounts(Connector& fresh, const AccountChanges& changes) final {
    auto* other = dynamic_cast<ChannelConnector*>(&fresh);
    if (other == nullptr || context_ == nullptr) return false;
    auto contains = [](const std::vector<std::string>& names, const std::string& name) {
      return std::find(names.begin(), names.end(), name) != names.end();
    };
    const std::shared_ptr<const Table> running = current();
    auto next = std::make_shared<Table>();
    for (const auto& [name, account] : *other->current()) {
      auto kept = running->find(name);
      if (kept != running->end() && !contains(changes.changed, name)) {
        next->emplace(name, kept->second);  // unchanged: the very object requests and pollers hold
        continue;
      }
      auto ready = std::make_shared<Account>(*account);
      prepare(*ready);
      next->emplace(name, std::move(ready));
    }
    std::lock_guard lock(workers_mutex_);
    // The old pollers end (and release their leases) before the new ones start.
    for (const auto& names : {changes.removed, changes.changed}) {
      for (const auto& name : names) {
        auto worker = workers_.find(name);
        if (worker == workers_.end()) continue;
        worker->second->stop();
        workers_.erase(worker);
      }
    }
    {
      std::lock_guard table_lock(table_mutex_);
      table_ = next;
    }
    for (const auto& names : {changes.added, changes.changed}) {
      for (const auto& name : names) {
        auto account = next->find(name);
        if (account != next->end()) start_worker_of(name, account->second);
      }
    }
    return true;
  }

 protected:
  // Reads the channel's own keys of one account (`name` and the common keys are set).
  virtual void read(Account& account, ConfigMap& entry) = 0;
  // What an account needs once the connector runs (context() is set), before any request or
  // poller sees it: at start, and for each account a reload adds or changes.
  virtual void prepare(Account& account) {}
  // Declares routes and media sources; context() is set. Routes look accounts up per request
  // (find/account), so that accounts a reload adds are served by the same routes.
  virtual void start_channel(GatewayContext& context, Router& router) = 0;
  // The account's background work (a poller), started after start_channel and for each
  // account a reload adds or changes; nullptr = none (a webhook account).
  virtual std::unique_ptr<AccountWorker> start_worker(const AccountRef& account) { return nullptr; }
  // The max_body of an account that does not set one.
  virtual uint64_t default_max_body() const { return 1024 * 1024; }
  // Whether the channel reads the `stop_words` key (messengers; not the web form or the API).
  virtual bool uses_stop_words() const { return false; }

  // The account, or nullptr; hold the result for as long as the account is used.
  AccountRef find(std::string_view name) const {
    auto table = snapshot();
    auto it = table->find(name);
    return it == table->end() ? nullptr : it->second;
  }
  // The account of a request the core routed here. The core has checked it exists, but a reload
  // may remove it in between: a null result is answered with unknown_account().
  AccountRef account(std::string_view name) const { return find(name); }
  Error no_such_account(std::string_view name) const {
    return make_error(ErrorCode::unknown_account, "route",
                      "no " + std::string(channel()) + " account named '" + std::string(name) +
                          "' is configured");
  }
  Reply unknown_account(std::string_view name) const { return Reply::error(no_such_account(name)); }
  // Every account as one consistent table.
  using Table = std::map<std::string, AccountRef, std::less<>>;
  std::shared_ptr<const Table> accounts() const { return snapshot(); }

  GatewayContext& context() const { return *context_; }

  // The one way a connector refuses a request: counted in
  // omnigate_rejected_total{channel, reason} (reason: the error's name from the one status
  // table, or a finer one such as "honeypot"), answered in the JSON error format.
  // `details` are extra members of the error object (the web form's missing "fields").
  Reply reject(const Error& error, std::string_view reason = {},
               const nlohmann::json& details = nullptr) const {
    if (context_) {
      context_->metrics.rejected.inc(
          {std::string(channel()), std::string(reason.empty() ? error.name() : reason)});
    }
    return Reply::error(error, std::nullopt, details);
  }

 private:
  // The table a lookup answers from: the one pinned for this thread's request, else current().
  std::shared_ptr<const Table> snapshot() const {
    if (pinned_ != nullptr) return std::shared_ptr<const Table>(std::shared_ptr<void>(), pinned_);
    return current();
  }
  // This connector's own table, whatever is pinned (reading the config, start, reloads: a
  // pinned table may be another connector object's of the same type).
  std::shared_ptr<const Table> current() const {
    std::lock_guard lock(table_mutex_);
    return table_;
  }
  // Starts the account's worker; a failure (a thread that cannot start) is logged and the
  // account served without it, never thrown into a reload or the start.
  void start_worker_of(const std::string& name, const AccountRef& account) {
    try {
      if (auto worker = start_worker(account)) workers_.emplace(name, std::move(worker));
    } catch (const std::exception& e) {
      log::error(std::string(channel()),
                 std::string(channel()) + "/" + name + ": its poller did not start: " + e.what());
    }
  }

  // The table a request on this thread was routed with (pin_accounts), or null. One connector
  // object per channel runs, so one per connector type is enough.
  static inline thread_local const Table* pinned_ = nullptr;

  mutable std::mutex table_mutex_;  // guards the pointer; a table is never changed once shared
  std::shared_ptr<const Table> table_ = std::make_shared<Table>();
  std::mutex workers_mutex_;  // start, stop and reloads: one at a time
  std::map<std::string, std::unique_ptr<AccountWorker>, std::less<>> workers_;
  GatewayContext* context_ = nullptr;
};

}  // namespace omnigate

// The part of a connector every channel shares: its table of accounts (channels.<channel>[]),
// read with typed config, the keys every account has (max_body, stop_words; on_nats_down is read
// by the core), the body cap the core enforces before the handler, and the one reject path.
//
//   struct BotAccount : AccountBase { std::string token; };
//   class TelegramConnector : public ChannelConnector<BotAccount> {
//     void read(BotAccount& bot, ConfigMap& entry) override { bot.token = entry.secret(...); }
//     void start_channel(GatewayContext&, Router&) override { ... }
//   };
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/metrics.hpp"
#include "gateway/kit/connector.hpp"
#include "gateway/model/keyword_consent.hpp"

namespace omnigate {

// What every account of every channel has.
struct AccountBase {
  std::string name;       // the <account> of /v1/<channel>/<account>
  uint64_t max_body = 0;  // max_body: 413 above it, answered by the core before the handler
  StopWords stop_words;   // stop_words: keyword consent (messengers)
};

template <class Account>
class ChannelConnector : public Connector {
 public:
  void read_account(const std::string& name, ConfigMap& entry) final {
    Account account;
    account.name = name;
    account.max_body = entry.size(max_body_key(), default_max_body());
    if (uses_stop_words()) {
      if (entry.has("stop_words")) account.stop_words = StopWords(entry.string_list("stop_words"));
    }
    read(account, entry);
    accounts_.insert_or_assign(name, std::move(account));
  }

  bool has_account(std::string_view name) const final { return find(name) != nullptr; }

  uint64_t max_body(std::string_view name) const final {
    const Account* account = find(name);
    return account ? account->max_body : default_max_body();
  }

  std::vector<std::string> account_names() const final {
    std::vector<std::string> names;
    for (const auto& [name, account] : accounts_) names.push_back(name);
    return names;
  }

  void start(GatewayContext& context, Router& router) final {
    context_ = &context;
    start_channel(context, router);
  }

 protected:
  // Reads the channel's own keys of one account (`name` and the common keys are set).
  virtual void read(Account& account, ConfigMap& entry) = 0;
  // Declares routes, media sources and pollers; context() is set.
  virtual void start_channel(GatewayContext& context, Router& router) = 0;
  // The max_body of an account that does not set one.
  virtual uint64_t default_max_body() const { return 1024 * 1024; }
  // Whether the channel reads the `stop_words` key (messengers; not the web form or the API).
  virtual bool uses_stop_words() const { return false; }

  const Account* find(std::string_view name) const {
    auto it = accounts_.find(name);
    return it == accounts_.end() ? nullptr : &it->second;
  }
  // The account of a request the core routed here: the core has checked it exists.
  const Account& account(std::string_view name) const { return *find(name); }
  const std::map<std::string, Account, std::less<>>& accounts() const { return accounts_; }

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
  std::map<std::string, Account, std::less<>> accounts_;
  GatewayContext* context_ = nullptr;
};

}  // namespace omnigate

// GET /status: the page an operator opens when a customer says "I wrote to your bot". One JSON
// document (?format=json, for scripts) and the same data as a server-rendered HTML page (every
// value HTML-escaped, no script, refreshed every 10 s). It holds names, counts, error codes,
// times and cursors only: never a message text, phone number or e-mail address.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "gateway/config/config.hpp"
#include "gateway/core/clock.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/nats/publisher.hpp"
#include "gateway/spool/spool.hpp"

namespace omnigate {

struct StatusSources {
  const Config& config;
  const Metrics& metrics;
  NatsReadiness nats;
  SpoolStats spool;
  bool spool_full = false;
  SysMillis started_at;
  SysMillis now;
};

// {"version", "commit", "build_date", "started_at", "uptime_seconds", "now", "nats", "spool",
//  "outbox", "accounts": [{"channel", "account", "mode", "last_event_at",
//  "last_event_age_seconds", "last_hour": {...}, "last_error", "pollers": [...]}]}.
// Accounts are the configured ones, in channel and account order.
nlohmann::json status_json(const StatusSources& sources);

// The HTML page of a status_json document.
std::string status_html(const nlohmann::json& status);

}  // namespace omnigate

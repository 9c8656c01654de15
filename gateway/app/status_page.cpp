#include "gateway/app/status_page.hpp"

#include <algorithm>
#include <cstdio>
#include <iterator>

#include "gateway/core/build_info.hpp"
#include "gateway/core/strings.hpp"
#include "gateway/kit/connector.hpp"

namespace omnigate {
namespace {

using nlohmann::json;

// The outbox results counted since start (omnigate_consent_emails_total).
constexpr const char* kMailResults[] = {"queued", "sent",    "retried",
                                        "failed", "no_smtp", "outbox_unavailable"};

std::string time_text(int64_t ms) {
  return format_rfc3339(SysMillis(std::chrono::milliseconds(ms)));
}

json error_json(const ActivityError& error, int64_t now_ms) {
  json out = {{"code", error.code},
              {"stage", error.stage},
              {"at", time_text(error.at_ms)},
              {"age_seconds", (now_ms - error.at_ms) / 1000}};
  if (error.status) out["status"] = error.status;
  if (!error.detail.empty()) out["detail"] = error.detail;
  return out;
}

json poller_json(const PollerState& poller, int64_t now_ms) {
  json out = {{"lease_held", poller.lease_held},
              {"consecutive_failures", poller.consecutive_failures},
              {"cursor", poller.cursor}};
  if (poller.last_poll_ms) {
    out["last_poll_at"] = time_text(*poller.last_poll_ms);
    out["last_poll_age_seconds"] = (now_ms - *poller.last_poll_ms) / 1000;
  }
  if (poller.last_error) out["last_error"] = error_json(*poller.last_error, now_ms);
  return out;
}

// "45 s", "3 min", "2 h 5 min", "4 d 3 h": the largest unit, and the next one below days and
// hours.
std::string age_text(int64_t seconds) {
  struct Unit {
    int64_t seconds;
    const char* name;
  };
  static constexpr Unit kUnits[] = {{86400, "d"}, {3600, "h"}, {60, "min"}, {1, "s"}};
  seconds = std::max<int64_t>(seconds, 0);
  size_t i = 0;
  while (i + 1 < std::size(kUnits) && seconds < kUnits[i].seconds) ++i;
  std::string text = std::to_string(seconds / kUnits[i].seconds) + " " + kUnits[i].name;
  if (kUnits[i].seconds >= 3600) {
    const Unit& next = kUnits[i + 1];
    text += " " + std::to_string(seconds % kUnits[i].seconds / next.seconds) + " " + next.name;
  }
  return text;
}

// "just now", "3 min ago".
std::string ago_text(const json& seconds) {
  const int64_t s = seconds.get<int64_t>();
  return s < 1 ? "just now" : age_text(s) + " ago";
}

std::string bytes_text(uint64_t bytes) {
  char text[32];
  if (bytes < 1024) {
    std::snprintf(text, sizeof text, "%llu B", static_cast<unsigned long long>(bytes));
  } else if (bytes < 1024 * 1024) {
    std::snprintf(text, sizeof text, "%.1f KiB", static_cast<double>(bytes) / 1024);
  } else {
    std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1024 * 1024));
  }
  return text;
}

std::string esc(const json& value) {
  return html_escape(value.is_string() ? value.get<std::string>() : value.dump());
}

uint64_t count_of(const json& counts, const char* name) {
  auto it = counts.find(name);
  return it == counts.end() ? 0 : it->get<uint64_t>();
}

// "12 published · 1 duplicate": the non-zero counts of `names`, or "".
std::string counts_text(const json& counts,
                        std::initializer_list<std::pair<const char*, const char*>> names) {
  std::string out;
  for (const auto& [key, label] : names) {
    uint64_t n = count_of(counts, key);
    if (!n) continue;
    if (!out.empty()) out += " · ";
    out += std::to_string(n) + " " + label;
  }
  return out;
}

std::string error_html(const json& error) {
  std::string where = error.contains("status") ? "HTTP " + esc(error["status"]) + ", " : "";
  where += esc(error["stage"]);
  return "<span class=\"bad\">" + esc(error["code"]) + "</span> <small>(" + where + ")</small>" +
         (error.contains("detail")
              ? "<br><span class=\"detail\">" + esc(error["detail"]) + "</span>"
              : "") +
         "<br><small>" + html_escape(ago_text(error["age_seconds"])) + " · " + esc(error["at"]) +
         "</small>";
}

std::string poller_html(const json& poller) {
  std::string out = poller["lease_held"].get<bool>()
                        ? "<span class=\"ok\">lease held: polling</span>"
                        : "<span class=\"warn\">standby: no lease here</span>";
  if (poller.contains("last_poll_age_seconds")) {
    out += "<br>last poll " + html_escape(ago_text(poller["last_poll_age_seconds"]));
  } else {
    out += "<br>no poll yet";
  }
  if (int failures = poller["consecutive_failures"].get<int>(); failures > 0)
    out += "<br><span class=\"bad\">" + std::to_string(failures) + " failure(s) in a row</span>";
  if (poller.contains("last_error")) out += "<br>last error " + error_html(poller["last_error"]);
  if (!poller["cursor"].get<std::string>().empty())
    out += "<br><small>cursor <code>" + esc(poller["cursor"]) + "</code></small>";
  return out;
}

std::string account_row(const json& account) {
  std::string row = "<tr><td class=\"account\">" + esc(account["account"]) + "</td><td>" +
                    esc(account["mode"]) + "</td><td>";
  if (account.contains("last_event_at")) {
    row += html_escape(ago_text(account["last_event_age_seconds"])) + "<br><small>" +
           esc(account["last_event_at"]) + "</small>";
  } else {
    row += "<span class=\"muted\">none since start</span>";
  }
  row += "</td><td>";
  const json& hour = account["last_hour"];
  std::string interactions = counts_text(hour, {{"published", "published"},
                                                {"duplicates", "duplicate(s)"},
                                                {"spooled", "spooled"},
                                                {"failed", "failed"}});
  std::string requests =
      counts_text(hour, {{"http_2xx", "× 2xx"}, {"http_4xx", "× 4xx"}, {"http_5xx", "× 5xx"}});
  std::string rejected;
  for (const auto& [code, n] : hour["rejected"].items()) {
    if (!rejected.empty()) rejected += ", ";
    rejected += html_escape(code) + " " + std::to_string(n.get<uint64_t>());
  }
  if (interactions.empty() && requests.empty()) row += "<span class=\"muted\">nothing</span>";
  if (!interactions.empty()) row += html_escape(interactions);
  if (!requests.empty()) row += "<br><small>requests: " + html_escape(requests) + "</small>";
  if (!rejected.empty()) row += "<br><small class=\"bad\">rejected: " + rejected + "</small>";
  row += "</td><td>";
  row += account.contains("last_error") ? error_html(account["last_error"])
                                        : "<span class=\"muted\">none</span>";
  row += "</td><td>";
  if (account["pollers"].empty()) {
    row += "<span class=\"muted\">no poller</span>";
  } else {
    bool first = true;
    for (const auto& poller : account["pollers"]) {
      if (!first) row += "<hr>";
      row += poller_html(poller);
      first = false;
    }
  }
  return row + "</td></tr>\n";
}

constexpr const char* kStyle = R"(
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px;
       color: #1d232a; background: #f5f6f8; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
.meta { color: #5b6570; margin: 0 0 16px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { background: #fff; border: 1px solid #dde1e6; border-radius: 8px; padding: 10px 14px;
        min-width: 200px; }
.card h3 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: #5b6570;
           margin: 0 0 4px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid #dde1e6;
        table-layout: fixed; }
.c-account { width: 12%; } .c-mode { width: 7%; } .c-event { width: 16%; }
.c-hour { width: 21%; } .c-error { width: 22%; } .c-poller { width: 22%; }
th, td { text-align: left; vertical-align: top; padding: 8px 10px; border-bottom: 1px solid #e8ebee; }
th { background: #eef1f4; font-size: 13px; color: #3b4650; }
td.account { font-weight: 600; }
small { color: #5b6570; }
.detail { font-size: 13px; color: #3b4650; overflow-wrap: anywhere; }
code { font-size: 12px; }
hr { border: 0; border-top: 1px dashed #dde1e6; }
.ok { color: #1a7f37; font-weight: 600; }
.warn { color: #9a6700; font-weight: 600; }
.bad { color: #c62828; font-weight: 600; }
.muted { color: #8a949e; }
footer { margin-top: 24px; color: #5b6570; font-size: 13px; }
)";

}  // namespace

json status_json(const StatusSources& sources) {
  const int64_t now_ms = sources.now.time_since_epoch().count();
  const BuildInfo& build = build_info();
  json status = {
      {"version", std::string(build.version)},
      {"commit", std::string(build.commit)},
      {"build_date", std::string(build.date)},
      {"started_at", format_rfc3339(sources.started_at)},
      {"uptime_seconds", (sources.now - sources.started_at) / std::chrono::seconds(1)},
      {"now", format_rfc3339(sources.now)},
      {"stream", sources.config.nats.stream.name},
      {"nats",
       {{"connected", sources.nats.connected}, {"stream_ready", sources.nats.stream_ready}}}};
  if (!sources.nats.problem.empty()) status["nats"]["problem"] = sources.nats.problem;
  status["spool"] = {
      {"depth", sources.spool.depth}, {"bytes", sources.spool.bytes}, {"full", sources.spool_full}};
  if (sources.spool.oldest_ms)
    status["spool"]["oldest_age_seconds"] = (now_ms - *sources.spool.oldest_ms) / 1000;
  const ActivityRecorder& activity = sources.metrics.activity;
  json since_start = json::object();
  for (const char* result : kMailResults)
    since_start[result] = sources.metrics.consent_emails.value({result});
  json mail_hour = json::object();
  for (const auto& [result, n] : activity.mail_last_hour()) mail_hour[result] = n;
  status["outbox"] = {{"enabled", !sources.config.consent.smtp.url.empty()},
                      {"last_hour", mail_hour},
                      {"since_start", since_start}};

  std::vector<PollerState> pollers = activity.pollers();
  json accounts = json::array();
  for (const AccountActivity& account : activity.accounts()) {
    std::string mode = "http";
    for (const auto& connector : sources.config.connectors) {
      if (connector->channel() != account.channel) continue;
      if (std::string m = connector->account_mode(account.account); !m.empty()) mode = m;
    }
    json row = {{"channel", account.channel}, {"account", account.account}, {"mode", mode}};
    if (account.last_event_ms) {
      row["last_event_at"] = time_text(*account.last_event_ms);
      row["last_event_age_seconds"] = (now_ms - *account.last_event_ms) / 1000;
    }
    json hour = {
        {"published", 0}, {"duplicates", 0}, {"spooled", 0},  {"failed", 0},
        {"http_2xx", 0},  {"http_4xx", 0},   {"http_5xx", 0}, {"rejected", json::object()}};
    for (const auto& [name, n] : account.last_hour) {
      if (name.rfind("rejected.", 0) == 0) {
        hour["rejected"][name.substr(9)] = n;
      } else {
        hour[name] = n;
      }
    }
    row["last_hour"] = std::move(hour);
    if (account.last_error) row["last_error"] = error_json(*account.last_error, now_ms);
    row["pollers"] = json::array();
    for (const PollerState& poller : pollers) {
      if (poller.channel == account.channel && poller.account == account.account)
        row["pollers"].push_back(poller_json(poller, now_ms));
    }
    accounts.push_back(std::move(row));
  }
  status["accounts"] = std::move(accounts);
  return status;
}

std::string status_html(const json& status) {
  std::string page =
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<meta http-equiv=\"refresh\" content=\"10\"><title>omnigate status</title><style>";
  page += kStyle;
  page += "</style></head><body>\n<h1>omnigate status</h1>\n<p class=\"meta\">version " +
          esc(status["version"]) + " (commit " + esc(status["commit"]) + ") · up " +
          html_escape(age_text(status["uptime_seconds"].get<int64_t>())) + " since " +
          esc(status["started_at"]) + " · now " + esc(status["now"]) + "</p>\n";

  const json& nats = status["nats"];
  const bool nats_ok = nats["connected"].get<bool>() && nats["stream_ready"].get<bool>();
  page += "<div class=\"cards\">\n<div class=\"card\" id=\"nats\"><h3>NATS</h3>";
  page +=
      nats_ok
          ? "<span class=\"ok\">connected, stream " + esc(status["stream"]) + " ready</span>"
          : std::string("<span class=\"bad\">") +
                (nats["connected"].get<bool>() ? "connected, stream not ready" : "not connected") +
                "</span>";
  if (nats.contains("problem")) page += "<br><small>" + esc(nats["problem"]) + "</small>";
  page += "</div>\n";

  const json& spool = status["spool"];
  const uint64_t depth = spool["depth"].get<uint64_t>();
  page += "<div class=\"card\" id=\"spool\"><h3>Spool</h3>";
  if (depth == 0) {
    page += "<span class=\"ok\">empty</span>";
  } else {
    page += "<span class=\"warn\">" + std::to_string(depth) + " interaction(s), " +
            html_escape(bytes_text(spool["bytes"].get<uint64_t>())) + "</span>";
    if (spool.contains("oldest_age_seconds"))
      page += "<br>oldest " + html_escape(age_text(spool["oldest_age_seconds"].get<int64_t>())) +
              " old";
  }
  if (spool["full"].get<bool>()) page += "<br><span class=\"bad\">full (spool.max_bytes)</span>";
  page += "</div>\n";

  const json& outbox = status["outbox"];
  page += "<div class=\"card\" id=\"outbox\"><h3>Mail outbox</h3>";
  if (!outbox["enabled"].get<bool>()) page += "<span class=\"muted\">no SMTP configured</span><br>";
  std::string hour = counts_text(outbox["last_hour"],
                                 {{"sent", "sent"}, {"retried", "retried"}, {"failed", "failed"}});
  page += "last hour: " + html_escape(hour.empty() ? "nothing" : hour);
  std::string since = counts_text(outbox["since_start"], {{"queued", "queued"},
                                                          {"sent", "sent"},
                                                          {"failed", "failed"},
                                                          {"outbox_unavailable", "not queued"}});
  page += "<br><small>since start: " + html_escape(since.empty() ? "nothing" : since) + "</small>";
  page += "</div>\n</div>\n";

  std::string channel;
  for (const auto& account : status["accounts"]) {
    if (account["channel"] != channel) {
      if (!channel.empty()) page += "</tbody></table>\n";
      channel = account["channel"].get<std::string>();
      page += "<h2>" + html_escape(channel) + "</h2>\n<table class=\"accounts\" data-channel=\"" +
              html_escape(channel) +
              "\"><colgroup><col class=\"c-account\"><col class=\"c-mode\"><col class=\"c-event\">"
              "<col class=\"c-hour\"><col class=\"c-error\"><col class=\"c-poller\"></colgroup>"
              "<thead><tr><th>Account</th><th>Mode</th><th>Last event</th>"
              "<th>Last hour</th><th>Last error</th><th>Poller / lease</th></tr></thead><tbody>\n";
    }
    page += account_row(account);
  }
  if (!channel.empty()) {
    page += "</tbody></table>\n";
  } else {
    page += "<p class=\"muted\">No channel accounts are configured.</p>\n";
  }
  page +=
      "<footer>Counts are of the last 60 minutes of this instance, since its start; times are "
      "UTC. The page refreshes every 10 s; <code>?format=json</code> gives the same data.</footer>"
      "\n</body></html>\n";
  return page;
}

}  // namespace omnigate

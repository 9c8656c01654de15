#include "gateway/app/tail.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <thread>

#include "gateway/core/clock.hpp"
#include "gateway/nats/nats_handles.hpp"

namespace omnigate {
namespace {
volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) {
  stop_requested = 1;
}

std::atomic<uint64_t> reconnections{0};
std::atomic<bool> leaving{false};  // our own close at exit is no lost connection
void on_reconnected(natsConnection*, void*) {
  ++reconnections;
}
void on_disconnected(natsConnection*, void*) {
  if (!leaving) std::fprintf(stderr, "omnigate tail: NATS connection lost; reconnecting...\n");
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Where the consumer starts. After a reconnect an ephemeral consumer may be gone with the
// server it lived on: it is created again after the last sequence printed.
struct StartPoint {
  jsDeliverPolicy policy = js_DeliverNew;
  uint64_t sequence = 0;
  int64_t time_ns = 0;
};

nats::Subscription subscribe(jsCtx* js, const TailOptions& options, const std::string& subject,
                             const StartPoint& start, std::string& problem) {
  jsSubOptions sub_options;
  jsSubOptions_Init(&sub_options);
  sub_options.Stream = options.stream.c_str();
  sub_options.Config.AckPolicy = js_AckExplicit;
  if (!options.durable.empty()) {
    // A CRM-style durable consumer: it starts at the beginning of the stream the first time
    // and resumes after the last acknowledged interaction afterwards.
    sub_options.Config.DeliverPolicy = js_DeliverAll;
  } else {
    sub_options.Config.DeliverPolicy = start.policy;
    sub_options.Config.OptStartSeq = start.sequence;
    sub_options.Config.OptStartTime = start.time_ns;
    sub_options.Config.InactiveThreshold = 30'000'000'000LL;  // ns: clean up after us
  }
  natsSubscription* raw_sub = nullptr;
  jsErrCode js_error = static_cast<jsErrCode>(0);
  natsStatus s = js_PullSubscribe(&raw_sub, js, subject.c_str(),
                                  options.durable.empty() ? nullptr : options.durable.c_str(),
                                  nullptr, &sub_options, &js_error);
  nats::Subscription sub(raw_sub);
  if (s != NATS_OK) {
    problem = std::string(natsStatus_GetText(s)) + " (" + nats_GetLastError(nullptr) + ")";
    sub.reset();
  }
  return sub;
}

uint64_t stream_sequence(natsMsg* msg) {
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, msg) != NATS_OK || meta == nullptr) return 0;
  uint64_t sequence = meta->Sequence.Stream;
  jsMsgMetaData_Destroy(meta);
  return sequence;
}

// At most `limit` characters (code points) of UTF-8 text, control characters as spaces.
std::string first_characters(const std::string& text, size_t limit) {
  std::string out;
  size_t characters = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    bool starts_character = (c & 0xC0) != 0x80;
    if (starts_character && ++characters > limit) {
      out += "…";
      break;
    }
    out += (c < 0x20 || c == 0x7F) ? ' ' : static_cast<char>(c);
  }
  return out;
}

std::string string_at(const nlohmann::json& doc, const nlohmann::json::json_pointer& pointer) {
  if (!doc.contains(pointer)) return "";
  const auto& value = doc.at(pointer);
  return value.is_string() ? value.get<std::string>() : value.dump();
}

std::string summary_of(const nlohmann::json& in) {
  using ptr = nlohmann::json::json_pointer;
  std::string kind = in.value("kind", "");
  if (kind == "message" || kind == "message_edit") {
    std::string text = string_at(in, ptr("/message/text"));
    if (text.empty() && in.contains(ptr("/message/attachments"))) {
      return "[" + std::to_string(in.at(ptr("/message/attachments")).size()) + " attachment(s)]";
    }
    return text;
  }
  if (kind == "lead") {
    std::string out = string_at(in, ptr("/lead/form"));
    if (in.contains(ptr("/lead/fields")) && in.at(ptr("/lead/fields")).is_object()) {
      for (const auto& [key, value] : in.at(ptr("/lead/fields")).items()) {
        out += (out.empty() ? "" : " ") + key + "=" +
               (value.is_string() ? value.get<std::string>() : value.dump());
      }
    }
    return out;
  }
  if (kind == "reaction") return string_at(in, ptr("/reaction/emoji"));
  if (kind == "action") {
    std::string title = string_at(in, ptr("/action/title"));
    return title.empty() ? string_at(in, ptr("/action/data")) : title;
  }
  if (kind == "status") return string_at(in, ptr("/status/state"));
  if (kind == "consent" && in.contains("consent") && in["consent"].is_array()) {
    std::string out;
    for (const auto& record : in["consent"]) {
      out += (out.empty() ? "" : ", ") + record.value("purpose", "?") + " " +
             record.value("status", "?");
    }
    return out;
  }
  return "";
}

}  // namespace

std::string pretty_line(const nlohmann::json& in) {
  std::string when = in.value("occurred_at", "");
  if (auto parsed = parse_rfc3339(when)) {
    std::time_t seconds = std::chrono::system_clock::to_time_t(*parsed);
    std::tm local{};
    localtime_r(&seconds, &local);
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S", &local);
    when = buffer;
  }
  std::string name = in.contains("/contact/display_name"_json_pointer)
                         ? string_at(in, "/contact/display_name"_json_pointer)
                         : "-";
  std::string line = when + "  " + in.value("channel", "?") + "/" + in.value("account", "?") +
                     "  " + in.value("kind", "?") + "  " + first_characters(name, 40) + ": " +
                     first_characters(summary_of(in), 80);
  return line;
}

int run_tail(const TailOptions& options) {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  natsOptions* raw_options = nullptr;
  natsOptions_Create(&raw_options);
  nats::Options nats_options(raw_options);
  natsOptions_SetServers(raw_options, nullptr, 0);
  natsOptions_SetURL(raw_options, options.nats_url.c_str());
  // A terminal tail waits for NATS to come back however long it takes.
  natsOptions_SetMaxReconnect(raw_options, -1);
  natsOptions_SetReconnectWait(raw_options, 250);
  natsOptions_SetReconnectedCB(raw_options, on_reconnected, nullptr);
  natsOptions_SetDisconnectedCB(raw_options, on_disconnected, nullptr);
  natsConnection* raw_connection = nullptr;
  natsStatus s = natsConnection_Connect(&raw_connection, raw_options);
  nats::Connection connection(raw_connection);
  if (s != NATS_OK) {
    std::fprintf(stderr, "omnigate tail: cannot connect to NATS at %s: %s\n",
                 options.nats_url.c_str(), natsStatus_GetText(s));
    return 1;
  }
  jsCtx* raw_js = nullptr;
  natsConnection_JetStream(&raw_js, raw_connection, nullptr);
  nats::JetStream js(raw_js);

  std::string subject =
      "omnigate.interactions." + options.channel + "." + options.account + "." + options.kind;
  if (options.channel == "*" && options.account == "*" && options.kind == "*") {
    subject = "omnigate.interactions.>";
  }
  StartPoint start;
  if (options.since_ns) {
    start.policy = js_DeliverByStartTime;
    start.time_ns = *options.since_ns;
  } else if (options.from_start) {
    start.policy = js_DeliverAll;
  } else {
    // "New" as of now: a consumer created again after a reconnect starts from this time.
    start.policy = js_DeliverNew;
  }
  const int64_t started_ns = now_ns();
  std::string problem;
  nats::Subscription sub = subscribe(js.get(), options, subject, start, problem);
  if (!sub) {
    std::fprintf(stderr, "omnigate tail: cannot consume %s from stream %s: %s\n", subject.c_str(),
                 options.stream.c_str(), problem.c_str());
    return 1;
  }
  uint64_t seen_reconnections = reconnections.load();
  uint64_t last_sequence = 0;
  long printed = 0;
  long idle_ms = 0;
  bool reported_problem = false;
  while (!stop_requested && (options.count < 0 || printed < options.count)) {
    const bool reconnected = reconnections.load() != seen_reconnections;
    if (!sub || reconnected) {
      if (natsConnection_Status(connection.get()) != NATS_CONN_STATUS_CONNECTED) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      seen_reconnections = reconnections.load();
      StartPoint resume = start;
      if (last_sequence > 0) {
        resume = {js_DeliverByStartSequence, last_sequence + 1, 0};
      } else if (start.policy == js_DeliverNew) {
        resume = {js_DeliverByStartTime, 0, started_ns};
      }
      sub.reset();
      sub = subscribe(js.get(), options, subject, resume, problem);
      if (!sub) {
        if (!reported_problem)
          std::fprintf(stderr, "omnigate tail: waiting for the stream: %s\n", problem.c_str());
        reported_problem = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        continue;
      }
      if (reported_problem || reconnected)
        std::fprintf(stderr, "omnigate tail: reconnected to %s\n", options.nats_url.c_str());
      reported_problem = false;
    }
    nats::MsgList list;
    int batch =
        options.count < 0 ? 64 : static_cast<int>(std::min<long>(64, options.count - printed));
    jsErrCode js_error = static_cast<jsErrCode>(0);
    s = natsSubscription_Fetch(list.get(), sub.get(), batch, 500, &js_error);
    if (s == NATS_TIMEOUT) {
      idle_ms += 500;
      if (options.idle_exit_ms >= 0 && idle_ms >= options.idle_exit_ms) break;
      continue;
    }
    if (s != NATS_OK) {
      // The connection dropped, or the consumer went with a restarted server: subscribe
      // again once connected (above).
      sub.reset();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    idle_ms = 0;
    for (int i = 0; i < list.size(); ++i) {
      natsMsg* msg = list.at(i);
      uint64_t sequence = stream_sequence(msg);
      if (sequence != 0 && sequence <= last_sequence) continue;  // redelivered after a resume
      if (options.pretty) {
        auto doc = nlohmann::json::parse(natsMsg_GetData(msg),
                                         natsMsg_GetData(msg) + natsMsg_GetDataLength(msg), nullptr,
                                         false);
        std::string line = doc.is_discarded() ? "(not JSON)" : pretty_line(doc);
        std::fwrite(line.data(), 1, line.size(), stdout);
      } else {
        std::fwrite(natsMsg_GetData(msg), 1, static_cast<size_t>(natsMsg_GetDataLength(msg)),
                    stdout);
      }
      std::fputc('\n', stdout);
      std::fflush(stdout);
      natsMsg_Ack(msg, nullptr);
      if (sequence != 0) last_sequence = sequence;
      ++printed;
    }
  }
  leaving = true;
  if (options.durable.empty()) return 0;
  // Acks are sent asynchronously; make sure the server has them before we leave.
  natsConnection_FlushTimeout(connection.get(), 2000);
  return 0;
}

}  // namespace omnigate

#include "gateway/app/tail.hpp"

#include <csignal>
#include <cstdio>
#include <iostream>

#include "gateway/nats/nats_handles.hpp"

namespace omnigate {
namespace {
volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) {
  stop_requested = 1;
}
}  // namespace

int run_tail(const TailOptions& options) {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  natsConnection* raw_connection = nullptr;
  natsStatus s = natsConnection_ConnectTo(&raw_connection, options.nats_url.c_str());
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
  jsSubOptions sub_options;
  jsSubOptions_Init(&sub_options);
  sub_options.Stream = options.stream.c_str();
  sub_options.Config.AckPolicy = js_AckExplicit;
  if (!options.durable.empty()) {
    // A CRM-style durable consumer: it starts at the beginning of the stream the first time
    // and resumes after the last acknowledged interaction afterwards.
    sub_options.Config.DeliverPolicy = js_DeliverAll;
  } else {
    sub_options.Config.DeliverPolicy = options.from_start ? js_DeliverAll : js_DeliverNew;
    sub_options.Config.InactiveThreshold = 30'000'000'000LL;  // ns: clean up after us
  }
  natsSubscription* raw_sub = nullptr;
  jsErrCode js_error = static_cast<jsErrCode>(0);
  s = js_PullSubscribe(&raw_sub, js.get(), subject.c_str(),
                       options.durable.empty() ? nullptr : options.durable.c_str(), nullptr,
                       &sub_options, &js_error);
  nats::Subscription sub(raw_sub);
  if (s != NATS_OK) {
    std::fprintf(stderr, "omnigate tail: cannot consume %s from stream %s: %s (%s)\n",
                 subject.c_str(), options.stream.c_str(), natsStatus_GetText(s),
                 nats_GetLastError(nullptr));
    return 1;
  }
  long printed = 0;
  long idle_ms = 0;
  while (!stop_requested && (options.count < 0 || printed < options.count)) {
    nats::MsgList list;
    int batch =
        options.count < 0 ? 64 : static_cast<int>(std::min<long>(64, options.count - printed));
    s = natsSubscription_Fetch(list.get(), sub.get(), batch, 500, &js_error);
    if (s == NATS_TIMEOUT) {
      idle_ms += 500;
      if (options.idle_exit_ms >= 0 && idle_ms >= options.idle_exit_ms) break;
      continue;
    }
    if (s != NATS_OK) {
      std::fprintf(stderr, "omnigate tail: fetch failed: %s\n", natsStatus_GetText(s));
      return 1;
    }
    idle_ms = 0;
    for (int i = 0; i < list.size(); ++i) {
      natsMsg* msg = list.at(i);
      std::fwrite(natsMsg_GetData(msg), 1, static_cast<size_t>(natsMsg_GetDataLength(msg)), stdout);
      std::fputc('\n', stdout);
      std::fflush(stdout);
      natsMsg_Ack(msg, nullptr);
      ++printed;
    }
  }
  if (options.durable.empty()) return 0;
  // Acks are sent asynchronously; make sure the server has them before we leave.
  natsConnection_FlushTimeout(connection.get(), 2000);
  return 0;
}

}  // namespace omnigate

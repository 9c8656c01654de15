// A pass-through in front of the fake Bot API, one per gateway instance: it forwards every call
// unchanged and remembers when this instance called getUpdates, so a test can tell which
// instance polls (the fake alone cannot tell its callers apart).
#pragma once

#include <httplib.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace omnigate::testing {

class BotApiTap {
 public:
  explicit BotApiTap(const std::string& upstream_url);
  ~BotApiTap();
  BotApiTap(const BotApiTap&) = delete;
  BotApiTap& operator=(const BotApiTap&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // When each getUpdates request arrived, in order.
  std::vector<std::chrono::steady_clock::time_point> polls() const;
  size_t poll_count() const { return polls().size(); }

 private:
  std::string upstream_host_;
  int upstream_port_ = 0;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  mutable std::mutex mutex_;
  std::vector<std::chrono::steady_clock::time_point> polls_;
};

}  // namespace omnigate::testing

#include "tests/faults/bot_api_tap.hpp"

#include <stdexcept>

#include "tests/support/harness.hpp"

namespace omnigate::testing {

BotApiTap::BotApiTap(const std::string& upstream_url) {
  // upstream_url is http://127.0.0.1:<port> (FakeBotApi::url()).
  auto colon = upstream_url.rfind(':');
  upstream_host_ = upstream_url.substr(7, colon - 7);
  upstream_port_ = std::stoi(upstream_url.substr(colon + 1));
  auto forward = [this](const httplib::Request& req, httplib::Response& res) {
    if (req.path.size() >= 11 && req.path.compare(req.path.size() - 11, 11, "/getUpdates") == 0) {
      std::lock_guard lock(mutex_);
      polls_.push_back(std::chrono::steady_clock::now());
    }
    httplib::Client upstream(upstream_host_, upstream_port_);
    upstream.set_read_timeout(70, 0);  // a long poll is held up to its timeout
    httplib::Headers headers;
    std::string content_type = req.get_header_value("Content-Type");
    auto answer = req.method == "GET"
                      ? upstream.Get(req.target.c_str(), headers)
                      : upstream.Post(req.target.c_str(), headers, req.body, content_type.c_str());
    if (!answer) {
      res.status = 502;
      return;
    }
    res.status = answer->status;
    res.set_content(answer->body, answer->get_header_value("Content-Type").c_str());
  };
  server_.Get(".*", forward);
  server_.Post(".*", forward);
  port_ = server_.bind_to_any_port("127.0.0.1");
  if (port_ <= 0) throw std::runtime_error("BotApiTap: cannot bind");
  thread_ = std::thread([this] { server_.listen_after_bind(); });
  if (!eventually([&] { return server_.is_running(); }))
    throw std::runtime_error("BotApiTap: does not run");
}

BotApiTap::~BotApiTap() {
  server_.stop();
  if (thread_.joinable()) thread_.join();
}

std::vector<std::chrono::steady_clock::time_point> BotApiTap::polls() const {
  std::lock_guard lock(mutex_);
  return polls_;
}

}  // namespace omnigate::testing

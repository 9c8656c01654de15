#include "tests/support/fake_vk_api.hpp"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

namespace omnigate::testing {
namespace {

using json = nlohmann::json;

json vk_error(int code, const std::string& message, const std::string& method) {
  return {{"error",
           {{"error_code", code},
            {"error_msg", message},
            {"request_params", json::array({{{"key", "method"}, {"value", method}},
                                            {{"key", "oauth"}, {"value", "1"}}})}}}};
}

std::string message_of(int code) {
  switch (code) {
    case 5:
      return "User authorization failed: invalid access_token (4).";
    case 6:
      return "Too many requests per second";
    case 9:
      return "Flood control";
    case 15:
      return "Access denied: no access to call this method";
    case 29:
      return "Rate limit reached";
    case 100:
      return "One of the parameters specified was missing or invalid";
    default:
      return "Unknown error occurred";
  }
}

std::string param(const std::map<std::string, std::string>& params, const std::string& name) {
  auto it = params.find(name);
  return it == params.end() ? "" : it->second;
}

}  // namespace

FakeVkApi::FakeVkApi(int64_t group_id, std::string confirmation_code, std::string token)
    : group_id_(group_id),
      confirmation_code_(std::move(confirmation_code)),
      token_(std::move(token)) {
  server_.Post(
      R"(/method/([A-Za-z.]+))",
      [this](const httplib::Request& req, httplib::Response& res) { handle_method(req, res); });
  server_.Get(R"(/whp/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
    handle_check(req, res);
  });
  port_ = server_.bind_to_any_port("127.0.0.1");
  if (port_ <= 0) throw std::runtime_error("fake VK API: cannot bind 127.0.0.1");
  thread_ = std::thread([this] { server_.listen_after_bind(); });
  // stop() is a no-op before the accept loop runs: wait for it, so stop() always ends it.
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!server_.is_running() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

FakeVkApi::~FakeVkApi() {
  stop();
}

void FakeVkApi::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();  // held long polls answer now, so the worker threads can end
  server_.stop();
  if (thread_.joinable()) thread_.join();
}

void FakeVkApi::queue_event(json event) {
  {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
  }
  changed_.notify_all();
}

int64_t FakeVkApi::last_event() const {
  std::lock_guard lock(mutex_);
  return static_cast<int64_t>(events_.size());
}

void FakeVkApi::fail_next_check(int failed) {
  {
    std::lock_guard lock(mutex_);
    fail_next_check_ = failed;
  }
  changed_.notify_all();
}

void FakeVkApi::fail_method(const std::string& method, int code, int count) {
  std::lock_guard lock(mutex_);
  method_failures_[method] = {code, count};
}

std::vector<FakeVkApi::Check> FakeVkApi::checks() const {
  std::lock_guard lock(mutex_);
  return checks_;
}

void FakeVkApi::add_user(int64_t id, std::string first_name, std::string last_name,
                         std::string deactivated) {
  std::lock_guard lock(mutex_);
  users_[id] = {std::move(first_name), std::move(last_name), std::move(deactivated)};
}

void FakeVkApi::set_users_delay(std::chrono::milliseconds delay) {
  std::lock_guard lock(mutex_);
  users_delay_ = delay;
}

std::vector<FakeVkApi::CallbackServer> FakeVkApi::callback_servers() const {
  std::lock_guard lock(mutex_);
  return servers_;
}

void FakeVkApi::add_existing_server(CallbackServer server) {
  std::lock_guard lock(mutex_);
  server.id = next_server_id_++;
  servers_.push_back(std::move(server));
}

std::vector<FakeVkApi::Call> FakeVkApi::calls(const std::string& method) const {
  std::lock_guard lock(mutex_);
  if (method.empty()) return calls_;
  std::vector<Call> out;
  for (const auto& c : calls_)
    if (c.method == method) out.push_back(c);
  return out;
}

void FakeVkApi::handle_method(const httplib::Request& req, httplib::Response& res) {
  const std::string method = req.matches[1];
  std::map<std::string, std::string> params;
  for (const auto& [name, value] : req.params) params[name] = value;
  const std::string token = param(params, "access_token");
  params.erase("access_token");
  std::unique_lock lock(mutex_);
  int error = 0;
  json body;
  if (token != token_) {
    error = 5;
  } else if (param(params, "v").empty()) {
    error = 8;  // "Invalid request: v is required"
  } else if (auto f = method_failures_.find(method);
             f != method_failures_.end() && f->second.second > 0) {
    error = f->second.first;
    --f->second.second;
  }
  if (error == 0) body = method_response(method, params, error, lock);
  if (error != 0) body = vk_error(error, message_of(error), method);
  calls_.push_back({method, params, error});
  res.status = 200;  // VK answers its errors with HTTP 200
  res.set_content(body.dump(), "application/json; charset=utf-8");
}

json FakeVkApi::method_response(const std::string& method,
                                const std::map<std::string, std::string>& params, int& error,
                                std::unique_lock<std::mutex>& lock) {
  const bool our_group = param(params, "group_id") == std::to_string(group_id_);
  if (method == "groups.getLongPollServer") {
    if (!our_group) return (error = 100), json();
    key_ = "lpkey" + std::to_string(++key_generation_) + "f0a9c1e2b3d4";
    return {{"response",
             {{"key", key_},
              {"server", url() + "/whp/" + std::to_string(group_id_)},
              {"ts", std::to_string(events_.size())}}}};
  }
  if (method == "users.get") {
    const auto delay = users_delay_;
    if (delay.count() > 0) {
      lock.unlock();
      std::this_thread::sleep_for(delay);  // the slow VK this test plays
      lock.lock();
    }
    json list = json::array();
    const std::string ids = param(params, "user_ids");
    size_t start = 0;
    while (start <= ids.size()) {
      size_t end = ids.find(',', start);
      if (end == std::string::npos) end = ids.size();
      const std::string id = ids.substr(start, end - start);
      start = end + 1;
      if (id.empty()) continue;
      auto it = users_.find(std::stoll(id));
      if (it == users_.end()) continue;  // VK leaves unknown ids out
      json user = {{"id", it->first},
                   {"first_name", it->second.first_name},
                   {"last_name", it->second.last_name},
                   {"can_access_closed", true},
                   {"is_closed", false}};
      if (!it->second.deactivated.empty()) {
        user["deactivated"] = it->second.deactivated;
        user["first_name"] = "DELETED";
        user["last_name"] = "";
      }
      list.push_back(std::move(user));
    }
    return {{"response", list}};
  }
  if (!our_group) return (error = 15), json();
  if (method == "groups.getCallbackConfirmationCode")
    return {{"response", {{"code", confirmation_code_}}}};
  if (method == "groups.getCallbackServers") {
    json items = json::array();
    for (const auto& s : servers_) {
      items.push_back({{"id", s.id},
                       {"title", s.title},
                       {"creator_id", 1234567},
                       {"url", s.url},
                       {"secret_key", s.secret_key},
                       {"status", s.status}});
    }
    return {{"response", {{"count", items.size()}, {"items", items}}}};
  }
  if (method == "groups.addCallbackServer" || method == "groups.editCallbackServer") {
    CallbackServer server;
    size_t index = servers_.size();
    if (method == "groups.editCallbackServer") {
      for (size_t i = 0; i < servers_.size(); ++i)
        if (std::to_string(servers_[i].id) == param(params, "server_id")) index = i;
      if (index == servers_.size()) return (error = 100), json();
      server = servers_[index];
    } else {
      if (servers_.size() >= 10) return (error = 2000), json();  // VK keeps at most 10
      server.id = next_server_id_++;
    }
    server.url = param(params, "url");
    server.title = param(params, "title");
    server.secret_key = param(params, "secret_key");
    if (server.url.empty()) return (error = 100), json();
    server.status = confirm_server(server, lock);
    if (index == servers_.size()) {
      servers_.push_back(server);
      return {{"response", {{"server_id", server.id}}}};
    }
    servers_[index] = server;
    return {{"response", 1}};
  }
  if (method == "groups.setCallbackSettings") {
    for (auto& s : servers_) {
      if (std::to_string(s.id) != param(params, "server_id")) continue;
      for (const auto& [name, value] : params)
        if (name != "group_id" && name != "server_id" && name != "v") s.settings[name] = value;
      return {{"response", 1}};
    }
    return (error = 100), json();
  }
  error = 3;  // Unknown method passed
  return json();
}

// What VK does when a server is added or its address changes: POSTs the confirmation event
// and compares the answer with the community's code.
std::string FakeVkApi::confirm_server(const CallbackServer& server,
                                      std::unique_lock<std::mutex>& lock) {
  const std::string& url = server.url;
  const size_t scheme_end = url.find("://");
  const size_t path_start = url.find('/', scheme_end == std::string::npos ? 0 : scheme_end + 3);
  if (scheme_end == std::string::npos || path_start == std::string::npos) return "failed";
  const std::string origin = url.substr(0, path_start);
  const std::string path = url.substr(path_start);
  const json confirmation = {{"type", "confirmation"},
                             {"group_id", group_id_},
                             {"event_id", "0f4a1c2b3d4e5f60718293a4b5c6d7e8f9a0b1c2"},
                             {"v", "5.199"},
                             {"secret", server.secret_key}};
  lock.unlock();
  httplib::Client client(origin);
  client.set_connection_timeout(std::chrono::seconds(2));
  client.set_read_timeout(std::chrono::seconds(5));
  auto answer = client.Post(path.c_str(), confirmation.dump(), "application/json");
  lock.lock();
  if (!answer || answer->status != 200 || answer->body != confirmation_code_) return "failed";
  return "ok";
}

void FakeVkApi::handle_check(const httplib::Request& req, httplib::Response& res) {
  Check check;
  check.key = req.get_param_value("key");
  check.ts = req.get_param_value("ts");
  check.wait = std::atoi(req.get_param_value("wait").c_str());
  json body;
  std::unique_lock lock(mutex_);
  if (req.get_param_value("act") != "a_check") {
    res.status = 404;
    return;
  }
  // Recorded on arrival, so a test sees a poll that is being held.
  const size_t index = checks_.size();
  checks_.push_back(check);
  if (fail_next_check_ != 0) {
    check.failed = fail_next_check_;
    fail_next_check_ = 0;
    if (check.failed != 1) key_.clear();  // 2 and 3: the key is gone
  } else if (check.key.empty() || check.key != key_) {
    check.failed = 2;
  }
  int64_t ts = 0;
  if (check.failed == 0) {
    char* end = nullptr;
    ts = std::strtoll(check.ts.c_str(), &end, 10);
    // VK answers failed 1 for a ts from the future or past its history.
    if (check.ts.empty() || *end != '\0' || ts < 0 || ts > static_cast<int64_t>(events_.size()))
      check.failed = 1;
  }
  if (check.failed == 0) {
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::seconds(std::clamp(check.wait, 0, 90));
    changed_.wait_until(lock, until, [&] {
      return stopping_ || fail_next_check_ != 0 || static_cast<int64_t>(events_.size()) > ts;
    });
    json updates = json::array();
    const int64_t last = std::min<int64_t>(static_cast<int64_t>(events_.size()), ts + 100);
    for (int64_t n = ts + 1; n <= last; ++n) updates.push_back(events_[static_cast<size_t>(n - 1)]);
    check.returned = updates.size();
    body = {{"ts", std::to_string(std::max(ts, last))}, {"updates", updates}};
  } else {
    body = {{"failed", check.failed}};
    if (check.failed == 1) body["ts"] = std::to_string(events_.size());
  }
  checks_[index] = check;
  res.status = 200;
  res.set_content(body.dump(), "application/json; charset=utf-8");
}

}  // namespace omnigate::testing

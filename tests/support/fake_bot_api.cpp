#include "tests/support/fake_bot_api.hpp"

#include <algorithm>
#include <regex>
#include <stdexcept>

namespace omnigate::testing {

using nlohmann::json;

std::string jpeg_like_blob(size_t size, uint32_t seed) {
  static const unsigned char head[] = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J',  'F',
                                       'I',  'F',  0x00, 0x01, 0x01, 0x00, 0x00, 0x48,
                                       0x00, 0x48, 0x00, 0x00, 0xFF, 0xDA, 0x00, 0x08};
  std::string out(reinterpret_cast<const char*>(head), sizeof head);
  uint32_t x = seed * 2654435761u + 1;
  while (out.size() + 2 < size) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    out.push_back(static_cast<char>(x & 0xFF));  // includes NULs and 0xFF bytes on purpose
  }
  out.push_back(static_cast<char>(0xFF));
  out.push_back(static_cast<char>(0xD9));
  return out;
}

namespace {

json error_body(int code, const std::string& description) {
  return {{"ok", false}, {"error_code", code}, {"description", description}};
}

// The Bot API takes parameters as JSON, urlencoded or multipart; the gateway sends JSON.
json params_of(const httplib::Request& req) {
  if (!req.body.empty()) {
    auto parsed = json::parse(req.body, nullptr, false);
    if (!parsed.is_discarded() && parsed.is_object()) return parsed;
  }
  json out = json::object();
  for (const auto& [name, value] : req.params) out[name] = value;
  return out;
}

int64_t int_param(const json& params, const char* name, int64_t fallback) {
  if (!params.contains(name)) return fallback;
  const json& v = params[name];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    try {
      return std::stoll(v.get<std::string>());
    } catch (...) {
      return fallback;
    }
  }
  return fallback;
}

// The update's type: its one field besides update_id.
std::string type_of(const json& update) {
  for (const auto& [key, value] : update.items()) {
    if (key != "update_id") return key;
  }
  return "";
}

bool delivered(const json& update, const std::vector<std::string>& allowed) {
  std::string type = type_of(update);
  if (allowed.empty()) {
    return type != "chat_member" && type != "message_reaction" && type != "message_reaction_count";
  }
  return std::find(allowed.begin(), allowed.end(), type) != allowed.end();
}

void remember_allowed_updates(const json& params, std::vector<std::string>& allowed) {
  if (!params.contains("allowed_updates")) return;  // "the previous setting will be used"
  json list = params["allowed_updates"];
  if (list.is_string())
    list = json::parse(list.get<std::string>(), nullptr, false);  // form-encoded
  if (!list.is_array()) return;
  allowed.clear();
  for (const auto& t : list) {
    if (t.is_string()) allowed.push_back(t.get<std::string>());
  }
}

}  // namespace

FakeBotApi::FakeBotApi(std::string token) : token_(std::move(token)) {
  server_.Post(
      R"(/bot([^/]+)/([A-Za-z]+))",
      [this](const httplib::Request& req, httplib::Response& res) { handle_method(req, res); });
  server_.Get(
      R"(/bot([^/]+)/([A-Za-z]+))",
      [this](const httplib::Request& req, httplib::Response& res) { handle_method(req, res); });
  server_.Get(
      R"(/file/bot([^/]+)/(.+))",
      [this](const httplib::Request& req, httplib::Response& res) { handle_file(req, res); });
  port_ = server_.bind_to_any_port("127.0.0.1");
  if (port_ <= 0) throw std::runtime_error("fake Bot API: cannot bind 127.0.0.1");
  // bind_to_any_port already listens: connections queue in the backlog until the loop runs.
  thread_ = std::thread([this] { server_.listen_after_bind(); });
  // stop() is a no-op before the accept loop runs: wait for it, so stop() always ends it.
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!server_.is_running() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

FakeBotApi::~FakeBotApi() {
  stop();
}

void FakeBotApi::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    ++generation_;
  }
  changed_.notify_all();  // held long polls answer now, so the worker threads can end
  server_.stop();
  if (thread_.joinable()) thread_.join();
}

void FakeBotApi::answer(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void FakeBotApi::record(const httplib::Request& req, std::string method, json params, int status) {
  calls_.push_back({std::move(method), std::move(params), status, std::chrono::steady_clock::now(),
                    req.get_header_value("Host")});
}

void FakeBotApi::handle_method(const httplib::Request& req, httplib::Response& res) {
  const std::string token = req.matches[1].str();
  const std::string method = req.matches[2].str();
  json params = params_of(req);

  std::unique_lock lock(mutex_);
  if (token != token_ || mode_ == Mode::unauthorized) {
    record(req, method, params, 401);
    if (method == "getUpdates") {
      polls_.push_back({int_param(params, "offset", 0), int_param(params, "timeout", 0), 0, 401,
                        std::chrono::steady_clock::now(), req.get_header_value("Host")});
    }
    lock.unlock();
    return answer(res, 401, error_body(401, "Unauthorized"));
  }

  if (method == "getUpdates") {
    const int64_t offset = int_param(params, "offset", 0);
    const int64_t limit = std::clamp<int64_t>(int_param(params, "limit", 100), 1, 100);
    const int64_t timeout = std::max<int64_t>(0, int_param(params, "timeout", 0));
    const auto started = std::chrono::steady_clock::now();
    auto refuse = [&](int code, const json& body) {
      record(req, method, params, code);
      polls_.push_back({offset, timeout, 0, code, started, req.get_header_value("Host")});
      lock.unlock();
      answer(res, code, body);
    };
    if (mode_ == Mode::conflict || !webhook_.value("url", "").empty()) {
      return refuse(409,
                    error_body(409,
                               "Conflict: can't use getUpdates method while webhook is active; "
                               "use deleteWebhook to delete the webhook first"));
    }
    if (mode_ == Mode::rate_limited) {
      json body = error_body(429, "Too Many Requests: retry after " + std::to_string(retry_after_));
      body["parameters"] = {{"retry_after", retry_after_}};
      return refuse(429, body);
    }
    remember_allowed_updates(params, allowed_updates_);
    // An update is confirmed as soon as getUpdates is called with an offset above its id.
    if (forget_confirmed_ && offset > 0) {
      updates_.erase(
          std::remove_if(updates_.begin(), updates_.end(),
                         [&](const json& u) { return u["update_id"].get<int64_t>() < offset; }),
          updates_.end());
    }
    auto select = [&] {
      json result = json::array();
      size_t from = 0;
      if (offset < 0) {  // negative: the last -offset updates
        size_t n = static_cast<size_t>(-offset);
        from = updates_.size() > n ? updates_.size() - n : 0;
      }
      for (size_t i = from; i < updates_.size(); ++i) {
        const json& u = updates_[i];
        if (static_cast<int64_t>(result.size()) >= limit) break;
        if (offset >= 0 && u["update_id"].get<int64_t>() < offset) continue;
        if (delivered(u, allowed_updates_)) result.push_back(u);
      }
      return result;
    };
    json result = select();
    if (result.empty() && timeout > 0) {
      // Long polling: hold the request until something arrives, the mode changes or timeout.
      const uint64_t generation = generation_;
      changed_.wait_until(lock, started + std::chrono::seconds(timeout),
                          [&] { return generation_ != generation || stopping_; });
      result = select();
    }
    record(req, method, params, 200);
    polls_.push_back({offset, timeout, result.size(), 200, started, req.get_header_value("Host")});
    lock.unlock();
    return answer(res, 200, {{"ok", true}, {"result", result}});
  }

  if (method == "getFile") {
    std::string file_id = params.contains("file_id") && params["file_id"].is_string()
                              ? params["file_id"].get<std::string>()
                              : "";
    auto it = files_.find(file_id);
    if (it == files_.end()) {
      record(req, method, params, 400);
      lock.unlock();
      return answer(res, 400, error_body(400, "Bad Request: invalid file_id"));
    }
    json result = {{"file_id", file_id},
                   {"file_unique_id", it->second.file_unique_id},
                   {"file_size", it->second.bytes.size()},
                   {"file_path", it->second.file_path}};
    record(req, method, params, 200);
    lock.unlock();
    return answer(res, 200, {{"ok", true}, {"result", result}});
  }

  if (method == "setWebhook") {
    std::string url = params.value("url", "");
    remember_allowed_updates(params, allowed_updates_);
    // An empty url removes the webhook, as the real method does.
    webhook_ = params;
    webhook_["url"] = url;
    record(req, method, params, 200);
    lock.unlock();
    return answer(res, 200,
                  {{"ok", true},
                   {"result", true},
                   {"description", url.empty() ? "Webhook was deleted" : "Webhook was set"}});
  }

  if (method == "deleteWebhook") {
    bool had = !webhook_.value("url", "").empty();
    webhook_ = {{"url", ""}};
    record(req, method, params, 200);
    lock.unlock();
    return answer(res, 200,
                  {{"ok", true},
                   {"result", true},
                   {"description", had ? "Webhook was deleted" : "Webhook is already deleted"}});
  }

  if (method == "getWebhookInfo") {
    json info = {{"url", webhook_.value("url", "")},
                 {"has_custom_certificate", false},
                 {"pending_update_count", pending_update_count_}};
    if (!info["url"].get<std::string>().empty()) {
      info["max_connections"] = webhook_.value("max_connections", 40);
      info["ip_address"] = "127.0.0.1";
      if (!allowed_updates_.empty()) info["allowed_updates"] = allowed_updates_;
    }
    if (last_error_date_) {
      info["last_error_date"] = *last_error_date_;
      info["last_error_message"] = last_error_message_;
    }
    record(req, method, params, 200);
    lock.unlock();
    return answer(res, 200, {{"ok", true}, {"result", info}});
  }

  record(req, method, params, 404);
  lock.unlock();
  answer(res, 404, error_body(404, "Not Found"));
}

void FakeBotApi::handle_file(const httplib::Request& req, httplib::Response& res) {
  const std::string token = req.matches[1].str();
  const std::string path = req.matches[2].str();
  std::unique_lock lock(mutex_);
  if (token != token_ || mode_ == Mode::unauthorized) {
    lock.unlock();
    return answer(res, 401, error_body(401, "Unauthorized"));
  }
  for (const auto& [id, file] : files_) {
    if (file.file_path == path && !file.expired) {
      std::string bytes = file.bytes;
      lock.unlock();
      res.status = 200;
      res.set_content(bytes, "application/octet-stream");
      return;
    }
  }
  lock.unlock();
  answer(res, 404, error_body(404, "Not Found"));
}

void FakeBotApi::queue_update(json update) {
  if (!update.contains("update_id")) throw std::invalid_argument("queue_update: no update_id");
  {
    std::lock_guard lock(mutex_);
    updates_.push_back(std::move(update));
    std::stable_sort(updates_.begin(), updates_.end(), [](const json& a, const json& b) {
      return a["update_id"].get<int64_t>() < b["update_id"].get<int64_t>();
    });
    ++generation_;
  }
  changed_.notify_all();
}

size_t FakeBotApi::pending() const {
  std::lock_guard lock(mutex_);
  return updates_.size();
}

void FakeBotApi::set_forget_confirmed(bool forget) {
  std::lock_guard lock(mutex_);
  forget_confirmed_ = forget;
}

std::vector<FakeBotApi::Poll> FakeBotApi::polls() const {
  std::lock_guard lock(mutex_);
  return polls_;
}

std::vector<int64_t> FakeBotApi::offsets() const {
  std::lock_guard lock(mutex_);
  std::vector<int64_t> out;
  for (const auto& p : polls_) out.push_back(p.offset);
  return out;
}

void FakeBotApi::set_mode(Mode mode, int retry_after) {
  {
    std::lock_guard lock(mutex_);
    mode_ = mode;
    retry_after_ = retry_after;
    ++generation_;
  }
  changed_.notify_all();
}

void FakeBotApi::set_allowed_updates(std::vector<std::string> types) {
  std::lock_guard lock(mutex_);
  allowed_updates_ = std::move(types);
}

std::vector<std::string> FakeBotApi::allowed_updates() const {
  std::lock_guard lock(mutex_);
  return allowed_updates_;
}

void FakeBotApi::add_file(std::string file_id, std::string file_unique_id, std::string file_path,
                          std::string bytes) {
  std::lock_guard lock(mutex_);
  files_[std::move(file_id)] = {std::move(file_unique_id), std::move(file_path), std::move(bytes)};
}

void FakeBotApi::expire_file_link(const std::string& file_id) {
  std::lock_guard lock(mutex_);
  auto it = files_.find(file_id);
  if (it != files_.end()) it->second.expired = true;
}

void FakeBotApi::set_webhook_status(int pending_update_count,
                                    std::optional<int64_t> last_error_date,
                                    std::string last_error_message) {
  std::lock_guard lock(mutex_);
  pending_update_count_ = pending_update_count;
  last_error_date_ = last_error_date;
  last_error_message_ = std::move(last_error_message);
}

json FakeBotApi::webhook() const {
  std::lock_guard lock(mutex_);
  return webhook_;
}

std::vector<FakeBotApi::Call> FakeBotApi::calls(const std::string& method) const {
  std::lock_guard lock(mutex_);
  if (method.empty()) return calls_;
  std::vector<Call> out;
  for (const auto& c : calls_) {
    if (c.method == method) out.push_back(c);
  }
  return out;
}

}  // namespace omnigate::testing

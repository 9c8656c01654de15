// A local stand-in for the VK API (https://dev.vk.com/method) of one community, speaking its
// documented JSON on 127.0.0.1 with cpp-httplib: methods are POST /method/<name> with form
// parameters (access_token, v), answering {"response": ...} or {"error": {error_code,
// error_msg, request_params}}. It plays:
//   - Bots Long Poll: groups.getLongPollServer -> {server, key, ts}; GET <server>?act=a_check
//     &key&ts&wait held until events arrive, answering {ts, updates} or {failed: 1|2|3};
//   - users.get from a directory of profiles (deactivated ones too), with an optional delay;
//   - the callback-server methods (getCallbackConfirmationCode, getCallbackServers,
//     addCallbackServer, editCallbackServer, setCallbackSettings); adding or editing a server
//     sends it VK's {"type":"confirmation"} POST and marks it ok only if it answers the code.
// Point an account at it with `api_url: <fake.url()>/method`.
#pragma once

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace omnigate::testing {

// Shaped like a community token (vk1.a. + 200-odd url-safe characters).
inline const std::string kFakeVkToken =
    "vk1.a.FAKE_community_token_for_integration_tests_0123456789abcdefghijklmnopqrstuvwxyz"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

class FakeVkApi {
 public:
  struct Call {
    std::string method;
    std::map<std::string, std::string> params;  // without access_token
    int vk_error = 0;                           // the error code answered, 0 for a response
  };
  struct Check {  // one a_check request, recorded when it arrives (failed/returned when answered)
    std::string key, ts;
    int wait = 0;
    int failed = 0;       // the failed code answered, 0 for updates
    size_t returned = 0;  // updates in the answer
  };
  struct CallbackServer {
    int64_t id = 0;
    std::string title, url, secret_key, status = "unconfigured";
    nlohmann::json settings = nlohmann::json::object();  // setCallbackSettings' event flags
  };

  FakeVkApi(int64_t group_id, std::string confirmation_code, std::string token = kFakeVkToken);
  ~FakeVkApi();
  FakeVkApi(const FakeVkApi&) = delete;
  FakeVkApi& operator=(const FakeVkApi&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string api_url() const { return url() + "/method"; }
  // Stops answering (connections are refused from then on). Idempotent.
  void stop();

  // --- Bots Long Poll
  // Queues an event ({type, object, group_id, event_id, v}, as the Callback API would POST it
  // without the secret) and wakes a held a_check. Events are numbered from 1; `ts` N means
  // "the events after N".
  void queue_event(nlohmann::json event);
  // The number of the newest event (what getLongPollServer reports as ts).
  int64_t last_event() const;
  // The next a_check answers {"failed": code} (1 also carries the newest ts). 2 and 3 expire
  // the current key: every later a_check with it answers failed 2 until a new key is fetched.
  void fail_next_check(int failed);
  // The next `count` calls of `method` answer VK error `code` (e.g. 5, 6, 29).
  void fail_method(const std::string& method, int code, int count = 1);
  std::vector<Check> checks() const;

  // --- users.get
  void add_user(int64_t id, std::string first_name, std::string last_name,
                std::string deactivated = "");
  // users.get answers only after this long (a slow VK).
  void set_users_delay(std::chrono::milliseconds delay);

  // --- callback servers
  std::vector<CallbackServer> callback_servers() const;
  void add_existing_server(CallbackServer server);

  // Every method call, in order; only those of `method` when given.
  std::vector<Call> calls(const std::string& method = "") const;

 private:
  void handle_method(const httplib::Request& req, httplib::Response& res);
  void handle_check(const httplib::Request& req, httplib::Response& res);
  nlohmann::json method_response(const std::string& method,
                                 const std::map<std::string, std::string>& params, int& vk_error,
                                 std::unique_lock<std::mutex>& lock);
  std::string confirm_server(const CallbackServer& server, std::unique_lock<std::mutex>& lock);

  const int64_t group_id_;
  const std::string confirmation_code_;
  const std::string token_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  std::vector<nlohmann::json> events_;  // event N is events_[N - 1]
  std::string key_;                     // the valid long-poll key ("" before the first)
  int key_generation_ = 0;
  int fail_next_check_ = 0;
  std::map<std::string, std::pair<int, int>> method_failures_;  // method -> (code, count)
  struct User {
    std::string first_name, last_name, deactivated;
  };
  std::map<int64_t, User> users_;
  std::chrono::milliseconds users_delay_{0};
  std::vector<CallbackServer> servers_;
  int64_t next_server_id_ = 1;
  std::vector<Call> calls_;
  std::vector<Check> checks_;
};

}  // namespace omnigate::testing

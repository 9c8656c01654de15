#include "tests/faults/fault_load.hpp"

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "gateway/model/ids.hpp"
#include "tests/support/fake_bot_api.hpp"

namespace omnigate::testing {

int fault_scale() {
  const char* text = std::getenv("OMNIGATE_FAULTS_SCALE");
  int scale = text ? std::atoi(text) : 1;
  return std::max(1, scale);
}

namespace {

// Updates as Telegram sends them (connectors/telegram/fixtures), each publishing one interaction
// from the webhook alone (no Bot API call on the request path).
const std::vector<std::string> kShapes = {
    "message_text_ru_emoji_entities.json",
    "message_reply.json",
    "message_location.json",
    "message_contact_own_verified.json",
    "message_start_base64url_utm.json",
    "callback_query_button.json",
    "edited_message_text.json",
    "message_venue.json",
};

}  // namespace

nlohmann::json telegram_fixture(const std::string& name) {
  return nlohmann::json::parse(channel_fixture("telegram", name));
}

LoadGenerator::LoadGenerator(LoadOptions options) : options_(std::move(options)) {
  if (options_.ports.empty()) throw std::invalid_argument("LoadGenerator: no port");
  if (options_.payload == Payload::telegram_webhook)
    for (const auto& name : kShapes) shapes_.push_back(telegram_fixture(name));
  // A killed gateway resets connections; the write must fail, not kill the test process.
  ::signal(SIGPIPE, SIG_IGN);
}

LoadGenerator::~LoadGenerator() {
  stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

void LoadGenerator::start() {
  result_.started = Clock::now();
  deadline_ = result_.started + options_.max_duration;
  size_t sequences = options_.every_port ? options_.ports.size() : 1;
  for (size_t i = 0; i < sequences; ++i)
    next_index_.push_back(std::make_unique<std::atomic<size_t>>(0));
  if (options_.every_port) {
    // One key sequence per port: each port's threads walk the same keys at the same pace.
    for (size_t p = 0; p < options_.ports.size(); ++p)
      for (int t = 0; t < options_.threads; ++t)
        threads_.emplace_back([this, p] { run_thread(options_.ports[p], *next_index_[p]); });
  } else {
    for (int t = 0; t < options_.threads; ++t) {
      int port = options_.ports[static_cast<size_t>(t) % options_.ports.size()];
      threads_.emplace_back([this, port] { run_thread(port, *next_index_[0]); });
    }
  }
}

void LoadGenerator::stop() {
  stopping_ = true;
}

LoadResult LoadGenerator::finish() {
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
  std::lock_guard lock(mutex_);
  result_.finished = Clock::now();
  return result_;
}

bool LoadGenerator::wait_ok(uint64_t target, std::chrono::milliseconds timeout) const {
  return eventually([&] { return ok() >= target; }, timeout);
}

std::string LoadGenerator::body_for(int64_t key) const {
  if (options_.payload == Payload::api) {
    return R"({"kind":"message","message":{"native_id":")" + std::to_string(key) +
           R"(","text":"Заявка под нагрузкой"}})";
  }
  nlohmann::json update = shapes_[static_cast<size_t>(key) % shapes_.size()];
  update["update_id"] = key;
  return update.dump();
}

Attempt LoadGenerator::post(httplib::Client& client, int port, int64_t key,
                            const std::string& body) const {
  Attempt a;
  a.key = key;
  a.port = port;
  httplib::Headers headers;
  std::string path;
  if (options_.payload == Payload::api) {
    headers = {{"Authorization", "Bearer " + options_.secret},
               {"Idempotency-Key", std::to_string(key)}};
    path = "/v1/api/" + options_.account;
  } else {
    headers = {{"X-Telegram-Bot-Api-Secret-Token", options_.secret}};
    path = "/v1/telegram/" + options_.account;
  }
  a.sent = Clock::now();
  auto response = client.Post(path.c_str(), headers, body, "application/json");
  a.answered = Clock::now();
  a.status = response ? response->status : 0;
  return a;
}

void LoadGenerator::run_thread(int port, std::atomic<size_t>& next_index) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(1, 0);
  client.set_read_timeout(15, 0);
  client.set_keep_alive(true);
  std::vector<Attempt> mine;
  while (!stopping_ && Clock::now() < deadline_) {
    size_t index = next_index.fetch_add(1);
    if (index >= options_.count) break;
    int64_t key = options_.first_key + static_cast<int64_t>(index);
    std::string body = body_for(key);
    auto backoff = std::chrono::milliseconds(20);
    while (true) {
      Attempt a = post(client, port, key, body);
      mine.push_back(a);
      bool ok = a.status >= 200 && a.status < 300;
      (ok ? ok_ : failed_)++;
      if (ok || !options_.retry) break;
      if (a.status == 0) client.stop();  // a fresh connection for the retry
      if (Clock::now() > deadline_ + options_.retry_deadline) break;
      // A short back-off, not the Retry-After seconds a provider would wait: the suite has
      // seconds, and what it proves is the same.
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(500));
    }
  }
  std::lock_guard lock(mutex_);
  result_.attempts.insert(result_.attempts.end(), mine.begin(), mine.end());
}

std::string interaction_id_for(Payload payload, const std::string& account, int64_t key) {
  return interaction_id(payload == Payload::api ? "api" : "telegram", account, std::to_string(key));
}

std::string FaultReport::describe() const {
  std::ostringstream out;
  out << scenario << ": " << attempts << " requests, " << ok_attempts << " 2xx (" << ok_keys
      << " ids), " << not_ok_attempts << " not 2xx; stream " << stored << " messages, lost 2xx "
      << lost << ", duplicates " << duplicates << ", foreign " << foreign
      << "; longest unavailability " << static_cast<long>(longest_unavailable_ms) << " ms";
  if (!problems.empty()) out << "\n" << problems;
  return out.str();
}

namespace {

// The longest stretch of a load with no 2xx answer: from its start to the first 2xx, between
// two 2xx, and from the last 2xx to the end of the last attempt.
double longest_gap_ms(const LoadResult& load) {
  std::vector<Clock::time_point> ok_times;
  Clock::time_point last_answer = load.started;
  for (const auto& a : load.attempts) {
    last_answer = std::max(last_answer, a.answered);
    if (a.status >= 200 && a.status < 300) ok_times.push_back(a.answered);
  }
  std::sort(ok_times.begin(), ok_times.end());
  Clock::time_point previous = load.started;
  Clock::duration longest{0};
  for (auto t : ok_times) {
    longest = std::max(longest, t - previous);
    previous = t;
  }
  longest = std::max(longest, last_answer - previous);
  return std::chrono::duration<double, std::milli>(longest).count();
}

}  // namespace

FaultReport check_stream(const std::string& scenario, const std::vector<StreamMessage>& stream,
                         Payload payload, const std::string& account,
                         const std::set<int64_t>& ok_keys, const std::set<int64_t>& sent_keys) {
  FaultReport report;
  report.scenario = scenario;
  report.stored = stream.size();
  report.ok_keys = ok_keys.size();
  std::map<std::string, int64_t> key_of;
  for (int64_t key : sent_keys) key_of[interaction_id_for(payload, account, key)] = key;
  std::map<int64_t, size_t> copies;
  std::ostringstream problems;
  size_t shown = 0;
  auto note = [&](const std::string& what) {
    if (shown++ < 10) problems << "  " << what << "\n";
  };
  for (const auto& m : stream) {
    auto it = key_of.find(m.msg_id);
    if (it == key_of.end() || m.body.value("id", "") != m.msg_id) {
      ++report.foreign;
      note("foreign message " + m.msg_id + " on " + m.subject);
      continue;
    }
    if (++copies[it->second] == 2) note("key " + std::to_string(it->second) + " stored twice");
    if (copies[it->second] >= 2) ++report.duplicates;
  }
  for (int64_t key : ok_keys) {
    if (copies.count(key) == 0) {
      ++report.lost;
      note("key " + std::to_string(key) + " answered 2xx, not in the stream");
    }
  }
  report.problems = problems.str();
  return report;
}

FaultReport check_stream(const std::string& scenario, const std::vector<StreamMessage>& stream,
                         const std::vector<const LoadResult*>& loads, const LoadOptions& options) {
  std::set<int64_t> ok_keys, sent_keys;
  size_t attempts = 0, ok_attempts = 0;
  double longest = 0;
  for (const LoadResult* load : loads) {
    longest = std::max(longest, longest_gap_ms(*load));
    for (const auto& a : load->attempts) {
      ++attempts;
      sent_keys.insert(a.key);
      if (a.status >= 200 && a.status < 300) {
        ++ok_attempts;
        ok_keys.insert(a.key);
      }
    }
  }
  FaultReport report =
      check_stream(scenario, stream, options.payload, options.account, ok_keys, sent_keys);
  report.attempts = attempts;
  report.ok_attempts = ok_attempts;
  report.not_ok_attempts = attempts - ok_attempts;
  report.longest_unavailable_ms = longest;
  return report;
}

void record_report(const FaultReport& report) {
  const char* path = std::getenv("OMNIGATE_FAULTS_REPORT");
  if (!path) return;
  std::ofstream out(path, std::ios::app);
  out << report.scenario << "\t" << report.attempts << "\t" << report.ok_attempts << "\t"
      << report.lost << "\t" << report.duplicates << "\t"
      << static_cast<long>(report.longest_unavailable_ms) << "\n";
}

int64_t stream_size(const std::string& nats_urls, const std::string& stream) {
  try {
    NatsClient client(nats_urls);
    jsStreamInfo* info = nullptr;
    jsErrCode js_error{};
    if (js_GetStreamInfo(&info, client.jetstream(), stream.c_str(), nullptr, &js_error) != NATS_OK)
      return -1;
    auto messages = static_cast<int64_t>(info->State.Msgs);
    jsStreamInfo_Destroy(info);
    return messages;
  } catch (const std::exception&) {
    return -1;
  }
}

std::string fault_config_yaml(const FaultConfig& config) {
  std::string yaml =
      "http:\n"
      "  address: 127.0.0.1\n"
      "  port: ${OMNIGATE_HTTP_PORT}\n"
      "  threads: 32\n"
      "  retry_after: 1s\n"
      "  keep_alive_timeout: 1s\n"
      "nats:\n"
      "  url: " +
      config.nats_urls +
      "\n"
      "  connect_timeout: 500ms\n"
      "  reconnect_wait: 100ms\n"
      "  publish_timeout: 3s\n"
      "  ack_wait: 1s\n"
      "  stream:\n"
      "    replicas: " +
      std::to_string(config.replicas) +
      "\n"
      "    duplicate_window: " +
      config.duplicate_window +
      "\n"
      "log:\n"
      "  level: warn\n"
      "channels:\n"
      "  api:\n"
      "    - account: " +
      kFaultApiAccount +
      "\n"
      "      token: ${OMNIGATE_FAULTS_API_TOKEN}\n"
      "  telegram:\n"
      "    - account: " +
      kFaultBot +
      "\n"
      "      token: \"${OMNIGATE_FAULTS_BOT_TOKEN}\"\n"
      "      mode: " +
      config.telegram_mode +
      "\n"
      "      api_url: " +
      config.bot_api_url +
      "\n"
      "      poll_timeout: 1s\n";
  if (config.telegram_mode == "webhook")
    yaml += "      secret_token: ${OMNIGATE_FAULTS_WEBHOOK_SECRET}\n";
  return yaml;
}

std::vector<std::pair<std::string, std::string>> fault_env() {
  return {{"OMNIGATE_FAULTS_API_TOKEN", kApiToken},
          {"OMNIGATE_FAULTS_BOT_TOKEN", kFakeBotToken},
          {"OMNIGATE_FAULTS_WEBHOOK_SECRET", kFaultWebhookSecret}};
}

LoadOptions webhook_load(std::vector<int> ports, size_t count) {
  LoadOptions options;
  options.payload = Payload::telegram_webhook;
  options.account = kFaultBot;
  options.secret = kFaultWebhookSecret;
  options.ports = std::move(ports);
  options.count = count;
  // The count is scaled by the caller; the time it may take grows with it.
  options.max_duration = std::chrono::seconds(30) * fault_scale();
  return options;
}

LoadOptions api_load(std::vector<int> ports, size_t count) {
  LoadOptions options = webhook_load(std::move(ports), count);
  options.payload = Payload::api;
  options.account = kFaultApiAccount;
  options.secret = kApiToken;
  return options;
}

}  // namespace omnigate::testing

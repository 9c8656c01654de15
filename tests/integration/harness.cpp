#include "tests/integration/harness.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace omnigate::testing {

int free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  int port = ntohs(address.sin_port);
  ::close(fd);
  return port;
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "omnigate-test-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

NatsServer::NatsServer(Start when) : port_(free_tcp_port()) {
  if (when == Start::now) start();
}

NatsServer::~NatsServer() {
  kill();
}

void NatsServer::start() {
  pid_ = ::fork();
  if (pid_ == 0) {
    std::string port = std::to_string(port_);
    std::string log = store_.path() + "/nats.log";
    ::execlp("nats-server", "nats-server", "-js", "-a", "127.0.0.1", "-p", port.c_str(), "-sd",
             store_.path().c_str(), "-l", log.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  bool up = eventually([&] {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(port_));
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return ok;
  });
  if (!up) throw std::runtime_error("nats-server did not start on port " + std::to_string(port_));
}

void NatsServer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void NatsServer::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void NatsServer::pause() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void NatsServer::resume() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

NatsClient::NatsClient(const std::string& url) {
  natsConnection* raw_connection = nullptr;
  if (natsConnection_ConnectTo(&raw_connection, url.c_str()) != NATS_OK) {
    throw std::runtime_error("cannot connect to " + url);
  }
  connection_.reset(raw_connection);
  jsCtx* raw_js = nullptr;
  if (natsConnection_JetStream(&raw_js, raw_connection, nullptr) != NATS_OK) {
    throw std::runtime_error("cannot create a JetStream context on " + url);
  }
  jetstream_.reset(raw_js);
}

std::vector<StreamMessage> read_stream(const std::string& nats_url, const std::string& stream) {
  std::vector<StreamMessage> out;
  NatsClient client(nats_url);
  jsSubOptions options;
  jsSubOptions_Init(&options);
  options.Stream = stream.c_str();
  options.Config.DeliverPolicy = js_DeliverAll;
  options.Config.AckPolicy = js_AckNone;
  natsSubscription* raw_sub = nullptr;
  jsErrCode js_error{};
  if (js_PullSubscribe(&raw_sub, client.jetstream(), "omnigate.interactions.>", nullptr, nullptr,
                       &options, &js_error) != NATS_OK) {
    throw std::runtime_error("read_stream: cannot subscribe to " + stream);
  }
  nats::Subscription sub(raw_sub);
  while (true) {
    nats::MsgList list;
    natsStatus s = natsSubscription_Fetch(list.get(), sub.get(), 256, 300, &js_error);
    if (s != NATS_OK || list.size() == 0) break;
    for (int i = 0; i < list.size(); ++i) {
      natsMsg* msg = list.at(i);
      StreamMessage m;
      m.subject = natsMsg_GetSubject(msg);
      const char* value = nullptr;
      if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &value) == NATS_OK) m.msg_id = value;
      if (natsMsgHeader_Get(msg, "Omnigate-Schema", &value) == NATS_OK) m.schema_header = value;
      m.body = nlohmann::json::parse(
          std::string(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg))));
      out.push_back(std::move(m));
    }
  }
  return out;
}

CommandResult run_command(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return result;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, n);
  int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string schema_problems(const std::vector<StreamMessage>& messages) {
  if (messages.empty()) return "nothing to validate";
  TempDir dir;
  std::string ndjson = dir.path() + "/published.ndjson";
  std::string report = dir.path() + "/report.txt";
  {
    std::ofstream out(ndjson);
    for (const auto& m : messages) out << m.body.dump() << "\n";
  }
  std::string source = OMNIGATE_SOURCE_DIR;
  std::string command = "node " + source + "/tests/schema/validate.mjs " + source +
                        "/schemas/interaction.v1.schema.json " + ndjson + " > " + report + " 2>&1";
  int status = std::system(command.c_str());
  if (status == 0) return "";
  std::ifstream in(report);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string test_config_yaml(const std::string& nats_url, const std::string& extra_nats,
                             const std::string& extra) {
  return "http:\n"
         "  address: 127.0.0.1\n"
         "  port: 0\n"
         "  threads: 8\n"
         "  retry_after: 7s\n"
         "nats:\n"
         "  url: " +
         nats_url +
         "\n"
         "  connect_timeout: 500ms\n"
         "  reconnect_wait: 100ms\n"
         "  publish_timeout: 2s\n"
         "  ack_wait: 500ms\n" +
         extra_nats +
         "log:\n"
         "  level: error\n"
         "channels:\n"
         "  api:\n"
         "    - account: crm\n"
         "      token: " +
         kApiToken +
         "\n"
         "      max_body: 4KiB\n" +
         extra;
}

RunningGateway::RunningGateway(const std::string& config_yaml) {
  ConfigContext context("test.yaml");
  std::string yaml = config_yaml;
  if (yaml.rfind("spool:", 0) != 0 && yaml.find("\nspool:") == std::string::npos) {
    if (!yaml.empty() && yaml.back() != '\n') yaml += '\n';
    yaml += "spool:\n  path: " + spool_dir_.path() + "/spool.db\n";
  }
  auto config = load_config_text(yaml, "test.yaml", context);
  if (!config) throw std::runtime_error("test config invalid: " + config.error().detail);
  auto gateway = Gateway::create(std::move(config.value()));
  if (!gateway) throw std::runtime_error("gateway did not start: " + gateway.error().detail);
  gateway_ = std::move(gateway.value());
  auto port = gateway_->bind();
  if (!port) throw std::runtime_error("gateway did not bind: " + port.error().detail);
  port_ = *port;
  server_thread_ = std::thread([this] { gateway_->serve(); });
  if (!eventually([&] { return static_cast<bool>(client().Get("/healthz")); })) {
    throw std::runtime_error("gateway does not answer /healthz");
  }
}

RunningGateway::~RunningGateway() {
  gateway_->stop();
  if (server_thread_.joinable()) server_thread_.join();
}

httplib::Client RunningGateway::client() const {
  httplib::Client client("127.0.0.1", port_);
  client.set_read_timeout(10, 0);
  return client;
}

httplib::Result RunningGateway::post_api(const std::string& key, const std::string& body,
                                         const std::string& account) const {
  httplib::Headers headers = {{"Authorization", "Bearer " + kApiToken}};
  if (!key.empty()) headers.emplace("Idempotency-Key", key);
  return client().Post(("/v1/api/" + account).c_str(), headers, body, "application/json");
}

}  // namespace omnigate::testing

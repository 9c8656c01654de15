#include "tests/support/harness.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

extern char** environ;

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

namespace {

// Sends `signal` to the child `pid` (if any), reaps it and forgets it.
void end_child(int& pid, int signal) {
  if (pid <= 0) return;
  ::kill(pid, signal);
  ::waitpid(pid, nullptr, 0);
  pid = -1;
}

}  // namespace

NatsServer::NatsServer(Start when) : port_(free_tcp_port()) {
  if (when == Start::now) start();
}

NatsServer::~NatsServer() {
  kill();
}

void NatsServer::start() {
  std::vector<std::string> args = {
      "nats-server",         "-js", "-a",          "127.0.0.1", "-p",
      std::to_string(port_), "-sd", store_.path(), "-l",        store_.path() + "/nats.log"};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ == 0) {
    ::execvp("nats-server", argv.data());
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
  end_child(pid_, SIGTERM);
}

void NatsServer::kill() {
  end_child(pid_, SIGKILL);
}

void NatsServer::pause() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void NatsServer::resume() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

NatsCluster::NatsCluster(int nodes) {
  std::vector<int> route_ports;
  for (int i = 0; i < nodes; ++i) {
    nodes_.push_back(std::make_unique<NatsServer>(NatsServer::Start::later));
    names_.push_back("node-" + std::to_string(i));
    route_ports.push_back(free_tcp_port());
  }
  for (int i = 0; i < nodes; ++i) {
    std::string routes;
    for (int j = 0; j < nodes; ++j) {
      if (j == i) continue;
      if (!routes.empty()) routes += ",";
      routes += "nats://127.0.0.1:" + std::to_string(route_ports[static_cast<size_t>(j)]);
    }
    node(i).set_extra_args(
        {"-n", server_name(i), "--cluster_name", "omnigate-test", "--cluster",
         "nats://127.0.0.1:" + std::to_string(route_ports[static_cast<size_t>(i)]), "--routes",
         routes});
  }
  for (auto& n : nodes_) n->start();
  // JetStream answers once the nodes have found each other and elected a meta leader.
  bool formed = eventually(
      [&] {
        try {
          NatsClient client(urls());
          jsAccountInfo* info = nullptr;
          jsErrCode js_error{};
          if (js_GetAccountInfo(&info, client.jetstream(), nullptr, &js_error) != NATS_OK)
            return false;
          jsAccountInfo_Destroy(info);
          return true;
        } catch (const std::exception&) {
          return false;
        }
      },
      std::chrono::seconds(30));
  if (!formed) throw std::runtime_error("the NATS cluster did not form JetStream");
}

std::string NatsCluster::urls() const {
  std::string out;
  for (const auto& n : nodes_) {
    if (!out.empty()) out += ",";
    out += n->url();
  }
  return out;
}

std::string NatsCluster::running_urls() const {
  std::string out;
  for (const auto& n : nodes_) {
    if (!n->running()) continue;
    if (!out.empty()) out += ",";
    out += n->url();
  }
  return out;
}

namespace {

// Runs `inspect` on the stream's info from the running nodes; false when there is none.
bool with_stream_info(const NatsCluster& cluster, const std::string& stream,
                      const std::function<bool(const jsStreamInfo&)>& inspect) {
  try {
    NatsClient client(cluster.running_urls());
    jsStreamInfo* info = nullptr;
    jsErrCode js_error{};
    if (js_GetStreamInfo(&info, client.jetstream(), stream.c_str(), nullptr, &js_error) != NATS_OK)
      return false;
    bool result = inspect(*info);
    jsStreamInfo_Destroy(info);
    return result;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

int NatsCluster::stream_leader(const std::string& stream) const {
  std::string leader;
  with_stream_info(*this, stream, [&](const jsStreamInfo& info) {
    if (info.Cluster && info.Cluster->Leader) leader = info.Cluster->Leader;
    return true;
  });
  for (int i = 0; i < size(); ++i)
    if (names_[static_cast<size_t>(i)] == leader && nodes_[static_cast<size_t>(i)]->running())
      return i;
  return -1;
}

bool NatsCluster::stream_current(const std::string& stream) const {
  int running = 0;
  for (const auto& n : nodes_) running += n->running() ? 1 : 0;
  return with_stream_info(*this, stream, [&](const jsStreamInfo& info) {
    if (!info.Cluster || !info.Cluster->Leader) return false;
    int current = 1;  // the leader
    for (int i = 0; i < info.Cluster->ReplicasLen; ++i) {
      const jsPeerInfo* peer = info.Cluster->Replicas[i];
      if (peer->Current && !peer->Offline) ++current;
    }
    return current >= running;
  });
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

namespace {

// The stream's last sequence as its leader reports it (stream info is answered by the leader):
// every message acknowledged to a publisher is at or below it. Retried while a leader is being
// elected; throws when the stream does not answer.
uint64_t stream_last_sequence(const NatsClient& client, const std::string& stream) {
  uint64_t last = 0;
  bool answered = eventually(
      [&] {
        jsStreamInfo* raw_info = nullptr;
        jsErrCode js_error{};
        if (js_GetStreamInfo(&raw_info, client.jetstream(), stream.c_str(), nullptr, &js_error) !=
            NATS_OK)
          return false;
        nats::StreamInfo info(raw_info);
        last = info->State.LastSeq;
        return true;
      },
      std::chrono::seconds(10));
  if (!answered) throw std::runtime_error("read_stream: no stream info for " + stream);
  return last;
}

// Where the consumer stands, for the message of a read that did not reach the end.
std::string consumer_position(natsSubscription* sub) {
  jsConsumerInfo* info = nullptr;
  jsErrCode js_error{};
  if (natsSubscription_GetConsumerInfo(&info, sub, nullptr, &js_error) != NATS_OK)
    return "consumer info unavailable";
  std::string where =
      "consumer on " +
      std::string(info->Cluster && info->Cluster->Leader ? info->Cluster->Leader : "(no leader)") +
      ", delivered stream seq " + std::to_string(info->Delivered.Stream) + ", pending " +
      std::to_string(info->NumPending);
  jsConsumerInfo_Destroy(info);
  return where;
}

}  // namespace

std::vector<StreamMessage> read_stream(const std::string& nats_url, const std::string& stream) {
  std::vector<StreamMessage> out;
  NatsClient client(nats_url);
  // Read to the leader's last sequence, not until a fetch comes back empty: in a cluster the
  // ephemeral consumer is placed on any replica, a follower applies a message only after the
  // leader has acked it to the publisher, and an empty fetch there is not the end.
  const uint64_t last_sequence = stream_last_sequence(client, stream);
  if (last_sequence == 0) return out;
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
  uint64_t delivered = 0;  // the stream sequence of the last message read
  int empty_fetches = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (delivered < last_sequence) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("read_stream: read " + std::to_string(out.size()) +
                               " messages up to stream seq " + std::to_string(delivered) +
                               ", the leader's last is " + std::to_string(last_sequence) + " (" +
                               consumer_position(sub.get()) + ")");
    }
    nats::MsgList list;
    natsStatus s = natsSubscription_Fetch(list.get(), sub.get(), 256, 300, &js_error);
    if (s != NATS_OK || list.size() == 0) {
      // Not the end (the condition above says so): the consumer's replica is behind.
      if (empty_fetches++ == 0)
        std::fprintf(
            stderr, "read_stream: a fetch came back empty at stream seq %llu of %llu (%s)\n",
            static_cast<unsigned long long>(delivered),
            static_cast<unsigned long long>(last_sequence), consumer_position(sub.get()).c_str());
      continue;
    }
    for (int i = 0; i < list.size(); ++i) {
      natsMsg* msg = list.at(i);
      jsMsgMetaData* meta = nullptr;
      if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
        delivered = std::max(delivered, meta->Sequence.Stream);
        jsMsgMetaData_Destroy(meta);
      }
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

std::string stored_cursor(const std::string& nats_url, const std::string& key) {
  NatsClient client(nats_url);
  kvStore* raw_kv = nullptr;
  if (js_KeyValue(&raw_kv, client.jetstream(), "omnigate_cursors") != NATS_OK) return "<no bucket>";
  nats::KeyValue kv(raw_kv);
  kvEntry* raw_entry = nullptr;
  if (kvStore_Get(&raw_entry, raw_kv, key.c_str()) != NATS_OK) return "<no key>";
  nats::KvEntry entry(raw_entry);
  return std::string(kvEntry_ValueString(raw_entry));
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

std::string channel_fixture(const std::string& channel, const std::string& name) {
  std::string path =
      std::string(OMNIGATE_SOURCE_DIR) + "/connectors/" + channel + "/fixtures/" + name;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("missing fixture " + path);
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

std::string with_test_http_server(std::string yaml) {
  const char* server = std::getenv("OMNIGATE_TEST_HTTP_SERVER");
  if (!server || !*server) return yaml;
  if (yaml.find("\n  server: ") != std::string::npos) return yaml;  // the test chose its own
  const std::string line = std::string("  server: ") + server + "\n";
  const size_t section = yaml.rfind("http:\n", 0) == 0 ? 0 : yaml.find("\nhttp:\n");
  if (section == std::string::npos) return "http:\n" + line + yaml;
  yaml.insert(section == 0 ? 6 : section + 7, line);
  return yaml;
}

RunningGateway::RunningGateway(const std::string& config_yaml) {
  ConfigContext context("test.yaml");
  std::string yaml = with_test_http_server(config_yaml);
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

GatewayProcess::GatewayProcess(std::string config_yaml,
                               std::vector<std::pair<std::string, std::string>> env, Start when)
    : port_(free_tcp_port()) {
  {
    std::ofstream out(dir_.path() + "/omnigate.yaml");
    out << with_test_http_server(config_yaml);
  }
  env.emplace_back("OMNIGATE_HTTP_PORT", std::to_string(port_));
  for (char** e = environ; *e; ++e) {
    std::string entry = *e;
    std::string name = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const auto& [key, value] : env) overridden = overridden || key == name;
    if (!overridden) environment_.push_back(entry);
  }
  for (const auto& [key, value] : env) environment_.push_back(key + "=" + value);
  if (when == Start::now) start();
}

GatewayProcess::~GatewayProcess() {
  kill();
}

void GatewayProcess::start(std::chrono::milliseconds timeout) {
  if (pid_ > 0) return;
  // A killed gateway resets the test's connections; a write to one must fail, not raise
  // SIGPIPE in the test process (cpp-httplib 0.11 does not send with MSG_NOSIGNAL).
  ::signal(SIGPIPE, SIG_IGN);
  // Everything the child needs is prepared before fork(): it only redirects, changes
  // directory and execs.
  std::string binary = OMNIGATE_BINARY;
  std::string config = dir_.path() + "/omnigate.yaml";
  std::vector<std::string> args = {binary, "run", "--config", config};
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : environment_) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string log = dir_.path() + "/omnigate.log";
  int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::runtime_error("cannot open " + log);
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    if (::chdir(dir_.path().c_str()) != 0) ::_exit(126);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(log_fd);
  bool exited = false;
  bool up = eventually(
      [&] {
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
          exited = true;
          return true;
        }
        auto healthz = client().Get("/healthz");
        return healthz && healthz->status == 200;
      },
      timeout);
  if (exited || !up) {
    if (exited) pid_ = -1;
    kill();
    throw std::runtime_error(std::string("omnigate ") + (exited ? "exited" : "did not answer") +
                             " at start; its log:\n" + log_tail());
  }
}

void GatewayProcess::kill() {
  end_child(pid_, SIGKILL);
}

void GatewayProcess::stop() {
  end_child(pid_, SIGTERM);
}

bool GatewayProcess::wait_ready(std::chrono::milliseconds timeout) const {
  return eventually(
      [&] {
        auto ready = client().Get("/readyz");
        return ready && ready->status == 200;
      },
      timeout);
}

httplib::Client GatewayProcess::client() const {
  httplib::Client client("127.0.0.1", port_);
  client.set_connection_timeout(1, 0);
  client.set_read_timeout(10, 0);
  return client;
}

std::string GatewayProcess::log_tail(size_t bytes) const {
  std::ifstream in(dir_.path() + "/omnigate.log", std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.size() > bytes ? text.substr(text.size() - bytes) : text;
}

}  // namespace omnigate::testing

namespace omnigate::testing {

RawConnection::RawConnection(int port, const std::string& source_ip) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  inet_pton(AF_INET, source_ip.c_str(), &local.sin_addr);
  ::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

RawConnection::~RawConnection() {
  if (fd_ >= 0) ::close(fd_);
}

bool RawConnection::send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void RawConnection::shutdown_write() {
  ::shutdown(fd_, SHUT_WR);
}

ssize_t RawConnection::receive(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return kTimedOut;
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return kTimedOut;
  char buffer[16384];
  ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
  if (n > 0) pending_.append(buffer, static_cast<size_t>(n));
  return n;
}

bool RawConnection::fill(std::chrono::steady_clock::time_point deadline) {
  return receive(deadline) > 0;
}

std::optional<std::string> RawConnection::read_response(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t head_end;
  while ((head_end = pending_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill(deadline)) return std::nullopt;
  }
  std::string head = pending_.substr(0, head_end + 4);
  size_t total = head.size();
  std::string length = response_header(head, "Content-Length");
  if (!length.empty()) {
    total += std::stoull(length);
    while (pending_.size() < total) {
      if (!fill(deadline)) return std::nullopt;
    }
  } else if (response_header(head, "Transfer-Encoding") == "chunked") {
    while (pending_.find("\r\n0\r\n\r\n", head_end) == std::string::npos) {
      if (!fill(deadline)) return std::nullopt;
    }
    total = pending_.find("\r\n0\r\n\r\n", head_end) + 7;
  }
  std::string response = pending_.substr(0, total);
  pending_.erase(0, total);
  return response;
}

bool RawConnection::closed_within(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    ssize_t n = receive(deadline);
    if (n == kTimedOut) return false;
    if (n <= 0) return true;
    pending_.clear();
  }
}

int response_status(const std::string& response) {
  if (response.rfind("HTTP/1.", 0) != 0 || response.size() < 12) return 0;
  return std::atoi(response.c_str() + 9);
}

std::string response_header(const std::string& response, const std::string& name) {
  size_t end = response.find("\r\n\r\n");
  std::string head = response.substr(0, end);
  size_t pos = head.find("\r\n");
  while (pos != std::string::npos && pos < head.size()) {
    size_t next = head.find("\r\n", pos + 2);
    std::string line =
        head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
    size_t colon = line.find(':');
    if (colon != std::string::npos && colon == name.size() &&
        std::equal(name.begin(), name.end(), line.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      size_t start = line.find_first_not_of(' ', colon + 1);
      return start == std::string::npos ? "" : line.substr(start);
    }
    pos = next;
  }
  return "";
}

namespace {
std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void replace_all(std::string& text, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = text.find(from, pos)) != std::string::npos; pos += to.size())
    text.replace(pos, from.size(), to);
}
}  // namespace

NginxProxy::NginxProxy(int upstream_port) : port_(free_tcp_port()), tls_port_(free_tcp_port()) {
  const std::string dir = dir_.path();
  auto made = run_command(
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-keyout " +
      dir + "/omnigate.key -out " + dir + "/omnigate.crt");
  if (made.exit_code != 0) throw std::runtime_error("openssl: " + made.output);
  // The shipped configuration, with this test's ports, certificate and a second, plain listener
  // for the raw-socket clients; timeouts shortened so the slow-client cases stay short.
  std::string site = read_text(std::string(OMNIGATE_SOURCE_DIR) + "/docker/nginx/omnigate.conf");
  if (site.empty()) throw std::runtime_error("docker/nginx/omnigate.conf is missing");
  replace_all(site, "server 127.0.0.1:8080", "server 127.0.0.1:" + std::to_string(upstream_port));
  replace_all(site, "listen 443 ssl;",
              "listen 127.0.0.1:" + std::to_string(tls_port_) +
                  " ssl;\n    listen 127.0.0.1:" + std::to_string(port_) + ";");
  replace_all(site, "listen [::]:443 ssl;", "");
  replace_all(site, "listen 80;", "listen 127.0.0.1:" + std::to_string(free_tcp_port()) + ";");
  replace_all(site, "listen [::]:80;", "");
  replace_all(site, "/etc/nginx/tls/", dir + "/");
  replace_all(site, "client_header_timeout 10s;", "client_header_timeout 2s;");
  replace_all(site, "client_body_timeout 10s;", "client_body_timeout 2s;");
  ::chmod(dir.c_str(), 0755);
  std::ofstream(dir + "/nginx.conf")
      << "daemon off;\nworker_processes 1;\npid " << dir << "/nginx.pid;\nerror_log " << dir
      << "/error.log info;\nevents { worker_connections 1024; }\nhttp {\n  access_log off;\n"
      << "  client_body_temp_path " << dir << "/body;\n  proxy_temp_path " << dir
      << "/proxy;\n  fastcgi_temp_path " << dir << "/fcgi;\n  uwsgi_temp_path " << dir
      << "/uwsgi;\n  scgi_temp_path " << dir << "/scgi;\n"
      << site << "\n}\n";
  pid_ = ::fork();
  if (pid_ == 0) {
    ::execlp("nginx", "nginx", "-p", dir.c_str(), "-c", (dir + "/nginx.conf").c_str(),
             static_cast<char*>(nullptr));
    ::_exit(127);
  }
  bool up = eventually([&] { return RawConnection(port_).connected(); });
  if (!up) throw std::runtime_error("nginx did not start: " + error_log());
}

NginxProxy::~NginxProxy() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::string NginxProxy::error_log() const {
  return read_text(dir_.path() + "/error.log");
}

}  // namespace omnigate::testing

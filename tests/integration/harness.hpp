// Shared fixture of the integration tests: a real nats-server with JetStream on a free port
// and a temp store, the gateway in-process on a free HTTP port, a reader of what reached the
// stream, and the schema check of every published interaction (ajv, tests/schema).
#pragma once

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gateway/gateway.hpp"
#include "gateway/nats_handles.hpp"

namespace omnigate::testing {

int free_tcp_port();

// Waits for `condition` up to `timeout`, checking every 20 ms. Returns whether it held.
bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class NatsServer {
 public:
  enum class Start { now, later };
  explicit NatsServer(Start when = Start::now);
  ~NatsServer();
  void start();
  void stop();    // SIGTERM and wait: a clean shutdown, the store survives
  void kill();    // SIGKILL: the process dies mid-flight
  void pause();   // SIGSTOP: the server holds every request, as a stalled node would
  void resume();  // SIGCONT
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  bool running() const { return pid_ > 0; }

 private:
  TempDir store_;
  int port_;
  int pid_ = -1;
};

// A test's own NATS connection and JetStream context, to look behind the gateway's back.
class NatsClient {
 public:
  explicit NatsClient(const std::string& url);
  natsConnection* connection() const { return connection_.get(); }
  jsCtx* jetstream() const { return jetstream_.get(); }

 private:
  nats::Connection connection_;
  nats::JetStream jetstream_;
};

struct StreamMessage {
  std::string subject;
  std::string msg_id;
  std::string schema_header;
  nlohmann::json body;
};

// Every message currently in the stream, read with a fresh ephemeral consumer.
std::vector<StreamMessage> read_stream(const std::string& nats_url,
                                       const std::string& stream = "OMNIGATE_INTERACTIONS");

// Runs tests/schema/validate.mjs over the bodies; returns its output, empty when all valid.
std::string schema_problems(const std::vector<StreamMessage>& messages);

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs a shell command (the omnigate binary as an operator would) and collects its output.
CommandResult run_command(const std::string& command);

inline const std::string kApiToken = "test-token-0123456789abcdef";

// The config of the tests: port 0, the given NATS, one API account "crm"; `extra_nats`
// lines are appended to the nats: section, `extra` at the end of the file.
std::string test_config_yaml(const std::string& nats_url, const std::string& extra_nats = "",
                             const std::string& extra = "");

class RunningGateway {
 public:
  explicit RunningGateway(const std::string& config_yaml);
  ~RunningGateway();
  int port() const { return port_; }
  httplib::Client client() const;
  Gateway& gateway() { return *gateway_; }
  // POST /v1/api/crm with the test token and key.
  httplib::Result post_api(const std::string& key, const std::string& body,
                           const std::string& account = "crm") const;

 private:
  std::unique_ptr<Gateway> gateway_;
  std::thread server_thread_;
  int port_ = 0;
};

// A raw TCP client, for what an HTTP library will not send: truncated bodies, pipelined and
// smuggled requests, slow or oversized heads. `source_ip` binds the client end to another
// loopback address (127.0.0.2, ...) to act as a second client.
class RawConnection {
 public:
  explicit RawConnection(int port, const std::string& source_ip = "127.0.0.1");
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;
  bool connected() const { return fd_ >= 0; }
  // Sends everything; false when the peer closed or reset the connection.
  bool send(std::string_view bytes);
  void shutdown_write();
  // One HTTP response (head and a Content-Length or chunked body), or nullopt when the
  // connection closed or `timeout` passed first.
  std::optional<std::string> read_response(std::chrono::milliseconds timeout);
  // Whether the peer closes (EOF or reset) within `timeout`; bytes still arriving are dropped.
  bool closed_within(std::chrono::milliseconds timeout);

 private:
  static constexpr ssize_t kTimedOut = -2;
  // One recv into pending_ within `deadline`: its result, or kTimedOut.
  ssize_t receive(std::chrono::steady_clock::time_point deadline);
  bool fill(std::chrono::steady_clock::time_point deadline);
  int fd_ = -1;
  std::string pending_;
};

// The status code of a raw response ("HTTP/1.1 413 ..." -> 413), 0 when unparseable.
int response_status(const std::string& response);
// A header of a raw response, case-insensitive, "" when absent.
std::string response_header(const std::string& response, const std::string& name);

// nginx (Debian's package) with docker/nginx/omnigate.conf's settings in front of a gateway:
// TLS on `tls_port()` (a self-signed certificate made with the openssl CLI), plain HTTP on
// `port()` for the raw-socket tests, proxying to 127.0.0.1:<upstream_port>.
class NginxProxy {
 public:
  explicit NginxProxy(int upstream_port);
  ~NginxProxy();
  int port() const { return port_; }
  int tls_port() const { return tls_port_; }
  std::string error_log() const;

 private:
  TempDir dir_;
  int port_;
  int tls_port_;
  int pid_ = -1;
};

}  // namespace omnigate::testing

// Shared fixture of the integration tests: a real nats-server with JetStream on a free port
// and a temp store, the gateway in-process on a free HTTP port, a reader of what reached the
// stream, and the schema check of every published interaction (ajv, tests/schema).
#pragma once

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
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
  // A config without a top-level `spool:` section gets one in a temp dir of its own: tests
  // never share a spool file.
  explicit RunningGateway(const std::string& config_yaml);
  ~RunningGateway();
  int port() const { return port_; }
  httplib::Client client() const;
  Gateway& gateway() { return *gateway_; }
  // POST /v1/api/crm with the test token and key.
  httplib::Result post_api(const std::string& key, const std::string& body,
                           const std::string& account = "crm") const;

 private:
  TempDir spool_dir_;
  std::unique_ptr<Gateway> gateway_;
  std::thread server_thread_;
  int port_ = 0;
};

}  // namespace omnigate::testing

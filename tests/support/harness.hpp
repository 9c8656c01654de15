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

#include "gateway/app/gateway.hpp"
#include "gateway/nats/nats_handles.hpp"

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
  // More nats-server arguments for the next start() (cluster routes, a server name).
  void set_extra_args(std::vector<std::string> args) { extra_args_ = std::move(args); }
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
  std::vector<std::string> extra_args_;
};

// Three (or `nodes`) nats-server -js nodes routed into one cluster, each on free ports with its
// own temp store, so a stream with replicas: 3 survives the loss of any one of them.
class NatsCluster {
 public:
  explicit NatsCluster(int nodes = 3);
  int size() const { return static_cast<int>(nodes_.size()); }
  // Every node's client URL, comma-separated: what a client (nats.url) is given.
  std::string urls() const;
  // Only the nodes running now, for a test's own connection after a kill.
  std::string running_urls() const;
  NatsServer& node(int index) { return *nodes_.at(static_cast<size_t>(index)); }
  const std::string& server_name(int index) const { return names_.at(static_cast<size_t>(index)); }
  // The index of the node that leads `stream` now (js_GetStreamInfo Cluster->Leader), or -1
  // while there is none (an election under way, or the stream missing).
  int stream_leader(const std::string& stream = "OMNIGATE_INTERACTIONS") const;
  // Whether `stream` has a leader and every other running node is a current replica (raft's
  // view: a current replica may not have applied the last messages to its store yet).
  bool stream_current(const std::string& stream = "OMNIGATE_INTERACTIONS") const;

 private:
  std::vector<std::unique_ptr<NatsServer>> nodes_;
  std::vector<std::string> names_;
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

// Every message in the stream up to the last sequence its leader reports when called, read with
// a fresh ephemeral consumer. In a cluster that consumer may be placed on a replica still
// applying the last messages, so the read goes on until it has delivered that sequence (not
// until a fetch comes back empty); throws if it cannot within 30 s.
std::vector<StreamMessage> read_stream(const std::string& nats_url,
                                       const std::string& stream = "OMNIGATE_INTERACTIONS");

// A key of the KV bucket omnigate_cursors as stored, read behind the gateway's back:
// "<no bucket>" / "<no key>" when there is none.
std::string stored_cursor(const std::string& nats_url, const std::string& key);

// Runs tests/schema/validate.mjs over the bodies; returns its output, empty when all valid.
std::string schema_problems(const std::vector<StreamMessage>& messages);

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs a shell command (the omnigate binary as an operator would) and collects its output.
CommandResult run_command(const std::string& command);

inline const std::string kApiToken = "test-token-0123456789abcdef";

// The bytes of connectors/<channel>/fixtures/<name>, exactly as stored; throws when missing.
std::string channel_fixture(const std::string& channel, const std::string& name);

// The config with `http.server: <$OMNIGATE_TEST_HTTP_SERVER>` added to its http: section when
// that is set: ctest runs the HTTP-facing suites and the fault suite once more on cpp-httplib
// ("threads: ", "faults on threads: "; the default is the event-loop front). RunningGateway and GatewayProcess
// apply it to every config they start.
std::string with_test_http_server(std::string yaml);

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

// The real omnigate binary (OMNIGATE_BINARY) as a child process, as an operator runs it:
// `omnigate run --config` in its own temp directory (its working directory, so var/ lives
// there and survives a restart), on a port chosen once, so a restart answers at the same
// address. The config may use ${OMNIGATE_HTTP_PORT} (set to port()) and the `env` given.
class GatewayProcess {
 public:
  enum class Start { now, later };
  GatewayProcess(std::string config_yaml, std::vector<std::pair<std::string, std::string>> env = {},
                 Start when = Start::now);
  ~GatewayProcess();  // SIGKILL
  GatewayProcess(const GatewayProcess&) = delete;
  GatewayProcess& operator=(const GatewayProcess&) = delete;

  // Spawns the process and waits until /healthz answers; throws with the log's tail if the
  // process exits or does not answer within `timeout`.
  void start(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  void kill();  // SIGKILL and wait: no shutdown code runs
  void stop();  // SIGTERM and wait: a clean shutdown
  // Waits until /readyz answers 200 (NATS connected, the stream present).
  bool wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(20)) const;
  bool running() const { return pid_ > 0; }
  int pid() const { return pid_; }
  int port() const { return port_; }
  const std::string& directory() const { return dir_.path(); }
  httplib::Client client() const;
  std::string log_tail(size_t bytes = 4000) const;  // stdout and stderr of every run

 private:
  TempDir dir_;
  int port_;
  int pid_ = -1;
  std::vector<std::string> environment_;  // NAME=value, the parent's plus `env`
};

}  // namespace omnigate::testing

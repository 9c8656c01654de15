// A minimal SMTP server (RFC 5321, enough for libcurl) on 127.0.0.1 for the tests: it keeps
// every delivery, and can greet with an error, reject recipients or hang. Also ClosedPort, a
// port where nobody listens.
#pragma once

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace omnigate::testing {

inline constexpr std::chrono::seconds kSmtpWait{10};  // upper bound for what tests wait for

// ---- A minimal SMTP server (RFC 5321, enough for libcurl) ------------------------------------

struct Delivery {
  std::string mail_from, rcpt_to, data;
};

struct Behaviour {
  std::string greeting = "220 fake.test ESMTP ready";  // a 4xx/5xx greeting ends the session
  std::string rcpt_reply = "250 2.1.5 ok";
  bool silent = false;  // accept, then say nothing until the client gives up
};

class FakeSmtpServer {
 public:
  FakeSmtpServer() : FakeSmtpServer(Behaviour{}) {}
  // `port` 0 picks a free one; a fixed port brings a server up where one was down.
  explicit FakeSmtpServer(Behaviour behaviour, int port = 0) : behaviour_(std::move(behaviour)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(listener_ >= 0);
    int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener_, 16) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }

  ~FakeSmtpServer() {
    stop_ = true;
    thread_.join();
    ::close(listener_);
  }

  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  // Applies from the next connection on.
  void set_behaviour(Behaviour behaviour) {
    std::lock_guard lock(mutex_);
    behaviour_ = std::move(behaviour);
  }

  bool wait_for_deliveries(size_t n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kSmtpWait, [&] { return deliveries_.size() >= n; });
  }
  bool wait_for_connections(size_t n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kSmtpWait, [&] { return connections_ >= n; });
  }
  std::vector<Delivery> deliveries() {
    std::lock_guard lock(mutex_);
    return deliveries_;
  }
  size_t connections() {
    std::lock_guard lock(mutex_);
    return connections_;
  }

 private:
  // One client at a time is enough: the mailer sends one message per connection.
  void serve() {
    while (!stop_) {
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) continue;
      {
        std::lock_guard lock(mutex_);
        ++connections_;
      }
      changed_.notify_all();
      session(fd);
      ::close(fd);
    }
  }

  // Reads one CRLF-terminated line (without the CRLF); false on EOF or shutdown.
  bool read_line(int fd, std::string& buffer, std::string& line) {
    while (true) {
      if (size_t end = buffer.find("\r\n"); end != std::string::npos) {
        line = buffer.substr(0, end);
        buffer.erase(0, end + 2);
        return true;
      }
      if (stop_) return false;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      char chunk[4096];
      ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) return false;
      buffer.append(chunk, static_cast<size_t>(n));
    }
  }

  static void reply(int fd, const std::string& text) {
    std::string line = text + "\r\n";
    (void)::send(fd, line.data(), line.size(), MSG_NOSIGNAL);
  }

  static std::string between_brackets(const std::string& line) {
    size_t open = line.find('<');
    size_t close = line.find('>', open);
    if (open == std::string::npos || close == std::string::npos) return "";
    return line.substr(open + 1, close - open - 1);
  }

  void session(int fd) {
    std::string buffer, line;
    Behaviour behaviour;
    {
      std::lock_guard lock(mutex_);
      behaviour = behaviour_;
    }
    if (behaviour.silent) {
      while (read_line(fd, buffer, line)) {
      }
      return;
    }
    reply(fd, behaviour.greeting);
    if (behaviour.greeting[0] != '2') return;
    Delivery current;
    while (read_line(fd, buffer, line)) {
      std::string verb = line.substr(0, 4);
      for (char& c : verb) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (verb == "EHLO") {
        reply(fd, "250-fake.test\r\n250-SIZE 10485760\r\n250 8BITMIME");
      } else if (verb == "HELO" || verb == "NOOP" || verb == "RSET") {
        reply(fd, "250 ok");
      } else if (verb == "MAIL") {
        current = Delivery{between_brackets(line), "", ""};
        reply(fd, "250 2.1.0 ok");
      } else if (verb == "RCPT") {
        current.rcpt_to = between_brackets(line);
        // A real server's rejection quotes the address: the client must not pass it on.
        std::string answer = behaviour.rcpt_reply;
        if (answer[0] == '5') answer += " <" + current.rcpt_to + ">: recipient rejected";
        reply(fd, answer);
      } else if (verb == "DATA") {
        reply(fd, "354 end with <CRLF>.<CRLF>");
        while (read_line(fd, buffer, line) && line != ".") {
          if (!line.empty() && line[0] == '.') line.erase(0, 1);  // dot-unstuffing
          current.data += line + "\r\n";
        }
        reply(fd, "250 2.0.0 queued");
        {
          std::lock_guard lock(mutex_);
          deliveries_.push_back(current);
        }
        changed_.notify_all();
      } else if (verb == "QUIT") {
        reply(fd, "221 2.0.0 bye");
        return;
      } else {
        reply(fd, "502 5.5.2 unknown command");
      }
    }
  }

  Behaviour behaviour_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Delivery> deliveries_;
  size_t connections_ = 0;
};

// A port nobody listens on: bound but not listening, so a connection is refused at once and
// no other test can take the port meanwhile.
class ClosedPort {
 public:
  ClosedPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~ClosedPort() {
    if (fd_ >= 0) ::close(fd_);
  }
  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  // Frees the port, e.g. for a FakeSmtpServer to listen on it.
  void release() {
    ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace omnigate::testing

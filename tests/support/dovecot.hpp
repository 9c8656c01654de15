// A real dovecot IMAP server per test (Debian dovecot-imapd): its own temp directory with a
// dovecot.conf (base_dir, state_dir, log file, a passwd-file with one user, a maildir store),
// listening on 127.0.0.1 on free ports, run as `dovecot -F -c <conf>` child process.
//
// Privileges, as found in this sandbox (tests run as root): dovecot refuses root for its login
// processes ("imap-login: Fatal: This process must not be run as root") and for mail access
// ("Couldn't drop privileges: Mail access not allowed for root", hard-coded whatever
// first_valid_uid says). So as root the master runs as root, default_login_user is Debian's
// `dovenull`, default_internal_user and mail_uid/gid Debian's `dovecot` account (created by the
// package); as any other user everything (master, login, internal, mail) runs as that user --
// dovecot's rootless mode.
//
// The mailbox is changed behind the gateway's back with doveadm (`-c <conf>`, the same store):
// save (APPEND), mailbox create, mailbox update --uid-validity, fetch 'uid flags'.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tests/support/harness.hpp"

namespace omnigate::testing {

class Dovecot {
 public:
  enum class Tls { off, on };
  static constexpr const char* kUser = "alice";
  static constexpr const char* kPassword = "wonder-land-7";

  explicit Dovecot(Tls tls = Tls::off);
  ~Dovecot();  // stop()
  Dovecot(const Dovecot&) = delete;
  Dovecot& operator=(const Dovecot&) = delete;

  // Starts (again) on the same ports and store; throws with the log if it does not answer
  // "* OK" within 10 s.
  void start();
  void stop();  // SIGTERM, wait

  std::string url() const { return "imap://127.0.0.1:" + std::to_string(port_); }
  // imaps:// on its own port, a self-signed certificate for CN=localhost (Tls::on only).
  std::string tls_url() const { return "imaps://127.0.0.1:" + std::to_string(tls_port_); }
  int port() const { return port_; }
  std::string log() const;

  // Delivers one message (doveadm save), as an MTA would; returns its UID.
  uint64_t append(const std::string& message, const std::string& mailbox = "INBOX");
  // Many messages at once, written straight into INBOX's maildir new/ as an MTA's LDA would
  // (doveadm save costs a process each); dovecot numbers them at its next look.
  void deliver_many(const std::vector<std::string>& messages);
  void create_folder(const std::string& name);
  // Disconnects every session of the user (doveadm kick): a connection dropped by the server.
  void kick();
  // Gives the mailbox a new UIDVALIDITY (its UIDs stay), as a server that renumbered it.
  void set_uidvalidity(uint64_t uidvalidity, const std::string& mailbox = "INBOX");

  struct Status {
    uint64_t messages = 0;
    uint64_t uidvalidity = 0;
    uint64_t uidnext = 0;
  };
  Status status(const std::string& mailbox = "INBOX");
  struct Flags {
    uint64_t uid = 0;
    std::string flags;  // as doveadm prints them: "\Seen \Recent"
    bool seen() const { return flags.find("\\Seen") != std::string::npos; }
  };
  std::vector<Flags> flags(const std::string& mailbox = "INBOX");

 private:
  CommandResult doveadm(const std::string& arguments);

  TempDir dir_;
  int port_;
  int tls_port_ = 0;
  int pid_ = -1;
};

}  // namespace omnigate::testing

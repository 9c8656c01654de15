#include "tests/support/dovecot.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace omnigate::testing {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Whether 127.0.0.1:port accepts and greets with "* OK" within a second.
bool greets(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  timeval wait{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    char greeting[64] = {};
    ssize_t n = ::recv(fd, greeting, sizeof greeting - 1, 0);
    ok = n >= 4 && std::string(greeting, 4) == "* OK";
  }
  ::close(fd);
  return ok;
}

std::string user_name(uid_t uid) {
  passwd* entry = ::getpwuid(uid);
  if (entry == nullptr) throw std::runtime_error("no passwd entry for uid " + std::to_string(uid));
  return entry->pw_name;
}

}  // namespace

Dovecot::Dovecot(Tls tls) : port_(free_tcp_port()) {
  const std::string dir = dir_.path();
  if (tls == Tls::on) {
    tls_port_ = free_tcp_port();
    auto made = run_command(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout " + dir +
        "/imap.key -out " + dir + "/imap.crt 2>&1");
    if (made.exit_code != 0) throw std::runtime_error("openssl: " + made.output);
  }
  std::string login_user, internal_user, mail_user;
  if (::geteuid() == 0) {
    // Root: dovecot will not log in or open mail as root (see the header).
    login_user = "dovenull";
    internal_user = mail_user = "dovecot";
  } else {
    login_user = internal_user = mail_user = user_name(::geteuid());
  }
  passwd* mail = ::getpwnam(mail_user.c_str());
  if (mail == nullptr) throw std::runtime_error("no user " + mail_user + " (dovecot-core)");
  ::chmod(dir.c_str(), 0755);  // the mail user reaches its store in here
  ::mkdir((dir + "/mail").c_str(), 0700);
  if (::chown((dir + "/mail").c_str(), mail->pw_uid, mail->pw_gid) != 0 && ::geteuid() == 0)
    throw std::runtime_error("cannot chown the mail store to " + mail_user);
  std::ofstream(dir + "/users") << kUser << ":{PLAIN}" << kPassword << "::::::\n";

  std::ostringstream conf;
  conf << "base_dir = " << dir << "/run\n"
       << "state_dir = " << dir << "/state\n"
       << "log_path = " << dir << "/dovecot.log\n"
       << "info_log_path = " << dir << "/dovecot.log\n"
       << "protocols = imap\n"
       << "listen = 127.0.0.1\n"
       << "disable_plaintext_auth = no\n"
       << "auth_mechanisms = plain login\n"
       << "default_login_user = " << login_user << "\n"
       << "default_internal_user = " << internal_user << "\n"
       << "mail_uid = " << mail->pw_uid << "\nmail_gid = " << mail->pw_gid << "\n"
       << "first_valid_uid = " << mail->pw_uid << "\n"
       << "mail_location = maildir:" << dir << "/mail/%u\n"
       << "passdb {\n  driver = passwd-file\n  args = " << dir << "/users\n}\n"
       << "userdb {\n  driver = passwd-file\n  args = " << dir << "/users\n}\n";
  if (tls == Tls::on) {
    conf << "ssl = yes\nssl_cert = <" << dir << "/imap.crt\nssl_key = <" << dir << "/imap.key\n";
  } else {
    conf << "ssl = no\n";
  }
  // No auth penalty: dovecot delays logins from an address that failed one by up to 15 s
  // (anvil-auth-penalty); without its socket the penalty is off, and the bad-password test's
  // retries answer at once (auth_failure_delay, 2 s, still applies).
  conf << "service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n";
  conf << "service imap-login {\n  inet_listener imap {\n    address = 127.0.0.1\n    port = "
       << port_
       << "\n  }\n  inet_listener imaps {\n    address = 127.0.0.1\n    port = " << tls_port_
       << "\n"
       << (tls == Tls::on ? "    ssl = yes\n" : "") << "  }\n}\n";
  std::ofstream(dir + "/dovecot.conf") << conf.str();
  start();
}

Dovecot::~Dovecot() {
  stop();
}

void Dovecot::start() {
  if (pid_ > 0) return;
  const std::string conf = dir_.path() + "/dovecot.conf";
  pid_ = ::fork();
  if (pid_ == 0) {
    // Ends with the test process even when it is killed (no destructor runs), and keeps no
    // copy of its stdout/stderr (a pipe reader would wait for dovecot to exit).
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, STDOUT_FILENO);
    ::dup2(null, STDERR_FILENO);
    ::execlp("dovecot", "dovecot", "-F", "-c", conf.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  if (!eventually([&] { return greets(port_); })) {
    const std::string why = log();
    stop();
    throw std::runtime_error("dovecot did not start: " + why);
  }
}

void Dovecot::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

std::string Dovecot::log() const {
  return read_file(dir_.path() + "/dovecot.log");
}

CommandResult Dovecot::doveadm(const std::string& arguments) {
  auto result = run_command("doveadm -c " + dir_.path() + "/dovecot.conf " + arguments + " 2>&1");
  if (result.exit_code != 0)
    throw std::runtime_error("doveadm " + arguments + ": " + result.output);
  return result;
}

uint64_t Dovecot::append(const std::string& message, const std::string& mailbox) {
  const std::string file = dir_.path() + "/append.eml";
  std::ofstream(file, std::ios::binary | std::ios::trunc) << message;
  const uint64_t uid = status(mailbox).uidnext;
  doveadm("save -u " + std::string(kUser) + " -m '" + mailbox + "' < " + file);
  return uid;
}

void Dovecot::deliver_many(const std::vector<std::string>& messages) {
  status();  // creates the user's maildir
  const std::string store = dir_.path() + "/mail/" + kUser;
  struct stat owner {};
  if (::stat(store.c_str(), &owner) != 0) throw std::runtime_error("no maildir at " + store);
  for (size_t i = 0; i < messages.size(); ++i) {
    // tmp/ then rename into new/: dovecot never sees a file half written.
    const std::string name = std::to_string(i) + ".omnigate" + std::to_string(::getpid()) + ".test";
    const std::string staged = store + "/tmp/" + name;
    std::ofstream(staged, std::ios::binary | std::ios::trunc) << messages[i];
    if (::chown(staged.c_str(), owner.st_uid, owner.st_gid) != 0 && ::geteuid() == 0)
      throw std::runtime_error("cannot chown " + staged);
    if (::rename(staged.c_str(), (store + "/new/" + name).c_str()) != 0)
      throw std::runtime_error("cannot deliver into " + store + "/new");
  }
}

void Dovecot::kick() {
  doveadm("kick " + std::string(kUser));
}

void Dovecot::create_folder(const std::string& name) {
  doveadm("mailbox create -u " + std::string(kUser) + " '" + name + "'");
}

void Dovecot::set_uidvalidity(uint64_t uidvalidity, const std::string& mailbox) {
  doveadm("mailbox update -u " + std::string(kUser) + " --uid-validity " +
          std::to_string(uidvalidity) + " '" + mailbox + "'");
}

Dovecot::Status Dovecot::status(const std::string& mailbox) {
  // "INBOX messages=2 uidnext=3 uidvalidity=1796134516"
  auto out = doveadm("mailbox status -u " + std::string(kUser) +
                     " 'messages uidnext uidvalidity' '" + mailbox + "'");
  Status status;
  auto value = [&](const std::string& name) -> uint64_t {
    auto at = out.output.find(" " + name + "=");
    return at == std::string::npos ? 0 : std::stoull(out.output.substr(at + name.size() + 2));
  };
  status.messages = value("messages");
  status.uidnext = value("uidnext");
  status.uidvalidity = value("uidvalidity");
  return status;
}

std::vector<Dovecot::Flags> Dovecot::flags(const std::string& mailbox) {
  // Blocks of "uid: 1\nflags: \Seen\n", separated by blank lines.
  auto out = doveadm("fetch -u " + std::string(kUser) + " 'uid flags' mailbox '" + mailbox + "'");
  std::vector<Flags> all;
  std::istringstream lines(out.output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("uid: ", 0) == 0) all.push_back({std::stoull(line.substr(5)), ""});
    if (line.rfind("flags:", 0) == 0 && !all.empty())
      all.back().flags = line.size() > 7 ? line.substr(7) : "";
  }
  return all;
}

}  // namespace omnigate::testing

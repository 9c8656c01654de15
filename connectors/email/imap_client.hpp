// One IMAP session to one mailbox, on libcurl. libcurl connects, does TLS (imaps:// or
// STARTTLS as the URL and server ask), reads the greeting and logs in (LOGIN / AUTHENTICATE with
// username and password, or SASL XOAUTH2 with a bearer token): CURLOPT_CONNECT_ONLY. The
// commands after that are sent and read here (curl_easy_send / curl_easy_recv), because
// libcurl's own CURLOPT_CUSTOMREQUEST reader is line-based and not literal-aware: a message
// body line that looks like a tagged reply ("A004 OK") ends its response early, and a long
// body line exceeds its line buffer, so one hostile mail would break every poll of the mailbox.
// The reader here counts every literal's bytes ({N}), caps every length, and never recurses.
//
// Nothing throws. Errors: refused / reset / TLS failures -> bad_gateway, no answer in time ->
// upstream_timeout, a rejected login -> unauthorized, a missing mailbox -> not_found. Details
// name the account and the host, never the password, the username or a message.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/error.hpp"
#include "gateway/http/client.hpp"

namespace omnigate::email {

struct ImapSettings {
  std::string account;  // for error details and logs
  std::string url;      // imap://host[:port] or imaps://host[:port]; a path is ignored
  std::string mailbox = "INBOX";
  std::string username;
  std::string password;      // or
  std::string oauth2_token;  // SASL XOAUTH2 (Gmail, Outlook) when set
  bool tls_verify = true;
  std::chrono::milliseconds connect_timeout{15'000};  // TCP + TLS + greeting + login
  // Each command's answer; a body of max_message bytes must arrive within it.
  std::chrono::milliseconds command_timeout{120'000};
  size_t max_message = 50 * 1024 * 1024;  // a larger message is fetched as headers only
};

struct MailboxState {
  uint64_t uidvalidity = 0;
  uint64_t uidnext = 0;  // 0 when the server did not say
  uint64_t exists = 0;
};

struct FetchedMessage {
  uint64_t uid = 0;
  uint64_t size = 0;  // RFC822.SIZE
  // The whole message; for a message above max_message only its header block (at most
  // kMaxHeaderBytes), and too_large is set.
  std::shared_ptr<const std::string> raw;
  bool too_large = false;
};

// Caps of the response reader: a response line (literals excluded) and the header block of a
// message too large to fetch.
inline constexpr size_t kMaxImapLine = 16 * 1024 * 1024;  // `* SEARCH` of ~2 million UIDs
inline constexpr size_t kMaxHeaderBytes = 256 * 1024;

class ImapClient {
 public:
  explicit ImapClient(ImapSettings settings);
  ~ImapClient();
  ImapClient(const ImapClient&) = delete;
  ImapClient& operator=(const ImapClient&) = delete;

  // Connects and logs in (after disconnecting an earlier session), then reads CAPABILITY.
  // `cancel` (may be null) aborts it and every later command of the session.
  Status connect(const std::atomic<bool>* cancel);
  bool connected() const { return static_cast<bool>(curl_); }
  void disconnect();  // LOGOUT is not waited for: the socket is closed

  // SELECT (read_only false: flags can be stored) or EXAMINE the configured mailbox; again on
  // every call, so the answer is the mailbox's state now.
  Result<MailboxState> select(bool read_only);
  // `UID SEARCH UID <first>:*`, filtered to UIDs >= first (the server always includes the
  // highest UID, even when it is below `first`), ascending.
  Result<std::vector<uint64_t>> search_from(uint64_t first);
  // RFC822.SIZE of each UID that still exists (an expunged one is absent), in the order given.
  Result<std::vector<std::pair<uint64_t, uint64_t>>> sizes(const std::vector<uint64_t>& uids);
  // `UID FETCH <uid> BODY.PEEK[]` (PEEK: \Seen is not set) when `size` <= max_message, else
  // the header block only (BODY.PEEK[HEADER], partial) with too_large. not_found when the
  // message is gone.
  Result<FetchedMessage> fetch(uint64_t uid, uint64_t size);
  // `UID STORE <uids> +FLAGS.SILENT (\Seen)`.
  Status mark_seen(const std::vector<uint64_t>& uids);
  // `UID MOVE <uids> <folder>` where the server has MOVE, else UID COPY + STORE \Deleted +
  // UID EXPUNGE (UIDPLUS; without it the copies stay flagged \Deleted, never a plain EXPUNGE
  // of other messages). A folder that does not exist is created once (TRYCREATE).
  Status move(const std::vector<uint64_t>& uids, const std::string& folder);

  bool has_capability(std::string_view name) const;
  const std::string& host() const { return host_; }

 private:
  struct Response;
  Result<Response> command(const std::string& text, size_t max_literal = 64 * 1024);
  Status send_all(std::string_view bytes, std::chrono::steady_clock::time_point deadline);
  Status fill(std::chrono::steady_clock::time_point deadline);
  Status read_response(const std::string& tag, size_t max_literal,
                       std::chrono::steady_clock::time_point deadline, Response& out);
  Error failure(ErrorCode code, const std::string& what);
  Error dropped(const std::string& what);  // disconnects

  const ImapSettings settings_;
  std::string host_;  // host[:port], for details
  http::CurlEasy curl_;
  const std::atomic<bool>* cancel_ = nullptr;
  std::string in_;  // received, not yet parsed
  size_t in_begin_ = 0;
  uint64_t next_tag_ = 1;
  std::vector<std::string> capabilities_;  // upper case
};

// A mailbox name (UTF-8, as configured: "INBOX", "Обработано") as an IMAP quoted string: non-
// ASCII runs in modified UTF-7 (RFC 3501 5.1.3, "&BB4EMQ...-"), '&' as "&-", \ and " escaped.
// false when the name is not well-formed UTF-8 or holds a control character.
bool imap_quote(std::string_view text, std::string& out);

}  // namespace omnigate::email

// Outgoing mail: the double opt-in confirmation a web form sends before a subscription counts.
// Queuing, retries and the failed list are the durable outbox's (gateway/mail/outbox.hpp).
// The message is built with GMime (no hand-made MIME: encoded-words, folding and transfer
// encodings are where hand-built mail goes wrong) and sent over SMTP with libcurl. Nothing here
// logs or returns a recipient address: errors name the SMTP stage and the curl error only.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/core/error.hpp"

namespace omnigate {

struct OutgoingMail {
  std::string to;       // the address only: "user@example.ru"
  std::string subject;  // UTF-8
  std::string text;     // UTF-8 plain text; "\n", "\r\n" or "\r" line ends
  // Extra headers, e.g. List-Unsubscribe. Names that build_message sets itself (From, To, Cc,
  // Bcc, Subject, Date, Message-ID, MIME-Version, Content-*) and values with CR or LF are
  // rejected: they would let form input rewrite the envelope or inject headers.
  std::vector<std::pair<std::string, std::string>> headers;
};

// RFC 5322 message bytes: From, To, Subject (RFC 2047-encoded when not ASCII), Date, Message-ID
// (@ the From domain), MIME-Version, text/plain; charset=utf-8 with the quoted-printable or
// base64 transfer encoding GMime finds best for 7-bit transport; CRLF line endings.
// Returns "" when config.from, mail.to or a header is unusable; send_mail reports why.
std::string build_message(const SmtpConfig& config, const OutgoingMail& mail);

// Sends one message (MAIL FROM = the From address, RCPT TO = mail.to, DATA = build_message).
// Error codes: invalid_field (mail.to is not an address), internal (config.from, config.url or
// the credentials are unusable, or a header is), unprocessable (the server answered 5xx:
// retrying will not help), not_durable (anything else: connection, timeout, TLS, 4xx; worth a
// retry). The detail names the SMTP stage,
// the reply code and the curl error, never the recipient.
Status send_mail(const SmtpConfig& config, const OutgoingMail& mail);

// Replaces "{{name}}" (spaces inside the braces allowed) from `vars` in one pass, so a value that
// itself contains "{{...}}" (form input) is never expanded. Unknown placeholders stay as written.
std::string render_template(const std::string& text,
                            const std::vector<std::pair<std::string, std::string>>& vars);

}  // namespace omnigate

// One e-mail (RFC 5322 bytes, from an MTA's pipe or an IMAP mailbox) -> interaction.v1: a pure
// function of (bytes, mailbox settings, clock), with GMime 3. The decisions are those of
// ../../../wt/EMAIL.md (the channel's mapping contract); fixtures/cases.json pins them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/clock.hpp"
#include "gateway/model/keyword_consent.hpp"
#include "gateway/model/submission.hpp"

namespace omnigate::email {

struct MailboxSettings {
  std::string account;
  std::vector<std::string> addresses;  // the mailbox's own addresses (lower-case)
  StopWords stop_words;                // a reply whose subject or text is one withdraws marketing
};

// How deep the mapping walks nested multiparts and forwarded messages; parts below are not
// read (counted in `ignored` as "mime_too_deep"), so a hostile message cannot exhaust the stack.
inline constexpr int kMaxMimeDepth = 32;
// message.text is cut (on a code point boundary, tag text_truncated) above this many bytes.
inline constexpr size_t kMaxTextBytes = 64 * 1024;

// One RFC 5322 message (the raw bytes, CRLF or LF) -> Mapped {submissions, ignored}:
//   - one kind message per mail (native id = Message-ID without <>, else the SHA-256 of the
//     bytes), with decoded subject, the text (last text/plain alternative, else derived from the
//     HTML), attachments with their part paths, threading and tags (automated, auto_reply, bulk,
//     list, bounce, text_truncated);
//   - a second submission, kind consent (marketing withdrawn, method keyword), when the subject
//     or the text above the quote is a stop word;
//   - for a delivery status notification: one kind status (state bounced) per failed recipient;
//     other actions are ignored as "dsn_<action>".
// Every submission's raw is the whole message ("message/rfc822"; an mbox "From " line an MTA
// put first is not part of it); the first one archives it (Submission::archive_raw), so the
// message and its attachments are in the raw archive, not on the bus. bad_request only when the
// bytes are not a message at all (no header block). `now` is the received time and the
// fallback of a missing or unreadable Date. Thread-safe; never throws.
Result<Mapped> parse_email(std::string_view raw, const MailboxSettings& mailbox, SysMillis now);

// One attachment of a message, decoded (transfer encoding removed; a forwarded message is
// its RFC 5322 bytes).
struct EmailPart {
  std::string content_type;  // "application/pdf"
  std::optional<std::string> file_name;
  std::string bytes;
};

// The leaf part at `path` of the message `raw` -- the provider_ref.part parse_email gave the
// attachment ("2", "1.2") -- for GET /v1/media/email/<account>/<id>/<part>. not_found when
// there is no such part or it is a multipart. The walk is bounded by kMaxMimeDepth.
Result<EmailPart> email_part(std::string_view raw, std::string_view path);

}  // namespace omnigate::email

#include "gateway/mail/mailer.hpp"

#include <curl/curl.h>
#include <gmime/gmime.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <mutex>
#include <string_view>

#include "gateway/core/log.hpp"
#include "gateway/core/strings.hpp"
#include "gateway/http/client.hpp"

namespace omnigate {
namespace {

constexpr std::string_view kComponent = "mail";

// ---- RAII for the C handles ------------------------------------------------------------------

struct GObjectUnref {
  void operator()(void* object) const {
    if (object != nullptr) g_object_unref(object);
  }
};
template <class T>
using GPtr = std::unique_ptr<T, GObjectUnref>;

struct GFree {
  void operator()(void* p) const { g_free(p); }
};
using GChars = std::unique_ptr<char, GFree>;

struct DateTimeUnref {
  void operator()(GDateTime* date) const { g_date_time_unref(date); }
};
struct FormatOptionsFree {
  void operator()(GMimeFormatOptions* options) const { g_mime_format_options_free(options); }
};

// GMime keeps global tables (charsets, iconv cache, parser options); g_mime_init fills them
// once. There is no matching g_mime_shutdown: the mailer lives as long as the process and a
// shutdown racing a worker thread's build_message would be worse than the leak at exit.
void ensure_gmime() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

// ---- Input hygiene ---------------------------------------------------------------------------

// Text reaching the message is labelled utf-8, so it has to be: invalid sequences (a form
// posted in cp1251, a truncated multi-byte character) become U+FFFD instead of mojibake, and
// NULs go because GMime treats text as C strings.
std::string valid_utf8(std::string_view text) {
  std::string clean(text);
  clean.erase(std::remove(clean.begin(), clean.end(), '\0'), clean.end());
  if (g_utf8_validate(clean.data(), static_cast<gssize>(clean.size()), nullptr)) return clean;
  GChars fixed(g_utf8_make_valid(clean.data(), static_cast<gssize>(clean.size())));
  return std::string(fixed.get());
}

// A subject is one line: a template rendered with form input must not fold into new headers.
std::string one_line(std::string text) {
  for (char& c : text) {
    if (c == '\r' || c == '\n' || c == '\t') c = ' ';
  }
  return text;
}

// RFC 2046 canonical text: CRLF line breaks, ending with one. Base64 encodes the bytes as
// given, so the CRs must be there before encoding; the quoted-printable encoder and the DOS
// newline filter leave an existing CRLF alone. A final line break spares the SMTP client from
// having to add one before the terminating ".".
std::string crlf_newlines(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 32 + 2);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' || text[i] == '\n') {
      out += "\r\n";
      if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else {
      out += text[i];
    }
  }
  if (!out.empty() && out.back() != '\n') out += "\r\n";
  return out;
}

// Deliberately stricter than RFC 5321 (no quoted local parts, no address literals): the value
// is the RCPT TO argument, so CR, LF, spaces or brackets would be SMTP command injection, and
// a form address that needs quoting is far more likely a typo than a mailbox.
bool plausible_address(std::string_view address) {
  if (address.empty() || address.size() > 254) return false;
  size_t at = address.find('@');
  if (at == 0 || at == std::string_view::npos || at + 1 >= address.size()) return false;
  if (address.find('@', at + 1) != std::string_view::npos) return false;
  for (unsigned char c : address) {
    if (c <= 0x20 || c == 0x7f) return false;
    if (std::strchr("<>()[],;:\\\"", c) != nullptr) return false;
  }
  std::string_view domain = address.substr(at + 1);
  if (domain.front() == '.' || domain.back() == '.' || domain.find("..") != domain.npos) {
    return false;
  }
  return g_utf8_validate(address.data(), static_cast<gssize>(address.size()), nullptr);
}

// Headers build_message owns. Letting a caller add a second From, a Bcc or a Content-Type would
// make the envelope and the message disagree, or break the MIME structure.
bool reserved_header(std::string_view name) {
  static constexpr std::string_view kReserved[] = {
      "from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version", "sender"};
  std::string low = ascii_lower(name);
  if (low.rfind("content-", 0) == 0) return true;
  return std::find(std::begin(kReserved), std::end(kReserved), low) != std::end(kReserved);
}

// RFC 5322 field-name: printable ASCII except ':'.
bool valid_header_name(std::string_view name) {
  if (name.empty()) return false;
  for (unsigned char c : name) {
    if (c < 33 || c > 126 || c == ':') return false;
  }
  return true;
}

// ---- Building the message --------------------------------------------------------------------

struct Sender {
  std::string name;           // UTF-8 display name, may be empty
  std::string address;        // as configured
  std::string ascii_address;  // IDN domain in punycode: the envelope and the Message-ID want it
};

Result<Sender> parse_sender(const std::string& from) {
  auto bad = [] {
    return make_error(ErrorCode::internal, "config",
                      "smtp from is not one address such as \"Shop <noreply@example.ru>\"");
  };
  GPtr<InternetAddressList> list(internet_address_list_parse(nullptr, from.c_str()));
  if (!list || internet_address_list_length(list.get()) != 1) return bad();
  InternetAddress* address = internet_address_list_get_address(list.get(), 0);
  if (!INTERNET_ADDRESS_IS_MAILBOX(address)) return bad();  // a group "Shop: a@b;"
  auto* mailbox = INTERNET_ADDRESS_MAILBOX(address);
  const char* addr = internet_address_mailbox_get_addr(mailbox);
  const char* idn = internet_address_mailbox_get_idn_addr(mailbox);
  if (addr == nullptr || idn == nullptr || !plausible_address(idn)) return bad();
  const char* name = internet_address_get_name(address);
  return Sender{name != nullptr ? name : "", addr, idn};
}

struct Composed {
  std::string bytes;
  std::string envelope_from;
};

Result<Composed> compose(const SmtpConfig& config, const OutgoingMail& mail) {
  ensure_gmime();
  auto sender = parse_sender(config.from);
  if (!sender) return sender.error();
  if (!plausible_address(mail.to)) {
    return make_error(ErrorCode::invalid_field, "mail", "the recipient is not an e-mail address");
  }
  for (const auto& [name, value] : mail.headers) {
    if (!valid_header_name(name) || reserved_header(name)) {
      return make_error(ErrorCode::internal, "mail", "header '" + name + "' cannot be added");
    }
    if (value.find_first_of("\r\n") != std::string::npos) {
      return make_error(ErrorCode::internal, "mail", "header '" + name + "' has a line break");
    }
  }

  // g_mime_text_part_set_text would label ASCII text us-ascii and transcode Latin-1-only text
  // to iso-8859-1; the contract is charset=utf-8 always, so the content is set directly.
  std::string body = crlf_newlines(valid_utf8(mail.text));
  GPtr<GMimeTextPart> part(g_mime_text_part_new_with_subtype("plain"));
  g_mime_text_part_set_charset(part.get(), "utf-8");
  GPtr<GMimeStream> content_stream(g_mime_stream_mem_new_with_buffer(body.data(), body.size()));
  GPtr<GMimeDataWrapper> content(
      g_mime_data_wrapper_new_with_stream(content_stream.get(), GMIME_CONTENT_ENCODING_DEFAULT));
  g_mime_part_set_content(GMIME_PART(part.get()), content.get());
  // 7-bit: some relays still mangle 8bit bodies, so GMime picks quoted-printable (mostly
  // Latin text) or base64 (mostly Cyrillic, where QP would triple the size); plain ASCII stays
  // 7bit.
  g_mime_part_set_content_encoding(GMIME_PART(part.get()),
                                   g_mime_part_get_best_content_encoding(
                                       GMIME_PART(part.get()), GMIME_ENCODING_CONSTRAINT_7BIT));

  GPtr<GMimeMessage> message(g_mime_message_new(FALSE));
  const Sender& from = *sender;
  GPtr<InternetAddress> from_mailbox(internet_address_mailbox_new(
      from.name.empty() ? nullptr : valid_utf8(from.name).c_str(), from.address.c_str()));
  // Without a charset GMime picks the smallest one that fits (windows-1251 for Cyrillic);
  // UTF-8, like the Subject, is what every client decodes.
  internet_address_set_charset(from_mailbox.get(), "utf-8");
  internet_address_list_add(g_mime_message_get_from(message.get()), from_mailbox.get());
  g_mime_message_add_mailbox(message.get(), GMIME_ADDRESS_TYPE_TO, nullptr, mail.to.c_str());
  g_mime_message_set_subject(message.get(), one_line(valid_utf8(mail.subject)).c_str(), "utf-8");
  std::unique_ptr<GDateTime, DateTimeUnref> now(g_date_time_new_now_local());
  g_mime_message_set_date(message.get(), now.get());
  // The From domain, not this host's name: receivers (and DMARC-minded filters) expect the
  // Message-ID to belong to the sending domain, and the container's hostname means nothing.
  std::string domain = from.ascii_address.substr(from.ascii_address.rfind('@') + 1);
  GChars message_id(g_mime_utils_generate_message_id(domain.c_str()));
  g_mime_message_set_message_id(message.get(), message_id.get());
  g_mime_object_set_header(GMIME_OBJECT(message.get()), "MIME-Version", "1.0", nullptr);
  for (const auto& [name, value] : mail.headers) {
    g_mime_object_append_header(GMIME_OBJECT(message.get()), name.c_str(),
                                valid_utf8(value).c_str(), "utf-8");
  }
  g_mime_message_set_mime_part(message.get(), GMIME_OBJECT(part.get()));

  std::unique_ptr<GMimeFormatOptions, FormatOptionsFree> options(g_mime_format_options_new());
  g_mime_format_options_set_newline_format(options.get(), GMIME_NEWLINE_FORMAT_DOS);
  GPtr<GMimeStream> out(g_mime_stream_mem_new());
  if (g_mime_object_write_to_stream(GMIME_OBJECT(message.get()), options.get(), out.get()) < 0) {
    return make_error(ErrorCode::internal, "mail", "GMime could not serialize the message");
  }
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out.get()));
  return Composed{std::string(reinterpret_cast<const char*>(bytes->data), bytes->len),
                  from.ascii_address};
}

// ---- Sending ---------------------------------------------------------------------------------

struct Upload {
  std::string_view data;
  size_t offset = 0;
};

size_t read_upload(char* buffer, size_t size, size_t count, void* userdata) {
  auto* upload = static_cast<Upload*>(userdata);
  size_t n = std::min(size * count, upload->data.size() - upload->offset);
  std::memcpy(buffer, upload->data.data() + upload->offset, n);
  upload->offset += n;
  return n;
}

// What the SMTP dialogue had reached when it failed, taken from curl's protocol trace. Only
// command verbs and reply codes are kept: the arguments carry addresses and the AUTH
// continuation lines carry credentials, the reply text may quote the recipient.
struct Transcript {
  std::string last_command;  // "EHLO", "MAIL FROM", ...; empty before the first command
  bool greeted = false;      // any reply line seen
  bool quitting = false;     // curl sends QUIT when it closes after a failure: not the stage
  int reply = 0;             // last reply code
  std::string enhanced;      // RFC 3463 status of the last reply, e.g. "5.1.1"

  std::string stage(bool connected) const {
    if (!last_command.empty()) return last_command;
    return greeted || connected ? "greeting" : "connect";
  }
};

std::string command_stage(std::string_view line) {
  std::string verb = ascii_lower(line.substr(0, line.find_first_of(" \r\n")));
  if (verb == "ehlo" || verb == "helo") return "EHLO";
  if (verb == "starttls") return "STARTTLS";
  if (verb == "auth") return "AUTH";
  if (verb == "mail") return "MAIL FROM";
  if (verb == "rcpt") return "RCPT TO";
  if (verb == "data") return "DATA";
  if (verb == "rset") return "RSET";
  return "";  // a SASL continuation: keep "AUTH"
}

int on_curl_debug(CURL*, curl_infotype type, char* data, size_t size, void* userdata) {
  auto* transcript = static_cast<Transcript*>(userdata);
  std::string_view line(data, size);
  if (transcript->quitting) return 0;
  if (type == CURLINFO_HEADER_OUT) {
    if (ascii_lower(line.substr(0, 4)) == "quit") {
      transcript->quitting = true;
    } else if (std::string stage = command_stage(line); !stage.empty()) {
      transcript->last_command = stage;
    }
  } else if (type == CURLINFO_HEADER_IN && line.size() >= 3 &&
             std::all_of(line.begin(), line.begin() + 3,
                         [](char c) { return c >= '0' && c <= '9'; })) {
    transcript->greeted = true;
    transcript->reply = std::stoi(std::string(line.substr(0, 3)));
    // "550-5.1.1 ..." or "550 5.1.1 ...": class.subject.detail, digits only.
    std::string_view rest = line.substr(std::min<size_t>(4, line.size()));
    size_t end = 0;
    while (end < rest.size() &&
           (std::isdigit(static_cast<unsigned char>(rest[end])) || rest[end] == '.')) {
      ++end;
    }
    std::string_view status = rest.substr(0, end);
    bool enhanced = std::count(status.begin(), status.end(), '.') == 2 && status.size() >= 5 &&
                    status.front() != '.' && status.back() != '.';
    transcript->enhanced = enhanced ? std::string(status) : std::string();
  }
  return 0;
}

Error smtp_error(CURLcode code, const char* curl_detail, const Transcript& transcript,
                 bool connected, const std::string& recipient) {
  std::string stage = transcript.stage(connected);
  int reply = transcript.reply;
  std::string detail = "SMTP " + stage + " failed";
  if (reply > 0) {
    detail += ": server replied " + std::to_string(reply);
    if (!transcript.enhanced.empty()) detail += " " + transcript.enhanced;
  }
  detail += "; curl: ";
  detail += curl_easy_strerror(code);
  // curl's own message adds the host, port and OS error for connection problems; from RCPT TO
  // on it could name the recipient's domain (IDN conversion), so it is left out there.
  if (curl_detail[0] != '\0' && stage != "RCPT TO" && stage != "DATA") {
    detail += " (";
    detail += curl_detail;
    detail += ")";
  }
  detail = replace_all(std::move(detail), recipient,
                       "<recipient>");  // belt and braces: logs must not carry it

  ErrorCode error = ErrorCode::not_durable;
  if (reply >= 500 && reply <= 599) {
    error = ErrorCode::unprocessable;  // a permanent refusal: the same attempt fails again
  } else if (code == CURLE_UNSUPPORTED_PROTOCOL || code == CURLE_URL_MALFORMAT ||
             code == CURLE_LOGIN_DENIED) {
    error = ErrorCode::internal;  // configuration: no retry will fix it
  }
  return make_error(error, "mail", std::move(detail));
}

}  // namespace

std::string build_message(const SmtpConfig& config, const OutgoingMail& mail) {
  auto composed = compose(config, mail);
  return composed ? std::move(composed->bytes) : std::string();
}

Status send_mail(const SmtpConfig& config, const OutgoingMail& mail) {
  auto composed = compose(config, mail);
  if (!composed) return composed.error();
  // The process-wide curl init and handle deleters are the HTTP client's (one of each).
  http::CurlEasy curl = http::make_curl_easy();
  if (!curl) return make_error(ErrorCode::internal, "mail", "curl_easy_init failed");
  http::CurlSlist recipients;
  if (!http::append_line(recipients, mail.to))
    return make_error(ErrorCode::internal, "mail", "out of memory");

  Upload upload{composed->bytes};
  Transcript transcript;
  char curl_detail[CURL_ERROR_SIZE] = {};
  CURL* h = curl.get();
  long timeout_ms = static_cast<long>(std::max<int64_t>(1, config.timeout.count()));
  curl_easy_setopt(h, CURLOPT_URL, config.url.c_str());
  // A configured "https://..." or "file://..." must fail, not do something else.
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  // smtp:// upgrades with STARTTLS when offered; smtps:// is TLS from the first byte.
  // CURLUSESSL_TRY also means: no STARTTLS offered (or stripped by the network) → plain text,
  // AUTH included; a relay on the public internet should be configured as smtps://.
  curl_easy_setopt(h, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_TRY));
  if (!config.username.empty()) {
    curl_easy_setopt(h, CURLOPT_USERNAME, config.username.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, config.password.c_str());
  }
  curl_easy_setopt(h, CURLOPT_MAIL_FROM, composed->envelope_from.c_str());
  curl_easy_setopt(h, CURLOPT_MAIL_RCPT, recipients.get());
  curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(h, CURLOPT_READFUNCTION, read_upload);
  curl_easy_setopt(h, CURLOPT_READDATA, &upload);
  curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(composed->bytes.size()));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for DNS timeouts
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_detail);
  // The debug callback replaces curl's stderr trace: it only records the stage (see Transcript).
  curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_curl_debug);
  curl_easy_setopt(h, CURLOPT_DEBUGDATA, &transcript);
  curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);

  CURLcode code = curl_easy_perform(h);
  if (code == CURLE_OK) return ok_status();
  // The transcript's reply, not CURLINFO_RESPONSE_CODE: that one can be the answer to the QUIT
  // curl sends on its way out.
  curl_off_t connect_time = 0;
  curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connect_time);
  return smtp_error(code, curl_detail, transcript, connect_time > 0, mail.to);
}

// ---- Templates -------------------------------------------------------------------------------

std::string render_template(const std::string& text,
                            const std::vector<std::pair<std::string, std::string>>& vars) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    size_t open = text.find("{{", pos);
    if (open == std::string::npos) break;
    out.append(text, pos, open - pos);
    size_t close = text.find("}}", open + 2);
    if (close == std::string::npos) {
      pos = open;
      break;
    }
    std::string_view name(text.data() + open + 2, close - open - 2);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    auto var =
        std::find_if(vars.begin(), vars.end(), [&](const auto& v) { return v.first == name; });
    if (var != vars.end()) {
      out += var->second;
      pos = close + 2;
    } else {
      // Not a known name: keep one brace and look again from the next character, so that
      // "{{{link}}}" still finds "{{link}}".
      out += '{';
      pos = open + 1;
    }
  }
  out.append(text, pos, std::string::npos);
  return out;
}

}  // namespace omnigate

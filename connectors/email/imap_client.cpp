#include "connectors/email/imap_client.hpp"

#include <poll.h>

#include <algorithm>
#include <charconv>
#include <optional>

namespace omnigate::email {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Literals one response may carry (a FETCH of one message has one or two).
constexpr size_t kMaxLiterals = 1024;
// The longest server text quoted in an error detail.
constexpr size_t kMaxQuotedText = 200;

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 'a' + 'A');
    if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 'a' + 'A');
    if (x != y) return false;
  }
  return true;
}

bool istarts_with(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

std::optional<uint64_t> parse_number(std::string_view text) {
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// The server's words in a detail: printable ASCII only, bounded.
std::string server_text(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, kMaxQuotedText)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

// host[:port] of an imap(s):// URL, without any user:password@.
std::string host_of(const std::string& url) {
  std::string_view rest = url;
  if (auto scheme = rest.find("://"); scheme != std::string_view::npos)
    rest.remove_prefix(scheme + 3);
  rest = rest.substr(0, rest.find('/'));
  if (auto at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
  return std::string(rest);
}

// scheme://host[:port] of the URL (its path dropped, the user part kept: it is curl's to read).
std::string base_of(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  return url.substr(0, url.find('/', scheme + 3));
}

std::string uid_set(const std::vector<uint64_t>& uids) {
  std::string set;
  for (uint64_t uid : uids) {
    if (!set.empty()) set += ',';
    set += std::to_string(uid);
  }
  return set;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* cancel = static_cast<const std::atomic<bool>*>(user);
  return cancel != nullptr && cancel->load() ? 1 : 0;
}

// One untagged response: its text with a NUL byte where each literal was, and the literals.
struct Untagged {
  std::string text;
  std::vector<std::string> literals;
};

// The tokens of an untagged response, read left to right; no recursion.
struct Token {
  enum Kind { atom, string, literal, open, close, end } kind = end;
  std::string_view text;
};

class Tokens {
 public:
  explicit Tokens(const Untagged& response) : text_(response.text), literals_(response.literals) {}

  Token next() {
    while (at_ < text_.size() && text_[at_] == ' ') ++at_;
    if (at_ >= text_.size()) return {};
    const char c = text_[at_];
    if (c == '(') return {Token::open, text_.substr(at_++, 1)};
    if (c == ')') return {Token::close, text_.substr(at_++, 1)};
    if (c == '\0') {
      ++at_;
      if (literal_ >= literals_.size()) return {};
      return {Token::literal, literals_[literal_++]};
    }
    if (c == '"') {
      // The quoted string's bytes with the escapes left in: only its extent matters here
      // except for a quoted message body, which unescape() handles.
      const size_t begin = ++at_;
      while (at_ < text_.size() && text_[at_] != '"') at_ += text_[at_] == '\\' ? 2 : 1;
      const size_t end = std::min(at_, text_.size());
      at_ = end + 1;
      return {Token::string, text_.substr(begin, end - begin)};
    }
    // An atom, with any [...] section (BODY[HEADER], [UIDVALIDITY 3]) and <partial> in it.
    const size_t begin = at_;
    while (at_ < text_.size()) {
      const char d = text_[at_];
      if (d == '[') {
        const size_t close = text_.find(']', at_);
        at_ = close == std::string_view::npos ? text_.size() : close + 1;
        continue;
      }
      if (d == ' ' || d == '(' || d == ')' || d == '"' || d == '\0') break;
      ++at_;
    }
    return {Token::atom, text_.substr(begin, at_ - begin)};
  }

  // Skips the rest of a parenthesised list whose "(" was just read.
  void skip_list() {
    for (size_t depth = 1; depth > 0;) {
      Token t = next();
      if (t.kind == Token::end) return;
      if (t.kind == Token::open) ++depth;
      if (t.kind == Token::close) --depth;
    }
  }

 private:
  std::string_view text_;
  const std::vector<std::string>& literals_;
  size_t at_ = 0;
  size_t literal_ = 0;
};

std::string unescape(std::string_view quoted) {
  std::string out;
  out.reserve(quoted.size());
  for (size_t i = 0; i < quoted.size(); ++i) {
    if (quoted[i] == '\\' && i + 1 < quoted.size()) ++i;
    out += quoted[i];
  }
  return out;
}

// One "* <n> FETCH (...)" response: its UID and its attributes by upper-case name; a list
// value (FLAGS (...)) is recorded as an empty atom.
struct FetchData {
  std::optional<uint64_t> uid;
  std::vector<std::pair<std::string, Token>> items;
  const Token* find_prefix(std::string_view name) const {
    for (const auto& [key, value] : items)
      if (istarts_with(key, name)) return &value;
    return nullptr;
  }
};

std::optional<FetchData> parse_fetch(const Untagged& response) {
  Tokens tokens(response);
  Token number = tokens.next();
  Token word = tokens.next();
  if (number.kind != Token::atom || word.kind != Token::atom || !iequals(word.text, "FETCH"))
    return std::nullopt;
  if (tokens.next().kind != Token::open) return std::nullopt;
  FetchData data;
  while (true) {
    Token key = tokens.next();
    if (key.kind != Token::atom) break;  // ")" or the end
    Token value = tokens.next();
    if (value.kind == Token::open) {
      tokens.skip_list();
      value = {Token::atom, {}};
    } else if (value.kind == Token::end || value.kind == Token::close) {
      break;
    }
    std::string name(key.text);
    for (char& c : name)
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (name == "UID") data.uid = parse_number(value.text);
    data.items.emplace_back(std::move(name), value);
  }
  return data;
}

// The number after "<name> " in a "[NAME n]" response code of "OK [...]".
std::optional<uint64_t> response_code_number(std::string_view text, std::string_view name) {
  if (!istarts_with(text, "OK [")) return std::nullopt;
  text.remove_prefix(4);
  if (!istarts_with(text, name) || text.size() <= name.size() || text[name.size()] != ' ')
    return std::nullopt;
  text.remove_prefix(name.size() + 1);
  return parse_number(text.substr(0, text.find(']')));
}

}  // namespace

struct ImapClient::Response {
  std::vector<Untagged> untagged;
  std::string status;  // OK | NO | BAD
  std::string text;    // the rest of the tagged line (response code and human text)
  bool ok() const { return status == "OK"; }
};

namespace {

// The code point of the UTF-8 sequence at `text[at]` (advancing `at`); nullopt when it is not
// well-formed (overlong, surrogate, above U+10FFFF, truncated).
std::optional<uint32_t> next_code_point(std::string_view text, size_t& at) {
  const auto lead = static_cast<unsigned char>(text[at]);
  size_t length = lead < 0x80           ? 1
                  : (lead >> 5) == 0x6  ? 2
                  : (lead >> 4) == 0xe  ? 3
                  : (lead >> 3) == 0x1e ? 4
                                        : 0;
  if (length == 0 || at + length > text.size()) return std::nullopt;
  uint32_t point = length == 1 ? lead : lead & (0x7f >> length);
  for (size_t i = 1; i < length; ++i) {
    const auto next = static_cast<unsigned char>(text[at + i]);
    if ((next >> 6) != 0x2) return std::nullopt;
    point = (point << 6) | (next & 0x3f);
  }
  static constexpr uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (point < kSmallest[length] || point > 0x10ffff || (point >= 0xd800 && point <= 0xdfff))
    return std::nullopt;
  at += length;
  return point;
}

// RFC 3501 5.1.3: a run of non-ASCII characters as UTF-16BE in base64 with ',' for '/', no
// padding, between '&' and '-'.
void append_modified_base64(const std::vector<uint16_t>& units, std::string& out) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
  std::string bytes;
  for (uint16_t unit : units) {
    bytes += static_cast<char>(unit >> 8);
    bytes += static_cast<char>(unit & 0xff);
  }
  out += '&';
  uint32_t bits = 0;
  int count = 0;
  for (char c : bytes) {
    bits = (bits << 8) | static_cast<unsigned char>(c);
    count += 8;
    while (count >= 6) {
      count -= 6;
      out += kAlphabet[(bits >> count) & 0x3f];
    }
  }
  if (count > 0) out += kAlphabet[(bits << (6 - count)) & 0x3f];
  out += '-';
}

}  // namespace

bool imap_quote(std::string_view text, std::string& out) {
  out = "\"";
  std::vector<uint16_t> shifted;  // the UTF-16 units of the non-ASCII run being collected
  for (size_t at = 0; at < text.size();) {
    auto point = next_code_point(text, at);
    if (!point || *point < 0x20 || *point == 0x7f) return false;
    if (*point >= 0x80) {
      if (*point >= 0x10000) {
        shifted.push_back(static_cast<uint16_t>(0xd800 + ((*point - 0x10000) >> 10)));
        shifted.push_back(static_cast<uint16_t>(0xdc00 + ((*point - 0x10000) & 0x3ff)));
      } else {
        shifted.push_back(static_cast<uint16_t>(*point));
      }
      continue;
    }
    if (!shifted.empty()) {
      append_modified_base64(shifted, out);
      shifted.clear();
    }
    const char c = static_cast<char>(*point);
    if (c == '&') {
      out += "&-";
      continue;
    }
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  if (!shifted.empty()) append_modified_base64(shifted, out);
  out += '"';
  return true;
}

ImapClient::ImapClient(ImapSettings settings)
    : settings_(std::move(settings)), host_(host_of(settings_.url)) {}

ImapClient::~ImapClient() = default;

Error ImapClient::failure(ErrorCode code, const std::string& what) {
  return make_error(code, "imap", "imap " + settings_.account + " (" + host_ + "): " + what);
}

Error ImapClient::dropped(const std::string& what) {
  disconnect();
  return failure(ErrorCode::bad_gateway, what);
}

void ImapClient::disconnect() {
  curl_.reset();
  in_.clear();
  in_begin_ = 0;
  capabilities_.clear();
}

bool ImapClient::has_capability(std::string_view name) const {
  return std::any_of(capabilities_.begin(), capabilities_.end(),
                     [&](const std::string& c) { return iequals(c, name); });
}

Status ImapClient::connect(const std::atomic<bool>* cancel) {
  disconnect();
  cancel_ = cancel;
  std::string mailbox;
  if (!imap_quote(settings_.mailbox, mailbox))
    return failure(ErrorCode::invalid_field, "the mailbox name is not valid UTF-8 text");
  curl_ = http::make_curl_easy();
  if (!curl_) return failure(ErrorCode::internal, "cannot create a curl handle");
  CURL* h = curl_.get();
  // The mailbox in the URL is informational: with CONNECT_ONLY curl selects nothing, select()
  // does.
  std::string url = base_of(settings_.url) + "/";
  if (char* escaped = curl_easy_escape(h, settings_.mailbox.c_str(),
                                       static_cast<int>(settings_.mailbox.size()))) {
    url += escaped;
    curl_free(escaped);
  }
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "imap,imaps");
  curl_easy_setopt(h, CURLOPT_USERNAME, settings_.username.c_str());
  if (!settings_.oauth2_token.empty()) {
    curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, settings_.oauth2_token.c_str());
  } else {
    curl_easy_setopt(h, CURLOPT_PASSWORD, settings_.password.c_str());
  }
  // imap://: STARTTLS when the server offers it, so a password is not sent in the clear
  // where it need not be; imaps:// is TLS from the first byte.
  curl_easy_setopt(h, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_TRY));
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, settings_.tls_verify ? 1L : 0L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, settings_.tls_verify ? 2L : 0L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(settings_.connect_timeout.count()));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(settings_.connect_timeout.count()));
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, cancel);
  curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
  const CURLcode code = curl_easy_perform(h);
  if (code != CURLE_OK) {
    disconnect();
    const std::string why = curl_easy_strerror(code);
    switch (code) {
      case CURLE_LOGIN_DENIED:
        return failure(ErrorCode::unauthorized,
                       "the server rejected the login (check channels.email[].username and "
                       "password or oauth2_token)");
      case CURLE_OPERATION_TIMEDOUT:
        return failure(ErrorCode::upstream_timeout,
                       "no greeting and login within " +
                           std::to_string(settings_.connect_timeout.count()) + " ms");
      case CURLE_ABORTED_BY_CALLBACK:
        return failure(ErrorCode::internal, "cancelled");
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_SSL_CACERT_BADFILE:
      case CURLE_SSL_CERTPROBLEM:
        return failure(ErrorCode::bad_gateway,
                       "TLS: " + why + " (tls_verify: false accepts a self-signed certificate)");
      case CURLE_USE_SSL_FAILED:
        return failure(ErrorCode::bad_gateway, "the server does not offer TLS: " + why);
      default:
        return failure(ErrorCode::bad_gateway, "cannot connect: " + why);
    }
  }
  auto listed = command("CAPABILITY");
  if (!listed) return listed.error();
  for (const auto& line : listed->untagged) {
    if (!istarts_with(line.text, "CAPABILITY ")) continue;
    std::string_view words = std::string_view(line.text).substr(11);
    while (!words.empty()) {
      const size_t space = words.find(' ');
      if (space != 0) capabilities_.emplace_back(words.substr(0, space));
      if (space == std::string_view::npos) break;
      words.remove_prefix(space + 1);
    }
  }
  return ok_status();
}

Status ImapClient::send_all(std::string_view bytes, Clock::time_point deadline) {
  curl_socket_t socket = CURL_SOCKET_BAD;
  curl_easy_getinfo(curl_.get(), CURLINFO_ACTIVESOCKET, &socket);
  while (!bytes.empty()) {
    if (cancel_ != nullptr && *cancel_) return dropped("cancelled");
    size_t sent = 0;
    const CURLcode code = curl_easy_send(curl_.get(), bytes.data(), bytes.size(), &sent);
    if (code == CURLE_OK) {
      bytes.remove_prefix(sent);
      continue;
    }
    if (code != CURLE_AGAIN) return dropped(std::string("send: ") + curl_easy_strerror(code));
    if (Clock::now() >= deadline) {
      disconnect();
      return failure(ErrorCode::upstream_timeout, "the server takes no more bytes");
    }
    pollfd waiting{socket, POLLOUT, 0};
    ::poll(&waiting, 1, 100);
  }
  return ok_status();
}

Status ImapClient::fill(Clock::time_point deadline) {
  curl_socket_t socket = CURL_SOCKET_BAD;
  curl_easy_getinfo(curl_.get(), CURLINFO_ACTIVESOCKET, &socket);
  if (in_begin_ > 0 && in_begin_ * 2 >= in_.size()) {
    in_.erase(0, in_begin_);
    in_begin_ = 0;
  }
  char buffer[64 * 1024];
  while (true) {
    if (cancel_ != nullptr && *cancel_) return dropped("cancelled");
    size_t received = 0;
    // TLS may hold decrypted bytes the socket no longer shows: read first, poll only on AGAIN.
    const CURLcode code = curl_easy_recv(curl_.get(), buffer, sizeof buffer, &received);
    if (code == CURLE_OK) {
      if (received == 0) return dropped("the server closed the connection");
      in_.append(buffer, received);
      return ok_status();
    }
    if (code != CURLE_AGAIN) return dropped(std::string("receive: ") + curl_easy_strerror(code));
    const auto now = Clock::now();
    if (now >= deadline) {
      disconnect();
      return failure(
          ErrorCode::upstream_timeout,
          "no complete answer within " + std::to_string(settings_.command_timeout.count()) + " ms");
    }
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - now).count();
    pollfd waiting{socket, POLLIN, 0};
    ::poll(&waiting, 1, static_cast<int>(std::clamp<int64_t>(left, 1, 100)));
  }
}

Status ImapClient::read_response(const std::string& tag, size_t max_literal,
                                 Clock::time_point deadline, Response& out) {
  size_t literal_bytes = 0;  // of this response, all literals together
  Untagged* open = nullptr;  // the untagged response a literal continues
  while (true) {
    // One line, CRLF excluded.
    size_t end;
    while ((end = in_.find("\r\n", in_begin_)) == std::string::npos) {
      if (in_.size() - in_begin_ > kMaxImapLine)
        return dropped("a response line longer than " + std::to_string(kMaxImapLine) + " bytes");
      if (auto filled = fill(deadline); !filled) return filled;
    }
    std::string_view line(in_.data() + in_begin_, end - in_begin_);
    in_begin_ = end + 2;
    if (open == nullptr) {
      if (line.size() > tag.size() && line.substr(0, tag.size()) == tag &&
          line[tag.size()] == ' ') {
        line.remove_prefix(tag.size() + 1);
        const size_t space = line.find(' ');
        out.status = std::string(line.substr(0, space));
        for (char& c : out.status)
          if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
        out.text = space == std::string_view::npos ? "" : std::string(line.substr(space + 1));
        return ok_status();
      }
      if (line.substr(0, 2) != "* ")
        return dropped("an unexpected line from the server: " + server_text(line));
      open = &out.untagged.emplace_back();
      line.remove_prefix(2);
    }
    if (open->text.size() + line.size() > kMaxImapLine)
      return dropped("a response longer than " + std::to_string(kMaxImapLine) + " bytes");
    // A literal announced at the end of the line: "{N}" (or "{N+}"), then exactly N bytes.
    std::optional<uint64_t> literal;
    if (!line.empty() && line.back() == '}') {
      const size_t brace = line.rfind('{');
      if (brace != std::string_view::npos) {
        std::string_view digits = line.substr(brace + 1, line.size() - brace - 2);
        if (!digits.empty() && digits.back() == '+') digits.remove_suffix(1);
        literal = parse_number(digits);
        if (literal) line = line.substr(0, brace);
      }
    }
    open->text.append(line);
    if (!literal) {
      open = nullptr;
      continue;
    }
    if (open->literals.size() >= kMaxLiterals)
      return dropped("more than " + std::to_string(kMaxLiterals) + " literals in one response");
    if (*literal > max_literal || literal_bytes + *literal > max_literal)
      return dropped("a literal of " + std::to_string(*literal) + " bytes, above the cap of " +
                     std::to_string(max_literal));
    literal_bytes += *literal;
    const size_t size = static_cast<size_t>(*literal);
    while (in_.size() - in_begin_ < size) {
      if (auto filled = fill(deadline); !filled) return filled;
    }
    open->literals.emplace_back(in_.data() + in_begin_, size);
    in_begin_ += size;
    open->text += '\0';  // the literal's place; the response goes on after it
  }
}

Result<ImapClient::Response> ImapClient::command(const std::string& text, size_t max_literal) {
  if (!curl_) return failure(ErrorCode::bad_gateway, "not connected");
  const std::string tag = "G" + std::to_string(next_tag_++);
  const auto deadline = Clock::now() + settings_.command_timeout;
  if (auto sent = send_all(tag + " " + text + "\r\n", deadline); !sent) return sent.error();
  Response response;
  if (auto read = read_response(tag, max_literal, deadline, response); !read) return read.error();
  if (response.status == "BAD") {
    // A command this client sent is wrong for this server: not a state to keep talking in.
    const std::string verb = text.substr(0, text.find(' ', text.find(' ') + 1));
    return dropped(verb + " was refused: BAD " + server_text(response.text));
  }
  return response;
}

Result<MailboxState> ImapClient::select(bool read_only) {
  std::string mailbox;
  if (!imap_quote(settings_.mailbox, mailbox))
    return failure(ErrorCode::invalid_field, "the mailbox name is not valid UTF-8 text");
  auto response = command((read_only ? "EXAMINE " : "SELECT ") + mailbox);
  if (!response) return response.error();
  if (!response->ok()) {
    return failure(ErrorCode::not_found, "cannot open the mailbox " + mailbox + ": " +
                                             response->status + " " + server_text(response->text));
  }
  MailboxState state;
  for (const auto& line : response->untagged) {
    std::string_view text = line.text;
    if (auto v = response_code_number(text, "UIDVALIDITY")) state.uidvalidity = *v;
    if (auto v = response_code_number(text, "UIDNEXT")) state.uidnext = *v;
    const size_t space = text.find(' ');
    if (space != std::string_view::npos && iequals(text.substr(space + 1), "EXISTS")) {
      if (auto v = parse_number(text.substr(0, space))) state.exists = *v;
    }
  }
  if (state.uidvalidity == 0)
    return dropped("the mailbox " + mailbox + " was opened without a UIDVALIDITY");
  return state;
}

Result<std::vector<uint64_t>> ImapClient::search_from(uint64_t first) {
  auto response = command("UID SEARCH UID " + std::to_string(first) + ":*");
  if (!response) return response.error();
  if (!response->ok())
    return failure(ErrorCode::bad_gateway,
                   "UID SEARCH: " + response->status + " " + server_text(response->text));
  std::vector<uint64_t> uids;
  for (const auto& line : response->untagged) {
    if (!istarts_with(line.text, "SEARCH")) continue;
    std::string_view rest = std::string_view(line.text).substr(6);
    while (!rest.empty()) {
      const size_t space = rest.find(' ');
      if (auto uid = parse_number(rest.substr(0, space)); uid && *uid >= first)
        uids.push_back(*uid);
      if (space == std::string_view::npos) break;
      rest.remove_prefix(space + 1);
    }
  }
  std::sort(uids.begin(), uids.end());
  uids.erase(std::unique(uids.begin(), uids.end()), uids.end());
  return uids;
}

Result<std::vector<std::pair<uint64_t, uint64_t>>> ImapClient::sizes(
    const std::vector<uint64_t>& uids) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  if (uids.empty()) return out;
  auto response = command("UID FETCH " + uid_set(uids) + " (UID RFC822.SIZE)");
  if (!response) return response.error();
  if (!response->ok())
    return failure(ErrorCode::bad_gateway,
                   "UID FETCH: " + response->status + " " + server_text(response->text));
  std::vector<std::pair<uint64_t, uint64_t>> found;
  for (const auto& line : response->untagged) {
    auto data = parse_fetch(line);
    if (!data || !data->uid) continue;
    const Token* size = data->find_prefix("RFC822.SIZE");
    if (size == nullptr) continue;
    if (auto bytes = parse_number(size->text)) found.emplace_back(*data->uid, *bytes);
  }
  for (uint64_t uid : uids) {
    auto match =
        std::find_if(found.begin(), found.end(), [&](const auto& f) { return f.first == uid; });
    if (match != found.end()) out.push_back(*match);
  }
  return out;
}

Result<FetchedMessage> ImapClient::fetch(uint64_t uid, uint64_t size) {
  FetchedMessage message;
  message.uid = uid;
  message.size = size;
  message.too_large = size > settings_.max_message;
  const std::string what = message.too_large
                               ? "BODY.PEEK[HEADER]<0." + std::to_string(kMaxHeaderBytes) + ">"
                               : "BODY.PEEK[]";
  const size_t cap =
      message.too_large ? kMaxHeaderBytes : static_cast<size_t>(settings_.max_message);
  auto response = command("UID FETCH " + std::to_string(uid) + " " + what, cap);
  if (!response) return response.error();
  if (!response->ok())
    return failure(ErrorCode::bad_gateway,
                   "UID FETCH: " + response->status + " " + server_text(response->text));
  const std::string_view section = message.too_large ? "BODY[HEADER]" : "BODY[]";
  for (const auto& line : response->untagged) {
    auto data = parse_fetch(line);
    if (!data || data->uid != uid) continue;
    const Token* body = data->find_prefix(section);
    if (body == nullptr) continue;
    if (body->kind == Token::literal) {
      message.raw = std::make_shared<const std::string>(body->text);
    } else if (body->kind == Token::string) {
      message.raw = std::make_shared<const std::string>(unescape(body->text));
    } else {
      continue;  // NIL
    }
    return message;
  }
  return failure(ErrorCode::not_found, "message UID " + std::to_string(uid) + " is gone");
}

Status ImapClient::mark_seen(const std::vector<uint64_t>& uids) {
  if (uids.empty()) return ok_status();
  auto response = command("UID STORE " + uid_set(uids) + " +FLAGS.SILENT (\\Seen)");
  if (!response) return response.error();
  if (!response->ok())
    return failure(ErrorCode::bad_gateway,
                   "UID STORE: " + response->status + " " + server_text(response->text));
  return ok_status();
}

Status ImapClient::move(const std::vector<uint64_t>& uids, const std::string& folder) {
  if (uids.empty()) return ok_status();
  std::string quoted;
  if (!imap_quote(folder, quoted))
    return failure(ErrorCode::invalid_field, "the folder name is not valid UTF-8 text");
  const std::string set = uid_set(uids);
  const bool native = has_capability("MOVE");
  const std::string verb = native ? "UID MOVE " : "UID COPY ";
  auto moved = command(verb + set + " " + quoted);
  if (moved && !moved->ok() && istarts_with(moved->text, "[TRYCREATE]")) {
    auto created = command("CREATE " + quoted);
    if (!created) return created.error();
    moved = command(verb + set + " " + quoted);
  }
  if (!moved) return moved.error();
  if (!moved->ok())
    return failure(ErrorCode::bad_gateway,
                   verb + "to " + quoted + ": " + moved->status + " " + server_text(moved->text));
  if (native) return ok_status();
  auto deleted = command("UID STORE " + set + " +FLAGS.SILENT (\\Deleted)");
  if (!deleted) return deleted.error();
  if (!deleted->ok())
    return failure(ErrorCode::bad_gateway,
                   "UID STORE \\Deleted: " + deleted->status + " " + server_text(deleted->text));
  // Without UIDPLUS only a plain EXPUNGE exists, and it would also remove messages someone
  // else flagged \Deleted: the copies stay flagged for the mail client to expunge.
  if (!has_capability("UIDPLUS")) return ok_status();
  auto expunged = command("UID EXPUNGE " + set);
  if (!expunged) return expunged.error();
  if (!expunged->ok())
    return failure(ErrorCode::bad_gateway,
                   "UID EXPUNGE: " + expunged->status + " " + server_text(expunged->text));
  return ok_status();
}

}  // namespace omnigate::email

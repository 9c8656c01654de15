#include "connectors/email/email_parse.hpp"

#include <gmime/gmime.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include "gateway/core/strings.hpp"
#include "gateway/model/formats.hpp"
#include "gateway/model/ids.hpp"

namespace omnigate::email {
namespace {

constexpr std::string_view kChannel = "email";
// What is read of a body part before conversion: enough for kMaxTextBytes of text from any
// charset (plain) or of a heavily tagged HTML body; the rest is cut (text_truncated).
constexpr size_t kMaxPlainSource = 4 * kMaxTextBytes;
constexpr size_t kMaxHtmlSource = 4 * 1024 * 1024;
// Attachments listed per mail; a message of thousands of tiny parts lists the first ones.
constexpr size_t kMaxAttachments = 500;
// Per-recipient blocks read from one delivery-status part.
constexpr size_t kMaxDsnRecipients = 200;

// ---- RAII around GMime's GObjects and GLib strings ----

struct GObjectUnref {
  void operator()(gpointer object) const {
    if (object) g_object_unref(object);
  }
};
template <class T>
using GObjectPtr = std::unique_ptr<T, GObjectUnref>;

struct GFree {
  void operator()(gpointer memory) const { g_free(memory); }
};
using GChars = std::unique_ptr<char, GFree>;

struct ReferencesFree {
  void operator()(GMimeReferences* refs) const {
    if (refs) g_mime_references_free(refs);
  }
};
using ReferencesPtr = std::unique_ptr<GMimeReferences, ReferencesFree>;

// GMime keeps process-wide tables (charsets, iconv cache): initialised once, by whichever
// thread parses first; the parser options are read-only afterwards and shared by every thread.
GMimeParserOptions* parser_options() {
  static GMimeParserOptions* options = [] {
    g_mime_init();
    GMimeParserOptions* o = g_mime_parser_options_new();
    // Undeclared 8-bit in headers and parameters: the charsets Russian mail arrives in.
    static const char* kFallbacks[] = {"utf-8", "windows-1251", "koi8-r", "iso-8859-1", nullptr};
    g_mime_parser_options_set_fallback_charsets(o, kFallbacks);
    g_mime_parser_options_set_rfc2047_compliance_mode(o, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_parameter_compliance_mode(o, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_address_compliance_mode(o, GMIME_RFC_COMPLIANCE_LOOSE);
    return o;
  }();
  return options;
}

// ---- text helpers ----

// Valid UTF-8 whatever GMime or a sender made of it (JSON serialization requires it).
std::string utf8(const char* text) {
  if (!text) return {};
  if (g_utf8_validate(text, -1, nullptr)) return text;
  GChars valid(g_utf8_make_valid(text, -1));
  return valid.get();
}

std::optional<std::string> converted(std::string_view bytes, const char* charset) {
  gsize written = 0;
  GError* error = nullptr;
  GChars out(g_convert(bytes.data(), static_cast<gssize>(bytes.size()), "UTF-8", charset, nullptr,
                       &written, &error));
  if (error) {
    g_error_free(error);
    return std::nullopt;
  }
  if (!out) return std::nullopt;
  return std::string(out.get(), written);
}

// Body bytes in their declared charset -> UTF-8; a missing, unknown or wrong declaration falls
// back to utf-8, windows-1251, koi8-r and finally iso-8859-1 (which takes every byte).
std::string to_utf8(std::string_view bytes, const char* declared) {
  if (declared && *declared && !iequals(declared, "us-ascii") && !iequals(declared, "ascii")) {
    const char* name = g_mime_charset_iconv_name(declared);
    if (iequals(name, "utf-8") || iequals(name, "utf8")) {
      if (g_utf8_validate(bytes.data(), static_cast<gssize>(bytes.size()), nullptr))
        return std::string(bytes);
    } else if (auto text = converted(bytes, name)) {
      return *text;
    }
  }
  if (g_utf8_validate(bytes.data(), static_cast<gssize>(bytes.size()), nullptr))
    return std::string(bytes);
  for (const char* charset : {"windows-1251", "koi8-r", "iso-8859-1"}) {
    if (auto text = converted(bytes, charset)) return *text;
  }
  GChars valid(g_utf8_make_valid(bytes.data(), static_cast<gssize>(bytes.size())));
  return valid.get();
}

// CRLF (and lone CR) -> LF, trailing whitespace of the whole text trimmed.
std::string normalize_newlines(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r') {
      out += '\n';
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else {
      out += text[i];
    }
  }
  size_t end = out.find_last_not_of(" \t\n\f\v");
  out.resize(end == std::string::npos ? 0 : end + 1);
  return out;
}

// Cut to at most `limit` bytes on a code point boundary; true when something was cut.
bool cap_utf8(std::string& text, size_t limit) {
  if (text.size() <= limit) return false;
  size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  text.resize(end);
  return true;
}

void append_code_point(std::string& out, uint32_t cp) {
  if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
  char buf[6];
  int n = g_unichar_to_utf8(cp, buf);
  out.append(buf, static_cast<size_t>(n));
}

bool starts_with_ci(std::string_view text, size_t at, std::string_view prefix) {
  return text.size() - at >= prefix.size() && iequals(text.substr(at, prefix.size()), prefix);
}

size_t find_ci(std::string_view text, size_t from, std::string_view needle) {
  auto it = std::search(text.begin() + static_cast<std::ptrdiff_t>(from), text.end(),
                        needle.begin(), needle.end(),
                        [](char a, char b) { return g_ascii_tolower(a) == g_ascii_tolower(b); });
  return it == text.end() ? std::string_view::npos : static_cast<size_t>(it - text.begin());
}

// An HTML character reference at text[at] == '&': appends its character and returns the length
// consumed, or 0 when it is not one (the '&' is then kept as is).
size_t decode_entity(std::string_view text, size_t at, std::string& out) {
  size_t semi = text.find(';', at);
  if (semi == std::string_view::npos || semi - at > 12 || semi == at + 1) return 0;
  std::string_view name = text.substr(at + 1, semi - at - 1);
  if (name[0] == '#') {
    uint32_t cp = 0;
    bool hex = name.size() > 1 && (name[1] == 'x' || name[1] == 'X');
    std::string_view digits = name.substr(hex ? 2 : 1);
    if (digits.empty() || digits.size() > 7) return 0;
    for (char c : digits) {
      int v = hex ? g_ascii_xdigit_value(c) : g_ascii_digit_value(c);
      if (v < 0) return 0;
      cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(v);
    }
    append_code_point(out, cp == 0xA0 ? ' ' : cp);
    return semi - at + 1;
  }
  static const std::pair<std::string_view, uint32_t> kNamed[] = {
      {"amp", '&'},      {"lt", '<'},       {"gt", '>'},        {"quot", '"'},
      {"apos", '\''},    {"nbsp", ' '},     {"mdash", 0x2014},  {"ndash", 0x2013},
      {"laquo", 0xAB},   {"raquo", 0xBB},   {"hellip", 0x2026}, {"copy", 0xA9},
      {"reg", 0xAE},     {"trade", 0x2122}, {"euro", 0x20AC},   {"rsquo", 0x2019},
      {"lsquo", 0x2018}, {"ldquo", 0x201C}, {"rdquo", 0x201D},  {"bdquo", 0x201E},
      {"bull", 0x2022},  {"middot", 0xB7},  {"deg", 0xB0},      {"times", 0xD7},
      {"shy", 0xAD},     {"zwnj", 0x200C},  {"zwj", 0x200D},
  };
  for (const auto& [entity, cp] : kNamed) {
    if (name == entity) {
      if (cp != 0xAD && cp != 0x200C && cp != 0x200D) append_code_point(out, cp);
      return semi - at + 1;
    }
  }
  return 0;
}

// How a tag breaks the text, as a browser lays it out: paragraphs (margins) leave a blank line,
// lines (div, list items, rows) start a new line once, cells are separated by a space.
enum class Break { none, cell, line, paragraph };
Break break_of(std::string_view name) {
  static const std::string_view kParagraphs[] = {"p",  "h1",  "h2",         "h3", "h4",
                                                 "h5", "h6",  "ul",         "ol", "table",
                                                 "hr", "pre", "blockquote", "dl"};
  static const std::string_view kLines[] = {"div",     "li",      "tr",     "dt",     "dd",
                                            "section", "article", "header", "footer", "address"};
  for (auto tag : kParagraphs)
    if (name == tag) return Break::paragraph;
  for (auto tag : kLines)
    if (name == tag) return Break::line;
  if (name == "td" || name == "th") return Break::cell;
  return Break::none;
}

// Text of an HTML body in one forward scan (no recursion, no backtracking): tags dropped,
// block tags -> line breaks, entities decoded, script/style/head content and comments dropped,
// whitespace collapsed as a browser would, runs of blank lines collapsed to one.
std::string html_to_text(std::string_view html) {
  std::string flow;  // whitespace collapsed, '\n' only from block tags
  flow.reserve(html.size() / 2);
  bool space = false;
  auto end_line = [&](bool always) {
    while (!flow.empty() && flow.back() == ' ') flow.pop_back();
    if (always || (!flow.empty() && flow.back() != '\n')) flow += '\n';
    space = false;
  };
  auto emit = [&](Break kind, bool closing) {
    if (kind == Break::line) return end_line(false);
    if (kind == Break::paragraph) {
      end_line(false);
      if (!flow.empty() && (flow.size() < 2 || flow[flow.size() - 2] != '\n')) flow += '\n';
      return;
    }
    if (kind == Break::cell && !closing && !flow.empty() && flow.back() != '\n' && !space) {
      flow += ' ';
      space = true;
    }
  };
  size_t i = 0;
  const size_t n = html.size();
  while (i < n) {
    char c = html[i];
    if (c == '<') {
      if (starts_with_ci(html, i, "<!--")) {
        size_t end = html.find("-->", i + 4);
        i = end == std::string_view::npos ? n : end + 3;
        continue;
      }
      size_t j = i + 1;
      bool closing = j < n && html[j] == '/';
      if (closing) ++j;
      size_t name_start = j;
      while (j < n && (g_ascii_isalnum(html[j]))) ++j;
      std::string name = ascii_lower(html.substr(name_start, j - name_start));
      if (name.empty() && !(j < n && (html[j] == '!' || html[j] == '?'))) {
        // A lone '<' in text.
        flow += '<';
        space = false;
        ++i;
        continue;
      }
      // The end of the tag, skipping quoted attribute values.
      char quote = 0;
      while (j < n && (quote || html[j] != '>')) {
        if (quote) {
          if (html[j] == quote) quote = 0;
        } else if (html[j] == '"' || html[j] == '\'') {
          quote = html[j];
        }
        ++j;
      }
      i = j < n ? j + 1 : n;
      if (!closing && (name == "script" || name == "style" || name == "head" || name == "title")) {
        size_t end = find_ci(html, i, "</" + name);
        if (end == std::string_view::npos) {
          i = n;
        } else {
          size_t gt = html.find('>', end);
          i = gt == std::string_view::npos ? n : gt + 1;
        }
        continue;
      }
      if (name == "br")
        end_line(true);
      else
        emit(break_of(name), closing);
      continue;
    }
    if (c == '&') {
      size_t used = decode_entity(html, i, flow);
      if (used > 0) {
        space = false;  // &nbsp; (decoded to a space) is not collapsed with the next one
        i += used;
        continue;
      }
    }
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
      if (!space && !flow.empty() && flow.back() != '\n') {
        flow += ' ';
        space = true;
      }
      ++i;
      continue;
    }
    flow += c;
    space = false;
    ++i;
  }
  // Lines trimmed; at most one blank line between paragraphs.
  std::string out;
  out.reserve(flow.size());
  size_t blank_run = 0;
  size_t start = 0;
  while (start <= flow.size()) {
    size_t end = flow.find('\n', start);
    if (end == std::string::npos) end = flow.size();
    std::string_view line = trim(std::string_view(flow).substr(start, end - start));
    if (line.empty()) {
      ++blank_run;
    } else {
      if (!out.empty()) out += blank_run > 0 ? "\n\n" : "\n";
      out.append(line);
      blank_run = 0;
    }
    start = end + 1;
  }
  return out;
}

// ---- GMime reading ----

std::string media_type_of(GMimeObject* object) {
  GMimeContentType* type = g_mime_object_get_content_type(object);
  if (!type) return "text/plain";
  GChars mime(g_mime_content_type_get_mime_type(type));
  return ascii_lower(mime ? mime.get() : "application/octet-stream");
}

std::string header_of(GMimeObject* object, const char* name) {
  const char* value = g_mime_object_get_header(object, name);
  return value ? std::string(trim(utf8(value))) : std::string();
}

// The decoded (transfer encoding removed) bytes of a leaf part, the first `limit` of them;
// `total` is the full decoded size.
std::string decoded_bytes(GMimePart* part, size_t limit, size_t* total = nullptr) {
  GMimeDataWrapper* content = g_mime_part_get_content(part);
  if (!content) {
    if (total) *total = 0;
    return {};
  }
  GObjectPtr<GMimeStream> stream(g_mime_stream_mem_new());
  g_mime_data_wrapper_write_to_stream(content, stream.get());
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(stream.get()));
  size_t size = bytes ? bytes->len : 0;
  if (total) *total = size;
  return std::string(bytes ? reinterpret_cast<const char*>(bytes->data) : "",
                     std::min(size, limit));
}

// The decoded size of a part without keeping its bytes.
int64_t decoded_size(GMimeObject* object) {
  GObjectPtr<GMimeStream> counter(g_mime_stream_null_new());
  if (GMIME_IS_PART(object)) {
    GMimeDataWrapper* content = g_mime_part_get_content(GMIME_PART(object));
    if (!content) return 0;
    g_mime_data_wrapper_write_to_stream(content, counter.get());
  } else if (GMIME_IS_MESSAGE_PART(object)) {
    GMimeMessage* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(object));
    if (!inner) return 0;
    g_mime_object_write_to_stream(GMIME_OBJECT(inner), nullptr, counter.get());
  }
  return static_cast<int64_t>(GMIME_STREAM_NULL(counter.get())->written);
}

// The text of a text/plain or text/html part, UTF-8; `cut` when the source was larger than read.
std::string part_text(GMimePart* part, bool html, bool& cut) {
  size_t total = 0;
  std::string bytes = decoded_bytes(part, html ? kMaxHtmlSource : kMaxPlainSource, &total);
  if (total > bytes.size()) {
    cut = true;
    // Do not convert half a multi-byte sequence of the source charset into garbage at the end.
    while (!bytes.empty() && (static_cast<unsigned char>(bytes.back()) & 0x80)) bytes.pop_back();
  }
  const char* charset = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "charset");
  std::string text = to_utf8(bytes, charset);
  return normalize_newlines(html ? html_to_text(normalize_newlines(text)) : text);
}

bool is_attachment_disposition(GMimeObject* object) {
  const char* disposition = g_mime_object_get_disposition(object);
  return disposition && iequals(disposition, "attachment");
}

std::string strip_angles(std::string_view id) {
  id = trim(id);
  if (id.size() >= 2 && id.front() == '<' && id.back() == '>') id = id.substr(1, id.size() - 2);
  return std::string(trim(id));
}

// The first message id of an In-Reply-To or References header (GMime's parser: comments and
// folding as senders write them).
std::optional<std::string> first_reference(GMimeObject* object, const char* header) {
  const char* value = g_mime_object_get_header(object, header);
  if (!value) return std::nullopt;
  ReferencesPtr refs(g_mime_references_parse(parser_options(), value));
  if (!refs || g_mime_references_length(refs.get()) == 0) return std::nullopt;
  std::string id = utf8(g_mime_references_get_message_id(refs.get(), 0));
  if (id.empty()) return std::nullopt;
  return id;
}

struct Sender {
  OptString name;
  OptString address;
};

// The first mailbox of From (a group's first member).
Sender sender_of(GMimeMessage* message) {
  Sender sender;
  InternetAddressList* from = g_mime_message_get_from(message);
  if (!from) return sender;
  int count = internet_address_list_length(from);
  for (int i = 0; i < count && !sender.address; ++i) {
    InternetAddress* address = internet_address_list_get_address(from, i);
    if (INTERNET_ADDRESS_IS_GROUP(address)) {
      InternetAddressList* members =
          internet_address_group_get_members(INTERNET_ADDRESS_GROUP(address));
      if (!members || internet_address_list_length(members) == 0) continue;
      address = internet_address_list_get_address(members, 0);
    }
    if (!INTERNET_ADDRESS_IS_MAILBOX(address)) continue;
    std::string addr = utf8(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(address)));
    if (addr.empty()) continue;
    sender.address = addr;
    std::string name(trim(utf8(internet_address_get_name(address))));
    if (!name.empty() && name != addr) sender.name = name;
  }
  return sender;
}

OptString subject_of(GMimeMessage* message) {
  std::string subject(trim(utf8(g_mime_message_get_subject(message))));
  if (subject.empty()) return std::nullopt;
  return subject;
}

SysMillis date_of(GMimeMessage* message, SysMillis fallback) {
  GDateTime* date = g_mime_message_get_date(message);
  if (!date) return fallback;
  SysMillis at = SysMillis(std::chrono::milliseconds(g_date_time_to_unix(date) * 1000));
  return formats::in_timestamp_range(at) ? at : fallback;
}

std::string attachment_type(std::string_view mime) {
  if (mime.rfind("image/", 0) == 0) return "image";
  if (mime.rfind("video/", 0) == 0) return "video";
  if (mime.rfind("audio/", 0) == 0) return "audio";
  if (mime == "message/rfc822") return "other";
  return "document";
}

// ---- the body and the parts ----

struct Body {
  GMimePart* plain = nullptr;
  GMimePart* html = nullptr;
  // The multipart/alternative the body was chosen from: its other text renderings are the same
  // text, not attachments.
  GMimeObject* alternative = nullptr;
};

bool is_text_part(GMimeObject* object, const char* subtype) {
  if (!GMIME_IS_PART(object) || is_attachment_disposition(object)) return false;
  GMimeContentType* type = g_mime_object_get_content_type(object);
  return type && g_mime_content_type_is_type(type, "text", subtype);
}

// The body of `object`: the last alternative that has text/plain, the first body of a mixed or
// related multipart. Recursion bounded by kMaxMimeDepth; forwarded messages are not entered.
Body find_body(GMimeObject* object, int depth) {
  Body body;
  if (depth > kMaxMimeDepth) return body;
  if (is_text_part(object, "plain")) {
    body.plain = GMIME_PART(object);
    return body;
  }
  if (is_text_part(object, "html")) {
    body.html = GMIME_PART(object);
    return body;
  }
  if (!GMIME_IS_MULTIPART(object)) return body;
  GMimeMultipart* multipart = GMIME_MULTIPART(object);
  int count = g_mime_multipart_get_count(multipart);
  GMimeContentType* type = g_mime_object_get_content_type(object);
  if (type && g_mime_content_type_is_type(type, "multipart", "alternative")) {
    Body html_only;
    for (int i = count - 1; i >= 0; --i) {
      Body inner = find_body(g_mime_multipart_get_part(multipart, i), depth + 1);
      if (inner.plain) {
        inner.alternative = object;
        return inner;
      }
      if (inner.html && !html_only.html) html_only = inner;
    }
    if (html_only.html) html_only.alternative = object;
    return html_only;
  }
  if (type && g_mime_content_type_is_type(type, "multipart", "report")) {
    // The human-readable first part of a report is its text.
    if (count > 0) return find_body(g_mime_multipart_get_part(multipart, 0), depth + 1);
    return body;
  }
  for (int i = 0; i < count; ++i) {
    Body inner = find_body(g_mime_multipart_get_part(multipart, i), depth + 1);
    if (inner.plain || inner.html) return inner;
  }
  return body;
}

struct WalkItem {
  GMimeObject* object;
  std::string path;
  int depth;
  bool in_alternative;  // below the alternative the body came from
};

struct Parts {
  std::vector<Attachment> attachments;
  GMimeMessagePart* first_forwarded = nullptr;
  GMimeObject* delivery_status = nullptr;  // message/delivery-status of a report
  GMimeObject* returned = nullptr;         // message/rfc822 or text/rfc822-headers of a report
  bool too_deep = false;
};

// A part's file name, decoded (RFC 2231 / RFC 2047 by GMime): the disposition's filename, else
// the content type's name; "" when it has none.
std::string file_name_of(GMimeObject* object) {
  std::string name;
  if (GMIME_IS_PART(object)) name = utf8(g_mime_part_get_filename(GMIME_PART(object)));
  if (name.empty()) name = utf8(g_mime_object_get_content_type_parameter(object, "name"));
  return std::string(trim(name));
}

Attachment attachment_of(GMimeObject* object, const std::string& path) {
  Attachment a;
  std::string mime = media_type_of(object);
  a.type = attachment_type(mime);
  a.mime_type = mime;
  if (std::string name = file_name_of(object); !name.empty()) a.file_name = name;
  a.size = decoded_size(object);
  nlohmann::json ref = {{"part", path}};
  std::string cid = strip_angles(utf8(g_mime_object_get_content_id(object)));
  if (!cid.empty()) ref["content_id"] = cid;
  const char* disposition = g_mime_object_get_disposition(object);
  bool attachment = disposition ? iequals(disposition, "attachment") : cid.empty();
  ref["disposition"] = attachment ? "attachment" : "inline";
  a.provider_ref = std::move(ref);
  return a;
}

// Every part but the chosen body, in order, with its path ("2", "1.2"), walked with an explicit
// stack and cut at kMaxMimeDepth.
Parts collect_parts(GMimeObject* root, const Body& body) {
  Parts parts;
  std::vector<WalkItem> stack;
  stack.push_back({root, "", 0, false});
  while (!stack.empty()) {
    WalkItem item = std::move(stack.back());
    stack.pop_back();
    GMimeObject* object = item.object;
    if (item.depth > kMaxMimeDepth) {
      parts.too_deep = true;
      continue;
    }
    std::string path = item.path.empty() ? "1" : item.path;
    if (GMIME_IS_MULTIPART(object)) {
      GMimeMultipart* multipart = GMIME_MULTIPART(object);
      int count = g_mime_multipart_get_count(multipart);
      bool alternative = item.in_alternative || object == body.alternative;
      // Pushed in reverse so the parts come out in order.
      for (int i = count - 1; i >= 0; --i) {
        std::string child = (item.path.empty() ? "" : item.path + ".") + std::to_string(i + 1);
        stack.push_back({g_mime_multipart_get_part(multipart, i), std::move(child), item.depth + 1,
                         alternative});
      }
      continue;
    }
    if (object == GMIME_OBJECT(body.plain) || object == GMIME_OBJECT(body.html)) continue;
    // The other renderings of the chosen text (the HTML beside the plain text).
    if (item.in_alternative && (is_text_part(object, "plain") || is_text_part(object, "html")))
      continue;
    std::string mime = media_type_of(object);
    if (mime == "message/delivery-status" || mime == "message/global-delivery-status") {
      if (!parts.delivery_status) parts.delivery_status = object;
    } else if (mime == "text/rfc822-headers" || mime == "message/rfc822-headers") {
      if (!parts.returned) parts.returned = object;
    } else if (GMIME_IS_MESSAGE_PART(object)) {
      if (!parts.returned) parts.returned = object;
      if (!parts.first_forwarded) parts.first_forwarded = GMIME_MESSAGE_PART(object);
    }
    if (parts.attachments.size() < kMaxAttachments)
      parts.attachments.push_back(attachment_of(object, path));
  }
  return parts;
}

nlohmann::json forwarded_of(GMimeMessagePart* part) {
  GMimeMessage* inner = g_mime_message_part_get_message(part);
  nlohmann::json forwarded = nlohmann::json::object();
  if (!inner) return forwarded;
  if (auto subject = subject_of(inner)) forwarded["subject"] = *subject;
  if (auto from = sender_of(inner).address) forwarded["from"] = *from;
  std::string id = utf8(g_mime_message_get_message_id(inner));
  if (!id.empty()) forwarded["message_id"] = id;
  if (GDateTime* date = g_mime_message_get_date(inner)) {
    GDateTime* utc = g_date_time_to_utc(date);  // a new reference (`date` is the message's)
    if (utc) {
      GChars text(g_date_time_format(utc, "%Y-%m-%dT%H:%M:%SZ"));
      if (text) forwarded["date"] = text.get();
      g_date_time_unref(utc);
    }
  }
  return forwarded;
}

// ---- delivery status notifications ----

struct DsnRecipient {
  std::string action, final_recipient, status, diagnostic_code, remote_mta;
};

// The value of an "Address-Type; address" field ("rfc822; a@b" -> "a@b").
std::string typed_value(std::string_view value) {
  size_t semi = value.find(';');
  if (semi != std::string_view::npos) value = value.substr(semi + 1);
  return std::string(trim(value));
}

// The per-recipient blocks of a message/delivery-status body (RFC 3464: groups of header fields
// separated by blank lines; the first group is per message). One forward pass over the lines.
std::vector<DsnRecipient> read_dsn(std::string_view text) {
  std::vector<DsnRecipient> recipients;
  DsnRecipient current;
  bool in_recipient = false, any_field = false;
  std::string last_field;
  auto flush = [&] {
    if (in_recipient && (!current.final_recipient.empty() || !current.action.empty()) &&
        recipients.size() < kMaxDsnRecipients)
      recipients.push_back(std::move(current));
    current = DsnRecipient{};
    in_recipient = false;
    any_field = false;
    last_field.clear();
  };
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    start = end + 1;
    if (trim(line).empty()) {
      if (any_field) flush();
      continue;
    }
    std::string* target = nullptr;
    std::string_view value;
    if (line[0] == ' ' || line[0] == '\t') {
      // A folded continuation of the last field.
      if (last_field == "diagnostic-code") {
        current.diagnostic_code += " " + std::string(trim(line));
      }
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string field = ascii_lower(trim(line.substr(0, colon)));
    value = trim(line.substr(colon + 1));
    any_field = true;
    last_field = field;
    if (field == "final-recipient" || field == "original-recipient" || field == "action" ||
        field == "status")
      in_recipient = true;
    if (field == "final-recipient")
      target = &current.final_recipient;
    else if (field == "original-recipient" && current.final_recipient.empty())
      target = &current.final_recipient;
    else if (field == "action")
      current.action = ascii_lower(value);
    else if (field == "status")
      current.status = std::string(trim(value));
    else if (field == "diagnostic-code")
      current.diagnostic_code = std::string(value);
    else if (field == "remote-mta")
      current.remote_mta = typed_value(value);
    if (target) *target = typed_value(value);
  }
  flush();
  return recipients;
}

// The Message-ID of the returned message of a report (a message/rfc822 part, or the header
// block of text/rfc822-headers parsed by GMime).
std::string returned_message_id(GMimeObject* returned) {
  if (!returned) return {};
  if (GMIME_IS_MESSAGE_PART(returned)) {
    GMimeMessage* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(returned));
    return inner ? utf8(g_mime_message_get_message_id(inner)) : std::string();
  }
  if (!GMIME_IS_PART(returned)) return {};
  std::string headers = decoded_bytes(GMIME_PART(returned), 256 * 1024);
  headers += "\n\n";
  GObjectPtr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(headers.data(), headers.size()));
  GObjectPtr<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
  GObjectPtr<GMimeMessage> inner(g_mime_parser_construct_message(parser.get(), parser_options()));
  return inner ? utf8(g_mime_message_get_message_id(inner.get())) : std::string();
}

bool is_delivery_report(GMimeObject* root) {
  GMimeContentType* type = g_mime_object_get_content_type(root);
  if (!type || !g_mime_content_type_is_type(type, "multipart", "report")) return false;
  const char* report = g_mime_content_type_get_parameter(type, "report-type");
  return report &&
         (iequals(report, "delivery-status") || iequals(report, "global-delivery-status"));
}

// ---- tags and keywords ----

bool subject_marks_auto_reply(std::string_view subject) {
  static const std::string_view kPrefixes[] = {"Automatic reply:", "Auto:", "Out of Office",
                                               "Автоматический ответ:", "Автоответ"};
  for (auto prefix : kPrefixes) {
    if (subject.size() >= prefix.size() && iequals(subject.substr(0, prefix.size()), prefix))
      return true;
  }
  return false;
}

std::vector<std::string> tags_of(GMimeObject* root, const OptString& subject) {
  std::vector<std::string> tags;
  // The keyword alone: "auto-replied (vacation)", "auto-generated; owner-email=..." (RFC 3834).
  std::string auto_submitted = ascii_lower(header_of(root, "Auto-Submitted"));
  size_t keyword_end = 0;
  while (keyword_end < auto_submitted.size() &&
         (g_ascii_isalnum(auto_submitted[keyword_end]) || auto_submitted[keyword_end] == '-'))
    ++keyword_end;
  auto_submitted.resize(keyword_end);
  bool has_auto_submitted = g_mime_object_get_header(root, "Auto-Submitted") != nullptr;
  bool x_autoreply = g_mime_object_get_header(root, "X-Autoreply") != nullptr ||
                     g_mime_object_get_header(root, "X-Autorespond") != nullptr;
  bool out_of_office = subject && subject_marks_auto_reply(*subject);
  if ((has_auto_submitted && auto_submitted != "no") || x_autoreply || out_of_office)
    tags.push_back("automated");
  if (auto_submitted == "auto-replied" || x_autoreply || out_of_office)
    tags.push_back("auto_reply");
  std::string precedence = ascii_lower(header_of(root, "Precedence"));
  if (precedence == "bulk" || precedence == "junk") tags.push_back("bulk");
  if (precedence == "list" || g_mime_object_get_header(root, "List-Id")) tags.push_back("list");
  return tags;
}

// The subject without its reply and forward prefixes ("Re: Fwd: СТОП" -> "СТОП").
std::string_view strip_reply_prefixes(std::string_view subject) {
  static const std::string_view kPrefixes[] = {"Re:", "Fwd:", "Fw:", "На:", "Отв:"};
  bool stripped = true;
  subject = trim(subject);
  while (stripped) {
    stripped = false;
    for (auto prefix : kPrefixes) {
      if (subject.size() >= prefix.size() && iequals(subject.substr(0, prefix.size()), prefix)) {
        subject = trim(subject.substr(prefix.size()));
        stripped = true;
      }
    }
  }
  return subject;
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// The text above the first quoted part of a reply: the person's own words.
std::string_view unquoted_text(std::string_view text) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = trim(text.substr(start, end - start));
    if ((!line.empty() && line[0] == '>') || line == "-----Original Message-----" ||
        line == "-----Исходное сообщение-----" || ends_with(line, "wrote:") ||
        ends_with(line, "написал(а):") || ends_with(line, "написал:"))
      return trim(text.substr(0, start));
    start = end + 1;
  }
  return trim(text);
}

// ---- a GMime 3.2 workaround ----

// One base64 ("B") encoded word at raw[at] ("=?charset?B?payload?="), or nothing.
struct BWord {
  std::string_view charset, payload;
  size_t end = 0;  // one past "?="
};
std::optional<BWord> b_word_at(std::string_view raw, size_t at) {
  if (raw.compare(at, 2, "=?") != 0) return std::nullopt;
  size_t q1 = raw.find('?', at + 2);
  if (q1 == std::string_view::npos || q1 - at - 2 == 0 || q1 - at - 2 > 64) return std::nullopt;
  if (q1 + 2 >= raw.size() || (raw[q1 + 1] != 'B' && raw[q1 + 1] != 'b') || raw[q1 + 2] != '?')
    return std::nullopt;
  size_t p = q1 + 3;
  while (p < raw.size() &&
         (g_ascii_isalnum(raw[p]) || raw[p] == '+' || raw[p] == '/' || raw[p] == '='))
    ++p;
  if (raw.compare(p, 2, "?=") != 0) return std::nullopt;
  return BWord{raw.substr(at + 2, q1 - at - 2), raw.substr(q1 + 3, p - q1 - 3), p + 2};
}

std::string base64_decoded(std::string_view payload) {
  std::string text(payload);
  gsize size = 0;
  std::unique_ptr<guchar, GFree> bytes(g_base64_decode(text.c_str(), &size));
  return bytes ? std::string(reinterpret_cast<const char*>(bytes.get()), size) : std::string();
}

// GMime 3.2 decodes adjacent encoded words of one charset as one base64 stream, so a word
// ending in '=' padding ("=?utf-8?B?0LQ=?= =?utf-8?B?0L7R...?=", what Outlook, Yandex and 1C
// write for long subjects and names) loses every word after it. Such runs are rewritten into
// one encoded word of the same bytes (whitespace between encoded words is not text, RFC 2047
// 6.2) in GMime's copy of the message; nullopt when there is none, the common case.
std::optional<std::string> merge_padded_b_words(std::string_view raw) {
  std::string out;
  bool changed = false;
  size_t copied = 0;
  size_t at = raw.find("=?");
  while (at != std::string_view::npos) {
    auto first = b_word_at(raw, at);
    if (!first) {
      at = raw.find("=?", at + 2);
      continue;
    }
    std::vector<BWord> run{*first};
    while (true) {
      size_t next = run.back().end;
      int newlines = 0;
      while (next < raw.size() &&
             (raw[next] == ' ' || raw[next] == '\t' || raw[next] == '\r' || raw[next] == '\n')) {
        if (raw[next] == '\n') ++newlines;
        ++next;
      }
      // A folded line continues the header; a line that does not start with white space, or
      // an empty line, does not.
      if (newlines > 1 || (newlines == 1 && raw[next - 1] != ' ' && raw[next - 1] != '\t')) break;
      auto word = b_word_at(raw, next);
      if (!word || !iequals(word->charset, run.front().charset)) break;
      run.push_back(*word);
    }
    bool padded = false;
    for (size_t i = 0; i + 1 < run.size(); ++i)
      if (run[i].payload.find('=') != std::string_view::npos) padded = true;
    if (padded) {
      std::string bytes;
      for (const BWord& word : run) bytes += base64_decoded(word.payload);
      GChars merged(g_base64_encode(reinterpret_cast<const guchar*>(bytes.data()), bytes.size()));
      out.append(raw.substr(copied, at - copied));
      out += "=?";
      out.append(run.front().charset);
      out += "?B?";
      out += merged.get();
      out += "?=";
      copied = run.back().end;
      changed = true;
    }
    at = raw.find("=?", run.back().end);
  }
  if (!changed) return std::nullopt;
  out.append(raw.substr(copied));
  return out;
}

// ---- the mapping ----

struct Mail {
  const MailboxSettings& mailbox;
  std::string_view raw;
  SysMillis now;
  Mapped out;

  Interaction base(std::string kind, SysMillis at) const {
    Interaction in;
    in.channel = std::string(kChannel);
    in.account = mailbox.account;
    in.kind = std::move(kind);
    in.occurred_at = at;
    return in;
  }
  // The first interaction of a mail (the message, or a bounce's first status) keeps the whole
  // message in the raw archive; the others point at the same bytes by raw.sha256.
  void publish(Interaction in, std::string native_key) {
    out.add(std::move(in), std::move(native_key), raw, "message/rfc822");
    out.submissions.back().archive_raw = out.submissions.size() == 1;
  }
};

// The message without the mbox "From sender date" line an MTA may put first (Exim's pipe
// transport does by default): the same mail has the same bytes, and hash, on every path.
std::string_view without_from_line(std::string_view raw) {
  if (raw.rfind("From ", 0) != 0) return raw;
  size_t eol = raw.find('\n');
  return eol == std::string_view::npos ? std::string_view() : raw.substr(eol + 1);
}

// A header block: the first line is a header field ("Name: value").
bool has_header_block(std::string_view raw) {
  size_t i = 0;
  while (i < raw.size() && i < 1000) {
    unsigned char c = static_cast<unsigned char>(raw[i]);
    if (c == ':') return i > 0;
    // Field names in practice are tokens (RFC 5322 allows more, which no mailer writes).
    if (!g_ascii_isalnum(c) && c != '-' && c != '_') return false;
    ++i;
  }
  return false;
}

// The message GMime makes of `raw` (already without its mbox line); null when it is none.
GObjectPtr<GMimeMessage> construct_message(std::string_view raw) {
  GMimeParserOptions* options = parser_options();
  // GMime's stream holds a copy of the bytes; the submissions point at the caller's.
  std::optional<std::string> repaired = merge_padded_b_words(raw);
  std::string_view bytes = repaired ? std::string_view(*repaired) : raw;
  GObjectPtr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(bytes.data(), bytes.size()));
  GObjectPtr<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
  g_mime_parser_set_format(parser.get(), GMIME_FORMAT_MESSAGE);
  return GObjectPtr<GMimeMessage>(g_mime_parser_construct_message(parser.get(), options));
}

// The part at `path` ("1", "2", "1.2": child numbers from the body root, as collect_parts
// numbers them), or null. A single-part body is "1".
GMimeObject* part_at(GMimeObject* body_root, std::string_view path) {
  GMimeObject* object = body_root;
  if (!GMIME_IS_MULTIPART(object)) return path == "1" ? object : nullptr;
  int depth = 0;
  size_t at = 0;
  while (at < path.size()) {
    size_t dot = path.find('.', at);
    size_t end = dot == std::string_view::npos ? path.size() : dot;
    std::string_view number = path.substr(at, end - at);
    at = dot == std::string_view::npos ? path.size() : dot + 1;
    if (number.empty() || number.size() > 4 || ++depth > kMaxMimeDepth) return nullptr;
    int index = 0;
    for (char c : number) {
      if (c < '0' || c > '9') return nullptr;
      index = index * 10 + (c - '0');
    }
    if (!object || !GMIME_IS_MULTIPART(object)) return nullptr;
    GMimeMultipart* multipart = GMIME_MULTIPART(object);
    if (index < 1 || index > g_mime_multipart_get_count(multipart)) return nullptr;
    object = g_mime_multipart_get_part(multipart, index - 1);
  }
  return object;
}

}  // namespace

Result<EmailPart> email_part(std::string_view raw, std::string_view path) {
  raw = without_from_line(raw);
  auto not_found = [&] {
    return make_error(
        ErrorCode::not_found, "media",
        "the message has no attachment at part '" + std::string(path.substr(0, 64)) + "'");
  };
  if (path.empty() || path.size() > 5 * kMaxMimeDepth || !has_header_block(raw)) return not_found();
  GObjectPtr<GMimeMessage> message = construct_message(raw);
  GMimeObject* body_root = message ? g_mime_message_get_mime_part(message.get()) : nullptr;
  GMimeObject* object = body_root ? part_at(body_root, path) : nullptr;
  if (!object || GMIME_IS_MULTIPART(object)) return not_found();
  EmailPart part;
  part.content_type = media_type_of(object);
  GObjectPtr<GMimeStream> stream(g_mime_stream_mem_new());
  if (GMIME_IS_PART(object)) {
    if (std::string name = file_name_of(object); !name.empty()) part.file_name = name;
    GMimeDataWrapper* content = g_mime_part_get_content(GMIME_PART(object));
    if (content) g_mime_data_wrapper_write_to_stream(content, stream.get());
  } else if (GMIME_IS_MESSAGE_PART(object)) {
    GMimeMessage* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(object));
    if (inner) g_mime_object_write_to_stream(GMIME_OBJECT(inner), nullptr, stream.get());
  }
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(stream.get()));
  if (bytes && bytes->len)
    part.bytes.assign(reinterpret_cast<const char*>(bytes->data), bytes->len);
  return part;
}

Result<Mapped> parse_email(std::string_view raw, const MailboxSettings& mailbox, SysMillis now) {
  raw = without_from_line(raw);
  if (!has_header_block(raw))
    return make_error(ErrorCode::bad_request, "parse",
                      "not an e-mail message: it must start with a header block (RFC 5322)");
  GObjectPtr<GMimeMessage> message = construct_message(raw);
  if (!message)
    return make_error(ErrorCode::bad_request, "parse", "not an e-mail message (no header block)");
  GMimeObject* root_headers = GMIME_OBJECT(message.get());
  GMimeObject* body_root = g_mime_message_get_mime_part(message.get());

  Mail mail{mailbox, raw, now, {}};
  SysMillis at = date_of(message.get(), now);
  std::string native_id = utf8(g_mime_message_get_message_id(message.get()));
  if (native_id.empty()) native_id = sha256_hex(raw);

  Sender sender = sender_of(message.get());
  std::optional<Contact> contact;
  if (sender.address) {
    Contact c;
    c.display_name = sender.name;
    c.identifiers.push_back({"email", std::nullopt, false, sender.address});
    contact = std::move(c);
  }

  OptString subject = subject_of(message.get());
  Message msg;
  msg.native_id = native_id;
  msg.subject = subject;
  std::vector<std::string> tags = tags_of(root_headers, subject);

  Body body;
  Parts parts;
  if (body_root) {
    body = find_body(body_root, 0);
    parts = collect_parts(body_root, body);
  }
  bool cut = false;
  std::string text;
  if (body.plain)
    text = part_text(body.plain, false, cut);
  else if (body.html)
    text = part_text(body.html, true, cut);
  if (cap_utf8(text, kMaxTextBytes)) cut = true;
  if (cut) tags.push_back("text_truncated");
  if (!text.empty()) msg.text = text;
  msg.attachments = std::move(parts.attachments);
  if (parts.first_forwarded) {
    nlohmann::json forwarded = forwarded_of(parts.first_forwarded);
    if (!forwarded.empty()) msg.forwarded = std::move(forwarded);
  }
  if (parts.too_deep) mail.out.ignored.push_back("mime_too_deep");

  Conversation conversation;
  auto reply_to = first_reference(root_headers, "In-Reply-To");
  auto root_ref = first_reference(root_headers, "References");
  conversation.id = root_ref ? *root_ref : reply_to ? *reply_to : native_id;
  conversation.type = "private";
  conversation.reply_to = reply_to;

  // A delivery status notification: one status per failed recipient of the returned message.
  if (body_root && is_delivery_report(body_root)) {
    std::vector<DsnRecipient> recipients;
    if (parts.delivery_status && GMIME_IS_PART(parts.delivery_status))
      recipients = read_dsn(decoded_bytes(GMIME_PART(parts.delivery_status), 1024 * 1024));
    std::string of = returned_message_id(parts.returned);
    bool published = false;
    for (auto& r : recipients) {
      if (r.action != "failed") {
        mail.out.ignored.push_back("dsn_" + (r.action.empty() ? std::string("unknown") : r.action));
        continue;
      }
      if (of.empty()) continue;
      Interaction in = mail.base("status", at);
      StatusUpdate status;
      status.of = of;
      status.state = "bounced";
      if (!r.final_recipient.empty()) status.recipient = r.final_recipient;
      nlohmann::json error = {{"action", "failed"}};
      if (!r.status.empty()) error["status"] = r.status;
      if (!r.diagnostic_code.empty()) error["diagnostic_code"] = r.diagnostic_code;
      if (!r.remote_mta.empty()) error["remote_mta"] = r.remote_mta;
      status.error = std::move(error);
      in.status = std::move(status);
      in.tags = tags;
      std::sort(in.tags.begin(), in.tags.end());
      mail.publish(std::move(in), native_id + "/" + r.final_recipient);
      published = true;
    }
    bool any_failed = std::any_of(recipients.begin(), recipients.end(),
                                  [](const DsnRecipient& r) { return r.action == "failed"; });
    if (published) return std::move(mail.out);
    if (!any_failed && !recipients.empty()) return std::move(mail.out);
    // A bounce whose returned message cannot be named (or that names no recipient): the mail
    // itself, tagged, so it is not lost and not taken for a person writing.
    tags.push_back("bounce");
  }

  Interaction in = mail.base("message", at);
  in.contact = contact;
  in.conversation = conversation;
  in.message = std::move(msg);
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  in.tags = tags;

  // As on every channel (Telegram, VK, WhatsApp): the withdrawal travels in the message that
  // made it, so a CRM reads one shape.
  const bool stop_word = (subject && mailbox.stop_words.matches(strip_reply_prefixes(*subject))) ||
                         (!text.empty() && mailbox.stop_words.matches(unquoted_text(text)));
  if (stop_word && contact) in.consent.push_back(stop_word_withdrawal(std::string(kChannel), at));
  mail.publish(std::move(in), native_id);
  return std::move(mail.out);
}

}  // namespace omnigate::email

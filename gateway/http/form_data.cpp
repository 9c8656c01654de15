#include "gateway/http/form_data.hpp"

#include "gateway/core/strings.hpp"

namespace omnigate {

namespace {

// The value of `name` among "; key=value" parameters (quoted values unquoted, no escapes: a
// browser percent-encodes a quote in a field name), "" when absent.
std::string_view parameter(std::string_view header, std::string_view name) {
  size_t at = header.find(';');
  while (at != std::string_view::npos) {
    std::string_view rest = header.substr(at + 1);
    size_t eq = rest.find('=');
    if (eq == std::string_view::npos) return {};
    std::string_view key = trim(rest.substr(0, eq));
    rest = trim(rest.substr(eq + 1));
    std::string_view value;
    size_t next;
    if (!rest.empty() && rest.front() == '"') {
      size_t close = rest.find('"', 1);
      if (close == std::string_view::npos) return {};
      value = rest.substr(1, close - 1);
      next = rest.find(';', close);
    } else {
      next = rest.find(';');
      value = trim(rest.substr(0, next));
    }
    if (iequals(key, name)) return value;
    if (next == std::string_view::npos) return {};
    at = static_cast<size_t>(rest.data() - header.data()) + next;
  }
  return {};
}

}  // namespace

std::string_view multipart_boundary(std::string_view content_type) {
  std::string_view boundary = parameter(content_type, "boundary");
  if (boundary.size() > 70) return {};
  return boundary;
}

FormParse parse_multipart_form(std::string_view content_type, std::string_view body,
                               size_t max_parts) {
  FormParse out;
  const std::string_view boundary = multipart_boundary(content_type);
  if (boundary.empty()) {
    out.problem = "the multipart Content-Type has no boundary";
    return out;
  }
  std::string delimiter = "--";
  delimiter.append(boundary);
  // The first delimiter opens the body or ends a preamble line.
  size_t at = body.rfind(delimiter, 0) == 0 ? 0 : std::string_view::npos;
  if (at == std::string_view::npos) {
    std::string inner = "\r\n";
    inner.append(delimiter);
    at = body.find(inner);
    if (at != std::string_view::npos) at += 2;
  }
  if (at == std::string_view::npos) {
    out.problem = "the multipart body has no boundary line";
    return out;
  }
  std::string separator = "\r\n";
  separator.append(delimiter);
  size_t cursor = at + delimiter.size();
  while (true) {
    if (body.compare(cursor, 2, "--") == 0) return out;  // the closing delimiter
    // Transport padding after a delimiter, then its line end.
    while (cursor < body.size() && (body[cursor] == ' ' || body[cursor] == '\t')) ++cursor;
    if (body.compare(cursor, 2, "\r\n") != 0) {
      out.problem = "a multipart boundary line is not followed by a line end";
      return out;
    }
    cursor += 2;
    // The part runs to the next delimiter: its headers are looked for inside it only.
    const size_t part_end = body.find(separator, cursor);
    if (part_end == std::string_view::npos) {
      out.problem = "a multipart part is not closed by its boundary";
      return out;
    }
    if (out.parts.size() == max_parts) {
      out.problem = "the multipart body has too many parts";
      return out;
    }
    const std::string_view whole = body.substr(cursor, part_end - cursor);
    std::string_view headers, content;
    if (whole.rfind("\r\n", 0) == 0) {
      content = whole.substr(2);  // no headers at all: refused below (no name)
    } else if (const size_t blank = whole.find("\r\n\r\n"); blank != std::string_view::npos) {
      headers = whole.substr(0, blank + 2);
      content = whole.substr(blank + 4);
    } else if (whole.size() >= 2 && whole.compare(whole.size() - 2, 2, "\r\n") == 0) {
      headers = whole;  // the delimiter's line end closes the headers: an empty value
    } else {
      out.problem = "a multipart part has no empty line after its headers";
      return out;
    }
    FormPart part;
    part.content = content;
    bool named = false;
    while (!headers.empty()) {
      const size_t eol = headers.find("\r\n");
      std::string_view line = headers.substr(0, eol);
      headers = eol == std::string_view::npos ? std::string_view() : headers.substr(eol + 2);
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      if (!iequals(trim(line.substr(0, colon)), "Content-Disposition")) continue;
      std::string_view value = trim(line.substr(colon + 1));
      if (value.size() < 9 || !iequals(value.substr(0, 9), "form-data")) continue;
      part.name = parameter(value, "name");
      part.filename = parameter(value, "filename");
      named = !part.name.empty();
    }
    if (!named) {
      out.problem = "a multipart part has no Content-Disposition: form-data with a name";
      return out;
    }
    out.parts.push_back(part);
    cursor = part_end + separator.size();
  }
}

}  // namespace omnigate

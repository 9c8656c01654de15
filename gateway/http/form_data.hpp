// What a server decodes of a request body for a handler: the fields of a multipart/form-data
// body (RFC 7578). The event-loop front uses
// these; cpp-httplib has its own. Linear in the input, no recursion: a body is scanned once for
// its boundary, a part's headers are bounded by the body itself.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace omnigate {

struct FormPart {
  std::string_view name;
  std::string_view filename;  // "" for a plain field
  std::string_view content;   // a view into the body
};

struct FormParse {
  std::vector<FormPart> parts;
  const char* problem = nullptr;  // set when the body is not a well-formed multipart body
};

// The boundary parameter of a multipart Content-Type (quoted or not), "" when absent or longer
// than RFC 2046's 70 characters.
std::string_view multipart_boundary(std::string_view content_type);

// Splits a multipart/form-data body into its parts, at most `max_parts` (more is a problem).
FormParse parse_multipart_form(std::string_view content_type, std::string_view body,
                               size_t max_parts);

}  // namespace omnigate

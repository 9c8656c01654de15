// A web form's configuration and the pure parse + normalize of one submission.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/core/limits.hpp"
#include "gateway/model/submission.hpp"

namespace omnigate::webform {

using Fields = std::vector<std::pair<std::string, std::string>>;

struct FormConsent {
  std::string field;           // the checkbox's name
  std::string text_id;         // an id of consent.texts
  bool double_opt_in = false;  // e-mail consents: pending until the confirmation link is clicked
  bool required = false;       // the form cannot be sent without it (422)
  YAML::Mark mark;             // for config errors found after all sections are read
};

struct FormConfig {
  std::string account;
  std::string title;
  std::vector<std::string> allowed_origins;
  std::string success_url;  // where a plain HTML form is sent after success (303)
  std::string return_url;   // the consent pages' link back to the site; empty = consent.return_url
  std::string name_field = "name", phone_field = "phone", email_field = "email",
              comment_field = "comment";
  std::vector<std::string> required;  // form field names that must not be empty
  std::vector<FormConsent> consents;
  std::string honeypot = "website";
  std::chrono::milliseconds min_fill_time{2000};
  bool require_render_token = false;
  int rate_limit_per_minute = 20;
  std::string language = "ru";
  bool demo = false;
  uint64_t max_body = 256 * 1024;
  // strict: a phone libphonenumber cannot read is a 422 on that field; lenient: it is kept as
  // typed (the identifier then has no `value`, only `raw`).
  bool strict_phone = true;
  // Longest value of one field, in characters (Unicode code points); longer is a 422 on it.
  size_t max_field_chars = 30000;
  // What the visitor sees as a field's name in messages ("Телефон"); fields not listed here
  // use the built-in label of their role (name, phone, email, comment) or their name.
  std::map<std::string, std::string, std::less<>> labels;
};

// A field's name as the visitor reads it on the form, in the form's language.
std::string field_label(const FormConfig& form, std::string_view field);

// More fields than any real form has: refused (400) before any per-field work.
inline constexpr size_t kMaxFields = limits::kMaxMapEntries;

// Field names the embed script adds; they are read, never stored as lead fields.
inline constexpr const char* kSubmissionIdField = "_submission_id";
inline constexpr const char* kRenderTokenField = "_render_token";
inline constexpr const char* kPageUrlField = "_page_url";
inline constexpr const char* kReferrerField = "_referrer";

struct SubmissionContext {
  std::string client_ip;  // after trusted-proxy resolution
  std::string user_agent;
  std::string referer_header;       // the page, when the embed script did not say
  std::string idempotency_key;      // header, the fallback submission id
  std::string phone_region = "RU";  // identity.default_region: how a national number is read
  SysMillis now{};
};

// One field the visitor must correct, with the message shown next to it (the form's language,
// naming the field by its label).
struct FieldProblem {
  std::string field;
  std::string message;
};

struct NormalizedForm {
  Submission submission;  // a `lead`, ready for the pipeline
  std::string submission_id;
  std::vector<std::string> missing;         // required fields or consents not given → 422
  std::vector<FieldProblem> problems;       // missing, unreadable or too long fields → 422
  std::vector<const FormConsent*> pending;  // double opt-in consents ticked
  std::optional<std::string> email;         // normalized, for the confirmation e-mail
  // Values sent but left out because interaction.v1 cannot hold them ("source.page_url").
  std::vector<std::string> dropped;
};

bool checkbox_ticked(std::string_view value);

// Turns the fields of one submission into a lead with identifiers, source (UTM, page,
// referrer) and consent evidence. Pure: same input, same output (the random submission id
// aside, used only when neither the script nor the caller sent one).
NormalizedForm normalize_form(const FormConfig& form, const ConsentConfig& consent,
                              const Fields& fields, const SubmissionContext& context);

// Reads the fields of a body by its media type: urlencoded, multipart (already split by the
// server), JSON (an object of strings, numbers and booleans) or text/plain (key=value lines).
Result<Fields> read_fields(
    const std::string& media_type, std::string_view body,
    const std::vector<std::pair<std::string_view, std::string_view>>& multipart);

}  // namespace omnigate::webform

// A web form's configuration and the pure parse + normalize of one submission.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
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
  uint64_t max_body = 64 * 1024;
};

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
  std::string referer_header;   // the page, when the embed script did not say
  std::string idempotency_key;  // header, the fallback submission id
  SysMillis now{};
};

struct NormalizedForm {
  Submission submission;  // a `lead`, ready for the pipeline
  std::string submission_id;
  std::vector<std::string> missing;         // required fields or consents not given → 422
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

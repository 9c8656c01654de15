#include "connectors/webform/webform_form.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <unordered_set>

#include "gateway/core/limits.hpp"
#include "gateway/core/strings.hpp"
#include "gateway/model/formats.hpp"
#include "gateway/model/identifiers.hpp"
#include "gateway/model/json_input.hpp"
#include "gateway/model/tracking.hpp"

namespace omnigate::webform {
namespace {

std::string_view value_of(const Fields& fields, std::string_view name) {
  for (const auto& [key, value] : fields) {
    if (key == name) return value;
  }
  return {};
}

std::string trimmed(std::string_view text) {
  return std::string(trim(text));
}

// The schema wants URIs: keep what a browser sends (already percent-encoded), drop the rest
// (other schemes than http(s), spaces, non-ASCII, { } [ ], a "%" without two hex digits).
OptString web_url(std::string_view text) {
  std::string url = trimmed(text);
  // A fragment never reaches the server in real navigation and can hold tokens (OAuth).
  if (size_t hash = url.find('#'); hash != std::string::npos) url.resize(hash);
  if (url.size() > limits::kMaxUrlBytes || !formats::is_web_url(url)) return std::nullopt;
  return url;
}

bool valid_submission_id(std::string_view id) {
  return formats::is_token(id, 128);
}

// Unicode code points of UTF-8 text (continuation bytes are not counted).
size_t characters(std::string_view text) {
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

// The messages a visitor reads next to a field, in the form's language.
struct FieldTexts {
  const char* fill_in;    // {label}
  const char* bad_phone;  // {label}
  const char* bad_email;  // {label}
  const char* too_long;   // {label}, {max}
  const char* consent_needed;
};
constexpr FieldTexts kRussian{
    "Заполните поле «{label}».",
    "«{label}»: это не похоже на номер телефона. Пример: +7 912 345-67-89.",
    "«{label}»: проверьте адрес, например name@example.ru.",
    "«{label}»: не длиннее {max} символов.",
    "Без этого согласия мы не можем принять заявку — отметьте его, пожалуйста."};
constexpr FieldTexts kEnglish{
    "Please fill in “{label}”.",
    "“{label}” does not look like a phone number. Example: +44 20 7946 0958.",
    "“{label}”: please check the address, e.g. name@example.com.",
    "“{label}”: at most {max} characters.",
    "We cannot accept the request without this consent — please tick it."};

std::string say(const char* text, const std::string& label, size_t max = 0) {
  return replace_all(replace_all(text, "{label}", label), "{max}", std::to_string(max));
}

}  // namespace

std::string field_label(const FormConfig& form, std::string_view field) {
  if (auto it = form.labels.find(field); it != form.labels.end()) return it->second;
  bool ru = form.language == "ru";
  if (field == form.name_field) return ru ? "Имя" : "Name";
  if (field == form.phone_field) return ru ? "Телефон" : "Phone";
  if (field == form.email_field) return "Email";
  if (field == form.comment_field) return ru ? "Комментарий" : "Comment";
  return std::string(field);
}

bool checkbox_ticked(std::string_view value) {
  std::string v = fold_case(trimmed(value));
  return v == "yes" || v == "on" || v == "true" || v == "1" || v == "да";
}

NormalizedForm normalize_form(const FormConfig& form, const ConsentConfig& consent_config,
                              const Fields& fields, const SubmissionContext& context) {
  NormalizedForm out;
  std::string submission_id(value_of(fields, kSubmissionIdField));
  if (!valid_submission_id(submission_id)) submission_id = context.idempotency_key;
  if (!valid_submission_id(submission_id)) submission_id = random_uuid();
  out.submission_id = submission_id;

  // What the visitor must correct, one message per field, the first problem of a field only.
  const FieldTexts& say_it = form.language == "ru" ? kRussian : kEnglish;
  auto flag = [&](const std::string& field, std::string message) {
    for (const auto& p : out.problems) {
      if (p.field == field) return;
    }
    out.problems.push_back({field, std::move(message)});
  };
  for (const auto& name : form.required) {
    if (trimmed(value_of(fields, name)).empty()) {
      out.missing.push_back(name);
      flag(name, say(say_it.fill_in, field_label(form, name)));
    }
  }
  std::string typed_phone = trimmed(value_of(fields, form.phone_field));
  if (form.strict_phone && !typed_phone.empty() &&
      !normalize_phone(typed_phone, context.phone_region)) {
    flag(form.phone_field, say(say_it.bad_phone, field_label(form, form.phone_field)));
  }
  std::string typed_email = trimmed(value_of(fields, form.email_field));
  if (!typed_email.empty() && !normalize_email(typed_email)) {
    flag(form.email_field, say(say_it.bad_email, field_label(form, form.email_field)));
  }
  for (const auto& [key, value] : fields) {
    if (key.rfind('_', 0) == 0) continue;  // the embed script's own fields
    if (characters(value) > form.max_field_chars || value.size() > limits::kMaxTextBytes)
      flag(key, say(say_it.too_long, field_label(form, key), form.max_field_chars));
  }
  for (const auto& c : form.consents) {
    if (c.required && !checkbox_ticked(value_of(fields, c.field))) {
      out.missing.push_back(c.field);
      flag(c.field, say_it.consent_needed);
    }
  }

  Interaction& in = out.submission.interaction;
  in.channel = "webform";
  in.account = form.account;
  in.kind = "lead";
  in.occurred_at = context.now;

  // Identifiers: raw text here; the pipeline normalizes them (E.164, e-mail domain).
  Contact contact;
  std::string name = trimmed(value_of(fields, form.name_field));
  if (!name.empty()) contact.display_name = name;
  std::string phone = trimmed(value_of(fields, form.phone_field));
  if (!phone.empty()) contact.identifiers.push_back({"phone", std::nullopt, false, phone});
  std::string email = trimmed(value_of(fields, form.email_field));
  if (!email.empty()) {
    contact.identifiers.push_back({"email", std::nullopt, false, email});
    out.email = normalize_email(email);
  }
  contact.language = form.language;
  in.contact = std::move(contact);

  // What the person wrote, minus what is recorded elsewhere (identifiers, consent, tracking).
  Lead lead;
  lead.form = form.account;
  std::unordered_set<std::string_view> seen_keys;
  for (const auto& [key, value] : fields) {
    bool special = key.rfind('_', 0) == 0 || key.rfind("utm_", 0) == 0 || key == form.honeypot ||
                   key == form.phone_field || key == form.email_field ||
                   std::any_of(form.consents.begin(), form.consents.end(),
                               [&](const FormConsent& c) { return c.field == key; });
    std::string v = trimmed(value);
    if (special || v.empty()) continue;
    if (!seen_keys.insert(key).second) continue;  // the first value of a repeated field
    lead.fields.emplace_back(key, v);
  }
  in.lead = std::move(lead);

  // Where they came from: UTM from the fields, else from the page URL's query string.
  Source source;
  OptString page_url = web_url(value_of(fields, kPageUrlField));
  if (!page_url && !trimmed(value_of(fields, kPageUrlField)).empty())
    out.dropped.push_back("source.page_url");
  if (!page_url) page_url = web_url(context.referer_header);
  source.page_url = page_url;
  source.referrer = web_url(value_of(fields, kReferrerField));
  if (!source.referrer && !trimmed(value_of(fields, kReferrerField)).empty())
    out.dropped.push_back("source.referrer");
  route_tracking_params(source, fields, OtherParams::drop);
  if (page_url)
    route_tracking_params(source, parse_urlencoded(query_of(*page_url)), OtherParams::drop);
  in.source = std::move(source);

  // Consent: one entry per ticked box; an unticked box records nothing (no pre-ticked consent).
  for (const auto& c : form.consents) {
    if (!checkbox_ticked(value_of(fields, c.field))) continue;
    const ConsentText* text = consent_config.text(c.text_id);
    if (text == nullptr) continue;  // rejected by check-config; never reached in a running gateway
    Consent entry;
    entry.purpose = text->purpose;
    entry.status = c.double_opt_in ? "pending" : "granted";
    entry.channels = text->channels;
    entry.method = "web_form_checkbox";
    entry.captured_at = context.now;
    ConsentEvidence& e = entry.evidence;
    if (!context.client_ip.empty()) e.ip = context.client_ip;
    if (!context.user_agent.empty()) e.user_agent = context.user_agent;
    e.page_url = page_url;
    e.text_id = text->id;
    e.text_version = text->version;
    e.text_sha256 = text->sha256;
    if (!text->policy_url.empty()) e.policy_url = text->policy_url;
    e.submission_id = submission_id;
    in.consent.push_back(std::move(entry));
    if (c.double_opt_in) out.pending.push_back(&c);
  }
  out.submission.native_key = submission_id;
  return out;
}

Result<Fields> read_fields(
    const std::string& media_type, std::string_view body,
    const std::vector<std::pair<std::string_view, std::string_view>>& multipart) {
  if (media_type == "application/x-www-form-urlencoded")
    return parse_urlencoded(body, kMaxFields + 1);
  if (media_type == "multipart/form-data") {
    Fields out;
    for (const auto& [name, value] : multipart)
      out.emplace_back(std::string(name), std::string(value));
    return out;
  }
  if (media_type == "text/plain") {
    // An HTML form with enctype="text/plain": one "name=value" per line.
    Fields out;
    size_t pos = 0;
    while (pos < body.size() && out.size() <= kMaxFields) {
      size_t end = body.find('\n', pos);
      if (end == std::string_view::npos) end = body.size();
      std::string_view line = body.substr(pos, end - pos);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      size_t eq = line.find('=');
      if (eq != std::string_view::npos) {
        out.emplace_back(std::string(line.substr(0, eq)), std::string(line.substr(eq + 1)));
      }
      pos = end + 1;
    }
    return out;
  }
  if (media_type == "application/json") {
    auto parsed = parse_request_json(body);
    if (!parsed) return parsed.error();
    const nlohmann::json& document = *parsed;
    if (!document.is_object()) {
      return make_error(ErrorCode::bad_request, "parse",
                        "the JSON body must be an object of fields");
    }
    Fields out;
    for (auto it = document.begin(); it != document.end() && out.size() <= kMaxFields; ++it) {
      const auto& v = it.value();
      if (v.is_string())
        out.emplace_back(it.key(), v.get<std::string>());
      else if (v.is_boolean())
        out.emplace_back(it.key(), v.get<bool>() ? "yes" : "");
      else if (v.is_number())
        out.emplace_back(it.key(), v.dump());
      else if (v.is_null())
        continue;
      else
        return make_error(ErrorCode::invalid_field, "parse",
                          it.key() + ": must be a string, number or boolean");
    }
    return out;
  }
  return make_error(ErrorCode::unsupported_media, "route",
                    "send the form as application/x-www-form-urlencoded, multipart/form-data or "
                    "application/json");
}

}  // namespace omnigate::webform

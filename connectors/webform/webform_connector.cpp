// Web forms: POST /v1/webform/<account> from a site's form (plain HTML, or enhanced by
// /omnigate-forms.js), with consent evidence, double opt-in and spam defences.
#include <arpa/inet.h>

#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "connectors/webform/webform_form.hpp"
#include "gateway/consent/consent.hpp"
#include "gateway/core/log.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/core/strings.hpp"
#include "gateway/kit/accounts.hpp"
#include "gateway/model/formats.hpp"
#include "gateway/pipeline/pipeline.hpp"

namespace omnigate::webform {

extern const std::string_view kEmbedScript;
extern const std::string_view kDemoPage;

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string origin_of(std::string_view url) {
  size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return "";
  size_t path = url.find('/', scheme + 3);
  return std::string(url.substr(0, path));
}

// Counts submissions per (form, client) in one-minute windows. An IPv6 client counts by its
// /64 (one subscriber's network), so rotating addresses inside it does not buy more posts.
class RateLimiter {
 public:
  static std::string client_key(const std::string& ip) {
    in6_addr v6;
    if (inet_pton(AF_INET6, ip.c_str(), &v6) != 1) return ip;  // IPv4 (or not an address)
    std::memset(v6.s6_addr + 8, 0, 8);                         // keep the /64
    char text[INET6_ADDRSTRLEN];
    return inet_ntop(AF_INET6, &v6, text, sizeof text) ? std::string(text) + "/64" : ip;
  }

  // Seconds until the caller may try again, or 0 when this request is allowed.
  int64_t admit(const std::string& key, int per_minute) {
    int64_t minute = std::chrono::duration_cast<std::chrono::minutes>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    std::lock_guard lock(mutex_);
    if (minute != current_minute_) {  // one sweep per minute: every window is stale now
      windows_.clear();
      current_minute_ = minute;
    }
    auto it = windows_.find(key);
    if (it == windows_.end()) {
      if (windows_.size() >= kMaxClients) return seconds_to_next_minute(minute);  // under attack
      it = windows_.emplace(key, 0).first;
    }
    if (it->second >= per_minute) return seconds_to_next_minute(minute);
    ++it->second;
    return 0;
  }

 private:
  static constexpr size_t kMaxClients = 200'000;
  static int64_t seconds_to_next_minute(int64_t minute) {
    auto next = std::chrono::system_clock::time_point(std::chrono::minutes(minute + 1));
    auto wait =
        std::chrono::duration_cast<std::chrono::seconds>(next - std::chrono::system_clock::now());
    return std::max<int64_t>(1, wait.count());
  }
  std::mutex mutex_;
  int64_t current_minute_ = 0;
  std::unordered_map<std::string, int> windows_;
};

// Remembers which submissions got a confirmation e-mail and when each address last got one:
// a retried submission still gets its mail once, and nobody can flood an address through a
// form (one confirmation per address per hour).
class ConfirmationLedger {
 public:
  enum class Decision { send, already_sent, recipient_limited };
  Decision claim(const std::string& submission, const std::string& email) {
    auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    if (submissions_.size() > kMax || recipients_.size() > kMax) {
      std::erase_if(recipients_,
                    [&](const auto& r) { return now - r.second > std::chrono::hours(1); });
      if (submissions_.size() > kMax) submissions_.clear();
    }
    if (submissions_.count(submission)) return Decision::already_sent;
    auto last = recipients_.find(email);
    if (last != recipients_.end() && now - last->second < std::chrono::hours(1)) {
      return Decision::recipient_limited;
    }
    submissions_.insert(submission);
    recipients_[email] = now;
    return Decision::send;
  }
  // The mail of a claimed submission was not queued: a retry of it may send it.
  void forget(const std::string& submission, const std::string& email) {
    std::lock_guard lock(mutex_);
    submissions_.erase(submission);
    recipients_.erase(email);
  }

 private:
  static constexpr size_t kMax = 100'000;
  std::mutex mutex_;
  std::unordered_set<std::string> submissions_;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> recipients_;
};

// What a visitor reads when the form cannot be taken, in the form's language: plain words, no
// backend names (the English detail of the error stays in the logs and metrics).
struct VisitorTexts {
  const char* check_fields;   // 422: the messages sit next to the fields
  const char* try_later;      // 503: nothing could be stored right now
  const char* too_large;      // 413
  const char* reload;         // a stale or foreign page: the render token, the origin
  const char* failed;         // anything else
  const char* thanks;         // 2xx: what happens next
  const char* check_mailbox;  // 2xx, a double opt-in e-mail is on its way
  const char* mail_recent;    // 2xx, this address got a confirmation e-mail within the hour
  const char* thanks_title;
  const char* not_sent_title;  // the page of a plain HTML form's error
  const char* fix_these;       // above its list of fields to correct
};
constexpr VisitorTexts kRussianTexts{
    "Проверьте выделенные поля.",
    "Сейчас мы не можем принять заявку. Попробуйте ещё раз через минуту — введённое не пропадёт.",
    "Заявка слишком большая. Сократите текст и отправьте ещё раз.",
    "Страница устарела. Обновите её и отправьте форму ещё раз.",
    "Не удалось отправить заявку. Попробуйте ещё раз.",
    "Спасибо! Заявка отправлена. Мы свяжемся с вами в ближайшее рабочее время.",
    "Проверьте почту: мы отправили письмо со ссылкой — нажмите её, чтобы подтвердить подписку.",
    "Письмо со ссылкой для подтверждения уже отправлено на этот адрес — проверьте почту.",
    "Спасибо",
    "Заявка не отправлена",
    "Исправьте, пожалуйста, и отправьте форму ещё раз:"};
constexpr VisitorTexts kEnglishTexts{
    "Please check the highlighted fields.",
    "We cannot take your request right now. Please try again in a minute.",
    "The request is too large. Please shorten the text and send it again.",
    "This page is out of date. Please reload it and send the form again.",
    "Could not send the request. Please try again.",
    "Thank you! Your request has been sent. We will contact you shortly during business hours.",
    "Check your mailbox: we have sent you an e-mail with a link — click it to confirm your "
    "subscription.",
    "A confirmation e-mail was sent to this address a moment ago — please check your mailbox.",
    "Thank you",
    "The request was not sent",
    "Please correct this and send the form again:"};

const VisitorTexts& texts_for(const FormConfig& form) {
  return form.language == "ru" ? kRussianTexts : kEnglishTexts;
}

// The visitor's message for an error the connector did not word itself.
const char* visitor_message(const Error& error, const VisitorTexts& t) {
  switch (error.code) {
    case ErrorCode::unprocessable:
      return t.check_fields;
    case ErrorCode::not_durable:
    case ErrorCode::overloaded:
    case ErrorCode::upstream_timeout:
    case ErrorCode::bad_gateway:
      return t.try_later;
    case ErrorCode::payload_too_large:
      return t.too_large;
    case ErrorCode::forbidden:
      return t.reload;
    default:
      return t.failed;
  }
}

// A form is an account: its FormConfig is what the mapping reads.
struct FormAccount : AccountBase {
  FormConfig form;
};

class WebformConnector : public ChannelConnector<FormAccount> {
 public:
  std::string_view channel() const override { return "webform"; }

  // The core's own refusals (a body above max_body) carry CORS headers like ours, so the embed
  // script can read them and tell the visitor.
  void decorate_refusal(const InboundRequest& request, Reply& reply) const override {
    AccountRef found = find(request.account);
    if (!found) return;
    std::string_view origin = request.header("Origin");
    // Worded for the visitor like the connector's own errors; the status and headers stay.
    if (reply.status == 413) {
      auto headers = std::move(reply.headers);
      reply = visitor_error(
          request, found->form,
          make_error(ErrorCode::payload_too_large, "route", "the body is above max_body"), {});
      reply.headers.insert(reply.headers.end(), headers.begin(), headers.end());
    }
    if (origin_allowed(found->form, origin)) add_cors(reply, origin);
  }

 protected:
  // A 20 000-character Cyrillic comment is 120 KB urlencoded (each letter is %D0%B0).
  uint64_t default_max_body() const override { return 256 * 1024; }

  void read(FormAccount& account, ConfigMap& entry) override {
    FormConfig& form = account.form;
    form.account = account.name;
    form.title = entry.string("title", account.name);
    form.allowed_origins = entry.string_list("allowed_origins");
    form.success_url = entry.string("success_url", "");
    form.return_url = entry.string("return_url", "");
    if (!form.return_url.empty() && !formats::is_web_url(form.return_url))
      entry.problem("return_url", "must be an http(s) URL such as https://example.ru/");
    ConfigMap fields = entry.map("fields");
    form.name_field = fields.string("name", form.name_field);
    form.phone_field = fields.string("phone", form.phone_field);
    form.email_field = fields.string("email", form.email_field);
    form.comment_field = fields.string("comment", form.comment_field);
    fields.finish();
    ConfigMap labels = entry.map("labels");
    for (const auto& key : labels.keys()) form.labels[key] = labels.string(key, key);
    labels.finish();
    form.required = entry.string_list("required");
    for (auto& item : entry.list_of_maps("consents")) {
      FormConsent c;
      c.mark = item.mark();
      c.field = item.required_string("field");
      c.text_id = item.required_string("text");
      c.double_opt_in = item.boolean("double_opt_in", false);
      c.required = item.boolean("required", false);
      item.finish();
      form.consents.push_back(std::move(c));
    }
    form.honeypot = entry.string("honeypot", form.honeypot);
    form.min_fill_time = entry.duration("min_fill_time", form.min_fill_time);
    form.require_render_token = entry.boolean("require_render_token", false);
    form.rate_limit_per_minute = static_cast<int>(
        entry.integer("rate_limit_per_minute", form.rate_limit_per_minute, 1, 100000));
    form.language = entry.string("language", form.language);
    if (form.language != "ru" && form.language != "en")
      entry.problem("language", "must be ru or en");
    form.demo = entry.boolean("demo", false);
    std::string phone_validation = entry.string("phone_validation", "strict");
    if (phone_validation != "strict" && phone_validation != "lenient")
      entry.problem("phone_validation", "must be strict or lenient");
    form.strict_phone = phone_validation == "strict";
    form.max_field_chars = static_cast<size_t>(
        entry.integer("max_field_chars", static_cast<int64_t>(form.max_field_chars), 1,
                      static_cast<int64_t>(limits::kMaxTextBytes / 2)));
  }

 public:
  void check(const Config& config, ConfigContext& context) const override {
    if (config.consent.signing_key.empty()) {
      context.problem(YAML::Mark(),
                      "channels.webform: consent.signing_key is required (it signs "
                      "render tokens and confirmation links)");
    }
    for (const auto& [account, form_account] : *accounts()) {
      for (const auto& c : form_account->form.consents) {
        const ConsentText* text = config.consent.text(c.text_id);
        if (!text) {
          std::string known;
          for (const auto& t : config.consent.texts) known += (known.empty() ? "" : ", ") + t.id;
          context.problem(c.mark, "channels.webform " + account + ": consent text '" + c.text_id +
                                      "' is not in consent.texts (known: " + known + ")");
        } else if (c.double_opt_in && config.consent.smtp.url.empty()) {
          context.problem(c.mark,
                          "channels.webform " + account + ": double_opt_in needs consent.smtp.url");
        }
      }
    }
  }

 protected:
  void start_channel(GatewayContext& context, Router& router) override {
    // Each route finds the form per request: a reload may add, change or remove forms.
    auto with_form =
        [this](Reply (WebformConnector::*handler)(const InboundRequest&, const FormConfig&)) {
          return [this, handler](const InboundRequest& request) {
            AccountRef form = account(request.account);
            if (!form) return unknown_account(request.account);
            return (this->*handler)(request, form->form);
          };
        };
    router.add_channel_route({"POST", "webform", 0, with_form(&WebformConnector::submit)});
    router.add_channel_route({"GET", "webform", 0, with_form(&WebformConnector::describe)});
    router.add_channel_route({"OPTIONS", "webform", 0, with_form(&WebformConnector::preflight)});
    router.add_route("GET", "/omnigate-forms.js", 0, [](const InboundRequest&) {
      Reply reply =
          Reply::text(200, std::string(kEmbedScript), "application/javascript; charset=utf-8");
      reply.headers.emplace_back("Cache-Control", "public, max-age=300");
      reply.headers.emplace_back("Access-Control-Allow-Origin", "*");
      return reply;
    });
    // GET /demo/<account> for a form with demo: true.
    router.add_route("GET", "/demo/*", 0, [this](const InboundRequest& request) {
      constexpr std::string_view kPrefix = "/demo/";
      const std::string_view name = std::string_view(request.path).substr(kPrefix.size());
      AccountRef form = name.find('/') == std::string_view::npos ? find(name) : nullptr;
      if (!form || !form->form.demo) {
        return Reply::error(make_error(ErrorCode::not_found, "route",
                                       "no demo page here: a form shows one with demo: true"));
      }
      return demo_page(form->form);
    });
  }

 private:
  // The origin may post when it is listed, or is the gateway itself (its demo pages).
  bool origin_allowed(const FormConfig& form, std::string_view origin) const {
    if (origin.empty()) return true;  // not a browser's cross-origin request
    if (origin == origin_of(context().config.http.public_url)) return true;
    return std::find(form.allowed_origins.begin(), form.allowed_origins.end(), origin) !=
           form.allowed_origins.end();
  }

  static void add_cors(Reply& reply, std::string_view origin) {
    if (origin.empty()) return;
    reply.headers.emplace_back("Access-Control-Allow-Origin", std::string(origin));
    reply.headers.emplace_back("Vary", "Origin");
    // The embed script waits as long as the gateway asks before retrying a 429/503.
    reply.headers.emplace_back("Access-Control-Expose-Headers", "Retry-After");
  }

  // The kit's reject (counted by reason), with CORS headers for the page's script.
  Reply reject(const Error& error, std::string_view reason, std::string_view origin,
               const nlohmann::json& details = nullptr) const {
    Reply reply = ChannelConnector::reject(error, reason, details);
    add_cors(reply, origin);
    return reply;
  }

  // A refused submission: counted by reason like the kit's reject, worded for the visitor
  // (`message`, else by the error's code), with CORS headers for the page's script.
  Reply refuse(const InboundRequest& request, const FormConfig& form, const Error& error,
               std::string_view reason, std::string_view origin,
               std::string_view message = {}) const {
    context().metrics.rejected.inc(
        {"webform", std::string(reason.empty() ? error.name() : reason)});
    Reply reply = visitor_error(request, form, error, {}, message);
    add_cors(reply, origin);
    return reply;
  }

  Reply preflight(const InboundRequest& request, const FormConfig& form) {
    std::string_view origin = request.header("Origin");
    if (!origin_allowed(form, origin)) {
      return reject(make_error(ErrorCode::forbidden, "route", "origin not allowed for this form"),
                    "origin", {});
    }
    Reply reply = Reply::text(204, "");
    add_cors(reply, origin);
    reply.headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    reply.headers.emplace_back("Access-Control-Allow-Headers",
                               "Content-Type, Accept, Idempotency-Key");
    reply.headers.emplace_back("Access-Control-Max-Age", "600");
    return reply;
  }

  std::string render_token(const FormConfig& form) const {
    LinkClaims claims;
    claims.kind = "render";
    claims.channel = "webform";
    claims.account = form.account;
    claims.issued_at_ms = now_millis().time_since_epoch().count();
    claims.expires_at = claims.issued_at_ms / 1000 + 24 * 3600;
    return context().consent.links().sign(claims);
  }

  // What the embed script needs: a render token, the fill-time minimum and the exact consent
  // texts (so that the page shows the text whose hash the evidence records).
  Reply describe(const InboundRequest& request, const FormConfig& form) {
    std::string_view origin = request.header("Origin");
    if (!origin_allowed(form, origin)) {
      return reject(make_error(ErrorCode::forbidden, "route", "origin not allowed for this form"),
                    "origin", {});
    }
    json consents = json::array();
    for (const auto& c : form.consents) {
      const ConsentText* text = context().config.consent.text(c.text_id);
      consents.push_back({{"field", c.field},
                          {"text_id", text->id},
                          {"version", text->version},
                          {"text", text->text},
                          {"policy_url", text->policy_url},
                          {"purpose", text->purpose},
                          {"required", c.required},
                          {"double_opt_in", c.double_opt_in}});
    }
    // What the script checks before sending (the same rules as here, worded the same way).
    json labels = json::object();
    for (const std::string& name :
         {form.name_field, form.phone_field, form.email_field, form.comment_field})
      labels[name] = field_label(form, name);
    for (const auto& [name, label] : form.labels) labels[name] = label;
    Reply reply = Reply::json(200, {{"render_token", render_token(form)},
                                    {"min_fill_ms", form.min_fill_time.count()},
                                    {"consents", consents},
                                    {"language", form.language},
                                    {"labels", labels},
                                    {"required", form.required},
                                    {"phone_field", form.phone_field},
                                    {"email_field", form.email_field},
                                    {"phone_validation", form.strict_phone ? "strict" : "lenient"},
                                    {"max_field_chars", form.max_field_chars}});
    reply.headers.emplace_back("Cache-Control", "no-store");
    add_cors(reply, origin);
    return reply;
  }

  Reply demo_page(const FormConfig& form) {
    std::string boxes;
    for (const auto& c : form.consents) {
      const ConsentText* text = context().config.consent.text(c.text_id);
      boxes += "<label class=\"consent\"><input type=\"checkbox\" name=\"" + html_escape(c.field) +
               "\" value=\"yes\"" + (c.required ? " required" : "") +
               "> <span data-omnigate-consent-text=\"" + html_escape(c.field) + "\">" +
               html_escape(text->text) + "</span>";
      if (!text->policy_url.empty()) {
        boxes += " <a data-omnigate-policy=\"" + html_escape(c.field) + "\" href=\"" +
                 html_escape(text->policy_url) + "\" target=\"_blank\" rel=\"noopener\">" +
                 (form.language == "ru" ? "Политика" : "Policy") + "</a>";
      }
      boxes += "</label>\n";
    }
    std::string html(kDemoPage);
    html = replace_all(html, "{{form_action}}", html_escape("/v1/webform/" + form.account));
    html = replace_all(html, "{{script_url}}", "/omnigate-forms.js");
    html = replace_all(html, "{{honeypot}}", html_escape(form.honeypot));
    html = replace_all(html, "{{title}}", html_escape(form.title));
    html = replace_all(html, "{{page_style}}", kPageStyle);
    html = replace_all(html, "{{consent_checkboxes}}", boxes);
    return Reply::html(200, std::move(html));
  }

  bool wants_json(const InboundRequest& request) const {
    return request.header("Accept").find("application/json") != std::string_view::npos ||
           request.media_type() == "application/json";
  }

  // A small page of the gateway for a form posted without the script, in the form's language
  // and the consent pages' style (which is the demo form's).
  Reply visitor_page(int status, const FormConfig& form, const std::string& title,
                     const std::string& body_html, const InboundRequest& request) const {
    std::string back;
    std::string_view referer = request.header("Referer");
    if (referer.rfind("https://", 0) == 0 || referer.rfind("http://", 0) == 0)
      back = std::string(referer);
    return Reply::html(status, consent_page_html(form.language, title, body_html, back,
                                                 context().config.consent.operator_name));
  }

  // An error in the visitor's words: JSON for the script (with the per-field messages), a page
  // for a plain HTML form.
  Reply visitor_error(const InboundRequest& request, const FormConfig& form, const Error& error,
                      const std::vector<FieldProblem>& problems,
                      std::string_view message = {}) const {
    std::string text =
        message.empty() ? visitor_message(error, texts_for(form)) : std::string(message);
    // A plain HTML form's navigation asks for a page; the script and API clients get JSON.
    bool page = !wants_json(request) &&
                request.header("Accept").find("text/html") != std::string_view::npos;
    if (!page) {
      json field_errors = json::object();
      json names = json::array();
      for (const auto& p : problems) {
        field_errors[p.field] = p.message;
        names.push_back(p.field);
      }
      json details = {{"message", text}};
      if (!problems.empty()) {
        details["fields"] = names;  // the names alone, as before
        details["field_errors"] = field_errors;
      }
      return Reply::error(error, std::nullopt, details);
    }
    // A page has nothing highlighted: it lists the messages, and the way back is the form.
    std::string body =
        "<p>" + html_escape(problems.empty() ? text : texts_for(form).fix_these) + "</p>";
    if (!problems.empty()) {
      body += "<ul class=\"problems\">";
      for (const auto& p : problems) body += "<li>" + html_escape(p.message) + "</li>";
      body += "</ul>";
    }
    return visitor_page(error.http_status(), form, texts_for(form).not_sent_title, body, request);
  }

  Reply success(const InboundRequest& request, const FormConfig& form, const std::string& id,
                std::string_view origin, const std::string& confirmation = {}) {
    const VisitorTexts& t = texts_for(form);
    bool check_mailbox = confirmation == "sent" || confirmation == "limited";
    std::string message = t.thanks;
    if (confirmation == "sent") message += std::string(" ") + t.check_mailbox;
    if (confirmation == "limited") message += std::string(" ") + t.mail_recent;
    Reply reply;
    if (wants_json(request)) {
      json body = {{"id", id}, {"status", "accepted"}, {"message", message}};
      if (!confirmation.empty()) {
        // The lead is durable either way; tell the page whether a confirmation e-mail is coming.
        body["confirmation"] = confirmation;
        body["check_mailbox"] = check_mailbox;
      }
      reply = Reply::json(202, body);
    } else if (!form.success_url.empty()) {
      reply = Reply::redirect(form.success_url);
    } else {
      reply =
          visitor_page(200, form, t.thanks_title, "<p>" + html_escape(message) + "</p>", request);
    }
    add_cors(reply, origin);
    return reply;
  }

  Reply submit(const InboundRequest& request, const FormConfig& form) {
    std::string_view origin = request.header("Origin");
    if (!origin_allowed(form, origin)) {
      return refuse(request, form,
                    make_error(ErrorCode::forbidden, "route", "origin not allowed for this form"),
                    "origin", {});
    }
    const Config& config = context().config;
    std::string ip = config.http.trusted_proxies.client_ip(
        request.remote_addr, request.header_joined("X-Forwarded-For"));
    if (int64_t wait = limiter_.admit(form.account + "|" + RateLimiter::client_key(ip),
                                      form.rate_limit_per_minute);
        wait > 0) {
      Error limited = make_error(
          ErrorCode::rate_limited, "route",
          (form.language == "ru" ? "Слишком много заявок с вашего адреса. Попробуйте через "
                                 : "Too many submissions from your address. Try again in ") +
              std::to_string(wait) + (form.language == "ru" ? " с." : " s."));
      Reply reply = refuse(request, form, limited, "rate_limited", origin, limited.detail);
      reply.headers.emplace_back("Retry-After", std::to_string(wait));
      return reply;
    }
    auto fields = read_fields(request.media_type(), request.body, request.multipart);
    // A body the form or the script cannot produce (bad JSON from a developer's own code): the
    // detail says what is wrong, for the developer who reads it.
    if (!fields) return refuse(request, form, fields.error(), {}, origin, fields.error().detail);
    if (fields->size() > kMaxFields) {
      return refuse(request, form,
                    make_error(ErrorCode::bad_request, "parse",
                               "more than " + std::to_string(kMaxFields) + " fields"),
                    "too_many_fields", origin,
                    "more than " + std::to_string(kMaxFields) + " fields");
    }

    auto field = [&](std::string_view name) -> std::string_view {
      for (const auto& [k, v] : fields.value()) {
        if (k == name) return v;
      }
      return {};
    };
    // A bot fills the hidden field: answer like a success so it learns nothing; publish nothing.
    if (!field(form.honeypot).empty()) {
      context().metrics.rejected.inc({"webform", "honeypot"});
      return success(request, form, random_uuid(), origin);
    }
    std::string_view token = field(kRenderTokenField);
    if (!token.empty()) {
      auto claims = context().consent.links().verify(token, "render");
      if (!claims || claims->account != form.account) {
        return refuse(request, form,
                      make_error(ErrorCode::bad_request, "verify",
                                 "the form's render token is not valid; reload the page"),
                      "render_token", origin, texts_for(form).reload);
      }
      int64_t elapsed_ms = now_millis().time_since_epoch().count() - claims->issued_at_ms;
      if (elapsed_ms < form.min_fill_time.count()) {
        // Faster than a person types: maybe a bot, maybe a fast person. Never drop silently.
        int64_t wait =
            static_cast<int64_t>(std::ceil((form.min_fill_time.count() - elapsed_ms) / 1000.0));
        Error too_fast = make_error(
            ErrorCode::rate_limited, "verify",
            form.language == "ru"
                ? "Форма отправлена слишком быстро. Подождите пару секунд и отправьте ещё раз."
                : "The form was sent too fast. Wait a moment and send it again.");
        Reply reply = refuse(request, form, too_fast, "too_fast", origin, too_fast.detail);
        reply.headers.emplace_back("Retry-After", std::to_string(std::max<int64_t>(1, wait)));
        return reply;
      }
    } else if (form.require_render_token) {
      return refuse(
          request, form,
          make_error(ErrorCode::bad_request, "verify",
                     "this form must be sent by the page that shows it (render token missing)"),
          "render_token", origin, texts_for(form).reload);
    }

    SubmissionContext submission_context;
    submission_context.client_ip = ip;
    submission_context.user_agent = std::string(request.header("User-Agent"));
    submission_context.referer_header = std::string(request.header("Referer"));
    submission_context.idempotency_key = std::string(request.header("Idempotency-Key"));
    submission_context.phone_region = config.identity.default_region;
    submission_context.now = now_millis();
    NormalizedForm normalized =
        normalize_form(form, config.consent, fields.value(), submission_context);
    if (!normalized.problems.empty()) {
      std::string list;  // for the logs: names, never values
      for (const auto& p : normalized.problems) list += (list.empty() ? "" : ", ") + p.field;
      context().metrics.rejected.inc(
          {"webform", normalized.missing.empty() ? "invalid_field" : "required_missing"});
      Reply reply = visitor_error(
          request, form,
          make_error(ErrorCode::unprocessable, "normalize", "fields to correct: " + list),
          normalized.problems);
      add_cors(reply, origin);
      return reply;
    }
    for (const auto& field : normalized.dropped)
      context().metrics.dropped_values.inc({"webform", field});
    normalized.submission.raw_bytes = request.body;
    normalized.submission.raw_content_type = request.media_type();
    auto accepted = context().pipeline.submit(std::move(normalized.submission), request.deadline);
    if (!accepted) {
      Reply reply = visitor_error(request, form, accepted.error(), {});
      add_cors(reply, origin);
      return reply;
    }
    // The confirmation is owed to the submission, not to this delivery: a retry of a stored
    // submission whose mail was never sent (the first answer was lost) sends it now.
    std::string confirmation;
    if (!normalized.pending.empty() && normalized.email) {
      switch (ledger_.claim(normalized.submission_id, *normalized.email)) {
        case ConfirmationLedger::Decision::already_sent:
          confirmation = "sent";
          break;
        case ConfirmationLedger::Decision::recipient_limited:
          confirmation = "limited";
          context().metrics.consent_emails.inc({"recipient_limited"});
          break;
        case ConfirmationLedger::Decision::send:
          confirmation = "send";
          break;
      }
    }
    if (confirmation == "send") {
      LinkClaims claims;
      claims.kind = "confirm";
      claims.channel = "webform";
      claims.account = form.account;
      claims.email = *normalized.email;
      claims.submission_id = normalized.submission_id;
      claims.linked_interaction_id = accepted->id;
      claims.language = form.language;
      claims.return_url = form.return_url;
      claims.issued_at_ms = now_millis().time_since_epoch().count();
      claims.expires_at =
          claims.issued_at_ms / 1000 +
          std::chrono::duration_cast<std::chrono::seconds>(config.consent.confirm_ttl).count();
      std::string quoted;
      for (const FormConsent* c : normalized.pending) {
        const ConsentText* text = config.consent.text(c->text_id);
        claims.purposes.push_back(text->purpose);
        claims.channels.insert(claims.channels.end(), text->channels.begin(), text->channels.end());
        claims.text_ids.push_back(text->id);
        quoted += (quoted.empty() ? "" : "\n\n") + text->text;
      }
      std::sort(claims.channels.begin(), claims.channels.end());
      claims.channels.erase(std::unique(claims.channels.begin(), claims.channels.end()),
                            claims.channels.end());
      auto queued =
          context().consent.request_confirmation(claims, form.title, quoted, request.deadline);
      if (!queued && queued.error().code == ErrorCode::not_durable) {
        // The lead is durable, the confirmation mail is not: 503, so that the embed script
        // sends the same submission again (its lead is then a duplicate) until the mail is
        // queued. A 2xx here would leave the consent pending for ever.
        ledger_.forget(normalized.submission_id, *normalized.email);
        Reply reply = visitor_error(request, form, queued.error(), {});
        add_cors(reply, origin);
        return reply;
      }
      confirmation = queued ? "sent" : "not_sent";
    }
    return success(request, form, accepted->id, origin, confirmation);
  }

  RateLimiter limiter_;
  ConfirmationLedger ledger_;
};

}  // namespace

OMNIGATE_REGISTER_CONNECTOR("webform", WebformConnector);

}  // namespace omnigate::webform

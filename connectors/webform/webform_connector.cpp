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
    const FormAccount* found = find(request.account);
    std::string_view origin = request.header("Origin");
    if (found && origin_allowed(found->form, origin)) add_cors(reply, origin);
  }

 protected:
  uint64_t default_max_body() const override { return 64 * 1024; }

  void read(FormAccount& account, ConfigMap& entry) override {
    FormConfig& form = account.form;
    form.account = account.name;
    form.title = entry.string("title", account.name);
    form.allowed_origins = entry.string_list("allowed_origins");
    form.success_url = entry.string("success_url", "");
    ConfigMap fields = entry.map("fields");
    form.name_field = fields.string("name", form.name_field);
    form.phone_field = fields.string("phone", form.phone_field);
    form.email_field = fields.string("email", form.email_field);
    form.comment_field = fields.string("comment", form.comment_field);
    fields.finish();
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
  }

 public:
  void check(const Config& config, ConfigContext& context) const override {
    if (config.consent.signing_key.empty()) {
      context.problem(YAML::Mark(),
                      "channels.webform: consent.signing_key is required (it signs "
                      "render tokens and confirmation links)");
    }
    for (const auto& [account, form_account] : accounts()) {
      for (const auto& c : form_account.form.consents) {
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
    router.add_channel_route(
        {"POST", "webform", 0, [this](const InboundRequest& r) { return submit(r); }});
    router.add_channel_route(
        {"GET", "webform", 0, [this](const InboundRequest& r) { return describe(r); }});
    router.add_channel_route(
        {"OPTIONS", "webform", 0, [this](const InboundRequest& r) { return preflight(r); }});
    router.add_route("GET", "/omnigate-forms.js", 0, [](const InboundRequest&) {
      Reply reply =
          Reply::text(200, std::string(kEmbedScript), "application/javascript; charset=utf-8");
      reply.headers.emplace_back("Cache-Control", "public, max-age=300");
      reply.headers.emplace_back("Access-Control-Allow-Origin", "*");
      return reply;
    });
    for (const auto& [account, form_account] : accounts()) {
      if (!form_account.form.demo) continue;
      router.add_route(
          "GET", "/demo/" + account, 0,
          [this, &form = form_account.form](const InboundRequest&) { return demo_page(form); });
    }
  }

 private:
  const FormConfig& form_of(const InboundRequest& request) const {
    return account(request.account).form;
  }

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

  Reply preflight(const InboundRequest& request) {
    const FormConfig& form = form_of(request);
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
  Reply describe(const InboundRequest& request) {
    const FormConfig& form = form_of(request);
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
    Reply reply = Reply::json(200, {{"render_token", render_token(form)},
                                    {"min_fill_ms", form.min_fill_time.count()},
                                    {"consents", consents},
                                    {"language", form.language}});
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
    html = replace_all(html, "{{consent_checkboxes}}", boxes);
    return Reply::html(200, std::move(html));
  }

  bool wants_json(const InboundRequest& request) const {
    return request.header("Accept").find("application/json") != std::string_view::npos ||
           request.media_type() == "application/json";
  }

  Reply success(const InboundRequest& request, const FormConfig& form, const std::string& id,
                std::string_view origin) {
    Reply reply;
    if (wants_json(request)) {
      reply = Reply::json(202, {{"id", id}, {"status", "accepted"}});
    } else if (!form.success_url.empty()) {
      reply = Reply::redirect(form.success_url);
    } else {
      bool ru = form.language == "ru";
      reply = Reply::html(
          200, std::string("<!doctype html><meta charset=\"utf-8\"><title>") +
                   (ru ? "Спасибо" : "Thank you") + "</title><h1>" +
                   (ru ? "Спасибо! Мы получили вашу заявку." : "Thank you! We got your request.") +
                   "</h1>");
    }
    add_cors(reply, origin);
    return reply;
  }

  Reply submit(const InboundRequest& request) {
    const FormConfig& form = form_of(request);
    std::string_view origin = request.header("Origin");
    if (!origin_allowed(form, origin)) {
      return reject(make_error(ErrorCode::forbidden, "route", "origin not allowed for this form"),
                    "origin", {});
    }
    const Config& config = context().config;
    std::string ip = config.http.trusted_proxies.client_ip(
        request.remote_addr, request.header_joined("X-Forwarded-For"));
    if (int64_t wait = limiter_.admit(form.account + "|" + RateLimiter::client_key(ip),
                                      form.rate_limit_per_minute);
        wait > 0) {
      Reply reply =
          reject(make_error(ErrorCode::rate_limited, "route",
                            (form.language == "ru"
                                 ? "Слишком много заявок с вашего адреса. Попробуйте через "
                                 : "Too many submissions from your address. Try again in ") +
                                std::to_string(wait) + (form.language == "ru" ? " с." : " s.")),
                 "rate_limited", origin);
      reply.headers.emplace_back("Retry-After", std::to_string(wait));
      return reply;
    }
    auto fields = read_fields(request.media_type(), request.body, request.multipart);
    if (!fields) return reject(fields.error(), {}, origin);
    if (fields->size() > kMaxFields) {
      return reject(make_error(ErrorCode::bad_request, "parse",
                               "more than " + std::to_string(kMaxFields) + " fields"),
                    "too_many_fields", origin);
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
        return reject(make_error(ErrorCode::bad_request, "verify",
                                 "the form's render token is not valid; reload the page"),
                      "render_token", origin);
      }
      int64_t elapsed_ms = now_millis().time_since_epoch().count() - claims->issued_at_ms;
      if (elapsed_ms < form.min_fill_time.count()) {
        // Faster than a person types: maybe a bot, maybe a fast person. Never drop silently.
        int64_t wait =
            static_cast<int64_t>(std::ceil((form.min_fill_time.count() - elapsed_ms) / 1000.0));
        Reply reply = reject(
            make_error(
                ErrorCode::rate_limited, "verify",
                form.language == "ru"
                    ? "Форма отправлена слишком быстро. Подождите пару секунд и отправьте ещё раз."
                    : "The form was sent too fast. Wait a moment and send it again."),
            "too_fast", origin);
        reply.headers.emplace_back("Retry-After", std::to_string(std::max<int64_t>(1, wait)));
        return reply;
      }
    } else if (form.require_render_token) {
      return reject(
          make_error(ErrorCode::bad_request, "verify",
                     "this form must be sent by the page that shows it (render token missing)"),
          "render_token", origin);
    }

    SubmissionContext submission_context;
    submission_context.client_ip = ip;
    submission_context.user_agent = std::string(request.header("User-Agent"));
    submission_context.referer_header = std::string(request.header("Referer"));
    submission_context.idempotency_key = std::string(request.header("Idempotency-Key"));
    submission_context.now = now_millis();
    NormalizedForm normalized =
        normalize_form(form, config.consent, fields.value(), submission_context);
    if (!normalized.missing.empty()) {
      std::string list;
      for (const auto& name : normalized.missing) list += (list.empty() ? "" : ", ") + name;
      return reject(make_error(ErrorCode::unprocessable, "normalize",
                               (form.language == "ru" ? "Заполните обязательные поля: "
                                                      : "Please fill in: ") +
                                   list),
                    "required_missing", origin, {{"fields", normalized.missing}});
    }
    for (const auto& field : normalized.dropped)
      context().metrics.dropped_values.inc({"webform", field});
    normalized.submission.raw_bytes = request.body;
    normalized.submission.raw_content_type = request.media_type();
    auto accepted = context().pipeline.submit(std::move(normalized.submission), request.deadline);
    if (!accepted) {
      Reply reply = Reply::error(accepted.error());
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
        Reply reply = Reply::error(queued.error());
        add_cors(reply, origin);
        return reply;
      }
      confirmation = queued ? "sent" : "not_sent";
    }
    Reply reply = success(request, form, accepted->id, origin);
    if (!confirmation.empty() && reply.status == 202) {
      // The lead is durable either way; tell the page whether a confirmation e-mail is coming.
      reply = Reply::json(
          202, {{"id", accepted->id}, {"status", "accepted"}, {"confirmation", confirmation}});
      add_cors(reply, origin);
    }
    return reply;
  }

  RateLimiter limiter_;
  ConfirmationLedger ledger_;
};

}  // namespace

OMNIGATE_REGISTER_CONNECTOR("webform", WebformConnector);

}  // namespace omnigate::webform

#include "gateway/consent/consent.hpp"

#include <nlohmann/json.hpp>

#include "gateway/core/limits.hpp"
#include "gateway/core/log.hpp"
#include "gateway/core/secrets.hpp"
#include "gateway/core/strings.hpp"
#include "gateway/http/verify.hpp"
#include "gateway/model/formats.hpp"
#include "gateway/model/identifiers.hpp"
#include "gateway/model/ids.hpp"
#include "gateway/model/json_input.hpp"

namespace omnigate {
namespace {

using json = nlohmann::json;

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string join(const std::vector<std::string>& items, const char* separator) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

bool russian(const std::string& language) {
  return language.rfind("ru", 0) == 0;
}

// Escaped text with its line breaks kept (a consent text may have paragraphs).
std::string paragraphs(const std::string& text) {
  return replace_all(html_escape(text), "\n", "<br>");
}

}  // namespace

std::string consent_page_html(const std::string& language, const std::string& title,
                              const std::string& body_html, const std::string& return_url,
                              const std::string& operator_name) {
  bool ru = russian(language);
  std::string html = "<!doctype html><html lang=\"" + std::string(ru ? "ru" : "en") +
                     "\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
                     "content=\"width=device-width, initial-scale=1\"><meta name=\"robots\" "
                     "content=\"noindex\"><meta name=\"color-scheme\" content=\"light dark\">"
                     "<title>" +
                     html_escape(title) + "</title><style>" + std::string(kPageStyle) +
                     "</style></head><body><main>";
  if (!operator_name.empty())
    html += "<p class=\"operator\">" + html_escape(operator_name) + "</p>";
  html += "<h1>" + html_escape(title) + "</h1>" + body_html;
  if (formats::is_web_url(return_url)) {
    html += "<a class=\"back\" href=\"" + html_escape(return_url) + "\">" +
            (ru ? "← Вернуться на сайт" : "← Back to the site") + "</a>";
  }
  html += "</main></body></html>";
  return html;
}

std::string page_language(std::string_view accept_language) {
  std::string_view first = trim(accept_language.substr(0, accept_language.find_first_of(",;")));
  if (first.empty() || iequals(first.substr(0, std::min<size_t>(2, first.size())), "ru"))
    return "ru";
  return "en";
}

ConsentService::ConsentService(const Config& config, Pipeline& pipeline, Metrics& metrics,
                               Publisher& publisher)
    : config_(config), links_(config), pipeline_(pipeline), metrics_(metrics) {
  if (!config_.consent.smtp.url.empty()) {
    outbox_ = std::make_unique<Outbox>(publisher, config_, metrics_);
    outbox_->start_sender();
  }
}

ConsentService::~ConsentService() = default;

std::string ConsentLinks::sign(const LinkClaims& c) const {
  json payload = {{"k", c.kind},      {"ch", c.channel},      {"a", c.account},
                  {"e", c.email},     {"p", c.purposes},      {"c", c.channels},
                  {"t", c.text_ids},  {"s", c.submission_id}, {"l", c.linked_interaction_id},
                  {"lg", c.language}, {"n", c.nonce},         {"i", c.issued_at_ms},
                  {"x", c.expires_at}};
  if (!c.return_url.empty()) payload["r"] = c.return_url;  // links sealed before it had none
  return seal_token(config_.consent.signing_key,
                    payload.dump(-1, ' ', false, json::error_handler_t::replace));
}

Result<LinkClaims> ConsentLinks::verify(std::string_view token, std::string_view kind) const {
  auto forged = make_error(ErrorCode::forbidden, "verify", "forged");
  auto payload = open_token(config_.consent.signing_key, token);
  if (!payload) return forged;
  json j = json::parse(*payload, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return forged;
  LinkClaims c;
  try {
    c.kind = j.at("k").get<std::string>();
    c.channel = j.at("ch").get<std::string>();
    c.account = j.at("a").get<std::string>();
    c.email = j.at("e").get<std::string>();
    c.purposes = j.at("p").get<std::vector<std::string>>();
    c.channels = j.at("c").get<std::vector<std::string>>();
    c.text_ids = j.at("t").get<std::vector<std::string>>();
    c.submission_id = j.at("s").get<std::string>();
    c.linked_interaction_id = j.at("l").get<std::string>();
    c.language = j.at("lg").get<std::string>();
    c.nonce = j.at("n").get<std::string>();
    c.issued_at_ms = j.at("i").get<int64_t>();
    c.expires_at = j.at("x").get<int64_t>();
    c.return_url = j.value("r", std::string());
  } catch (const json::exception&) {
    return forged;  // signed by us but not this shape: treat as not ours
  }
  if (c.kind != kind) return forged;
  if (c.expires_at != 0 && unix_now() > c.expires_at) {
    return make_error(ErrorCode::gone, "verify", "the link has expired");
  }
  return c;
}

std::string ConsentLinks::confirm_url(const LinkClaims& claims) const {
  return config_.http.public_url + "/v1/consent/confirm?token=" + url_encode(sign(claims));
}

std::string ConsentLinks::unsubscribe_url(const LinkClaims& claims) const {
  return config_.http.public_url + "/v1/consent/unsubscribe?token=" + url_encode(sign(claims));
}

ConsentLinks::UnsubscribeLinks ConsentLinks::unsubscribe_links(const LinkClaims& claims) const {
  const std::string token = sign(claims);
  UnsubscribeLinks links;
  links.url = config_.http.public_url + "/v1/consent/unsubscribe?token=" + url_encode(token);
  links.list_unsubscribe = "<" + links.url + ">";
  if (!config_.consent.unsubscribe_mailto.empty()) {
    // The token is base64url: nothing in it needs escaping in a mailto: URI or a Subject.
    links.mailto = "mailto:" + config_.consent.unsubscribe_mailto +
                   "?subject=" + std::string(kMailtoSubjectPrefix) + token;
    links.list_unsubscribe += ", <" + links.mailto + ">";
  }
  return links;
}

Status ConsentService::request_confirmation(const LinkClaims& claims, const std::string& form_title,
                                            const std::string& consent_text,
                                            std::chrono::steady_clock::time_point deadline) {
  if (!outbox_) {
    metrics_.consent_emails.inc({"no_smtp"});
    log::warn("consent", "double opt-in requested by " + claims.channel + "/" + claims.account +
                             " but consent.smtp.url is not configured");
    return make_error(ErrorCode::internal, "config", "consent.smtp.url is not configured");
  }
  const MailTemplate& t =
      russian(claims.language) ? config_.consent.confirmation_ru : config_.consent.confirmation_en;
  int64_t hours =
      std::chrono::duration_cast<std::chrono::hours>(config_.consent.confirm_ttl).count();
  std::vector<std::pair<std::string, std::string>> vars = {
      {"link", links_.confirm_url(claims)},
      {"form", form_title},
      {"consent_text", consent_text},
      {"expires_hours", std::to_string(hours)}};
  OutgoingMail mail{
      claims.email, render_template(t.subject, vars), render_template(t.text, vars), {}};
  // One mail per submission and purposes: a retried form post queues it once.
  std::string id =
      interaction_id("outbox", claims.channel + "." + claims.account,
                     "confirm:" + claims.submission_id + ":" + join(claims.purposes, ","));
  if (auto queued = outbox_->enqueue(id, mail, deadline); !queued) {
    metrics_.consent_emails.inc({"outbox_unavailable"});
    log::warn("consent", "confirmation mail for " + claims.channel + "/" + claims.account +
                             " not queued: " + queued.error().detail);
    return queued.error();
  }
  metrics_.consent_emails.inc({"queued"});
  return ok_status();
}

LinkClaims ConsentLinks::unsubscribe_claims(const std::string& channel, const std::string& account,
                                            const std::string& email,
                                            std::vector<std::string> purposes,
                                            std::vector<std::string> channels,
                                            const std::string& language) const {
  LinkClaims c;
  c.kind = "unsubscribe";
  c.channel = channel;
  c.account = account;
  c.email = email;
  c.purposes = std::move(purposes);
  c.channels = std::move(channels);
  c.language = language.empty() ? "ru" : language;
  c.nonce = random_uuid();
  c.issued_at_ms = now_millis().time_since_epoch().count();
  return c;
}

ConsentEvidence ConsentService::click_evidence(const InboundRequest& request) const {
  ConsentEvidence e;
  e.ip = config_.http.trusted_proxies.client_ip(request.remote_addr,
                                                request.header_joined("X-Forwarded-For"));
  if (auto ua = request.header("User-Agent"); !ua.empty()) e.user_agent = std::string(ua);
  return e;
}

void ConsentService::register_routes(Router& router) {
  // GET only shows a button; the POST records the consent. Mail security scanners open
  // every link in a message, and an opened link must not become a "confirmed" consent.
  router.add_route("GET", "/v1/consent/confirm", 0,
                   [this](const InboundRequest& r) { return confirm_page(r); });
  router.add_route("POST", "/v1/consent/confirm", 4096,
                   [this](const InboundRequest& r) { return confirm(r); });
  router.add_route("GET", "/v1/consent/unsubscribe", 0,
                   [this](const InboundRequest& r) { return unsubscribe_page(r); });
  router.add_route("POST", "/v1/consent/unsubscribe", 4096,
                   [this](const InboundRequest& r) { return unsubscribe(r); });
  router.add_route("POST", "/v1/consent/links", 16 * 1024,
                   [this](const InboundRequest& r) { return mint_links(r); });
}

Interaction ConsentLinks::consent_interaction(const LinkClaims& c, ConsentEvidence evidence,
                                              const std::string& status, const std::string& method,
                                              const std::string& native_event) const {
  Interaction in;
  in.channel = c.channel;
  in.account = c.account;
  in.kind = "consent";
  in.occurred_at = now_millis();
  Contact contact;
  // A confirmation click proves control of the address; an unsubscribe click does not need to.
  contact.identifiers.push_back({"email", c.email, method == "double_opt_in", std::nullopt});
  in.contact = std::move(contact);
  for (size_t i = 0; i < c.purposes.size(); ++i) {
    Consent consent;
    consent.purpose = c.purposes[i];
    consent.status = status;
    consent.channels = c.channels;
    consent.method = method;
    consent.captured_at = in.occurred_at;
    consent.evidence = evidence;
    consent.evidence.native_event = native_event;
    if (!c.submission_id.empty()) consent.evidence.submission_id = c.submission_id;
    if (!c.linked_interaction_id.empty())
      consent.evidence.linked_interaction_id = c.linked_interaction_id;
    if (i < c.text_ids.size()) {
      consent.evidence.text_id = c.text_ids[i];
      if (const ConsentText* text = config_.consent.text(c.text_ids[i])) {
        consent.evidence.text_version = text->version;
        consent.evidence.text_sha256 = text->sha256;
        if (!text->policy_url.empty()) consent.evidence.policy_url = text->policy_url;
      }
    }
    in.consent.push_back(std::move(consent));
  }
  return in;
}

Interaction ConsentService::consent_interaction(const LinkClaims& c, const InboundRequest& request,
                                                const std::string& status,
                                                const std::string& method,
                                                const std::string& native_event) const {
  return links_.consent_interaction(c, click_evidence(request), status, method, native_event);
}

std::vector<const ConsentText*> ConsentService::texts_of(const LinkClaims& c) const {
  std::vector<const ConsentText*> out;
  for (const auto& id : c.text_ids) {
    if (const ConsentText* text = config_.consent.text(id)) out.push_back(text);
  }
  if (!out.empty()) return out;
  // A link minted by a CRM names purposes only: the texts configured for them.
  for (const auto& purpose : c.purposes) {
    for (const auto& text : config_.consent.texts) {
      if (text.purpose == purpose) out.push_back(&text);
    }
  }
  return out;
}

Reply ConsentService::link_page(int status, const LinkClaims& c, const std::string& title,
                                const std::string& intro, const std::string& action_html) const {
  bool ru = russian(c.language);
  std::string body = "<p>" + intro + "</p>";
  std::vector<const ConsentText*> texts = texts_of(c);
  for (const ConsentText* text : texts) {
    body += "<blockquote><p>" + paragraphs(text->text) + "</p><p class=\"meta\">" +
            (ru ? "Текст согласия, версия " : "Consent text, version ") +
            html_escape(text->version);
    if (formats::is_web_url(text->policy_url)) {
      body += " · <a href=\"" + html_escape(text->policy_url) +
              "\" target=\"_blank\" rel=\"noopener\">" +
              (ru ? "Политика обработки данных" : "Privacy policy") + "</a>";
    }
    body += "</p></blockquote>";
  }
  if (texts.empty()) {  // purposes without a configured text: name them at least
    body += "<blockquote><p>" + html_escape(join(c.purposes, ", ")) + "</p></blockquote>";
  }
  body += action_html;
  std::string back = c.return_url.empty() ? config_.consent.return_url : c.return_url;
  return Reply::html(
      status, consent_page_html(c.language, title, body, back, config_.consent.operator_name));
}

Reply ConsentService::bad_link_page(const Error& error, const InboundRequest& request) const {
  std::string language = page_language(request.header("Accept-Language"));
  bool ru = russian(language);
  std::string title, text;
  int status = 400;
  if (error.code == ErrorCode::gone) {
    status = error.http_status();
    title = ru ? "Ссылка устарела" : "This link has expired";
    text = ru ? "Срок действия ссылки истёк, поэтому мы ничего не изменили. Отправьте форму на "
                "сайте ещё раз — мы пришлём новое письмо."
              : "The link has expired, so nothing was changed. Submit the form on the site "
                "again and we will send you a new e-mail.";
  } else {
    title = ru ? "Ссылка недействительна" : "This link is not valid";
    text = ru ? "Ссылка повреждена или выдана не нами, поэтому мы ничего не изменили. Скопируйте "
                "её из письма целиком."
              : "The link is damaged or was not issued by us, so nothing was changed. Copy it "
                "from the e-mail in full.";
  }
  return Reply::html(
      status, consent_page_html(language, title, "<p>" + text + "</p>", config_.consent.return_url,
                                config_.consent.operator_name));
}

Reply ConsentService::not_durable_page(const LinkClaims& c) const {
  bool ru = russian(c.language);
  Reply reply = Reply::html(
      503, consent_page_html(
               c.language, ru ? "Попробуйте ещё раз через минуту" : "Please try again in a minute",
               ru ? "<p>Сейчас мы не можем сохранить ваш ответ. Откройте ссылку ещё раз чуть "
                    "позже.</p>"
                  : "<p>We cannot record your answer right now. Please open the link again "
                    "shortly.</p>",
               c.return_url.empty() ? config_.consent.return_url : c.return_url,
               config_.consent.operator_name));
  return reply;
}

namespace {

std::string post_button(std::string_view kind, std::string_view token, const char* label) {
  std::string action = "/v1/consent/" + std::string(kind) + "?token=" + url_encode(token);
  return "<form method=\"post\" action=\"" + html_escape(action) + "\"><button type=\"submit\">" +
         label + "</button></form>";
}

}  // namespace

Reply ConsentService::confirm_page(const InboundRequest& request) {
  std::string_view token = request.query_param("token");
  auto claims = links_.verify(token, "confirm");
  if (!claims) return bad_link_page(claims.error(), request);
  bool ru = russian(claims->language);
  std::string email = "<strong>" + html_escape(claims->email) + "</strong>";
  return link_page(200, *claims, ru ? "Подтвердите подписку" : "Confirm your subscription",
                   ru ? "Подтвердите, что адрес " + email + " ваш и вы согласны:"
                      : "Please confirm that " + email + " is your address and that you agree to:",
                   post_button("confirm", token, ru ? "Подтвердить" : "Confirm"));
}

Reply ConsentService::unsubscribe_page(const InboundRequest& request) {
  std::string_view token = request.query_param("token");
  auto claims = links_.verify(token, "unsubscribe");
  if (!claims) return bad_link_page(claims.error(), request);
  bool ru = russian(claims->language);
  std::string email = "<strong>" + html_escape(claims->email) + "</strong>";
  return link_page(200, *claims, ru ? "Отписаться?" : "Unsubscribe?",
                   ru ? "Больше не присылать на " + email +
                            " сообщения по этому согласию? Нажмите кнопку, чтобы его отозвать:"
                      : "Stop sending messages to " + email +
                            " under this consent? Press the button to withdraw it:",
                   post_button("unsubscribe", token, ru ? "Отписаться" : "Unsubscribe"));
}

Reply ConsentService::confirm(const InboundRequest& request) {
  auto claims = links_.verify(request.query_param("token"), "confirm");
  if (!claims) {
    metrics_.rejected.inc(
        {"consent", claims.error().code == ErrorCode::gone ? "expired" : "forged"});
    return bad_link_page(claims.error(), request);
  }
  const LinkClaims& c = claims.value();
  Submission submission;
  submission.interaction =
      consent_interaction(c, request, "granted", "double_opt_in", "double_opt_in_click");
  submission.native_key = "confirm:" + c.submission_id + ":" + join(c.purposes, ",");
  auto accepted = pipeline_.submit(std::move(submission), request.deadline);
  if (!accepted) return not_durable_page(c);
  bool ru = russian(c.language);
  std::string email = "<strong>" + html_escape(c.email) + "</strong>";
  if (accepted->duplicate) {
    return link_page(
        200, c, ru ? "Подписка уже подтверждена" : "Already confirmed",
        ru ? "Вы уже подтвердили адрес " + email + ". Ничего делать не нужно. Ваше согласие:"
           : "You have already confirmed " + email + ". Nothing else to do. Your consent:",
        "");
  }
  return link_page(200, c, ru ? "Спасибо, подписка подтверждена" : "Thank you, you are subscribed",
                   ru ? "Адрес " + email + " подтверждён. Вы согласились:"
                      : "The address " + email + " is confirmed. You agreed to:",
                   "");
}

Reply ConsentService::unsubscribe(const InboundRequest& request) {
  auto claims = links_.verify(request.query_param("token"), "unsubscribe");
  if (!claims) {
    metrics_.rejected.inc(
        {"consent", claims.error().code == ErrorCode::gone ? "expired" : "forged"});
    return bad_link_page(claims.error(), request);
  }
  const LinkClaims& c = claims.value();
  // RFC 8058: a mail client posts "List-Unsubscribe=One-Click" without showing our page.
  bool one_click = request.body.find("List-Unsubscribe=One-Click") != std::string_view::npos;
  Submission submission;
  submission.interaction =
      consent_interaction(c, request, "withdrawn", "unsubscribe_link",
                          one_click ? "list_unsubscribe_one_click" : "unsubscribe_page");
  submission.native_key = unsubscribe_native_key(c);
  auto accepted = pipeline_.submit(std::move(submission), request.deadline);
  if (!accepted) return not_durable_page(c);
  bool ru = russian(c.language);
  std::string email = "<strong>" + html_escape(c.email) + "</strong>";
  return link_page(
      200, c, ru ? "Вы отписались" : "You are unsubscribed",
      ru ? "Мы больше не будем присылать такие сообщения на " + email + ". Вы отозвали согласие:"
         : "We will not send such messages to " + email + " any more. You withdrew the consent:",
      "");
}

Reply ConsentService::mint_links(const InboundRequest& request) {
  const std::string& expected = config_.consent.links_token;
  if (expected.empty()) {
    return Reply::error(make_error(ErrorCode::not_found, "route",
                                   "POST /v1/consent/links is off: set consent.links_token"));
  }
  if (!constant_time_equals(verify::bearer_token(request.header("Authorization")), expected)) {
    return Reply::error(
        make_error(ErrorCode::unauthorized, "verify", "missing or wrong bearer token"));
  }
  auto parsed = parse_request_json(request.body);
  if (!parsed) return Reply::error(parsed.error());
  const json& body = *parsed;
  if (!body.is_object()) {
    return Reply::error(
        make_error(ErrorCode::bad_request, "parse", "the body must be a JSON object"));
  }
  auto text_field = [&](const char* key) {
    auto it = body.find(key);
    return it != body.end() && it->is_string() &&
                   it->get_ref<const std::string&>().size() <= limits::kMaxShortStringBytes
               ? it->get<std::string>()
               : std::string();
  };
  // purposes and channels end up in consent records: [a-z][a-z0-9_]* as the schema says.
  std::optional<Error> list_error;
  auto list_field = [&](const char* key, size_t max_length) {
    std::vector<std::string> out;
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) return out;
    bool ok = it->is_array() && it->size() <= limits::kMaxListItems;
    for (size_t i = 0; ok && i < it->size(); ++i) {
      const json& v = (*it)[i];
      ok = v.is_string() && formats::is_snake_key(v.get_ref<const std::string&>(), max_length);
      if (ok) out.push_back(v.get<std::string>());
    }
    if (!ok && !list_error) {
      list_error = make_error(ErrorCode::invalid_field, "parse",
                              std::string(key) +
                                  ": must be a list of snake_case keys such as marketing or email "
                                  "([a-z][a-z0-9_]*)");
    }
    return out;
  };
  std::string channel = text_field("channel").empty() ? "webform" : text_field("channel");
  std::string account = text_field("account");
  Connector* connector = config_.connector(channel);
  if (!connector || !connector->has_account(account)) {
    return Reply::error(make_error(ErrorCode::invalid_field, "parse",
                                   "account: no " + channel + " account named '" + account + "'"));
  }
  auto email = normalize_email(text_field("email"));
  if (!email)
    return Reply::error(
        make_error(ErrorCode::invalid_field, "parse", "email: not an e-mail address"));
  auto purposes = list_field("purposes", 64);
  auto channels = list_field("channels", limits::kMaxShortStringBytes);
  if (list_error) return Reply::error(*list_error);
  std::string language = text_field("language");
  if (!language.empty() && !formats::is_language_tag(language)) {
    return Reply::error(make_error(ErrorCode::invalid_field, "parse",
                                   "language: must be a language tag such as ru or en-US"));
  }
  if (purposes.empty()) purposes = {"marketing"};
  if (channels.empty()) channels = {"email"};
  LinkClaims claims =
      links_.unsubscribe_claims(channel, account, *email, purposes, channels, language);
  const ConsentLinks::UnsubscribeLinks minted = links_.unsubscribe_links(claims);
  json links = {{"unsubscribe_url", minted.url},
                {"list_unsubscribe", minted.list_unsubscribe},
                {"list_unsubscribe_post", "List-Unsubscribe=One-Click"}};
  if (!minted.mailto.empty()) links["unsubscribe_mailto"] = minted.mailto;
  return Reply::json(201, links);
}

}  // namespace omnigate

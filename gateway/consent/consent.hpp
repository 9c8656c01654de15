// Consent across channels: signed confirmation and unsubscribe links, the pages behind them,
// the double opt-in e-mail, and the `consent` interactions they publish.
//
//   GET  /v1/consent/confirm?token=      a page with one button (scanners open links: no effect)
//   POST /v1/consent/confirm?token=      the button → consent granted (double_opt_in)
//   GET  /v1/consent/unsubscribe?token=  a page with one button
//   POST /v1/consent/unsubscribe?token=  → consent withdrawn (unsubscribe_link); RFC 8058 one-click
//   POST /v1/consent/links               a CRM mints unsubscribe links (bearer consent.links_token)
//
// Tokens are sealed claims (AES-256-GCM under consent.signing_key): no server-side state, the
// e-mail inside is not readable from the link, and the interaction id derives from the claims,
// so a second click publishes nothing new.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/kit/connector.hpp"
#include "gateway/mail/mailer.hpp"
#include "gateway/mail/outbox.hpp"
#include "gateway/pipeline/pipeline.hpp"

namespace omnigate {

struct LinkClaims {
  std::string kind;  // "confirm" | "unsubscribe" | "render"
  std::string channel, account;
  std::string email;
  std::vector<std::string> purposes, channels, text_ids;
  std::string submission_id;          // confirm: the form submission
  std::string linked_interaction_id;  // confirm: the lead that carried the pending consent
  std::string language = "ru";
  std::string nonce;       // unsubscribe: makes each minted link its own event
  std::string return_url;  // the pages' "back to the site" link; empty = consent.return_url
  int64_t issued_at_ms = 0;
  int64_t expires_at = 0;  // unix seconds; 0 = never
};

// The prefix of the subject a mail to consent.unsubscribe_mailto carries before the token.
inline constexpr std::string_view kMailtoSubjectPrefix = "unsubscribe-";
// The native event key of an unsubscribe: the link's click and a mail to its mailto: share it,
// so however the person withdraws, it is one interaction.
inline std::string unsubscribe_native_key(const LinkClaims& claims) {
  return "unsubscribe:" + claims.nonce;
}
// The style of every page a visitor sees (gateway/consent/page.css, compiled in): the demo
// form, the web form's own pages and the consent pages look alike.
extern const std::string_view kPageStyle;

// A whole HTML page in `language` (ru…: Russian, else English): `title` (escaped here) as its
// heading, `body_html` as given (the caller escapes what it inserts), the operator's name above
// the heading and a "back to the site" link to `return_url` (an http(s) URL; otherwise none).
std::string consent_page_html(const std::string& language, const std::string& title,
                              const std::string& body_html, const std::string& return_url,
                              const std::string& operator_name);

// ru or en for a page answered without a link's language: the first Accept-Language tag.
std::string page_language(std::string_view accept_language);

// Signs and reads link claims; needs only the config (the consent-link CLI uses it alone).
class ConsentLinks {
 public:
  explicit ConsentLinks(const Config& config) : config_(config) {}
  std::string sign(const LinkClaims& claims) const;
  // forbidden (forged or not this kind) or invalid_field "expired" (410 at the page level).
  Result<LinkClaims> verify(std::string_view token, std::string_view kind) const;
  std::string confirm_url(const LinkClaims& claims) const;
  std::string unsubscribe_url(const LinkClaims& claims) const;
  // A mailing's unsubscribe link, its mailto: twin and the List-Unsubscribe header value, all
  // of one sealed token.
  struct UnsubscribeLinks {
    std::string url;
    std::string
        mailto;  // mailto:<consent.unsubscribe_mailto>?subject=unsubscribe-<token>; "" = off
    std::string list_unsubscribe;  // <url>, and <mailto> when configured
  };
  UnsubscribeLinks unsubscribe_links(const LinkClaims& claims) const;
  // The consent interaction of a link's claims: one entry per purpose with `evidence` (a
  // click's IP and user agent, or the mail that carried the token).
  Interaction consent_interaction(const LinkClaims& claims, ConsentEvidence evidence,
                                  const std::string& status, const std::string& method,
                                  const std::string& native_event) const;
  // Claims of a new unsubscribe link for (channel, account, email, purposes, channels).
  LinkClaims unsubscribe_claims(const std::string& channel, const std::string& account,
                                const std::string& email, std::vector<std::string> purposes,
                                std::vector<std::string> channels,
                                const std::string& language) const;

 private:
  const Config& config_;
};

class Publisher;

class ConsentService {
 public:
  // Starts the outbox's sender when consent.smtp.url is set.
  ConsentService(const Config& config, Pipeline& pipeline, Metrics& metrics, Publisher& publisher);
  ~ConsentService();

  const ConsentLinks& links() const { return links_; }

  // Queues the double opt-in e-mail for the pending consents of a durable lead in the durable
  // outbox; ok only after JetStream stored it. The same claims.submission_id queues one mail
  // (within the outbox's duplicate window). Errors: not_durable (the outbox is unreachable
  // before `deadline`: worth a retry), internal (no SMTP server configured: a retry will not
  // help). Each outcome is counted in omnigate_consent_emails_total.
  Status request_confirmation(const LinkClaims& claims, const std::string& form_title,
                              const std::string& consent_text,
                              std::chrono::steady_clock::time_point deadline);

  void register_routes(Router& router);
  const ConsentConfig& config() const { return config_.consent; }

 private:
  // A page of a valid link: the operator, the address, the exact consent texts and versions,
  // the way back; `action_html` (a POST button, escaped by the caller) below the texts.
  Reply link_page(int status, const LinkClaims& claims, const std::string& title,
                  const std::string& intro, const std::string& action_html) const;
  // The same page without a link the gateway can read (expired, forged).
  Reply bad_link_page(const Error& error, const InboundRequest& request) const;
  Reply not_durable_page(const LinkClaims& claims) const;
  // The consent texts the claims stand for: by text id, else the texts of each purpose.
  std::vector<const ConsentText*> texts_of(const LinkClaims& claims) const;
  // The consent interaction of a link click: one entry per purpose, with the click's evidence.
  Interaction consent_interaction(const LinkClaims& claims, const InboundRequest& request,
                                  const std::string& status, const std::string& method,
                                  const std::string& native_event) const;
  Reply confirm_page(const InboundRequest& request);
  Reply confirm(const InboundRequest& request);
  Reply unsubscribe_page(const InboundRequest& request);
  Reply unsubscribe(const InboundRequest& request);
  Reply mint_links(const InboundRequest& request);
  ConsentEvidence click_evidence(const InboundRequest& request) const;

  const Config& config_;
  ConsentLinks links_;
  Pipeline& pipeline_;
  Metrics& metrics_;
  std::unique_ptr<Outbox> outbox_;
};

}  // namespace omnigate

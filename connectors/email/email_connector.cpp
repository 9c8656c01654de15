// E-mail from an MTA: POST /v1/email/<account> (the raw message, bearer token) and the pipe
// command `omnigate email deliver <account>` (the message on stdin), both answering "taken"
// only once the interactions are in JetStream. An MTA queues and retries on its own, so
// neither spools: the route answers 503 with Retry-After (on_nats_down: reject, the default
// here) and the command exits 75 (EX_TEMPFAIL), which Postfix and Exim treat as "defer".
// And from a mailbox: mode imap polls it (imap_source.hpp on the shared poll loop: one
// instance per mailbox by lease, the cursor "UIDVALIDITY:UID" stored only once durable).
#include <sysexits.h>

#include <cstdio>
#include <string>
#include <vector>

#include "connectors/email/email_parse.hpp"
#include "connectors/email/imap_source.hpp"
#include "gateway/config/config.hpp"
#include "gateway/consent/consent.hpp"
#include "gateway/core/log.hpp"
#include "gateway/core/metrics.hpp"
#include "gateway/core/strings.hpp"
#include "gateway/http/verify.hpp"
#include "gateway/kit/accounts.hpp"
#include "gateway/model/ids.hpp"
#include "gateway/nats/direct_pipeline.hpp"
#include "gateway/pipeline/pipeline.hpp"
#include "gateway/pipeline/raw_archive.hpp"

namespace omnigate::email {
namespace {

using std::chrono::milliseconds;

struct MailAccount : AccountBase {
  std::string mode = "pipe";  // pipe (an MTA delivers) | imap (the gateway polls a mailbox)
  // IMAP (mode imap): imaps://host[:port], the folder polled, the login.
  std::string url;
  std::string mailbox = "INBOX";
  std::string username;
  std::string password;      // or:
  std::string oauth2_token;  // XOAUTH2 bearer (Gmail, Outlook)
  milliseconds poll_interval{60'000};
  bool tls_verify = true;
  std::string after_durable = "keep";  // keep | seen | move:<folder>
  // The pipe route's bearer token (mode pipe).
  std::string token;
  // Opens GET /v1/media/email/<account>/<interaction id>/<part>; "" = off.
  std::string media_token;
  std::vector<std::string> addresses;  // the mailbox's own addresses, lower-case

  MailboxSettings settings() const { return {name, addresses, stop_words}; }
};

constexpr uint64_t kDefaultMaxMessage = 50ull * 1024 * 1024;
// How long `deliver` waits for the dedup index to read the stream before answering 75.
constexpr std::chrono::seconds kIndexCatchUp{120};

// What the command reads of stdin: at most `limit` + 1 bytes (one more says "too large").
std::string read_stdin(uint64_t limit, bool& too_large) {
  std::string data;
  char buffer[64 * 1024];
  too_large = false;
  while (true) {
    size_t n = std::fread(buffer, 1, sizeof buffer, stdin);
    if (n == 0) break;
    if (data.size() + n > limit) {
      too_large = true;
      return {};
    }
    data.append(buffer, n);
  }
  return data;
}

// The token of a mail to consent.unsubscribe_mailto: its subject is
// "unsubscribe-<token>" (as the mailto: wrote it, perhaps behind "Re: " or "Fwd: "); "" when
// the subject is not one.
std::string_view mailed_unsubscribe_token(std::string_view subject) {
  size_t at = subject.find(kMailtoSubjectPrefix);
  if (at == std::string_view::npos || at > 16) return {};
  size_t end = at + kMailtoSubjectPrefix.size();
  size_t from = end;
  while (end < subject.size() && end - from < 4096) {
    char c = subject[end];
    bool token_char = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_';
    if (!token_char) break;
    ++end;
  }
  return subject.substr(from, end - from);
}

// A mail to the mailto: twin of an unsubscribe link publishes the link's own withdrawal (the
// same interaction id as a click on it: one withdrawal, whichever came first), with the mail
// as its evidence. A forged or expired token is counted; the mail itself is published either
// way, like any other.
void add_mailed_unsubscribe(Mapped& mapped, const Config& config, const ConsentLinks& links,
                            std::string_view account, Metrics* metrics) {
  if (config.consent.unsubscribe_mailto.empty() || mapped.submissions.empty()) return;
  const Submission& mail = mapped.submissions.front();
  const Interaction& in = mail.interaction;
  if (in.kind != "message" || !in.message || !in.message->subject) return;
  std::string_view token = mailed_unsubscribe_token(*in.message->subject);
  if (token.empty()) return;
  auto claims = links.verify(token, "unsubscribe");
  if (!claims) {
    const bool expired = claims.error().code == ErrorCode::gone;
    if (metrics)
      metrics->rejected.inc({"email", expired ? "unsubscribe_expired" : "unsubscribe_forged"});
    log::warn("email", std::string("a mail to the unsubscribe address carried ") +
                           (expired ? "an expired" : "a forged") + " token; published as a mail");
    return;
  }
  ConsentEvidence evidence;
  evidence.linked_interaction_id = interaction_id("email", account, mail.native_key);
  Interaction withdrawal = links.consent_interaction(*claims, evidence, "withdrawn",
                                                     "unsubscribe_link", "list_unsubscribe_mailto");
  std::string_view raw = mail.raw_bytes;
  mapped.add(std::move(withdrawal), unsubscribe_native_key(*claims), raw, "message/rfc822");
}

// An imap account's poll loop as the kit's background worker of that account.
class ImapPoller : public AccountWorker {
 public:
  ImapPoller(std::unique_ptr<PollSource> source, CursorStore& cursors, Pipeline& pipeline,
             Metrics& metrics, PollLoopSettings settings)
      : loop_(std::move(source), cursors, pipeline, metrics, std::move(settings)) {}
  void start() { loop_.start(); }
  void stop() override { loop_.stop(); }

 private:
  PollLoop loop_;
};

class EmailConnector : public ChannelConnector<MailAccount> {
 public:
  std::string_view channel() const override { return "email"; }
  // An MTA queues and retries on its own: a 503 is the honest answer, never a local spool.
  bool spools_by_default() const override { return false; }
  std::string why_never_spools() const override {
    return "e-mail never spools: the whole message must reach the raw archive "
           "(nats.raw_archive) in JetStream before it is taken; an MTA's queue, or the mailbox, "
           "keeps it until then";
  }
  int config_error_exit_code() const override { return EX_CONFIG; }
  std::string max_body_key() const override { return "max_message"; }

  std::string command_usage() const override {
    return "omnigate email deliver <account> < m.eml  an MTA's pipe: exit 0 durable, 75 retry "
           "later\n";
  }

  std::string account_mode(std::string_view account) const override {
    AccountRef a = find(account);
    return a ? a->mode : "";
  }

  int command(const std::vector<std::string>& args, const Config& config) override {
    if (args.size() != 2 || args[0] != "deliver") {
      std::fprintf(stderr, "usage (each takes --config FILE too):\n%s", command_usage().c_str());
      return EX_USAGE;
    }
    return deliver(args[1], config);
  }

 protected:
  bool uses_stop_words() const override { return true; }
  uint64_t default_max_body() const override { return kDefaultMaxMessage; }

  void read(MailAccount& a, ConfigMap& entry) override {
    a.mode = entry.string("mode", a.mode);
    a.url = entry.string("url", "");
    a.mailbox = entry.string("mailbox", a.mailbox);
    a.username = entry.string("username", "");
    // Credentials the gateway presents (not checks): any length, from ${ENV} or ${file:}.
    a.password = entry.string("password", "");
    a.oauth2_token = entry.string("oauth2_token", "");
    a.poll_interval = entry.duration("poll_interval", a.poll_interval);
    a.tls_verify = entry.boolean("tls_verify", a.tls_verify);
    a.after_durable = entry.string("after_durable", a.after_durable);
    a.token = entry.secret("token", a.mode == "pipe");
    a.media_token = entry.secret("media_token", false);
    for (const std::string& address : entry.string_list("addresses")) {
      std::string_view trimmed = trim(address);
      size_t at = trimmed.find('@');
      if (at == std::string_view::npos || at == 0 || at + 1 == trimmed.size())
        entry.problem("addresses", "'" + address + "' is not an e-mail address");
      else
        a.addresses.push_back(ascii_lower(trimmed));
    }

    if (a.mailbox.empty()) entry.problem("mailbox", "must name a folder (default INBOX)");
    if (a.poll_interval < milliseconds(1000))
      entry.problem("poll_interval",
                    "must be at least 1s (providers lock out mailboxes polled faster)");
    if (!parse_after_durable(a.after_durable))
      entry.problem("after_durable", "must be keep, seen or move:<folder>");
    if (a.mode == "imap") {
      if (a.url.empty())
        entry.problem("url", "is required for mode imap: imaps://host[:port]");
      else if (a.url.rfind("imaps://", 0) != 0 && a.url.rfind("imap://", 0) != 0)
        entry.problem("url", "must be imaps://host[:port] (imap:// only for a local test server)");
      if (a.username.empty()) entry.problem("username", "is required for mode imap");
      if (a.password.empty() == a.oauth2_token.empty())
        entry.problem("password", "mode imap needs exactly one of password and oauth2_token");
    } else if (a.mode == "pipe") {
      if (!a.url.empty()) entry.problem("url", "is for mode imap; a pipe account has no mailbox");
    } else {
      entry.problem("mode", "must be pipe or imap");
    }
  }

  void start_channel(GatewayContext& context, Router& router) override {
    router.add_channel_route(
        {"POST", "email", 0, [this](const InboundRequest& r) { return receive(r); }});
    router.add_media_source("email", media_source(context.raw_archive));
  }

  // An imap account's poller: the IMAP source on the kit's poll loop (lease, cursor, back-off).
  std::unique_ptr<AccountWorker> start_worker(const AccountRef& a) override {
    if (a->mode != "imap") return nullptr;
    GatewayContext& context = this->context();
    const std::string& name = a->name;
    ImapSourceSettings settings;
    settings.imap.account = name;
    settings.imap.url = a->url;
    settings.imap.mailbox = a->mailbox;
    settings.imap.username = a->username;
    settings.imap.password = a->password;
    settings.imap.oauth2_token = a->oauth2_token;
    settings.imap.tls_verify = a->tls_verify;
    settings.imap.max_message = a->max_body;
    settings.poll_interval = a->poll_interval;
    settings.after_durable = parse_after_durable(a->after_durable).value();  // checked in read
    auto source = std::make_unique<ImapSource>(
        std::move(settings),
        [mailbox = a->settings(), &context](std::string_view raw, SysMillis now) {
          auto mapped = parse_email(raw, mailbox, now);
          if (mapped)
            add_mailed_unsubscribe(mapped.value(), context.config, context.consent.links(),
                                   mailbox.account, &context.metrics);
          return mapped;
        });
    auto poller = std::make_unique<ImapPoller>(
        std::move(source), context.cursors, context.pipeline, context.metrics,
        poll_loop_settings(context.config, "email", name, imap_cursor_key(name), milliseconds(0)));
    poller->start();
    return poller;
  }

 private:
  // POST /v1/email/<account>: the raw message as the body, any Content-Type.
  Reply receive(const InboundRequest& request) {
    AccountRef found = account(request.account);
    if (!found) return unknown_account(request.account);
    const MailAccount& a = *found;
    if (a.token.empty()) {
      return reject(make_error(ErrorCode::unauthorized, "verify",
                               "this account takes no mail over HTTP (it has no token)"));
    }
    if (auto ok = verify::bearer(request, a.token); !ok) return reject(ok.error());
    auto mapped = parse_email(request.body, a.settings(), now_millis());
    if (!mapped) return reject(mapped.error());
    add_mailed_unsubscribe(mapped.value(), context().config, context().consent.links(),
                           request.account, &context().metrics);
    auto accepted =
        context().pipeline.submit_mapped(std::move(mapped.value()), "email", request.deadline);
    if (!accepted) return Reply::error(accepted.error());
    return Reply::json(200, answer(accepted.value()));
  }

  // GET /v1/media/email/<account>/<interaction id>/<part>: the account's media_token opens it;
  // the message is read back from the raw archive and the part (the attachment's
  // provider_ref.part) decoded from it.
  MediaSource media_source(RawArchive& archive) const {
    MediaSource source;
    source.nested_refs = true;
    source.bearer_token = [this](std::string_view account) -> std::optional<std::string> {
      AccountRef a = find(account);
      if (!a) return std::nullopt;
      return a->media_token;
    };
    source.resolve = [this, &archive](std::string_view account,
                                      std::string_view ref) -> Result<MediaTarget> {
      size_t slash = ref.find('/');
      std::string_view id = ref.substr(0, slash);
      if (slash == std::string_view::npos || !looks_like_uuid(id))
        return make_error(ErrorCode::not_found, "media",
                          "an e-mail media ref is <interaction id>/<part>: the interaction's "
                          "id and the attachment's provider_ref.part (\"2\", \"1.2\")");
      std::string_view path = ref.substr(slash + 1);
      AccountRef a = find(account);
      if (!a) return no_such_account(account);
      auto raw = archive.get(raw_object_name("email", account, id), a->max_body);
      if (!raw) return raw.error();
      if (!raw.value())
        return make_error(ErrorCode::not_found, "media",
                          "no archived message for this interaction (not an e-mail of this "
                          "account, or past nats.raw_archive.max_age)");
      auto part = email_part(*raw.value(), path);
      if (!part) return part.error();
      MediaTarget target;
      target.content_type = part->content_type;
      target.file_name = part->file_name;
      target.local = [bytes = std::move(part->bytes)](const MediaTarget::Begin& begin,
                                                      const MediaTarget::Write& write) {
        if (!begin("")) return ok_status();
        constexpr size_t kChunk = 256 * 1024;
        for (size_t at = 0; at < bytes.size(); at += kChunk) {
          if (!write(std::string_view(bytes).substr(at, kChunk))) break;
        }
        return ok_status();
      };
      return target;
    };
    return source;
  }

  // A UUID in its 36-character text form (what interaction ids are).
  static bool looks_like_uuid(std::string_view id) {
    if (id.size() != 36) return false;
    for (size_t i = 0; i < id.size(); ++i) {
      bool dash = i == 8 || i == 13 || i == 18 || i == 23;
      char c = id[i];
      if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
  }

  // The first interaction (the mail itself, or its first bounce) names the delivery; null when
  // the mail was acknowledged without publishing (a DSN of delayed recipients only).
  static nlohmann::json answer(const std::vector<Accepted>& accepted) {
    if (accepted.empty()) return {{"id", nullptr}, {"duplicate", false}};
    return {{"id", accepted.front().id}, {"duplicate", accepted.front().duplicate}};
  }

  // `omnigate email deliver <account>`: exit codes of sysexits.h, as MTAs read them.
  int deliver(const std::string& name, const Config& config) {
    // stderr is what the MTA logs and bounces with: one line of ours, not the gateway's log.
    log::set_level("error");
    AccountRef a = find(name);
    if (!a) {
      std::fprintf(stderr, "omnigate email deliver: no email account named '%s'\n", name.c_str());
      return EX_CONFIG;
    }
    bool too_large = false;
    std::string raw = read_stdin(a->max_body, too_large);
    if (too_large) {
      std::fprintf(stderr,
                   "omnigate email deliver: the message is larger than max_message (%llu "
                   "bytes)\n",
                   static_cast<unsigned long long>(a->max_body));
      return EX_DATAERR;
    }
    auto mapped = parse_email(raw, a->settings(), now_millis());
    if (!mapped) {
      std::fprintf(stderr, "omnigate email deliver: %s\n", mapped.error().detail.c_str());
      return EX_DATAERR;
    }
    add_mailed_unsubscribe(mapped.value(), config, ConsentLinks(config), name, nullptr);
    const auto& nats = config.nats;
    auto started = std::chrono::steady_clock::now();
    // A retry must be recognised however old the first delivery is, so the dedup index reads
    // the stream first; an MTA gives a pipe command minutes (Postfix: command_time_limit).
    auto direct = DirectPipeline::open(
        config, started + nats.connect_timeout + nats.publish_timeout, started + kIndexCatchUp);
    if (!direct) {
      std::fprintf(stderr, "omnigate email deliver: not delivered, retry later: %s\n",
                   direct.error().detail.c_str());
      return EX_TEMPFAIL;
    }
    auto accepted = direct.value()->pipeline().submit_mapped(
        std::move(mapped.value()), "email",
        std::chrono::steady_clock::now() + nats.publish_timeout);
    if (!accepted) {
      const Error& error = accepted.error();
      std::fprintf(stderr, "omnigate email deliver: %s%s\n",
                   error.code == ErrorCode::not_durable ? "not delivered, retry later: " : "",
                   error.detail.c_str());
      return error.code == ErrorCode::not_durable || error.code == ErrorCode::overloaded ||
                     error.code == ErrorCode::internal
                 ? EX_TEMPFAIL
                 : EX_DATAERR;
    }
    std::printf("%s\n", answer(accepted.value()).dump().c_str());
    return EX_OK;
  }
};

}  // namespace

OMNIGATE_REGISTER_CONNECTOR("email", EmailConnector);

}  // namespace omnigate::email

#include "connectors/email/imap_source.hpp"

#include <charconv>
#include <thread>

#include "gateway/core/log.hpp"

namespace omnigate::email {
namespace {

using std::chrono::milliseconds;

std::optional<uint64_t> number(std::string_view text) {
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

}  // namespace

Result<AfterDurable> parse_after_durable(std::string_view text) {
  AfterDurable after;
  if (text == "keep") return after;
  if (text == "seen") {
    after.action = AfterDurable::seen;
    return after;
  }
  std::string quoted;
  if (text.substr(0, 5) == "move:" && text.size() > 5 && imap_quote(text.substr(5), quoted)) {
    after.action = AfterDurable::move;
    after.folder = std::string(text.substr(5));
    return after;
  }
  return make_error(ErrorCode::invalid_field, "config",
                    "after_durable must be keep, seen or move:<folder> (a UTF-8 folder name)");
}

std::optional<std::pair<uint64_t, uint64_t>> parse_imap_cursor(std::string_view cursor) {
  const size_t colon = cursor.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto validity = number(cursor.substr(0, colon));
  auto uid = number(cursor.substr(colon + 1));
  if (!validity || !uid || *validity == 0) return std::nullopt;
  return std::make_pair(*validity, *uid);
}

std::string imap_cursor(uint64_t uidvalidity, uint64_t uid) {
  return std::to_string(uidvalidity) + ":" + std::to_string(uid);
}

std::string imap_cursor_key(const std::string& account) {
  return "email." + account + ".uid";
}

ImapSource::ImapSource(ImapSourceSettings settings, MailMapper mapper)
    : settings_(std::move(settings)), mapper_(std::move(mapper)), client_(settings_.imap) {}

void ImapSource::reset() {
  client_.disconnect();
  uidvalidity_ = 0;
  warned_unreadable_ = false;
}

PollError ImapSource::failed(const Error& error) {
  PollError out{error, milliseconds(0), !client_.connected()};
  // Retrying soon cannot fix these; a login retried every second can lock the account.
  if (error.code == ErrorCode::unauthorized || error.code == ErrorCode::not_found ||
      error.code == ErrorCode::invalid_field) {
    out.at_least = milliseconds(60'000);
  }
  return out;
}

PollBatch ImapSource::idle(const std::atomic<bool>& cancel) {
  const auto until = std::chrono::steady_clock::now() + settings_.poll_interval;
  while (!cancel && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(milliseconds(20));
  // The cursor stays: only a message confirms a position, so an empty (or re-created, still
  // empty) mailbox writes nothing.
  return PollBatch{};
}

PollResult ImapSource::fetch(const std::string& cursor, const std::atomic<bool>& cancel) {
  auto stored = parse_imap_cursor(cursor);
  if (!stored && !cursor.empty() && !warned_unreadable_) {
    warned_unreadable_ = true;
    log::error("email", who() + ": the stored cursor " + imap_cursor_key(settings_.imap.account) +
                            " (" + std::to_string(cursor.size()) +
                            " bytes) is not UIDVALIDITY:UID; re-reading the mailbox from UID 1, "
                            "messages already published are recognised as duplicates");
  }
  const bool reused = client_.connected();
  if (!reused) {
    if (auto connected = client_.connect(&cancel); !connected) return failed(connected.error());
  }
  // Read-only unless the mailbox is to be changed after durability: EXAMINE cannot set flags.
  const bool read_only = settings_.after_durable.action == AfterDurable::keep;
  auto state = client_.select(read_only);
  if (!state && reused && !client_.connected() && !cancel) {
    // A session idle for a poll_interval may have been closed by the server (idle timeouts
    // of a few minutes are common): one new connection before this counts as a failure.
    log::info("email", who() + ": the idle connection was closed (" + state.error().detail +
                           "); reconnecting");
    if (auto connected = client_.connect(&cancel); !connected) return failed(connected.error());
    state = client_.select(read_only);
  }
  if (!state) return failed(state.error());
  uidvalidity_ = state->uidvalidity;
  uint64_t last = 0;
  if (stored && stored->first == uidvalidity_) {
    last = stored->second;
  } else if (stored && stored->second > 0 && warned_validity_ != uidvalidity_) {
    // (From UID 0 there is nothing to re-scan: dovecot gives an empty maildir a new
    // UIDVALIDITY at every open until its first message, which is no news.)
    warned_validity_ = uidvalidity_;
    log::warn("email", who() + ": the mailbox's UIDVALIDITY changed from " +
                           std::to_string(stored->first) + " to " + std::to_string(uidvalidity_) +
                           "; re-scanning it from UID 1 (mail already published is a duplicate)");
  }
  if (state->uidnext != 0 && state->uidnext <= last + 1) return idle(cancel);
  auto found = client_.search_from(last + 1);
  if (!found) return failed(found.error());
  if (found->empty()) return idle(cancel);
  if (found->size() > settings_.batch_size) found->resize(settings_.batch_size);
  auto sizes = client_.sizes(*found);
  if (!sizes) return failed(sizes.error());

  PollBatch batch;
  // Messages expunged since the search are skipped: the next cursor passes their UIDs.
  batch.next_cursor = imap_cursor(uidvalidity_, found->back());
  for (const auto& [uid, size] : *sizes) {
    if (cancel) return PollBatch{};
    auto message = client_.fetch(uid, size);
    if (!message && message.error().code == ErrorCode::not_found) continue;  // expunged
    if (!message) {
      // The connection is gone: what was read so far is a batch of its own (its cursor
      // confirms only those); the next fetch reconnects.
      if (batch.items.empty()) return failed(message.error());
      log::warn("email", who() + ": " + message.error().detail);
      batch.next_cursor.clear();
      break;
    }
    PolledItem& item = batch.items.emplace_back();
    item.cursor_after = imap_cursor(uidvalidity_, uid);
    item.raw = message->raw;
    if (message->too_large) {
      item.rejected = make_error(ErrorCode::payload_too_large, "fetch",
                                 "message UID " + std::to_string(uid) + " of " +
                                     std::to_string(size) + " bytes is above max_message (" +
                                     std::to_string(settings_.imap.max_message) +
                                     "); left in the mailbox, not published");
      continue;
    }
    auto mapped = mapper_(*item.raw, now_millis());
    if (mapped) {
      item.mapped = std::move(mapped.value());
    } else {
      Error error = mapped.error();
      error.detail = "message UID " + std::to_string(uid) + ": " + error.detail;
      item.rejected = std::move(error);
    }
  }
  return batch;
}

void ImapSource::on_durable(const PollBatch& batch, size_t durable) {
  if (settings_.after_durable.action == AfterDurable::keep) return;
  std::vector<uint64_t> uids;
  for (size_t i = 0; i < durable && i < batch.items.size(); ++i) {
    const PolledItem& item = batch.items[i];
    // A message that was not published (too large, unreadable) stays as it is for a person.
    if (item.rejected || item.mapped.submissions.empty()) continue;
    auto position = parse_imap_cursor(item.cursor_after);
    if (position && position->first == uidvalidity_) uids.push_back(position->second);
  }
  if (uids.empty()) return;
  if (!client_.connected()) {
    log::warn("email",
              who() + ": " + std::to_string(uids.size()) + " durable messages not marked (" +
                  (settings_.after_durable.action == AfterDurable::seen ? "seen" : "move") +
                  "): the connection was lost");
    return;
  }
  const Status done = settings_.after_durable.action == AfterDurable::seen
                          ? client_.mark_seen(uids)
                          : client_.move(uids, settings_.after_durable.folder);
  if (!done) {
    log::warn("email", who() + ": " + std::to_string(uids.size()) +
                           " durable messages not marked: " + done.error().detail);
  }
}

}  // namespace omnigate::email

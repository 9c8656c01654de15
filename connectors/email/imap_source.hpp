// The IMAP poller's provider part: a PollSource (gateway/state/poll_loop.hpp) for one mailbox.
//
// Cursor "UIDVALIDITY:UID" ("V:uid", decimal): every message is an item with cursor_after
// "V:<its uid>", so the stored cursor confirms exactly the messages up to it.
//   - No cursor stored (a mailbox connected for the first time): polling starts at UID 1, so
//     every message already in the mailbox is published once, oldest first, then new mail.
//     A stored cursor that cannot be read is logged and treated the same way.
//   - The mailbox's UIDVALIDITY differs from the cursor's (the mailbox was re-created or the
//     server renumbered it): re-scan from UID 1 with the new V. The same mail maps to the same
//     interaction id (Message-ID), so the re-scan publishes nothing twice.
//   - At most batch_size messages per fetch, so a 10,000-message mailbox is many small batches,
//     each confirmed on its own.
//   - Nothing new: the fetch waits poll_interval (returning early on cancel) and returns an
//     empty batch; the cursor stays as it is (only a message confirms a position).
//   - Messages are read with BODY.PEEK[] (never flagged \Seen by reading); after_durable seen /
//     move is done in on_durable, for the durable prefix only, so mail that is not durable
//     stays where and as it was.
//   - A message above max_message is not fetched whole: its header block is read and the item
//     is rejected (payload_too_large: counted, logged, passed over), and it is left unflagged
//     in the mailbox for a person to see.
//   - A lost connection is a PollError with reset_source; the next fetch reconnects.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "connectors/email/imap_client.hpp"
#include "gateway/core/clock.hpp"
#include "gateway/state/poll_loop.hpp"

namespace omnigate::email {

struct AfterDurable {
  enum Action { keep, seen, move } action = keep;
  std::string folder;  // move only
};

// "keep" | "seen" | "move:<folder>" (the folder non-empty UTF-8, e.g. move:Обработано, sent
// in modified UTF-7); invalid_field otherwise.
Result<AfterDurable> parse_after_durable(std::string_view text);

struct ImapSourceSettings {
  ImapSettings imap;
  std::chrono::milliseconds poll_interval{60'000};
  AfterDurable after_durable;
  size_t batch_size = 50;
};

// One message's raw bytes -> what to publish (the e-mail mapping, parse_email at the wiring).
using MailMapper = std::function<Result<Mapped>(std::string_view raw, SysMillis now)>;

// "V:uid" <-> (uidvalidity, uid).
std::optional<std::pair<uint64_t, uint64_t>> parse_imap_cursor(std::string_view cursor);
std::string imap_cursor(uint64_t uidvalidity, uint64_t uid);
// The omnigate_cursors key of an account: "email.<account>.uid".
std::string imap_cursor_key(const std::string& account);

class ImapSource : public PollSource {
 public:
  ImapSource(ImapSourceSettings settings, MailMapper mapper);
  PollResult fetch(const std::string& cursor, const std::atomic<bool>& cancel) override;
  void reset() override;
  void on_durable(const PollBatch& batch, size_t durable) override;

 private:
  PollBatch idle(const std::atomic<bool>& cancel);
  PollError failed(const Error& error);
  std::string who() const { return "email/" + settings_.imap.account; }

  const ImapSourceSettings settings_;
  const MailMapper mapper_;
  ImapClient client_;
  uint64_t uidvalidity_ = 0;  // of the mailbox as last selected
  bool warned_unreadable_ = false;
  uint64_t warned_validity_ = 0;  // the new UIDVALIDITY last logged
};

}  // namespace omnigate::email
